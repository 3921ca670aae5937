"""Test-time scaling methods: how each question is generated, and how its samples become one
prediction.

A method config (one validated dataclass per method) expands into `Setting`s, one per point of
the sweep it describes. A Setting is everything one run needs: the Budget, the prompt suffix,
how many samples per question, the rejection rule, the thinking bound Control checks against,
and `predict()`, which turns a question's graded samples into the method's answer.

- `BudgetForcing`        the paper's method: max budgets × num_ignore × ignore strings (§3.1).
- `ConditionalPrompting` "Think for up to N tokens/steps", long/short (§3.2, Table 3), with or
                         without budget forcing of the prompted bound.
- `RejectionSampling`    thinking cap N+1 at temperature 1, resampled until thinking ≤ N; tries
                         counted and capped (Fig. 6: inverse scaling).
- `MajorityVoting`       k parallel samples, one vote each (Fig. 4b, the parallel baseline).
- `BestOfN`              n parallel samples, the best by a pluggable scorer (the oracle gives the
                         upper bound the paper's REBASE comparison is measured against) or by a
                         reward model reading the thinking's steps (`s1.evaluation.rewards`).
- `WeightedMajority`     n parallel samples, each answer's votes weighted by its reward
                         (search-and-learn's "weighted best-of-N").
- `BeamSearch`           step-level beam search guided by a reward model (search-and-learn's).
- `Rebase`               REBASE: a tree whose expansions a process reward model allocates.

The two searches run per question (`search.py`): one record per question, the finished
candidates in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

from s1.errors import UserError
from s1.evaluation.prompts import parse_suffix
from s1.evaluation.records import Record
from s1.evaluation.verifier import cluster_answers
from s1.generation.budget import DEFAULT_IGNORE, Budget, parse_max_thinking

METHODS = ("budget", "conditional", "rejection", "majority", "best-of-n", "weighted-majority",
           "r1", "beam", "rebase")
SEARCHES = ("beam", "rebase")   # step-wise tree searches: one record per question (search.py)
SAMPLED_TEMPERATURE = 1.0   # the sampling methods' default: the paper samples at T=1

MaxThinking = Union[int, str, None]


# ---------------------------------------------------------------------------------------------
# one point of a sweep


@dataclass(frozen=True)
class Setting:
    """How one run generates and predicts. `name` is stable and filesystem-safe."""

    method: str
    name: str
    budget: Budget
    suffix: str | None = None         # conditional-prompting spec ("tokens:512", "long", ...)
    samples: int = 1                  # generations per question (k / n)
    accept_max: int | None = None     # rejection sampling: keep a sample with thinking ≤ this
    max_tries: int = 1                # rejection sampling: give up after this many tries
    on_failure: str = "wrong"         # rejection sampling: how a question that gave up scores
    a_max: int | None = None          # the thinking bound Control checks (None: no bound)
    scorer: str | None = None         # best-of-N: "oracle", "shortest", "module:function" or a
                                      # reward model (s1.evaluation.rewards)
    label: str = ""                   # the curve this point belongs to in reports
    params: dict[str, Any] = field(default_factory=dict)  # what the user chose, for display
    aggregate: str | None = None      # a reward model: step scores -> one (min, last, prod, mean)
    step_delimiter: str | None = None  # a reward model: where the thinking splits into steps

    def to_dict(self) -> dict:
        d = {"method": self.method, "name": self.name, "budget": self.budget.to_dict(),
             "suffix": self.suffix, "samples": self.samples, "accept_max": self.accept_max,
             "max_tries": self.max_tries, "a_max": self.a_max, "scorer": self.scorer,
             "label": self.label, "params": dict(self.params)}
        if self.accept_max is not None:   # only rejection sampling has failures to score
            d["on_failure"] = self.on_failure
        if self.aggregate is not None:    # only a reward model reads steps (older runs lack them)
            d["aggregate"], d["step_delimiter"] = self.aggregate, self.step_delimiter
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Setting":
        d = dict(d)
        d["budget"] = Budget.from_dict(d["budget"])
        return cls(**d)

    def accepts(self, thinking_tokens: int, tries: int) -> bool:
        """Rejection sampling: is this sample kept? Every sample is kept by other methods."""
        if self.accept_max is None:
            return True
        return thinking_tokens <= self.accept_max or tries >= self.max_tries

    def predict(self, samples: Sequence[Record], answer_type: str,
                k: int | None = None) -> dict:
        """The method's answer for one question from its graded samples (records in sample
        order), using the first `k` (all by default).

        Returns {"correct", "extracted", "sample"}: the sample whose answer is the prediction
        (for majority voting, the first sample that gave the winning answer).
        """
        samples = list(samples)[:k] if k else list(samples)
        if not samples:
            raise UserError("a prediction needs at least one sample")
        if self.method in ("majority", "r1"):   # r1: cons@k (its pass@1 is in the summary)
            return _majority(samples, answer_type)
        if self.method == "weighted-majority":
            return _majority(samples, answer_type, [s.score or 0.0 for s in samples])
        if self.method == "best-of-n":
            # A sample without a score (nothing to read) ranks below every scored one.
            best = max(range(len(samples)), key=lambda i: (samples[i].score is not None,
                                                           samples[i].score or 0.0, -i))
            s = samples[best]
            return {"correct": bool(s.correct), "extracted": s.extracted, "sample": best}
        s = samples[0]
        if self.on_failure == "wrong" and s.accepted is False:
            # No try stayed within the threshold: the paper resamples until one does, so the
            # last (over-length) sample is not its answer, and budget forcing must not leak in.
            return {"correct": False, "extracted": s.extracted, "sample": 0}
        return {"correct": bool(s.correct), "extracted": s.extracted, "sample": 0}


def _majority(samples: Sequence[Record], answer_type: str,
              weights: Sequence[float] | None = None) -> dict:
    """Votes go to classes of equivalent answers ("023" = "23", `\\frac12` = 0.5, by the grading
    verifier); samples without an answer do not vote; a tie goes to the answer reached first
    (as metrics.maj_at_k). With `weights` a class gets the sum of its samples' weights."""
    votes: dict[int, list[int]] = {}
    for i, key in enumerate(cluster_answers([s.extracted for s in samples], answer_type)):
        if key is not None:
            votes.setdefault(key, []).append(i)
    if not votes:
        return {"correct": False, "extracted": None, "sample": 0}
    weigh = (lambda v: sum(weights[i] for i in v)) if weights is not None else len
    winner = max(votes.values(), key=weigh)
    first = samples[winner[0]]
    # All voters share one answer, so they share a grade; a strict majority of them
    # marked correct settles it the same way metrics.maj_at_k does.
    correct = sum(bool(samples[i].correct) for i in winner) * 2 > len(winner)
    return {"correct": correct, "extracted": first.extracted, "sample": winner[0]}


# ---------------------------------------------------------------------------------------------
# validation helpers


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-") or "x"


def _check_max(value: MaxThinking, what: str = "max thinking") -> MaxThinking:
    return parse_max_thinking(value, what)


def _check_positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what} must be a positive integer, not {value!r}")
    return value


def _check_temperature(t: float, what: str) -> float:
    if t < 0:
        raise UserError(f"the temperature of {what} cannot be negative ({t})")
    return t


def _nonempty(values: Sequence, what: str) -> tuple:
    values = tuple(values)
    if not values:
        raise UserError(f"give at least one value for {what}")
    if len(set(values)) != len(values):
        raise UserError(f"{what} lists a value twice: {', '.join(map(str, values))}")
    return values


def _max_label(value: MaxThinking) -> str:
    return "none" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# the methods


@dataclass(frozen=True)
class BudgetForcing:
    """s1's budget forcing: one run per (max thinking tokens, num_ignore, ignore string).

    max_thinking: caps of the thinking (ints, "auto" = the context, None = uncapped)
    num_ignore: how many times the end of thinking is ignored and an ignore string appended
    ignore_strings: each one its own run (the paper's Table 4: "Wait", "Hmm", "Alternatively");
        only matters where num_ignore or min_thinking is above 0
    min_thinking: a token-level minimum (earlier ends become the ignore string)
    """

    max_thinking: Sequence[MaxThinking] = ("auto",)
    num_ignore: Sequence[int] = (0,)
    ignore_strings: Sequence[str] = DEFAULT_IGNORE
    min_thinking: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_thinking",
                           tuple(_check_max(m) for m in _nonempty(self.max_thinking, "max thinking")))
        nums = _nonempty(self.num_ignore, "num ignore")
        for n in nums:
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise UserError(f"num ignore must be a non-negative integer, not {n!r}")
        object.__setattr__(self, "num_ignore", nums)
        strings = _nonempty(self.ignore_strings, "ignore strings")
        if any(not s for s in strings):
            raise UserError("ignore strings cannot be empty")
        object.__setattr__(self, "ignore_strings", strings)
        if self.min_thinking < 0:
            raise UserError(f"min thinking cannot be negative ({self.min_thinking})")

    def settings(self, base: Budget) -> list[Setting]:
        out: list[Setting] = []
        for mx in self.max_thinking:
            for n in self.num_ignore:
                # Without an ignore, the string is never used: one run, not one per string.
                strings = self.ignore_strings if (n or self.min_thinking) else self.ignore_strings[:1]
                for s in strings:
                    budget = base.with_(max_thinking_tokens=mx, num_ignore=n, ignore_strings=(s,),
                                        min_thinking_tokens=self.min_thinking)
                    name = f"budget-max{_max_label(mx)}-ign{n}"
                    if (n or self.min_thinking) and len(self.ignore_strings) > 1:
                        name += f"-{_slug(s)}"
                    if self.min_thinking:
                        name += f"-min{self.min_thinking}"
                    out.append(Setting("budget", name, budget,
                                       a_max=mx if isinstance(mx, int) else None,
                                       label="budget forcing",
                                       params={"max_thinking": mx, "num_ignore": n,
                                               "ignore_string": s,
                                               "min_thinking": self.min_thinking}))
        return out


@dataclass(frozen=True)
class ConditionalPrompting:
    """Conditional length control in the prompt (the s1 harness's PROMPTTOKEN / PROMPTSTEP /
    PROMPTLONG / PROMPTSHORT suffixes), one run per prompt.

    prompts: "tokens:N", "steps:N", "long", "short"
    forcing: also enforce the prompted bound with budget forcing. For tokens:N the cap is N.
        For steps:N it is N × tokens_per_step: the paper stops at the model's own "0 steps left"
        marker, which only a model trained to count steps writes, so a token cap stands in.
        long/short have no bound of their own and get max_thinking.
    tokens_per_step: the token cap of one step under forcing, and Control's bound for steps:N
    max_thinking: the cap of long/short under forcing (and of every prompt without forcing)
    """

    prompts: Sequence[str] = ("tokens:512",)
    forcing: bool = False
    tokens_per_step: int = 100
    max_thinking: MaxThinking = "auto"

    def __post_init__(self) -> None:
        prompts = tuple(p.strip().lower() for p in _nonempty(self.prompts, "conditional prompts"))
        for p in prompts:
            parse_suffix(p)   # raises a UserError naming the bad spec
        object.__setattr__(self, "prompts", prompts)
        _check_positive(self.tokens_per_step, "tokens per step")
        object.__setattr__(self, "max_thinking", _check_max(self.max_thinking))

    def _bound(self, spec: str) -> int | None:
        kind, _, arg = spec.partition(":")
        if kind.startswith("token"):
            return int(arg)
        if kind.startswith("step"):
            return int(arg) * self.tokens_per_step
        return None

    def settings(self, base: Budget) -> list[Setting]:
        out = []
        for spec in self.prompts:
            bound = self._bound(spec)
            kind = spec.partition(":")[0].rstrip("s")
            mx = bound if (self.forcing and bound is not None) else self.max_thinking
            label = {"token": "token-conditional", "step": "step-conditional"}.get(
                kind, "class-conditional") + (" + budget forcing" if self.forcing else "")
            name = f"cond-{_slug(spec)}" + ("-bf" if self.forcing else "")
            out.append(Setting("conditional", name, base.with_(max_thinking_tokens=mx),
                               suffix=spec, a_max=bound, label=label,
                               params={"prompt": spec, "forcing": self.forcing,
                                       "max_thinking": mx}))
        return out


ON_FAILURE = ("wrong", "keep")


@dataclass(frozen=True)
class RejectionSampling:
    """Sample the thinking with cap N+1 at `temperature` until it stays ≤ N (the harness's
    `rejection_sample`), one run per N; every try's tokens count as compute.

    max_tries: the paper has no cap (it averaged 655 tries at 3,500 tokens, Fig. 6); after this
        many the last sample is recorded as a failed rejection.
    on_failure: "wrong" scores a failed question as wrong, as the paper would never accept an
        over-length sample; "keep" grades the last (cut, i.e. budget-forced) sample instead.
    """

    max_thinking: Sequence[int] = (512,)
    max_tries: int = 4096
    temperature: float = SAMPLED_TEMPERATURE
    on_failure: str = "wrong"

    def __post_init__(self) -> None:
        caps = tuple(_check_max(c, "a rejection threshold")
                     for c in _nonempty(self.max_thinking, "rejection thresholds"))
        if any(c in (None, "auto") for c in caps):
            raise UserError("rejection sampling needs numeric thresholds (--max-thinking N,...)")
        object.__setattr__(self, "max_thinking", caps)
        _check_positive(self.max_tries, "max tries")
        _check_temperature(self.temperature, "rejection sampling")
        if self.temperature == 0:
            raise UserError("rejection sampling at temperature 0 would draw the same sample every "
                            "try; use a positive temperature (the paper uses 1)")
        if self.on_failure not in ON_FAILURE:
            raise UserError(f"on failure must be one of {', '.join(ON_FAILURE)}, "
                            f"not {self.on_failure!r}")

    def settings(self, base: Budget) -> list[Setting]:
        return [Setting("rejection", f"reject-max{n}", base.with_(max_thinking_tokens=n + 1,
                                                                   temperature=self.temperature),
                        accept_max=n, max_tries=self.max_tries, on_failure=self.on_failure,
                        a_max=n, label="rejection sampling",
                        params={"max_thinking": n, "max_tries": self.max_tries,
                                "temperature": self.temperature,
                                "on_failure": self.on_failure})
                for n in self.max_thinking]


@dataclass(frozen=True)
class MajorityVoting:
    """k samples per question at `temperature`, the most common answer wins; the report also
    shows maj@j for every power of two j < k, so one run draws the whole parallel curve."""

    samples: int = 8
    temperature: float = SAMPLED_TEMPERATURE
    max_thinking: MaxThinking = "auto"

    def __post_init__(self) -> None:
        _check_positive(self.samples, "the number of samples")
        _check_temperature(self.temperature, "majority voting")
        object.__setattr__(self, "max_thinking", _check_max(self.max_thinking))

    def settings(self, base: Budget) -> list[Setting]:
        return [Setting("majority", f"majority-k{self.samples}-max{_max_label(self.max_thinking)}",
                        base.with_(max_thinking_tokens=self.max_thinking,
                                   temperature=self.temperature),
                        samples=self.samples, label="majority voting",
                        params={"samples": self.samples, "temperature": self.temperature,
                                "max_thinking": self.max_thinking})]


Scorer = Callable[[Any, Any, Any], float]   # (item, trace, grade) -> score, higher is better


def _oracle(item, trace, grade) -> float:
    """The upper bound: a correct sample whenever there is one (uses the gold answer)."""
    return 1.0 if grade.correct else 0.0


def _shortest(item, trace, grade) -> float:
    """Prefer the sample that thought least (a cheap, gold-free scorer)."""
    return -float(trace.thinking_tokens)


BUILTIN_SCORERS: dict[str, Scorer] = {"oracle": _oracle, "shortest": _shortest}


def load_scorer(spec: str) -> Scorer:
    """"oracle", "shortest", or "package.module:function" taking (item, trace, grade)."""
    if spec in BUILTIN_SCORERS:
        return BUILTIN_SCORERS[spec]
    from s1.evaluation.rewards import load_function

    fn = load_function(spec)
    if fn is None:
        raise UserError(f"unknown scorer {spec!r}; use oracle, shortest or module:function")
    return fn


def _check_scorer(scorer: str, aggregate: str, step_delimiter: str) -> bool:
    """Check a best-of-N / weighted-majority scorer now, not after the generations; True when it
    is a reward model (which reads the thinking's steps)."""
    from s1.evaluation.rewards import AGGREGATIONS, check_reward_spec, is_reward_spec

    if not is_reward_spec(scorer):
        load_scorer(scorer)
        return False
    check_reward_spec(scorer)
    if aggregate not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {aggregate!r}; use one of {', '.join(AGGREGATIONS)}")
    if not step_delimiter:
        raise UserError("the step delimiter cannot be empty")
    return True


@dataclass(frozen=True)
class BestOfN:
    """n samples per question at `temperature`; the prediction is the sample the scorer ranks
    highest (ties: the earliest). scorer: "oracle" (upper bound), "shortest", module:function of
    (item, trace, grade), or a reward model (programmatic, prm:…, orm:…, served:…, a function of
    (question, steps)) reading the thinking split at `step_delimiter`, its step scores turned
    into one by `aggregate`."""

    samples: int = 8
    scorer: str = "oracle"
    temperature: float = SAMPLED_TEMPERATURE
    max_thinking: MaxThinking = "auto"
    aggregate: str = "min"
    step_delimiter: str = "\n\n"

    method = "best-of-n"
    title = "best-of-N"

    def __post_init__(self) -> None:
        _check_positive(self.samples, "the number of samples")
        _check_temperature(self.temperature, self.title)
        object.__setattr__(self, "max_thinking", _check_max(self.max_thinking))
        # fail now, not after the generations
        object.__setattr__(self, "_reads_steps",
                           _check_scorer(self.scorer, self.aggregate, self.step_delimiter))

    def settings(self, base: Budget) -> list[Setting]:
        steps = {"aggregate": self.aggregate, "step_delimiter": self.step_delimiter} \
            if self._reads_steps else {}
        prefix = "best-of" if self.method == "best-of-n" else "weighted-majority"
        return [Setting(self.method, f"{prefix}-{self.samples}-{_slug(self.scorer)}"
                        + (f"-{self.aggregate}" if steps else "")
                        + f"-max{_max_label(self.max_thinking)}",
                        base.with_(max_thinking_tokens=self.max_thinking,
                                   temperature=self.temperature),
                        samples=self.samples, scorer=self.scorer,
                        label=f"{self.title} ({self.scorer})", **steps,
                        params={"samples": self.samples, "scorer": self.scorer,
                                "temperature": self.temperature,
                                "max_thinking": self.max_thinking, **steps})]


@dataclass(frozen=True)
class WeightedMajority(BestOfN):
    """n samples per question; each answer gets the sum of its samples' rewards and the largest
    sum wins (search-and-learn's "weighted best-of-N"). The scorer must be a reward model."""

    scorer: str = "programmatic"

    method = "weighted-majority"
    title = "weighted majority"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self._reads_steps:
            raise UserError(f"weighted majority weighs votes by a reward model, and {self.scorer!r} "
                            "is not one: give --scorer programmatic, prm:MODEL, orm:MODEL, "
                            "served:URL or module:function(question, steps)")




SELECTIONS = ("best", "vote")   # a search's answer: the best reward, or the reward-weighted vote


@dataclass(frozen=True)
class _Search:
    """What both searches share.

    scorer: the reward model (a spec `load_reward_model` reads)
    step_delimiter: where a step ends ("\n\n", as Qwen2.5-Math-PRM splits; the miniature world
        thinks one step per line: "\n")
    aggregate: how a branch's step scores make its reward: min, last, prod or mean
    select: the answer: "best" (the highest reward) or "vote" (answers' rewards summed)
    max_depth: steps at most; open branches are then let finish their thinking and answer
    max_thinking: the cap of each branch's whole thinking (its steps so far count)
    """

    scorer: str = ""
    temperature: float = SAMPLED_TEMPERATURE
    max_thinking: MaxThinking = "auto"
    step_delimiter: str = "\n\n"
    aggregate: str = "last"
    select: str = "best"
    max_depth: int = 40

    def _check(self) -> None:
        from s1.evaluation.rewards import AGGREGATIONS

        from s1.evaluation.rewards import check_reward_spec

        if not self.scorer or self.scorer in BUILTIN_SCORERS:
            raise UserError(f"--method {self.method} needs a reward model: --scorer SPEC")
        check_reward_spec(self.scorer)
        _check_temperature(self.temperature, self.method)
        if self.temperature == 0:
            raise UserError(f"--method {self.method} at temperature 0 would expand every branch "
                            "into identical copies; use a positive temperature (default 1)")
        object.__setattr__(self, "max_thinking", _check_max(self.max_thinking))
        if not self.step_delimiter:
            raise UserError("the step delimiter cannot be empty")
        if self.aggregate not in AGGREGATIONS:
            raise UserError(f"unknown aggregation {self.aggregate!r}; use one of "
                            f"{', '.join(AGGREGATIONS)}")
        if self.select not in SELECTIONS:
            raise UserError(f"select must be one of {', '.join(SELECTIONS)}, not {self.select!r}")
        _check_positive(self.max_depth, "max depth")

    def _setting(self, base: Budget, name: str, label: str, params: dict) -> Setting:
        params = {**params, "scorer": self.scorer, "temperature": self.temperature,
                  "max_thinking": self.max_thinking, "step_delimiter": self.step_delimiter,
                  "aggregate": self.aggregate, "select": self.select,
                  "max_depth": self.max_depth}
        return Setting(self.method, f"{name}-{_slug(self.scorer)}-{self.aggregate}-{self.select}"
                       f"-max{_max_label(self.max_thinking)}",
                       base.with_(max_thinking_tokens=self.max_thinking,
                                  temperature=self.temperature),
                       scorer=self.scorer, label=label, params=params)


@dataclass(frozen=True)
class BeamSearch(_Search):
    """Step-level beam search (search-and-learn's): `beams` branches, each expanded
    `expansions` times per step; the top `beams` by reward go on (fewer as branches finish)."""

    beams: int = 4
    expansions: int = 4
    method = "beam"

    def __post_init__(self) -> None:
        self._check()
        _check_positive(self.beams, "beams")
        _check_positive(self.expansions, "expansions")

    def settings(self, base: Budget) -> list[Setting]:
        return [self._setting(base, f"beam-n{self.beams}-m{self.expansions}",
                              f"beam search ({self.scorer})",
                              {"beams": self.beams, "expansions": self.expansions})]


@dataclass(frozen=True)
class Rebase(_Search):
    """REBASE (Wu et al., 2024): a tree of total width `width`; at each depth the open nodes
    share the width left (width − answers finished) in proportion to softmax(reward / T)."""

    width: int = 16
    softmax_temperature: float = 0.2      # REBASE's own default
    select: str = "vote"

    method = "rebase"

    def __post_init__(self) -> None:
        self._check()
        _check_positive(self.width, "width")
        if not self.softmax_temperature > 0:
            raise UserError(f"the softmax temperature must be positive ({self.softmax_temperature})")

    def settings(self, base: Budget) -> list[Setting]:
        return [self._setting(base, f"rebase-w{self.width}-t{self.softmax_temperature:g}",
                              f"REBASE ({self.scorer})",
                              {"width": self.width,
                               "softmax_temperature": self.softmax_temperature})]


Method = Union[BudgetForcing, ConditionalPrompting, RejectionSampling, MajorityVoting, BestOfN,
               WeightedMajority, BeamSearch, Rebase]


def expand(methods: Sequence[Method], base: Budget) -> list[Setting]:
    """All settings of the given methods; two settings with one name would share a run
    directory, so that is refused."""
    settings = [s for m in methods for s in m.settings(base)]
    names = [s.name for s in settings]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"two runs would share the name {dupes[0]}: remove the repeated setting")
    return settings
