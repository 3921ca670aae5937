"""The pool: every candidate question in one schema, as a `datasets.Dataset`.

Columns (s1's `collect_data.py` schema plus two):
- `question`, `solution` (a worked solution where the source has one, else the reference answer,
  as s1 stored it: the grader compares against it), `answer` (the short reference answer; for
  MATH the last `\\boxed{}` of the solution), `source_type` (s1's labels, e.g.
  `qq8933/AIME_1983_2024`), `metadata` (a JSON string of the source's other fields), `cot_type`
  (math, science, english), `question_hash` (sha256(question)[:16], s1's key).

Sources: the shipped offline pool by name (`math`, `aime`, `omni-math`, `olympiadbench`,
`theoremqa`, `agieval`, `gsm8k`, or `offline` for all of them in the paper's order), the
miniature world's generated problems (`synthetic`, settings in `synthetic.*`), the paper's
sources by hub id when online (`simplescaling/data_ablation_full59K` is the whole 59K pool
already in this schema), and any JSONL / JSON / Parquet / CSV file or hub id with a field mapping.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator

from s1.curation.steps import StepOutput, step
from s1.errors import UserError
from s1.evaluation.extract import last_boxed

COLUMNS = ("question", "solution", "answer", "source_type", "metadata", "cot_type", "question_hash")


def question_hash(question: str) -> str:
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


def data_path(*parts: str) -> Path:
    return Path(str(resources.files("s1").joinpath("data", *parts)))


def _row(question, solution, answer, source_type, cot_type="math", **meta) -> dict:
    question = "" if question is None else str(question)
    return {"question": question,
            "solution": None if solution in (None, "", "None") else str(solution),
            "answer": None if answer in (None, "", "None") else str(answer),
            "source_type": source_type, "metadata": json.dumps(meta, ensure_ascii=False, default=str),
            "cot_type": cot_type, "question_hash": question_hash(question)}


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# ---------------------------------------------------------------------------------------------
# the shipped sources: each reader turns the file's own fields into the pool schema


def _math(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "math_12k_train.jsonl")):
        yield _row(r["problem"], r["solution"], last_boxed(r["solution"]),
                   f"simplescaling/openaimath/{r['type']}", "math",
                   level=r["level"], type=r["type"], unique_id=r["unique_id"])


def _aime(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "aime_1983_2024.jsonl")):
        if int(r["Year"]) > options.aime_max_year:
            continue   # 2022-2024 is s1's AIME test set
        # s1 stored the answer as the solution: AIME has no worked solutions in this CSV
        yield _row(r["question"], r["answer"], r["answer"], "qq8933/AIME_1983_2024", "math",
                   ID=r["ID"], Year=r["Year"], problem_number=r["Problem Number"], part=r["Part"])


def _omni(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "omni_math_rule.jsonl")):
        yield _row(r["question"], r["solution"], r["answer"], "KbsdJames/Omni-MATH", "math",
                   domain=r["domain"], difficulty=r["difficulty"], source=r["orig_source"])


def _olympiadbench(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "olympiadbench_oe_to_maths_en_comp.jsonl")):
        yield _row(r["question"], r.get("solution") or r["answer"], r["answer"], r["source"], "math",
                   id=r["id"], subfield=r["subfield"], answer_type=r["answer_type"],
                   unit=r.get("unit"))


def _theoremqa(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "theoremqa_test.jsonl")):
        if options.theoremqa_text_only and r.get("Picture") is not None:
            continue   # s1 kept the 747 questions without a picture
        cot = "math" if r.get("field") == "Math" else "science"
        yield _row(r["question"], r.get("solution") or r["answer"], r["answer"], r["source"], cot,
                   id=r["id"], field=r.get("field"), subfield=r.get("subfield"),
                   theorem=r.get("theorem"), answer_type=r.get("Answer_type"))


AGIEVAL_TASKS = ("sat_math", "sat_en", "lsat_ar", "lsat_lr", "lsat_rc", "aqua_rat", "math_agieval")
_VERBAL = ("sat_en", "lsat_ar", "lsat_lr", "lsat_rc")


def _agieval(options: "PoolConfig") -> Iterator[dict]:
    for task in AGIEVAL_TASKS:
        for r in _jsonl(data_path("pool", "agieval", f"{task}.jsonl")):
            other = r.get("other") if isinstance(r.get("other"), dict) else {}
            if task == "math_agieval" and options.agieval_math_level5 and other.get("level") != 5:
                continue   # s1 kept level 5 of AGIEval's MATH problems
            yield _row(r["question"], r.get("solution") or r["answer"], r["answer"], r["source"],
                       "english" if task in _VERBAL else "math",
                       task=task, label=r.get("label"), level=other.get("level"),
                       subject=other.get("type"))


def _synthetic(options: "PoolConfig") -> Iterator[dict]:
    """The miniature world (s1.miniature): generated problems with their teacher traces in
    `metadata` (trace, slip), their MSC code (msc) and difficulty; never a `tiny` benchmark one."""
    from s1.miniature.world import SyntheticConfig, benchmark_questions, generate

    cfg = options.synthetic_config
    for r in generate(cfg.size, cfg.seed, cfg, exclude=benchmark_questions()):
        yield _row(r["question"], r["solution"], r["answer"], f"s1/synthetic/{r['domain']}", "math",
                   domain=r["domain"], msc=r["msc"], difficulty=r["difficulty"], trace=r["trace"],
                   slip=r["slip"])


def _gsm8k(options: "PoolConfig") -> Iterator[dict]:
    for r in _jsonl(data_path("pool", "gsm8k_train.jsonl")):
        final = r["answer"].rsplit("####", 1)[-1].strip().replace(",", "")
        yield _row(r["question"], r["answer"], final, "openai/gsm8k", "math")


#: Shipped sources in the order of the paper's Table 6 (the order decontamination is cumulative in).
SHIPPED: dict[str, Callable[["PoolConfig"], Iterator[dict]]] = {
    "math": _math, "omni-math": _omni, "agieval": _agieval, "olympiadbench": _olympiadbench,
    "aime": _aime, "theoremqa": _theoremqa, "gsm8k": _gsm8k,
}
#: Generated sources: by name like the shipped ones, but not part of `offline`.
GENERATED: dict[str, Callable[["PoolConfig"], Iterator[dict]]] = {"synthetic": _synthetic}
OFFLINE = "offline"


# ---------------------------------------------------------------------------------------------
# the paper's sources on the hub (online only)

@dataclass(frozen=True)
class HubSource:
    hub_id: str
    config: str | None = None
    split: str = "train"
    question: str = "question"
    solution: str | None = "solution"
    answer: str | None = None
    source_type: str | None = None        # None: the hub id
    keep: Callable[[dict], bool] | None = None


#: The paper's sources that have a plain mapping; the others (OlympicArena, JEEBench, GPQA, ...)
#: load as generic hub ids with a field mapping.
HUB = {
    "simplescaling/data_ablation_full59K": HubSource("simplescaling/data_ablation_full59K"),
    "AI-MO/NuminaMath-CoT": HubSource("AI-MO/NuminaMath-CoT", question="problem",
                                      keep=lambda r: r.get("source") == "aops_forum"),
    "simplescaling/openaimath": HubSource("simplescaling/openaimath", question="problem"),
    "KbsdJames/Omni-MATH": HubSource("KbsdJames/Omni-MATH", split="test", question="problem",
                                     answer="answer"),
    "qq8933/AIME_1983_2024": HubSource("qq8933/AIME_1983_2024", question="Question",
                                       solution="Answer", answer="Answer"),
    "TIGER-Lab/TheoremQA": HubSource("TIGER-Lab/TheoremQA", split="test", question="Question",
                                     solution="Answer", answer="Answer",
                                     keep=lambda r: r.get("Picture") is None),
}


def hub_offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _load_table(spec: "SourceSpec"):
    import datasets

    path = Path(spec.path).expanduser() if spec.path else None
    try:
        if path is not None:
            if not path.exists():
                raise UserError(f"pool source not found: {spec.path}")
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(
                path.suffix)
            if kind is None:
                raise UserError(f"cannot read {spec.path}: give a .jsonl, .json, .parquet or .csv file")
            return datasets.load_dataset(kind, data_files=str(path), split="train")
        if hub_offline():
            raise UserError(f"pool source {spec.hub} is on the hub and the hub is offline "
                            f"(HF_HUB_OFFLINE); use the shipped pool ({OFFLINE!r} or one of "
                            f"{', '.join(SHIPPED)}) or a local file")
        args = (spec.hub, spec.config) if spec.config else (spec.hub,)
        return datasets.load_dataset(*args, split=spec.split)
    except UserError:
        raise
    except Exception as err:  # network, auth, bad split, bad file: all user-fixable
        where = spec.path or spec.hub
        raise UserError(f"cannot load pool source {where} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160] if str(err) else ''}); go online, or "
                        f"use the shipped pool ({OFFLINE!r}) or a local file") from None


def _column(spec_value: str | None, auto: str, cols: list[str]) -> str | None:
    """The mapped column, else the conventional one (`solution`, `answer`) when the table has it."""
    if spec_value is not None:
        return spec_value
    return auto if auto in cols else None


SHORT_SOLUTION = 40   # characters: a "solution" this short on one line is the answer itself


def answer_of(answer, solution) -> str | None:
    """The reference answer; else the solution's last \\boxed{} (MATH, NuminaMath); else the
    solution itself when it is a bare answer (s1 stored AIME's, TheoremQA's and GPQA's answers
    as their solution). The 59K pool has no answer column: this is where its answers come from."""
    if answer not in (None, "", "None") or solution in (None, "", "None"):
        return answer
    text = str(solution).strip()
    boxed = last_boxed(text)
    if boxed:
        return boxed
    return text if len(text) <= SHORT_SOLUTION and "\n" not in text else None


def _mapped(spec: "SourceSpec") -> Iterator[dict]:
    table = _load_table(spec)
    cols = table.column_names
    for want in (spec.question, spec.solution, spec.answer):
        if want is not None and want not in cols:
            raise UserError(f"pool source {spec.path or spec.hub} has no column {want!r} "
                            f"(columns: {', '.join(cols)}); map it, e.g. question=problem")
    solution_col = _column(spec.solution, "solution", cols)
    answer_col = _column(spec.answer, "answer", cols)
    if "source_type" in cols and spec.question == "question" and spec.source_type is None:
        # already in s1's schema (the 59K pool, s1K): keep its labels and metadata; the 59K has
        # no answer column, so the answer is the solution's last box where it has one
        for r in table:
            if spec.keep and not spec.keep(r):
                continue
            solution = r.get(solution_col) if solution_col else None
            answer = answer_of(r.get(answer_col) if answer_col else None, solution)
            row = _row(r["question"], solution, answer, r["source_type"], r.get("cot_type") or "math")
            row["metadata"] = str(r.get("metadata") or "{}")
            yield row
        return
    label = spec.source_type or spec.hub or Path(spec.path).stem
    used = {spec.question, solution_col, answer_col}
    for r in table:
        if spec.keep and not spec.keep(r):
            continue
        solution = r.get(solution_col) if solution_col else None
        answer = answer_of(r.get(answer_col) if answer_col else None, solution)
        # every other field goes to metadata; set after the row is made, so a field named like
        # one of the schema's (answer, cot_type, ...) cannot collide with it
        row = _row(r[spec.question], solution if solution is not None else answer, answer, label,
                   spec.cot_type)
        row["metadata"] = json.dumps({k: v for k, v in r.items() if k not in used},
                                     ensure_ascii=False, default=str)
        yield row


@dataclass
class SourceSpec:
    """One source: a shipped name, a hub id, or a file, with its field mapping."""

    name: str | None = None       # shipped name or `offline`
    hub: str | None = None        # hub id (online)
    path: str | None = None       # local JSONL / JSON / Parquet / CSV
    config: str | None = None     # hub config name
    split: str = "train"
    question: str = "question"
    solution: str | None = None   # None: the `solution` column where there is one (optional)
    answer: str | None = None     # None: the `answer` column, else the solution's last \\boxed{}
    source_type: str | None = None
    cot_type: str = "math"
    keep: Callable[[dict], bool] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, value) -> "SourceSpec":
        """`"offline"`, `"math"`, `"owner/name"`, `"path.jsonl"` or a mapping of these fields."""
        if isinstance(value, str):
            text = value.strip()
            if text == OFFLINE or text in SHIPPED or text in GENERATED:
                return cls(name=text)
            if text in HUB:
                h = HUB[text]
                return cls(hub=h.hub_id, config=h.config, split=h.split, question=h.question,
                           solution=h.solution, answer=h.answer, source_type=h.source_type,
                           keep=h.keep)
            if Path(text).suffix in (".jsonl", ".json", ".parquet", ".csv") or Path(text).exists():
                return cls(path=text)
            if text.count("/") == 1 and not text.startswith((".", "/", "~")):
                return cls(hub=text)
            raise UserError(f"unknown pool source {text!r}: give {OFFLINE!r}, one of "
                            f"{', '.join(SHIPPED)}, a hub id or a file path")
        if isinstance(value, dict):
            fields = set(cls.__dataclass_fields__) - {"keep"}
            unknown = set(value) - fields
            if unknown:
                raise UserError(f"unknown pool source field(s) {', '.join(sorted(unknown))} "
                                f"(fields: {', '.join(sorted(fields))})")
            spec = cls(**value)
            if sum(x is not None for x in (spec.name, spec.hub, spec.path)) != 1:
                raise UserError("a pool source mapping needs exactly one of name, hub, path")
            if spec.name is not None:
                return cls.parse(spec.name)
            return spec
        raise UserError(f"a pool source must be a name, hub id, path or mapping, not {value!r}")

    def describe(self) -> str:
        return self.name or self.hub or str(self.path)


@dataclass
class PoolConfig:
    """Which sources make the pool (in this order: decontamination is cumulative in it)."""

    sources: list = field(default_factory=lambda: [OFFLINE])
    aime_max_year: int = 2021          # the paper: 1983-2021 (its code: <= 2022)
    theoremqa_text_only: bool = True   # s1 kept the rows without a picture
    agieval_math_level5: bool = True   # s1 kept level 5 of AGIEval's MATH
    limit_per_source: int | None = None  # the first N of each source (quick runs)
    # The `synthetic` source: size, seed, domains, min_difficulty, max_difficulty, slip_rate
    # (s1.miniature.world.SyntheticConfig), e.g. `synthetic.size=5000`.
    synthetic: dict = field(default_factory=dict)

    @property
    def synthetic_config(self):
        from s1.miniature.world import SyntheticConfig

        from s1.config import build_section

        return build_section(SyntheticConfig, self.synthetic, "pool.synthetic")

    def __post_init__(self):
        if not isinstance(self.sources, list) or not self.sources:
            raise UserError("pool.sources must be a non-empty list")
        self.specs = [SourceSpec.parse(s) for s in self.sources]
        if self.limit_per_source is not None and self.limit_per_source < 1:
            raise UserError("pool.limit_per_source must be positive")
        if any(s.name in GENERATED for s in self.specs):
            self.synthetic_config   # a bad setting fails here, before anything is generated

    def fingerprint(self) -> list[str]:
        """Content hashes of the local files among the sources (shipped files go with the version)."""
        from s1.curation.steps import file_fingerprint

        return [file_fingerprint(Path(s.path).expanduser()) for s in self.specs
                if s.path and Path(s.path).expanduser().is_file()]


def iter_source(spec: SourceSpec, config: PoolConfig) -> Iterator[dict]:
    if spec.name == OFFLINE:
        for name in SHIPPED:
            yield from iter_source(SourceSpec(name=name), config)
        return
    readers = {**SHIPPED, **GENERATED}
    rows: Iterable[dict] = readers[spec.name](config) if spec.name else _mapped(spec)
    for i, row in enumerate(rows):
        if config.limit_per_source is not None and i >= config.limit_per_source:
            break
        yield row


def load_pool(config: PoolConfig | None = None):
    """The pool as a `datasets.Dataset` in the schema above."""
    import datasets

    config = config or PoolConfig()
    rows = [row for spec in config.specs for row in iter_source(spec, config)]
    if not rows:
        raise UserError("the pool sources gave no questions")
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS},
                                      features=pool_features())


def pool_features():
    import datasets

    return datasets.Features({c: datasets.Value("string") for c in COLUMNS})


def load_reference():
    """The 893 s1K questions with text (GPQA rows withheld), for comparisons and fidelity tests."""
    return list(_jsonl(data_path("reference", "s1k_questions.jsonl")))


def load_msc() -> list[dict]:
    """The 61 MSC top-level codes s1 labels domains with: `{code, title, descriptions, prompt}`."""
    return json.loads(data_path("msc", "msc.json").read_text(encoding="utf-8"))


@step("pool", PoolConfig, source=True)
def pool_step(data, config: PoolConfig, ctx) -> StepOutput:
    """Load the pool sources into the one schema (IN: `offline`, shipped names, hub ids or files)."""
    from collections import Counter

    pool = load_pool(config)
    from s1.curation.steps import column

    per_source = Counter(column(pool, "source_type"))
    no_answer = sum(a is None for a in column(pool, "answer"))
    return StepOutput(pool, stats={"rows": len(pool), "without_answer": no_answer,
                                   "per_source": dict(per_source.most_common())})
