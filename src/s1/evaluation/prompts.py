"""Prompt protocols: what the user turn says for a benchmark item.

`s1` is the paper's protocol: the bare question, under the model's own default system prompt (the
chat template supplies it; nothing is added here). `boxed` adds the DeepSeek-R1 / lighteval
instruction. The conditional-prompting suffixes are the s1 harness's PROMPTTOKEN / PROMPTSTEP /
PROMPTLONG / PROMPTSHORT texts (paper §3.2, Table 3), appended after a blank line.
"""

from __future__ import annotations

from typing import Callable, Union

from s1.errors import UserError
from s1.evaluation.benchmarks import Item

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

LONG_SUFFIX = ("Answer after a long amount of thinking. If you feel like you are finished early, "
               "spend the extra time trying to double-check your work until you are absolutely "
               "sure that you have the correct answer.")
SHORT_SUFFIX = ("Answer after a short amount of thinking. Do not spend excessive time "
                "double-checking your work.")

PROTOCOLS = ("s1", "boxed")


def s1_prompt(question: str) -> str:
    """The paper's protocol: the question exactly as the benchmark gives it."""
    return question


def boxed_prompt(question: str) -> str:
    """DeepSeek-R1's recommended protocol: the question, then the boxed-answer instruction."""
    return f"{question}\n\n{BOXED_INSTRUCTION}"


def _positive(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"the number of {what} in a conditional prompt must be a positive "
                        f"integer, not {n!r}")
    return n


def token_conditional(question: str, n: int) -> str:
    """Token-conditional control: ask the model to stay within N thinking tokens."""
    return f"{question}\n\nThink for up to {_positive(n, 'tokens')} tokens."


def step_conditional(question: str, n: int) -> str:
    """Step-conditional control: ask the model to stay within N thinking steps."""
    return f"{question}\n\nThink for up to {_positive(n, 'steps')} steps."


def long_conditional(question: str) -> str:
    """Class-conditional control, the "think long" class."""
    return f"{question}\n\n{LONG_SUFFIX}"


def short_conditional(question: str) -> str:
    """Class-conditional control, the "think short" class."""
    return f"{question}\n\n{SHORT_SUFFIX}"


Suffix = Union[str, Callable[[str], str], None]


def parse_suffix(spec: str) -> Callable[[str], str]:
    """`tokens:N`, `steps:N`, `long` or `short` -> a function of the question."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("long", "short") and not arg:
        return long_conditional if kind == "long" else short_conditional
    if kind in ("tokens", "token", "steps", "step") and arg:
        try:
            n = int(arg)
        except ValueError:
            raise UserError(f"conditional prompt {spec!r}: {arg!r} is not a whole number") from None
        if kind.startswith("token"):
            _positive(n, "tokens")
            return lambda q: token_conditional(q, n)
        _positive(n, "steps")
        return lambda q: step_conditional(q, n)
    raise UserError(f"unknown conditional prompt {spec!r}; use tokens:N, steps:N, long or short")


def format_prompt(item: Item | str, protocol: str = "s1", suffix: Suffix = None) -> str:
    """The user-turn text for an item (or a bare question string).

    `suffix` is a conditional-prompting spec (`"tokens:2048"`, `"steps:64"`, `"long"`, `"short"`)
    or a function of the question text. It goes right after the question, before the `boxed`
    instruction, so both protocols carry the same control text.
    """
    question = item.question if isinstance(item, Item) else str(item)
    if suffix is not None:
        question = (parse_suffix(suffix) if isinstance(suffix, str) else suffix)(question)
    if protocol == "s1":
        return s1_prompt(question)
    if protocol == "boxed":
        return boxed_prompt(question)
    raise UserError(f"unknown prompt protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
