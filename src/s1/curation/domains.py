"""Domains: label each question with one of the 61 top-level Mathematics Subject Classification
codes (`s1/data/msc/msc.json`, the paper's list), the axis of the selection step's diversity.

- `llm`: the paper's classifier (Claude 3.5 Sonnet there; any engine here, `s1.curation.llm`)
  with its exact system and user prompts; the answer is the reply's last two characters as a
  code, as the paper parses it. A reply without a valid code drops the row (the paper drops such
  NAs) or falls back to the offline classifier (`on_unparsed`).
- `offline`: no LLM. A multinomial naive Bayes on hashed word unigrams and bigrams, trained on
  load (a few seconds) on labelled shipped data whose subject labels are mapped by hand to MSC
  codes: MATH `type`, Omni-MATH `domain` paths, TheoremQA `subfield`, OlympiadBench `subfield`
  (see `_MAPS`). It can only predict the ~35 codes those labels reach; `evaluate_offline()`
  measures its accuracy on a held-out fifth (split by question hash).
- `metadata`: the code the pool row already carries in `metadata["msc"]` (a source labelled
  where it was made: the miniature world's generator knows each family's code). A row without
  a valid code is dropped.

Config: `DomainsConfig`. Columns in: `question`. Columns out: `domain` (the MSC title, as the
paper stored it), `domain_code` (two digits), `domain_source` ("llm", "offline" or "metadata").
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from s1.curation.llm import LLMConfig, llm_config
from s1.errors import UserError

log = logging.getLogger("s1.curation")

METHODS = ("llm", "offline", "metadata")

# The paper's prompts (featurization.py of simplescaling/s1).
CLASSIFY_SYSTEM = (
    "You are a helpful assistant that classifies questions into different subjects based on the "
    "provided classification rubrics. You will be given a question and a list of subjects. You need "
    "to classify the question into one of the subjects. If the question has multiple subjects, you "
    "should classify the question into the most relevant subject. Explain your reasoning, and end "
    "your response on a new line with two-digit code of the subject that the question belongs to.")
CLASSIFY_USER = "## Question\n{question}\n\n## Classification rubrics\n{rubrics}"


@dataclass
class DomainsConfig:
    """How to label domains."""

    method: str = "offline"            # llm | offline | metadata (the pool row's own msc)
    classifier: LLMConfig | None = None   # method=llm: which model
    on_unparsed: str = "drop"          # method=llm, no code in the reply: drop | offline
    cache: str | None = None           # method=llm: JSONL of replies (resumable)
    train_dir: str | None = None       # offline: labelled pool files (default: the shipped pool)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown domain method {self.method!r}; choose llm, offline or metadata")
        self.classifier = llm_config(self.classifier, "domains.classifier")
        if self.method == "llm" and self.classifier is None:
            self.classifier = LLMConfig()
        if self.on_unparsed not in ("drop", "offline"):
            raise UserError(f"on_unparsed must be drop or offline, not {self.on_unparsed!r}")


@lru_cache(maxsize=1)
def msc() -> dict[str, str]:
    """code -> title of the 61 MSC codes the paper used."""
    data = json.loads((resources.files("s1") / "data" / "msc" / "msc.json").read_text("utf-8"))
    return {d["code"]: d["title"] for d in data}


def rubrics() -> str:
    data = json.loads((resources.files("s1") / "data" / "msc" / "msc.json").read_text("utf-8"))
    return "\n\n".join(d["prompt"] for d in data)


def parse_code(reply: str) -> str | None:
    """The paper's parse: the last two characters are the code."""
    tail = (reply or "").strip().rstrip(".*` ")[-2:]
    return tail if tail.isdigit() and tail in msc() else None


# ---------------------------------------------------------------------------------------------
# offline classifier

# Hand mapping of the shipped pool's subject labels to MSC codes (coarse by necessity: "Algebra"
# in MATH is school algebra, which MSC has no code for).
_MAPS = {
    "math": {"Algebra": "08", "Intermediate Algebra": "12", "Prealgebra": "97", "Number Theory": "11",
             "Geometry": "51", "Precalculus": "26", "Counting & Probability": "05"},
    "omni": {"Plane Geometry": "51", "Solid Geometry": "51", "Differential Geometry": "53",
             "Combinatorics": "05", "Graph Theory": "05", "Algorithms": "68", "Logic": "03",
             "Set Theory": "03", "Game Theory": "91", "Statistics": "62", "Probability": "60",
             "Math Word Problems": "97", "Word Problems": "97", "Prealgebra": "97",
             "Intermediate Algebra": "12", "Algebra": "08", "Abstract Algebra": "20",
             "Linear Algebra": "15", "Sequences and Series": "40", "Complex Numbers": "30",
             "Equations and Inequalities": "26", "Integral Calculus": "26",
             "Differential Calculus": "26", "Trigonometric Functions": "26", "Functions": "26",
             "Limits": "40", "Optimization": "49", "Number Theory": "11"},
    "theoremqa": {"Calculus": "26", "Combinatorics": "05", "Algebra": "12", "Signal processing": "94",
                  "Mathematical analysis": "26", "Graph theory": "05", "Kinetics": "70",
                  "Number theory": "11", "Information theory": "94", "Geometry": "51",
                  "Numerical analysis": "65", "Statistics": "62", "Computer networking": "68",
                  "Economics": "91", "Complex analysis": "30", "Electromagnetism": "78",
                  "Probability theory": "60", "Stochastic process": "60", "Quantitive methods": "91",
                  "Derivatives": "91", "Machine learning": "68", "Atomic physics": "81",
                  "Fixed income": "91", "Group theory": "20", "Functional analysis": "46",
                  "Portfolio management": "91", "Equity investments": "91", "Optics": "78",
                  "Wave": "78", "Condensed matter physics": "82", "Real analysis": "26",
                  "Relativity": "83", "Particle": "81", "Celestial mechanics": "70",
                  "Statistical physics": "82", "Fluid mechanics": "76", "Quantum": "81",
                  "Thermodynamics": "80", "Classic mechanics": "70"},
    "olympiadbench": {"Algebra": "12", "Combinatorics": "05", "Geometry": "51", "Number Theory": "11"},
}
_FILES = {"math": "math_12k_train.jsonl", "omni": "omni_math_rule.jsonl",
          "theoremqa": "theoremqa_test.jsonl", "olympiadbench": "olympiadbench_oe_to_maths_en_comp.jsonl"}


def _label(source: str, r: dict) -> str | None:
    if source == "math":
        return _MAPS["math"].get(r.get("type", ""))
    if source == "omni":
        for path in r.get("domain") or []:
            parts = [p.strip() for p in path.split("->")]
            for part in reversed(parts[1:]):
                if part in _MAPS["omni"]:
                    return _MAPS["omni"][part]
        return None
    return _MAPS[source].get(r.get("subfield", ""))


def labelled_data(train_dir: str | Path | None = None) -> list[tuple[str, str, str]]:
    """(question, MSC code, source) for every shipped pool question whose label maps to MSC."""
    base = Path(train_dir) if train_dir else Path(str(resources.files("s1") / "data" / "pool"))
    out = []
    for source, name in _FILES.items():
        path = base / name
        if not path.is_file():
            log.warning("domains: %s not found; the offline classifier trains without it", path)
            continue
        for line in path.open(encoding="utf-8"):
            r = json.loads(line)
            code, q = _label(source, r), r.get("question") or r.get("problem") or ""
            if code and q:
                out.append((q, code, source))
    if not out:
        raise UserError(f"no labelled questions to train the offline domain classifier in {base}")
    return out


_TOKEN = re.compile(r"\\[a-z]+|[a-z]+|\d")


def _features(text: str, dim: int) -> np.ndarray:
    words = _TOKEN.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return np.unique(np.array([zlib.crc32(g.encode()) % dim for g in grams], dtype=np.int64))


class NaiveBayes:
    """Multinomial naive Bayes on hashed binary uni+bigram features."""

    def __init__(self, dim: int = 1 << 16, alpha: float = 0.1):
        self.dim, self.alpha = dim, alpha

    def fit(self, texts: list[str], labels: list[str]) -> "NaiveBayes":
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        counts = np.zeros((len(self.classes), self.dim), dtype=np.float64)
        for text, label in zip(texts, labels):
            counts[index[label], _features(text, self.dim)] += 1.0
        counts += self.alpha
        self.log_p = np.log(counts / counts.sum(1, keepdims=True)).astype(np.float32)
        prior = np.bincount([index[c] for c in labels], minlength=len(self.classes)) + 1.0
        self.log_prior = np.log(prior / prior.sum()).astype(np.float32)
        return self

    def predict(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            scores = self.log_prior + self.log_p[:, _features(text, self.dim)].sum(1)
            out.append(self.classes[int(np.argmax(scores))])
        return out


def _held_out(question: str) -> bool:
    return zlib.crc32(question.encode("utf-8")) % 5 == 0


@lru_cache(maxsize=2)
def offline_classifier(train_dir: str | None = None, held_out: bool = False) -> NaiveBayes:
    """The offline classifier, trained on load; `held_out` leaves the test fifth out."""
    data = [(q, c) for q, c, _ in labelled_data(train_dir) if not (held_out and _held_out(q))]
    return NaiveBayes().fit([q for q, _ in data], [c for _, c in data])


def evaluate_offline(train_dir: str | None = None) -> dict:
    """Accuracy of the classifier trained without the held-out fifth, on that fifth."""
    data = labelled_data(train_dir)
    test = [(q, c, s) for q, c, s in data if _held_out(q)]
    pred = offline_classifier(train_dir, held_out=True).predict([q for q, _, _ in test])
    per: dict[str, list[int]] = {}
    for (q, c, s), p in zip(test, pred):
        per.setdefault(s, [0, 0])
        per[s][0] += p == c
        per[s][1] += 1
    majority = max(np.unique([c for _, c, _ in test], return_counts=True)[1]) / len(test)
    return {"accuracy": sum(p == c for (_, c, _), p in zip(test, pred)) / len(test),
            "majority_baseline": float(majority), "test": len(test), "train": len(data) - len(test),
            "per_source": {s: round(a / n, 4) for s, (a, n) in per.items()}}


# ---------------------------------------------------------------------------------------------


def domains(ds, config: DomainsConfig | None = None,
            on_drop: Callable[[dict, str], None] | None = None):
    """Label domains (see the module docstring)."""
    config = config or DomainsConfig()
    if "question" not in ds.column_names:
        raise UserError("the domains step needs a 'question' column")
    questions = [q or "" for q in ds["question"]]
    titles = msc()
    if config.method == "offline":
        codes = offline_classifier(config.train_dir).predict(questions)
        sources = ["offline"] * len(codes)
    elif config.method == "metadata":
        codes = [_metadata_code(m, titles) for m in (ds["metadata"] if "metadata" in ds.column_names
                                                      else [None] * len(ds))]
        sources = ["metadata"] * len(codes)
    else:
        codes, sources = _classify_llm(ds, questions, config)
    keep = []
    for i, code in enumerate(codes):
        if code is None:
            if on_drop:
                on_drop(ds[i], "no MSC code in the row's metadata" if config.method == "metadata"
                        else f"no MSC code in the classifier's reply ({sources[i]})")
            continue
        keep.append(i)
    out = ds.select(keep)
    for name, values in (("domain", [titles[codes[i]] for i in keep]),
                         ("domain_code", [codes[i] for i in keep]),
                         ("domain_source", [sources[i] for i in keep])):
        if name in out.column_names:
            out = out.remove_columns(name)
        out = out.add_column(name, values)
    return out


def _metadata_code(meta, titles: dict[str, str]) -> str | None:
    """The row's own MSC code (`metadata["msc"]`), None where it has no valid one."""
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip() else {}
        except json.JSONDecodeError:
            return None
    code = str((meta or {}).get("msc") or "").strip().zfill(2) if isinstance(meta, dict) else ""
    return code if code in titles else None


def _classify_llm(ds, questions: list[str], config: DomainsConfig):
    from datasets import Dataset

    from s1.curation.traces import TracesConfig, traces

    llm = LLMConfig(**{**config.classifier.__dict__, "system": config.classifier.system or CLASSIFY_SYSTEM})
    rub = rubrics()
    prompts = Dataset.from_dict({"question": [CLASSIFY_USER.format(question=q, rubrics=rub)
                                              for q in questions]})
    replies = traces(prompts, TracesConfig(teacher=llm, cache=config.cache, keep_failed=True, keep_truncated=True,
                                               progress="domains"))
    codes: list[str | None] = []
    sources: list[str] = []
    fallback = [i for i, (text, err) in enumerate(zip(replies["attempt"], replies["teacher_error"]))
                if err or parse_code(text) is None]
    offline = {}
    if fallback and config.on_unparsed == "offline":
        pred = offline_classifier(config.train_dir).predict([questions[i] for i in fallback])
        offline = dict(zip(fallback, pred))
    for i, (text, err) in enumerate(zip(replies["attempt"], replies["teacher_error"])):
        code = None if err else parse_code(text)
        if code is not None:
            codes.append(code)
            sources.append("llm")
        elif i in offline:
            codes.append(offline[i])
            sources.append("offline")
        else:
            codes.append(None)
            sources.append(f"llm: {err}" if err else "llm: unparsed reply")
    return codes, sources


# ---------------------------------------------------------------------------------------------
# the `domains` step of `s1 curate` (contract: s1.curation.steps; caches: s1.curation.modelsteps)

from s1.curation.steps import Drops, StepOutput, step  # noqa: E402


@step("domains", DomainsConfig, needs=("question", "question_hash"))
def domains_step(data, config: DomainsConfig, ctx) -> StepOutput:
    """MSC domain of each question: the paper's LLM classifier through any engine, or the offline one."""
    import dataclasses
    from collections import Counter

    from s1.curation.modelsteps import bars, drop_into, reply_cache, split_reason

    if config.method == "llm":
        config = dataclasses.replace(config, cache=reply_cache(ctx, config.cache, "domains",
                                                               config.classifier))
    drops = Drops()
    with bars(ctx):
        out = domains(data, config, on_drop=drop_into(drops, split_reason({}, "no-domain")))
    counts = Counter(out["domain"])
    stats = {"domains": len(counts), "top_domains": counts.most_common(10),
             "by_source": dict(Counter(out["domain_source"]))}
    return StepOutput(out, drops, stats=stats)


if __name__ == "__main__":   # python -m s1.curation.domains: the offline classifier's accuracy
    print(json.dumps(evaluate_offline(), indent=2))
