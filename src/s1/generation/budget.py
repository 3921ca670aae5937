"""Budget: every knob of budget forcing, validated once at construction, with the sampling
(`Sampling`) and the loop guard (`LoopGuard`) nested as their own small objects, the way vLLM
nests its parameters.

Semantics (the paper's §3.1 and its harness, token-exact):
- `max_thinking_tokens`: thinking never exceeds it; on reaching it the end delimiter and
  "Final Answer:" are forced. `"auto"` = context window − prompt − `answer_reserve`.
- `min_thinking_tokens`: before it, an attempt to end thinking (end delimiter or EOS) is
  suppressed. `min_mode="wait"` (the paper): an ignore string ("Wait") is appended instead, and
  the model may not end again on the very next token (the harness's `min_tokens=1` per round).
  `min_mode="suppress"` (vLLM's `min_tokens`): the end delimiter and EOS are masked all through
  the minimum, nothing is appended.
- `num_ignore`: after the minimum, the first N attempts to end thinking are also suppressed by
  appending an ignore string (s1's "ignore the end of thinking N times"), used in turn.
- `max_answer_tokens`: the answer phase ends at EOS or at this many tokens.
- `require_answer`: an EOS right after the end delimiter (empty answer) is replaced, once, by the
  forced suffix ("Final Answer:") so the model answers; off reproduces the harness exactly.
- `loop` (LoopGuard): watch the thinking for a block repeated back to back; "record" notes it,
  "stop" also stops forcing (the thinking is ended at once, no more "Wait"s); "off" disables it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Union

from s1.errors import UserError

MaxThinking = Union[int, Literal["auto"], None]

DEFAULT_IGNORE: tuple[str, ...] = ("Wait",)   # the paper's ignore string (§3.1, Table 4)


def parse_max_thinking(value, what: str = "max thinking tokens") -> MaxThinking:
    """The one reading of a thinking cap: a non-negative integer (0 = answer at once), "auto"
    (context − prompt − reserve) or None / "none" / "inf" (no cap of its own)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("auto", "none", "inf"):
            return None if low in ("none", "inf") else "auto"
        if low.isdigit():
            return int(low)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UserError(f"{what}: {value!r} is not a number of tokens (give a non-negative integer, "
                    "'auto' or 'none')")


def seed_bits(seed: int) -> int:
    """The one mapping of a seed onto the unsigned 64 bits every generator takes: a negative
    seed wraps modulo 2**64 (as torch's `manual_seed` does), so -1 draws like 2**64 - 1 in every
    engine. Seeds outside [-2**63, 2**64) are refused."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"a seed must be an integer ({seed!r})")
    if not -2**63 <= seed < 2**64:
        raise UserError(f"seed {seed} is out of range (give an integer in [-2**63, 2**64))")
    return seed % 2**64


@dataclass(frozen=True)
class Sampling:
    """How the model's proposals are drawn (the forcing is the Budget's business).

    temperature: 0 = greedy, as the paper evaluates
    top_p: nucleus sampling mass
    top_k: sample among the k likeliest tokens (0 = all)
    seed: the default seed of a request that brings none of its own (a negative one wraps
          modulo 2**64, see `seed_bits`)
    min_p: drop tokens less likely than min_p × the likeliest one's probability (0 = off)
    presence_penalty: subtracted from the logit of every token already generated (vLLM / OpenAI
        semantics: the whole output so far; 0 = off; applies at temperature 0, too)
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise UserError(f"temperature cannot be negative ({self.temperature})")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1] ({self.top_p})")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise UserError(f"top_k must be a non-negative integer ({self.top_k!r})")
        seed_bits(self.seed)
        if not 0 <= self.min_p < 1:
            raise UserError(f"min_p must be in [0, 1) ({self.min_p})")
        if not -2 <= self.presence_penalty <= 2:
            raise UserError(f"presence_penalty must be in [-2, 2] ({self.presence_penalty})")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class LoopGuard:
    """Watch the thinking for a degenerate loop: one block of tokens repeated back to back.
    mode: "record" notes it, "stop" also stops forcing (the thinking ends at once, no more
    "Wait"s), "off" disables it. A block that recurs with other text between (a formula used
    again in a long derivation) is not a loop.

    ngram: the shortest block counted, in tokens (a shorter cycle counts through its multiples)
    repeats: back-to-back copies of the block that make a loop
    window: the longest stretch watched; blocks up to window // repeats tokens
    """

    mode: Literal["off", "record", "stop"] = "record"
    ngram: int = 16
    repeats: int = 4
    window: int = 512

    def __post_init__(self) -> None:
        if self.mode not in ("off", "record", "stop"):
            raise UserError(f"loop guard must be off, record or stop ({self.mode!r})")
        if self.ngram < 1 or self.repeats < 2:
            raise UserError("loop guard needs an n-gram of at least 1 token and at least 2 repeats")
        if self.window < self.ngram * self.repeats:
            raise UserError(f"loop guard window ({self.window}) must hold {self.repeats} copies "
                            f"of a {self.ngram}-token block")


# The on-disk (flat) names of the nested fields: manifests and records keep the schema they
# always had, so old run directories load and resume.
_FLAT = {"temperature": ("sampling", "temperature"), "top_p": ("sampling", "top_p"),
         "top_k": ("sampling", "top_k"), "seed": ("sampling", "seed"),
         "min_p": ("sampling", "min_p"), "presence_penalty": ("sampling", "presence_penalty"),
         "loop_guard": ("loop", "mode"), "loop_ngram": ("loop", "ngram"),
         "loop_repeats": ("loop", "repeats"), "loop_window": ("loop", "window")}
_FORCING = ("max_thinking_tokens", "min_thinking_tokens", "min_mode", "num_ignore",
            "max_answer_tokens", "answer_reserve", "require_answer")
_ON_DISK = ("max_thinking_tokens", "min_thinking_tokens", "min_mode", "num_ignore",
            "ignore_strings", "max_answer_tokens", "answer_reserve", "temperature", "top_p",
            "top_k", "seed", "require_answer", "loop_guard", "loop_ngram", "loop_repeats",
            "loop_window", "min_p", "presence_penalty")
# Fields newer than the schema, written only when they differ from their default so the
# manifests of older runs still match and resume.
_NEWER = {"top_k": 0, "min_mode": "wait", "loop_window": 512, "min_p": 0.0,
          "presence_penalty": 0.0}
MIN_MODES = ("wait", "suppress")


@dataclass(frozen=True)
class Budget:
    max_thinking_tokens: MaxThinking = "auto"
    min_thinking_tokens: int = 0
    min_mode: Literal["wait", "suppress"] = "wait"
    num_ignore: int = 0
    ignore_strings: tuple[str, ...] = DEFAULT_IGNORE
    max_answer_tokens: int = 512
    answer_reserve: int = 100          # kept free for the answer when max is "auto" (s1 harness: 100)
    require_answer: bool = True        # an EOS before any answer text gets "Final Answer:" instead
    sampling: Sampling = field(default_factory=Sampling)
    loop: LoopGuard = field(default_factory=LoopGuard)

    def __post_init__(self) -> None:
        if isinstance(self.ignore_strings, (str, list)):
            object.__setattr__(self, "ignore_strings",
                               (self.ignore_strings,) if isinstance(self.ignore_strings, str)
                               else tuple(self.ignore_strings))
        if self.min_mode not in MIN_MODES:
            raise UserError(f"min mode must be wait or suppress ({self.min_mode!r})")
        mx = parse_max_thinking(self.max_thinking_tokens)
        object.__setattr__(self, "max_thinking_tokens", mx)
        for name in ("min_thinking_tokens", "num_ignore", "answer_reserve"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', ' ')} cannot be negative ({getattr(self, name)})")
        if self.max_answer_tokens < 1:
            raise UserError(f"max answer tokens must be at least 1 ({self.max_answer_tokens})")
        if isinstance(mx, int) and self.min_thinking_tokens > mx:
            raise UserError(f"min thinking tokens ({self.min_thinking_tokens}) exceed the maximum ({mx})")
        needs_ignore = self.num_ignore or (self.min_thinking_tokens and self.min_mode == "wait")
        if needs_ignore and not self.ignore_strings:
            raise UserError("a minimum or num_ignore needs at least one ignore string (e.g. 'Wait')")
        if any(not s for s in self.ignore_strings):
            raise UserError("ignore strings cannot be empty")

    @property
    def greedy(self) -> bool:
        return self.sampling.greedy

    def resolve_max_thinking(self, prompt_tokens: int, context_length: int,
                             forced_end_tokens: int = 0) -> int | None:
        """The per-sequence thinking cap; `auto` fills the context, leaving room to answer.

        Never None: uncapped thinking still has to fit the context. Raises if the prompt leaves
        no room at all.
        """
        room = context_length - prompt_tokens - forced_end_tokens - self.answer_reserve
        if room < 1:
            raise UserError(f"the prompt ({prompt_tokens} tokens) leaves no room to think and answer "
                            f"in the {context_length}-token context")
        if isinstance(self.max_thinking_tokens, int):
            return min(self.max_thinking_tokens, room)
        return room

    def with_(self, **changes) -> "Budget":
        """A copy with some fields changed; sampling and loop-guard fields may be named flat
        (`temperature=1.0`, `seed=3`, `loop_guard="stop"`)."""
        nested: dict[str, dict] = {}
        for name in [n for n in changes if n in _FLAT]:
            part, attr = _FLAT[name]
            nested.setdefault(part, {})[attr] = changes.pop(name)
        for part, values in nested.items():
            changes[part] = replace(changes.get(part, getattr(self, part)), **values)
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The flat on-disk form (the schema manifests have always had)."""
        flat = {**{n: getattr(self, n) for n in _FORCING}, "ignore_strings": list(self.ignore_strings),
                **{n: getattr(getattr(self, part), attr) for n, (part, attr) in _FLAT.items()}}
        return {n: flat[n] for n in _ON_DISK if n not in _NEWER or flat[n] != _NEWER[n]}

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        d = dict(d)
        flat = {k: d.pop(k) for k in list(d) if k in _FLAT}
        return cls(**d).with_(**flat)
