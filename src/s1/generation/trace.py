"""Trace: what one budget-forced generation produced, stored as one JSON line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    """Something the Forcer did. `at` is the thinking-token count when it happened."""

    kind: str            # "wait" (ignore string appended), "forced_end" (max reached), "loop"
    at: int
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Trace:
    id: str
    prompt: str                       # the full prompt text, thinking start included
    prompt_tokens: int
    thinking: str                     # text between the start and end delimiters
    thinking_ids: list[int]
    answer: str                       # text after the end delimiter (forced suffix included)
    answer_ids: list[int]
    end: str                          # the delimiter text that closed the thinking ("" if none)
    events: list[Event] = field(default_factory=list)
    thinking_finish: str = ""         # "end" (model ended), "max" (forced), "loop", "context"
    finish_reason: str = ""           # "stop" (EOS), "length" (answer budget reached), "error"
    wall_s: float = 0.0
    engine: str = ""
    seed: int | None = None
    max_thinking_tokens: int | None = None   # the thinking cap this sequence ran under ("auto" resolved)
    context_length: int | None = None        # the context that cap was resolved against
    meta: dict[str, Any] = field(default_factory=dict)
    error: str = ""                   # why the sequence failed (finish_reason "error"); "" = it did not

    @property
    def thinking_tokens(self) -> int:
        return len(self.thinking_ids)

    @property
    def answer_tokens(self) -> int:
        return len(self.answer_ids)

    @property
    def generated_tokens(self) -> int:
        """Every token the model produced or was forced to take, delimiters included."""
        return self.meta.get("generated_tokens", self.thinking_tokens + self.answer_tokens)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def waits(self) -> int:
        return sum(e.kind == "wait" for e in self.events)

    @property
    def text(self) -> str:
        """The whole continuation as the model saw it; graders read only `answer`."""
        return self.thinking + self.end + self.answer

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(thinking_tokens=self.thinking_tokens, answer_tokens=self.answer_tokens,
                 tokens_per_s=round(self.tokens_per_s, 2), waits=self.waits)
        if not self.error:
            del d["error"]            # written only for a failed sequence
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Trace":
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        kw["events"] = [Event(**e) for e in d.get("events", [])]
        return cls(**kw)
