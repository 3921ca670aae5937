"""Thinking formats: how a model delimits its reasoning.

A format is three strings. The engine appends `start` to the chat-templated prompt (as the s1
harness does), the model thinks, and `end` closes the thinking. When budget forcing cuts the
thinking off, `forced_end` is emitted instead: the end delimiter followed by `forced_suffix`
("\\nFinal Answer:" in the s1 harness), so the model answers straight away.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from s1.errors import UserError

#: File a trained model directory carries to say which thinking format it was trained on.
FORMAT_FILE = "s1_format.json"


@dataclass(frozen=True)
class ThinkingFormat:
    name: str
    start: str
    end: str
    forced_suffix: str = ""

    def __post_init__(self) -> None:
        if self.thinks and (not self.start or not self.end):
            raise UserError("a thinking format needs a non-empty start and end string")
        if self.thinks and self.start == self.end:
            raise UserError(f"thinking start and end must differ (both are {self.start!r})")

    @property
    def thinks(self) -> bool:
        """False for `none`: a model that answers straight away (a base or instruct model), whose
        whole output is the answer."""
        return self.name != "none"

    @property
    def forced_end(self) -> str:
        """What budget forcing appends when it stops the thinking."""
        return self.end + self.forced_suffix

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ThinkingFormat":
        return cls(**{k: d[k] for k in ("name", "start", "end") if k in d},
                   forced_suffix=d.get("forced_suffix", ""))


FORMATS: dict[str, ThinkingFormat] = {
    # The paper's delimiters reuse Qwen's <|im_start|> special token plus plain text (s1's data/tokenization.py).
    "s1": ThinkingFormat("s1", "<|im_start|>think", "<|im_start|>answer", "\nFinal Answer:"),
    # R1 distills, QwQ, Qwen3.
    "think-tags": ThinkingFormat("think-tags", "<think>\n", "</think>", "\n\nFinal Answer:"),
    # No thinking at all: nothing prefilled, no delimiter, the whole output graded (the paper's
    # Fig. 4b majority voting on Qwen2.5-32B-Instruct).
    "none": ThinkingFormat("none", "", ""),
}

# Substrings of a model id that tell which built-in format it was trained on.
_MODEL_HINTS = [
    ("deepseek-r1", "think-tags"),
    ("qwq", "think-tags"),
    ("qwen3", "think-tags"),
    ("openthinker", "think-tags"),
    ("simplescaling/s1", "s1"),
]


def get_format(name: str) -> ThinkingFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise UserError(f"unknown thinking format {name!r}; choose one of {', '.join(FORMATS)} "
                        "or give --think-start/--think-end") from None


def format_for_model(model: str | None) -> ThinkingFormat:
    """The format a model was trained on: recorded in its directory, guessed from its id, else s1.

    s1 is the default because its delimiters need no new tokens: any ChatML model (Qwen2.5,
    SmolLM2) can be budget-forced in it, and that is what the paper trains.
    """
    if model:
        recorded = Path(model) / FORMAT_FILE
        if recorded.is_file():
            return ThinkingFormat.from_dict(json.loads(recorded.read_text()))
        low = model.lower()
        for hint, name in _MODEL_HINTS:
            if hint in low:
                return FORMATS[name]
    return FORMATS["s1"]


def resolve_format(model: str | None, name: str | None = None, start: str | None = None,
                   end: str | None = None, forced_suffix: str | None = None) -> ThinkingFormat:
    """Per-model default, overridden by a built-in name and then by custom strings."""
    fmt = get_format(name) if name else format_for_model(model)
    if start is None and end is None and forced_suffix is None:
        return fmt
    if not fmt.thinks:
        raise UserError("the none format has no thinking delimiters: drop --think-start/"
                        "--think-end, or pick a thinking format")
    return ThinkingFormat("custom", start if start is not None else fmt.start,
                          end if end is not None else fmt.end,
                          forced_suffix if forced_suffix is not None else fmt.forced_suffix)


def save_format(directory: str | Path, fmt: ThinkingFormat) -> None:
    """Record the format beside a trained model so generation and evaluation pick it up."""
    Path(directory, FORMAT_FILE).write_text(json.dumps(fmt.to_dict(), indent=2) + "\n")
