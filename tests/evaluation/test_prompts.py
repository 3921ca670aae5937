"""Prompt protocols and the conditional-prompting suffixes (the s1 harness's PROMPT* suffixes, paper Table 3)."""

import pytest

from s1.errors import UserError
from s1.evaluation import format_prompt, load_benchmark
from s1.evaluation.prompts import (long_conditional, short_conditional, step_conditional,
                                   token_conditional)


@pytest.fixture(scope="module")
def item():
    return load_benchmark("aime24", limit=1)[0]


def test_s1_protocol_is_the_bare_question(item):
    assert format_prompt(item) == item.question
    assert format_prompt(item, protocol="s1") == item.question


def test_boxed_protocol_appends_the_r1_instruction(item):
    text = format_prompt(item, protocol="boxed")
    assert text == item.question + "\n\n" + \
        "Please reason step by step, and put your final answer within \\boxed{}."


def test_conditional_suffixes_are_the_harness_texts(item):
    q = item.question
    assert token_conditional(q, 2048) == q + "\n\nThink for up to 2048 tokens."
    assert step_conditional(q, 64) == q + "\n\nThink for up to 64 steps."
    assert long_conditional(q) == q + (
        "\n\nAnswer after a long amount of thinking. If you feel like you are finished early, "
        "spend the extra time trying to double-check your work until you are absolutely sure "
        "that you have the correct answer.")
    assert short_conditional(q) == q + (
        "\n\nAnswer after a short amount of thinking. Do not spend excessive time "
        "double-checking your work.")


def test_format_prompt_takes_suffix_specs_and_functions(item):
    q = item.question
    assert format_prompt(item, suffix="tokens:512") == token_conditional(q, 512)
    assert format_prompt(item, suffix="steps:16") == step_conditional(q, 16)
    assert format_prompt(item, suffix="long") == long_conditional(q)
    assert format_prompt(item, suffix=short_conditional) == short_conditional(q)
    boxed = format_prompt(item, protocol="boxed", suffix="tokens:512")
    assert boxed.startswith(token_conditional(q, 512) + "\n\n") and boxed.endswith("\\boxed{}.")
    assert format_prompt("What is 1+1?", suffix="short").startswith("What is 1+1?\n\n")


@pytest.mark.parametrize("spec", ["tokens", "tokens:abc", "tokens:0", "steps:-3", "medium",
                                  "long:5"])
def test_bad_suffix_specs_are_user_errors(item, spec):
    with pytest.raises(UserError):
        format_prompt(item, suffix=spec)


def test_unknown_protocol(item):
    with pytest.raises(UserError, match="unknown prompt protocol 'chatty'"):
        format_prompt(item, protocol="chatty")
