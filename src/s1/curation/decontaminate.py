"""Decontamination: the paper's word 8-gram check (s1's data/collect_data.py), made fast and explained.

s1 (`collect_data.py`, `decontaminate_util.py`): normalise (lowercase, strip, collapse
whitespace; punctuation kept), split on whitespace, and drop a training question that shares
**any** word 8-gram with any test question. Cumulative: after each source, its kept questions
join the test set, so later sources are also checked against earlier ones. A question shorter
than 8 words has no 8-gram and is never flagged (as in s1).

Here every n-gram becomes a 64-bit hash computed with numpy over the whole pool at once, so the
check is a sorted-array membership test instead of a Python loop over n-gram strings; every hash
hit is then confirmed on the strings, so the result is exactly s1's. Each flagged question is
reported with the benchmark item (or earlier pool question) it shares an 8-gram with, the shared
8-gram, and whether that 8-gram is boilerplate (found in at least `boilerplate_docs` questions,
e.g. "... express your answer as a common fraction."). GPQA text is never written: its items
are reported by id only.

Benchmarks: `math500`, `aime24` (shipped), `aime22-24` (the AIME 2022-2024 problems of the
shipped AIME file: s1's `AI-MO/aimo-validation-aime` set), `gpqa-diamond` and `aime25` (never
shipped: a file in `files`, else the hub through the evaluation stage's loader; GPQA is gated),
and any named file in `files` (JSONL / Parquet / CSV with a question field). The default is the
paper's test sets, GPQA Diamond included; one that cannot be had is a one-line warning and is
named in the report (`on_missing: error` refuses instead).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from s1.curation.pool import _jsonl, data_path
from s1.curation.steps import Drops, StepOutput, column, step
from s1.errors import UserError

SHIPPED_BENCHMARKS = ("math500", "aime24", "aime22-24")
ON_THE_HUB = ("gpqa-diamond", "aime25")      # not shipped: a file in `files`, else the hub
#: The paper's test sets (s1's collect_data.py: AIME 2022-24, GPQA Diamond, MATH500) and AIME24.
DEFAULT_BENCHMARKS = ("math500", "aime24", "aime22-24", "gpqa-diamond")
PRIVATE = ("gpqa",)            # never write their text anywhere
_PRIME = np.uint64(0x9E3779B97F4A7C15)


def normalize(text: str) -> str:
    """s1's `normalize_string`: lowercase, strip, collapse whitespace."""
    return " ".join(text.lower().split())


def word_ngrams(text: str, n: int = 8) -> list[str]:
    words = normalize(text).split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def is_private(name: str) -> bool:
    return any(p in name.lower() for p in PRIVATE)


# ---------------------------------------------------------------------------------------------
# benchmarks


def _question_of(record: dict, path: str) -> str:
    for k in ("question", "problem", "Question", "Problem", "prompt"):
        if isinstance(record.get(k), str):
            return record[k]
    raise UserError(f"{path}: a record has no question field (question / problem / Question)")


def _hub_benchmark(name: str) -> list[tuple[str, str, str]]:
    """A benchmark that is not shipped, by the evaluation stage's loader (the hub, when online).
    GPQA comes as its prompt (question and choices): its 8-grams are the question's."""
    from s1.curation.pool import hub_offline
    from s1.evaluation.benchmarks import load_benchmark

    if hub_offline():
        raise UserError(f"{name} is not shipped and the hub is offline")
    return [(name, it.id, it.question) for it in load_benchmark(name)]


def load_benchmark_questions(names: list[str], files: dict[str, str],
                             missing: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(benchmark, item id, question) for every named benchmark. A benchmark that is neither
    shipped nor given in `files` comes from the hub; when `missing` is a list, one the hub cannot
    give is appended to it and skipped (the caller warns), else it is a UserError."""
    out = []
    for name in names:
        if name in files:
            path = Path(files[name]).expanduser()
            if not path.is_file():
                raise UserError(f"decontaminate.files.{name}: file not found: {path}")
            if path.suffix in (".parquet", ".csv"):
                import datasets

                kind = path.suffix.lstrip(".")
                rows = list(datasets.load_dataset(kind, data_files=str(path), split="train"))
            else:
                rows = list(_jsonl(path))
            out += [(name, str(r.get("id", r.get("Record ID", i))), _question_of(r, str(path)))
                    for i, r in enumerate(rows)]
        elif name == "math500":
            out += [(name, r["unique_id"], r["problem"])
                    for r in _jsonl(data_path("benchmarks", "math500.jsonl"))]
        elif name == "aime24":
            out += [(name, str(r["id"]), r["problem"])
                    for r in _jsonl(data_path("benchmarks", "aime24_nofigures.jsonl"))]
        elif name == "aime22-24":
            out += [(name, r["ID"], r["question"])
                    for r in _jsonl(data_path("pool", "aime_1983_2024.jsonl"))
                    if 2022 <= int(r["Year"]) <= 2024]
        elif name in ON_THE_HUB:
            try:
                out += _hub_benchmark(name)
            except UserError as err:
                if missing is None:
                    raise UserError(f"{err}; give its file as decontaminate.files="
                                    f"{{{name}: PATH}}") from None
                missing.append(name)
        else:
            raise UserError(f"benchmark {name!r} is not shipped: give its file as "
                            f"decontaminate.files={{{name}: PATH}} (shipped: "
                            f"{', '.join(SHIPPED_BENCHMARKS)}; from the hub: "
                            f"{', '.join(ON_THE_HUB)})")
    return out


# ---------------------------------------------------------------------------------------------
# n-gram hashes over many documents at once


class Hasher:
    """64-bit hashes of every word n-gram of many texts at once.

    Words hash with Python's own string hash (C speed; stable within a process, which is all
    the check needs: nothing is stored), windows combine with numpy arithmetic mod 2^64.
    `text.lower().split()` gives the same words as s1's normalise-then-split.
    """

    def __init__(self, n: int):
        self.n = n

    def hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, document index) of every n-gram of every text."""
        n = self.n
        words: list[str] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for d, text in enumerate(texts):
            w = text.lower().split()
            lengths[d] = len(w)
            words.extend(w)
        total = len(words)
        if total < n:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        arr = np.fromiter(map(hash, words), dtype=np.int64, count=total).view(np.uint64)
        windows = total - n + 1
        h = np.zeros(windows, dtype=np.uint64)
        with np.errstate(over="ignore"):   # arithmetic mod 2^64 is the point
            for k in range(n):
                h = h * _PRIME + arr[k:k + windows]
            h ^= h >> np.uint64(31)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(29)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        doc = np.repeat(np.arange(len(texts)), lengths)[:windows]
        valid = np.arange(windows) - starts[doc] <= lengths[doc] - n   # window inside its text
        return h[valid], doc[valid]


@dataclass
class DecontaminateConfig:
    """Against which benchmarks, with which n, cumulative or not."""

    benchmarks: list = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    files: dict = field(default_factory=dict)      # name -> path, e.g. {aime25: f.jsonl, gpqa-diamond: g.csv}
    on_missing: str = "warn"       # a benchmark neither in files nor on the hub: warn (one line,
                                   # and the report says it) | error
    ngram: int = 8
    cumulative: bool = True        # s1: each source is also checked against the sources before it
    group_by: str = "family"       # a "source" in the cumulative order: family (owner/name of
                                   # source_type), source_type, or none (one group)
    boilerplate_docs: int = 5      # an n-gram in at least this many questions counts as boilerplate
    keep_boilerplate_only: bool = False   # s1 drops them too; True keeps rows flagged only by boilerplate

    def __post_init__(self):
        if self.ngram < 1:
            raise UserError("decontaminate.ngram must be at least 1")
        if self.group_by not in ("family", "source_type", "none"):
            raise UserError("decontaminate.group_by must be family, source_type or none")
        if self.boilerplate_docs < 2:
            raise UserError("decontaminate.boilerplate_docs must be at least 2")
        if not self.benchmarks and not self.cumulative:
            raise UserError("decontaminate needs benchmarks or cumulative: true")
        if self.on_missing not in ("warn", "error"):
            raise UserError("decontaminate.on_missing must be warn or error")


def group_of(source_type: str, how: str) -> str:
    if how == "none":
        return ""
    if how == "source_type":
        return source_type or ""
    return "/".join((source_type or "").split("/")[:2])


def flag_rows(questions: list[str], groups: list[str], references: list[str], n: int,
              cumulative: bool) -> tuple[np.ndarray, Hasher, Callable]:
    """Per question: -1 if kept, else the index (into references + questions) of a document it
    shares an n-gram hash with. Also the hasher and the document frequency of shared hashes.

    Every distinct n-gram gets an index once (np.unique); then, group by group in order, a
    question is flagged when one of its n-grams is already known (benchmarks, and the kept
    questions of earlier groups when cumulative). No sorting inside the loop."""
    hasher = Hasher(n)
    ref_h, ref_d = hasher.hashes(references)
    q_h, q_d = hasher.hashes(questions)
    uniq, inv = np.unique(np.concatenate([ref_h, q_h]), return_inverse=True)
    ref_u, q_u = inv[:len(ref_h)], inv[len(ref_h):]
    # the first known document holding each n-gram (-1: none yet); the lowest index wins
    owner_of = np.full(len(uniq), -1, dtype=np.int64)
    owner_of[ref_u[::-1]] = ref_d[::-1]
    owner = np.full(len(questions), -1, dtype=np.int64)
    index = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    window_group = np.array([index[g] for g in groups], dtype=np.int64)[q_d]
    by_group = np.argsort(window_group, kind="stable")
    bounds = np.searchsorted(window_group[by_group], np.arange(len(index) + 1))
    for g in range(len(index)):
        sel = by_group[bounds[g]:bounds[g + 1]]
        u, d = q_u[sel], q_d[sel]
        src = owner_of[u]
        hit = src >= 0
        docs, first = np.unique(d[hit], return_index=True)   # a document's first hit
        owner[docs] = src[hit][first]
        if cumulative:
            fresh = (owner[d] < 0) & (owner_of[u] < 0)
            owner_of[u[fresh][::-1]] = d[fresh][::-1] + len(references)
    total = len(references) + len(questions)
    key = np.concatenate([ref_d, q_d + len(references)]).astype(np.int64)
    pairs = np.sort(inv.astype(np.int64) * total + key)       # (n-gram, document) pairs
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
    counts = np.bincount(pairs // total, minlength=len(uniq))

    def df(h: np.ndarray) -> np.ndarray:
        """How many documents (benchmarks and pool) hold each of these n-gram hashes."""
        pos = np.minimum(np.searchsorted(uniq, h), len(uniq) - 1)
        return np.where(uniq[pos] == h, counts[pos], 0)

    return owner, hasher, df


@step("decontaminate", DecontaminateConfig, needs=("question", "source_type", "question_hash"))
def decontaminate(data, config: DecontaminateConfig, ctx) -> StepOutput:
    """Drop questions sharing a word 8-gram with a benchmark (and, cumulatively, an earlier source)."""
    missing: list[str] | None = [] if config.on_missing == "warn" else None
    bench = load_benchmark_questions(list(config.benchmarks), dict(config.files), missing)
    for name in missing or ():
        ctx.log(f"WARNING: {name} is not available (not shipped, hub unreachable or gated): the "
                f"pool is NOT decontaminated against it; give decontaminate.files={{{name}: PATH}}")
    references = [q for _, _, q in bench]
    questions = column(data, "question")
    sources, hashes = column(data, "source_type"), column(data, "question_hash")
    groups = [group_of(s, config.group_by) for s in sources]
    owner, hasher, df = flag_rows(questions, groups, references, config.ngram, config.cumulative)
    texts = references + questions
    drops, keep, flagged = Drops(), [], []
    stats = Counter()
    for i in ctx.progress(range(len(questions)), total=len(questions), desc="confirm"):
        if owner[i] < 0:
            keep.append(i)
            continue
        src = int(owner[i])
        mine = word_ngrams(questions[i], config.ngram)
        theirs = set(word_ngrams(texts[src], config.ngram))
        shared = [g for g in mine if g in theirs]
        if not shared:       # a 64-bit hash collision: s1 would keep it
            keep.append(i)
            stats["hash_collisions"] += 1
            continue
        # each shared n-gram is exactly n words: one window, one hash each
        boiler = df(hasher.hashes(shared)[0]) >= config.boilerplate_docs
        boilerplate_only = bool(len(boiler)) and bool(boiler.all())
        if src < len(references):
            kind, name, item = "benchmark", bench[src][0], bench[src][1]
        else:
            j = src - len(references)
            kind, name, item = "pool", sources[j], hashes[j]
        private = is_private(name)
        row = {"question_hash": hashes[i], "source_type": sources[i]}
        flagged.append({   # a pool row that copies a private item is that item's text too
            **row, "question": "<withheld>" if private else questions[i][:400], "matched": kind,
            "matched_name": name,
            "matched_id": item, "matched_question": None if private else texts[src][:400],
            "shared_ngrams": len(shared),
            "example_ngram": "<withheld>" if private else shared[0],
            "boilerplate_only": boilerplate_only})
        stats[f"flagged_by_{kind}"] += 1
        stats[f"flagged_by:{name}"] += 1
        stats["boilerplate_only"] += boilerplate_only
        if boilerplate_only and config.keep_boilerplate_only:
            keep.append(i)
            continue
        drops.add(row, f"{kind}-8gram" if config.ngram == 8 else f"{kind}-{config.ngram}gram",
                  f"{name}:{item}")
    stats["benchmark_questions"] = len(references)
    stats = dict(stats)
    stats["benchmarks"] = sorted({b for b, _, _ in bench})
    stats["missing_benchmarks"] = list(missing or [])
    # the 8-grams behind the most flags: boilerplate phrasing shows up here
    stats["top_ngrams"] = Counter(f["example_ngram"] for f in flagged).most_common(12)
    return StepOutput(data.select(keep), drops, {"flagged": flagged}, stats)


def reference_flags(questions: list[str], groups: list[str], references: list[str], n: int = 8,
                    cumulative: bool = True) -> list[bool]:
    """s1's approach as written: a set of n-gram strings and a Python loop per question. Slow;
    kept as the oracle of the tests and the baseline of bench/bench_curation.py."""
    known = set()
    for text in references:
        known.update(word_ngrams(text, n))
    flags = [False] * len(questions)
    order = list(dict.fromkeys(groups))
    for g in order:
        members = [i for i, x in enumerate(groups) if x == g]
        for i in members:
            flags[i] = any(gram in known for gram in word_ngrams(questions[i], n))
        if cumulative:
            for i in members:
                if not flags[i]:
                    known.update(word_ngrams(questions[i], n))
    return flags
