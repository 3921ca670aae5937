"""The on-disk schema of a run, owned here: `Record` (one line of records.jsonl: one sample of
one question, graded) and `RunSummary` (summary.json).

Both are dataclasses with `to_dict` / `from_dict`, as `Trace` has. Keys keep their meaning across
versions; fields added later are optional, and keys this version does not know are carried
through unchanged (`extra`), so old run directories load and newer ones do not lose data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Compute:
    """What one sample cost, summed over its tries (every try is compute spent)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    flops: float | None = None         # everything, a search's reward model included
    reward_tokens: int | None = None   # a search's reward model: tokens read, FLOPs spent
    reward_flops: float | None = None

    def to_dict(self) -> dict:
        d = {"prompt_tokens": self.prompt_tokens, "generated_tokens": self.generated_tokens,
             "flops": self.flops}
        if self.reward_tokens is not None or self.reward_flops is not None:
            d.update(reward_tokens=self.reward_tokens, reward_flops=self.reward_flops)
        return d


OPTIONAL = ("accepted", "score", "reward")   # Record keys written only where they apply


@dataclass
class Record:
    """One sample of one question, graded on its answer segment."""

    key: str                           # "<question id>#<sample>": unique within a run
    id: str                            # the question id
    sample: int
    seed: int                          # the run's seed
    request_seed: int                  # the seed this sample was drawn with
    gold: str
    answer_type: str
    extracted: str | None
    correct: bool
    reason: str
    thinking_tokens: int
    answer_tokens: int
    waits: int
    thinking_finish: str
    finish_reason: str
    events: list[dict]
    tries: int
    compute: Compute
    wall_s: float
    trace: dict                        # the Trace (a GPQA prompt replaced by its SHA-256)
    accepted: bool | None = None       # rejection sampling: thinking within the threshold
    score: float | None = None         # best-of-N: the scorer's value
    # A reward model's reading of the thinking (best-of-N, weighted majority): its step scores
    # ("steps", one for an outcome model) and what reading cost ("tokens", "flops").
    reward: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # keys of a newer version, kept

    @property
    def failed(self) -> bool:
        """The engine failed this sample (`finish_reason` "error"): it is not graded, leaves its
        run incomplete, and a resume asks again."""
        return self.finish_reason == "error"

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name not in OPTIONAL + ("extra",)}
        d["compute"] = self.compute.to_dict()
        d.update((k, getattr(self, k)) for k in OPTIONAL if getattr(self, k) is not None)
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        known["compute"] = Compute(**d.get("compute", {}))
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})


@dataclass
class RunSummary:
    """summary.json: everything the report and `s1 compare` need about one run.

    Fields in the order summary.json has always had them. A run without records has only
    name, questions (0), expected_questions and complete (and errors when the engine failed
    every sample so far).
    """

    name: str = ""
    method: str | None = None
    label: str | None = None
    setting: str | None = None
    params: dict = field(default_factory=dict)
    seed: int | None = None
    benchmark: str | None = None
    model: str | None = None
    engine: str | None = None
    questions: int = 0
    expected_questions: int = 0
    complete: bool = False
    samples_per_question: int = 1
    accuracy: float = 0.0
    wilson_low: float = 0.0
    wilson_high: float = 0.0
    correct: int = 0
    a_max: int | None = None           # the thinking bound Control checks
    thinking: dict = field(default_factory=dict)      # thinking-token statistics per sample
    thinking_per_question: float | None = None
    answer_tokens_mean: float | None = None
    waits_mean: float | None = None
    forced_end_share: float | None = None
    no_answer: int = 0
    grading_reasons: dict[str, int] = field(default_factory=dict)   # why answers scored as they did
    control_per_sample: float | None = None
    compute: dict = field(default_factory=dict)
    per_question: dict[str, bool] = field(default_factory=dict)
    tries_mean: float | None = None    # rejection sampling only
    tries_max: int | None = None
    rejection_failed: int | None = None
    rejection_on_failure: str | None = None
    # Rejection sampling: mean thinking of the samples within the threshold; the failed ones
    # (over it after every try) are counted apart, as Control per sample counts them.
    accepted_thinking_mean: float | None = None
    at_k: dict[str, dict] | None = None   # parallel methods: pass/cov/prediction at each k
    # Shares of samples; None: unknown (imported outputs, whose generation was not observed).
    answer_cut_share: float | None = None  # samples whose answer hit the answer cap (or context)
    loop_share: float | None = None        # samples where the loop guard saw a repeated n-gram
    by_waits: dict[str, list[int]] | None = None   # Waits appended -> [correct, samples]
    pass_at_1: dict | None = None      # the R1 protocol: mean over samples, its interval
    cons_at_n: dict | None = None      # the R1 protocol: majority over the n samples
    context_full_share: float | None = None   # samples whose thinking filled the context
    errors: int = 0                    # samples the engine failed (not graded; a resume retries)
    error_share: float | None = None   # errors / (graded samples + errors)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.questions

    def to_dict(self, per_question: bool = True) -> dict:
        if self.empty:
            failed = {"errors": self.errors, "error_share": self.error_share} if self.errors else {}
            return {"name": self.name, "questions": 0,
                    "expected_questions": self.expected_questions, "complete": False, **failed,
                    **self.extra}
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for name in ("tries_mean", "tries_max", "rejection_failed", "rejection_on_failure",
                     "accepted_thinking_mean", "at_k", "by_waits", "pass_at_1", "cons_at_n"):   # only where they apply
            if d[name] is None:
                del d[name]
        if not per_question:
            del d["per_question"]
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> "RunSummary":
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   extra={k: v for k, v in d.items() if k not in names})
