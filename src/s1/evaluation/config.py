"""EvalConfig: everything `s1 eval` needs, one validated dataclass per concern.

    engine:    EngineOptions      which model, served how (shared with every engine command)
    benchmark: BenchmarkOptions   which questions, prompted how
    method:    MethodOptions      which test-time scaling method, over which settings
    budget:    BudgetOptions      what every generation shares (answer cap, sampling)
    run:       RunOptions         where the runs go, how many seeds, grading

A YAML file (`s1 eval --config configs/eval/NAME.yaml`) gives any of these; flags and
`section.field=value` overrides change it. The CLI flags take their defaults from here, and these
take theirs from the method and budget dataclasses, so each default lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s1.config import apply_overrides, build_sections, default, dump, read_config
from s1.errors import UserError
from s1.evaluation import methods as m
from s1.evaluation.prompts import PROTOCOLS
from s1.evaluation.rewards import read_delimiter
from s1.generation.budget import DEFAULT_IGNORE, Budget, Sampling, parse_max_thinking
from s1.generation.options import EngineOptions


@dataclass(frozen=True)
class BenchmarkOptions:
    """name: aime24, math500, gsm8k, tiny (the miniature world), aime25, gpqa-diamond or a JSONL path; file: a local file
    for a named benchmark; the *_field / answer_type: how to read a JSONL benchmark; limit: the
    first N questions; subset: a metadata filter (level=5); protocol: s1 (bare) or boxed."""

    name: str | None = None
    file: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    answer_type: str | None = None
    limit: int | None = None
    subset: str | None = None
    protocol: str = "s1"
    system: str | None = None          # a system prompt (None: the model's default, as the paper)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserError(f"unknown prompt protocol {self.protocol!r}; choose one of "
                            f"{', '.join(PROTOCOLS)}")
        if isinstance(self.name, (list, tuple)):     # a YAML list of benchmarks
            object.__setattr__(self, "name", ",".join(map(str, self.name)))
        names = self.names()
        if len(set(names)) != len(names):
            raise UserError(f"--benchmark lists a benchmark twice ({self.name})")
        self.files()   # checked now

    def names(self) -> list[str]:
        """The benchmarks of one command (`aime24,math500,gpqa-diamond`), each its own runs."""
        return [n.strip() for n in str(self.name or "").split(",") if n.strip()]

    def files(self) -> dict[str, str]:
        """Local file per benchmark: `--benchmark-file PATH` for one benchmark, or
        `NAME=PATH[,NAME=PATH]` when several are given."""
        if not self.file:
            return {}
        names = self.names()
        if "=" not in self.file:
            if len(names) > 1:
                raise UserError("with several benchmarks, give --benchmark-file NAME=PATH (e.g. "
                                "gpqa-diamond=gpqa.csv), comma-separated")
            return {names[0]: self.file} if names else {}
        out = {}
        for part in self.file.split(","):
            name, _, path = part.partition("=")
            if name.strip() not in names or not path.strip():
                raise UserError(f"--benchmark-file {part!r}: give NAME=PATH with NAME one of "
                                f"{', '.join(names)}")
            out[name.strip()] = path.strip()
        return out


def _ints(text: str, what: str) -> list[int]:
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            out.append(int(part))
        except ValueError:
            raise UserError(f"{what}: {part!r} in {text!r} is not a number (give integers, "
                            "comma-separated)") from None
    return out


@dataclass(frozen=True)
class MethodOptions:
    """The method and its sweep. max_thinking and num_ignore are comma-separated lists (one
    run per value); each ignore string is its own run; the rest belong to one method each."""

    name: str = "budget"
    max_thinking: str = "auto"
    num_ignore: str = "0"
    ignore_strings: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE))
    min_thinking: int = default(m.BudgetForcing, "min_thinking")
    prompt: str | None = None
    forcing: bool = default(m.ConditionalPrompting, "forcing")
    tokens_per_step: int = default(m.ConditionalPrompting, "tokens_per_step")
    samples: int | None = None         # None: the method's own (majority / best-of-n 8, r1 16)
    scorer: str | None = None          # None: the method's own (best-of-n oracle, weighted
                                       # majority programmatic; beam and rebase need one)
    aggregate: str | None = None       # None: the method's own (best-of-n min, searches last)
    step_delimiter: str = default(m.BestOfN, "step_delimiter")
    max_tries: int = default(m.RejectionSampling, "max_tries")
    on_failure: str = default(m.RejectionSampling, "on_failure")
    width: int = default(m.Rebase, "width")
    softmax_temperature: float = default(m.Rebase, "softmax_temperature")
    beams: int = default(m.BeamSearch, "beams")
    expansions: int = default(m.BeamSearch, "expansions")
    select: str | None = None          # None: the search's own (beam: best, REBASE: vote)
    max_depth: int = default(m.BeamSearch, "max_depth")

    def __post_init__(self) -> None:
        if self.name not in m.METHODS:
            raise UserError(f"unknown method {self.name!r}; choose one of {', '.join(m.METHODS)}")
        object.__setattr__(self, "step_delimiter", read_delimiter(self.step_delimiter))

    def check_no_thinking(self) -> None:
        """The `none` format has no thinking to force, cap or reject on: refuse what needs it."""
        why = None
        if self.name in ("rejection", "conditional", *m.SEARCHES):
            why = f"--method {self.name} controls the thinking"
        elif self.name == "budget" and (self.min_thinking or any(_ints(self.num_ignore, "x"))
                                        or len(str(self.max_thinking).split(",")) > 1):
            why = "budget forcing (several caps, --num-ignore, --min-thinking) acts on the thinking"
        if why:
            raise UserError(f"{why}, and --format none has none; use majority, best-of-n, r1 or "
                            "one budget run (the answer is capped by --max-answer)")

    def build(self, temperature: float | None, top_p: float | None = None) -> m.Method:
        """The method config; `temperature` (and the R1 protocol's `top_p`) None keeps the
        method's own default."""
        maxes = [parse_max_thinking(x, "--max-thinking") for x in str(self.max_thinking).split(",")]
        t = {} if temperature is None else {"temperature": temperature}
        n = {} if self.samples is None else {"samples": self.samples}
        if self.name == "budget":
            return m.BudgetForcing(maxes, _ints(self.num_ignore, "--num-ignore"),
                                   self.ignore_strings, self.min_thinking)
        if self.name == "conditional":
            if not self.prompt:
                raise UserError("--method conditional needs --prompt (e.g. tokens:64,tokens:128 "
                                "or long,short)")
            if len(maxes) != 1:
                raise UserError("--method conditional takes one --max-thinking (the cap without "
                                "a prompted bound)")
            return m.ConditionalPrompting([p for p in self.prompt.split(",") if p.strip()],
                                          self.forcing, self.tokens_per_step, maxes[0])
        if self.name == "rejection":
            return m.RejectionSampling(maxes, self.max_tries, on_failure=self.on_failure, **t)
        if len(maxes) != 1:
            raise UserError(f"--method {self.name} takes one --max-thinking (the cap of every "
                            "sample)")
        if self.name == "majority":
            return m.MajorityVoting(**n, max_thinking=maxes[0], **t)
        if self.name == "r1":
            from s1.evaluation.r1 import R1Sampling
            return R1Sampling(**n, max_thinking=maxes[0], **t,
                              **({} if top_p is None else {"top_p": top_p}))
        if self.name in m.SEARCHES:
            if self.scorer is None:
                raise UserError(f"--method {self.name} needs a reward model: --scorer SPEC "
                                "(programmatic, prm:MODEL, orm:MODEL, served:URL or "
                                "module:function)")
            common = dict(scorer=self.scorer, max_thinking=maxes[0], **t,
                          step_delimiter=self.step_delimiter, max_depth=self.max_depth,
                          **({} if self.aggregate is None else {"aggregate": self.aggregate}),
                          **({} if self.select is None else {"select": self.select}))
            if self.name == "beam":
                return m.BeamSearch(**common, beams=self.beams, expansions=self.expansions)
            return m.Rebase(**common, width=self.width,
                            softmax_temperature=self.softmax_temperature)
        scored = {"scorer": self.scorer} if self.scorer is not None else {}
        aggregated = {"aggregate": self.aggregate} if self.aggregate is not None else {}
        method = m.WeightedMajority if self.name == "weighted-majority" else m.BestOfN
        return method(**n, **scored, **aggregated, max_thinking=maxes[0],
                      step_delimiter=self.step_delimiter, **t)


@dataclass(frozen=True)
class BudgetOptions:
    """What every generation of the sweep shares. max_answer: the answer cap in tokens, or
    "auto" (the rest of the model's context, as the paper's harness: s1-32B writes 650-1,100
    answer tokens on AIME); temperature None: 0 for budget forcing and conditional prompting,
    the method's own (1, as the paper) for the sampling methods."""

    max_answer: int | str = "auto"
    temperature: float | None = None
    top_p: float | None = None         # None: 1, or the R1 protocol's 0.95
    top_k: int = default(Sampling, "top_k")
    min_mode: str = default(Budget, "min_mode")
    answer_reserve: int = default(Budget, "answer_reserve")
    require_answer: bool = default(Budget, "require_answer")
    min_p: float = default(Sampling, "min_p")
    presence_penalty: float = default(Sampling, "presence_penalty")

    def __post_init__(self) -> None:
        cap = self.max_answer
        if isinstance(cap, str) and cap.strip().isdigit():
            cap = int(cap)
        if isinstance(cap, str):
            cap = cap.strip().lower()
        if cap != "auto" and not (isinstance(cap, int) and cap >= 1):
            raise UserError(f"max answer must be a positive number of tokens or 'auto', not "
                            f"{self.max_answer!r}")
        object.__setattr__(self, "max_answer", cap)
        self.base()    # every other field checked where the Budget checks it

    def answer_cap(self, context_length: int | None) -> int:
        """The answer cap in tokens: "auto" is the whole context, so the answer ends at EOS or
        where the context ends (every engine stops there), whichever comes first."""
        if self.max_answer != "auto":
            return self.max_answer
        return int(context_length) if context_length else default(Budget, "max_answer_tokens")

    def base(self, context_length: int | None = None) -> Budget:
        """The Budget every setting starts from (`context_length` resolves an "auto" cap)."""
        return Budget(max_answer_tokens=self.answer_cap(context_length), min_mode=self.min_mode,
                      answer_reserve=self.answer_reserve, require_answer=self.require_answer,
                      sampling=Sampling(temperature=self.temperature or 0.0,
                                        top_p=1.0 if self.top_p is None else self.top_p,
                                        top_k=self.top_k, min_p=self.min_p,
                                        presence_penalty=self.presence_penalty))


@dataclass(frozen=True)
class RunOptions:
    """out: the directory of the runs (re-run to resume); seeds: 0..N-1, one run each; judge:
    an OpenAI-compatible LLM equivalence judge; model_params: parameters for FLOPs when the
    engine cannot tell (remote); allow_greedy_repeats: let --seeds > 1 (or several samples per
question) run at temperature 0, where every repeat is the same greedy run (useful only to
measure an engine's nondeterminism)."""

    out: str | None = None
    seeds: int = 1
    judge_url: str | None = None
    judge_model: str | None = None
    model_params: float | None = None
    quiet: bool = False
    allow_greedy_repeats: bool = False

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise UserError("--seeds must be at least 1")
        if (self.judge_url is None) != (self.judge_model is None):
            raise UserError("give both --judge-url and --judge-model, or neither")


def check_greedy_repeats(settings, seeds: int) -> None:
    """Refuse repeats that greedy decoding makes identical: seeds are not more evidence there,
    and an sd of 0 over them would pass for a stable result (vLLM likewise refuses n > 1 at
    temperature 0 with best_of)."""
    greedy = [s for s in settings if s.budget.greedy]
    if seeds > 1 and greedy:
        raise UserError(f"--seeds {seeds} at temperature 0 runs the same greedy generation "
                        f"{seeds} times ({greedy[0].name}); sample with --temperature > 0, or "
                        "give --allow-greedy-repeats to measure engine nondeterminism")
    many = [s for s in greedy if s.samples > 1]
    if many:
        raise UserError(f"{many[0].samples} samples per question at temperature 0 are one greedy "
                        f"sample repeated ({many[0].name}); give --temperature > 0 (the paper "
                        "samples at 1), or --allow-greedy-repeats")


SECTIONS = {"engine": EngineOptions, "benchmark": BenchmarkOptions, "method": MethodOptions,
            "budget": BudgetOptions, "run": RunOptions}


@dataclass(frozen=True)
class EvalConfig:
    engine: EngineOptions = field(default_factory=EngineOptions)
    benchmark: BenchmarkOptions = field(default_factory=BenchmarkOptions)
    method: MethodOptions = field(default_factory=MethodOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    run: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def load(cls, path: str | None = None, values: dict | None = None,
             overrides=()) -> "EvalConfig":
        """A file (or nothing), then `values` ({section: {field: value}}, the flags given),
        then `section.field=value` overrides; every field checked."""
        raw = read_config(path, kind="eval config", folder="eval") if path else {}
        for section, fields in (values or {}).items():
            raw[section] = {**(raw.get(section) or {}), **fields}
        apply_overrides(raw, overrides, SECTIONS, example="method.max_thinking=64,128")
        if (raw.get("method") or {}).get("name") == "r1" and \
                (raw.get("benchmark") or {}).get("protocol") is None:
            raw.setdefault("benchmark", {})["protocol"] = "boxed"   # R1's own prompt
        config = cls(**build_sections(raw, SECTIONS, where=f"eval config {path or ''}".strip()))
        if not config.benchmark.name:
            raise UserError("give --benchmark (or benchmark.name in --config)")
        if not config.run.out:
            raise UserError("give --out (or run.out in --config)")
        method = config.method.build(config.budget.temperature, config.budget.top_p)  # checked now
        if not config.run.allow_greedy_repeats:
            check_greedy_repeats(m.expand([method], config.budget.base()), config.run.seeds)
        if config.engine.format == "none":
            config.method.check_no_thinking()
        return config

    def show(self) -> str:
        return dump(self)
