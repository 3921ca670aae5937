"""The training text and its loss mask, on the embedded model's real tokenizer."""

import json

import pytest

from s1.errors import UserError
from s1.generation.formats import get_format
from s1.training.data import (IGNORE, Record, build_dataset, load_math_pool, load_records,
                              tokenize)
from s1.training.format import format_example

S1 = get_format("s1")
TAGS = get_format("think-tags")


def test_s1_assistant_turn_is_the_papers(tokenizer):
    ex = format_example("What is 1+1?", "  1+1 is 2.\n", "2", tokenizer, S1)
    assert ex.prompt.endswith("<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert ex.completion == ("<|im_start|>think\n1+1 is 2.\n<|im_start|>answer\nAnswer: 2"
                             "<|im_end|>\n")


def test_answer_prefix_not_doubled_and_braces_survive(tokenizer):
    ex = format_example("Find $\\{x\\}$ {question}", "t", "Answer: \\frac{1}{2}", tokenizer, S1)
    assert "Answer: Answer:" not in ex.completion
    assert ex.completion.endswith("<|im_start|>answer\nAnswer: \\frac{1}{2}<|im_end|>\n")
    assert "Find $\\{x\\}$ {question}<|im_end|>" in ex.prompt


def test_answer_prefix_is_added_before_stripping_as_s1_does(tokenizer):
    # s1: answer = "Answer: " + attempt (if absent), then .strip(): leading whitespace of the
    # attempt survives after the prefix; stripping first would train a different text.
    ex = format_example("Q", "t", "\n 42 \n", tokenizer, S1)
    assert ex.completion.endswith("<|im_start|>answer\nAnswer: \n 42<|im_end|>\n")
    ex = format_example("Q", "t", "  Answer: 5  ", tokenizer, S1)
    assert ex.completion.endswith("<|im_start|>answer\nAnswer: 5<|im_end|>\n")


def test_think_tags_format(tokenizer):
    ex = format_example("Q", "reasoning", "42", tokenizer, TAGS)
    assert ex.completion == "<think>\nreasoning\n</think>\n\nAnswer: 42<|im_end|>\n"


@pytest.mark.parametrize("fmt", [S1, TAGS], ids=["s1", "think-tags"])
def test_trained_positions_decode_to_exactly_the_assistant_turn(tokenizer, fmt):
    ex = format_example("Compute $2^{10}$.", "2^10 = 1024.", "1024", tokenizer, fmt)
    ids, labels = tokenize(ex, tokenizer)
    trained = [i for i, lab in zip(ids, labels) if lab != IGNORE]
    assert tokenizer.decode(trained) == ex.completion
    masked = [i for i, lab in zip(ids, labels) if lab == IGNORE]
    assert tokenizer.decode(masked) == ex.prompt
    # Labels are the input ids where trained: the model shifts them itself.
    assert all(lab in (IGNORE, i) for i, lab in zip(ids, labels))
    # Trained positions are one contiguous block at the end: thinking start .. end of turn.
    first = labels.index(trained[0])
    assert all(lab != IGNORE for lab in labels[first:])
    # The end-of-turn token is trained although it is also this tokenizer's pad token.
    assert tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert labels[-2] == tokenizer.pad_token_id


def test_collated_padding_is_masked_but_end_of_turn_trained(tokenizer):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    recs = [Record("Q1", "short", "1"), Record("A longer question?", "a much longer trace " * 5, "2")]
    ds, _ = build_dataset(recs, tokenizer, S1, block_size=512)
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(list(ds))
    labels, mask = batch["labels"][0], batch["attention_mask"][0]
    n = int(mask.sum())
    assert n < labels.shape[0]                       # row 0 was padded
    assert (labels[n:] == IGNORE).all()              # pads never trained
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert labels[n - 2] == im_end                   # ...but the real end of turn is
    assert tokenizer.decode([t for t in labels.tolist() if t != IGNORE]) == \
        format_example("Q1", "short", "1", tokenizer, S1).completion


def test_block_size_truncates_reports_and_drops(tokenizer):
    recs = [Record("Q", "word " * 200, "1"), Record("Q", "ok", "2"),
            Record("long question " * 100, "t", "3")]
    ds, report = build_dataset(recs, tokenizer, S1, block_size=96)
    assert report.examples == 3 and report.truncated == 2 and report.dropped == 1
    assert len(ds) == 2 and max(len(x) for x in ds["input_ids"]) == 96
    assert report.trained_tokens_cut > 150
    assert "TRUNCATES 2 of 3" in report.summary()
    _, clean = build_dataset(recs[1:2], tokenizer, S1, block_size=96)
    assert clean.truncated == 0 and "no example truncated" in clean.summary()


def test_s1k_and_s1k11_column_names(tmp_path):
    s1k = tmp_path / "s1k.jsonl"
    s1k.write_text(json.dumps({"question": "Q", "thinking_trajectories": ["step 1", "step 2"],
                               "attempt": "A"}) + "\n")
    [rec] = load_records(str(s1k))
    assert rec == Record("Q", "step 1\nstep 2", "A")
    s11 = tmp_path / "s1k11.jsonl"
    s11.write_text(json.dumps({"question": "Q", "thinking_trajectories": ["gemini"],
                               "attempt": "g", "deepseek_thinking_trajectory": "r1 thinks",
                               "deepseek_attempt": "r1"}) + "\n")
    [rec] = load_records(str(s11), trace_field="deepseek_thinking_trajectory",
                         attempt_field="deepseek_attempt")
    assert rec == Record("Q", "r1 thinks", "r1")
    with pytest.raises(UserError, match="no trace column 'nope'"):
        load_records(str(s11), trace_field="nope")


def test_missing_data_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_records(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "data.txt"
    bad.write_text("x")
    with pytest.raises(UserError, match="give a .jsonl"):
        load_records(str(bad))


def test_math_pool_attempt_is_last_boxed_with_nested_braces():
    pool = load_math_pool()
    assert len(pool) > 11000
    nested = [r for r in pool if "\\frac{" in r.attempt]
    assert nested and all(r.trace.count("{") >= r.attempt.count("{") for r in nested[:50])
    rec = next(r for r in pool if r.attempt == "8+4i")      # "...=\\boxed{8+4i}$."
    assert rec.question.startswith("If $A=2+i$")
