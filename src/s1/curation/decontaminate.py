"""Decontamination: the paper's word 8-gram check (REFERENCE §2.2), made fast and explained.

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
shipped AIME file: s1's `AI-MO/aimo-validation-aime` set), and any named file in `files`
(`aime25`, `gpqa-diamond`, ... : JSONL / Parquet / CSV with a question field).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s1.curation.pool import _jsonl, data_path
from s1.curation.steps import Drops, StepOutput, step
from s1.errors import UserError

SHIPPED_BENCHMARKS = ("math500", "aime24", "aime22-24")
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


def load_benchmark_questions(names: list[str], files: dict[str, str]) -> list[tuple[str, str, str]]:
    """(benchmark, item id, question) for every named benchmark."""
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
        else:
            raise UserError(f"benchmark {name!r} is not shipped: give its file as "
                            f"decontaminate.files={{{name}: PATH}} (shipped: "
                            f"{', '.join(SHIPPED_BENCHMARKS)})")
    return out


# ---------------------------------------------------------------------------------------------
# n-gram hashes over many documents at once


class Hasher:
    """Word ids from one shared vocabulary, and 64-bit hashes of every n-gram window."""

    def __init__(self, n: int):
        self.n = n
        self.vocab: dict[str, int] = {}

    def hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(hashes, document index) of every n-gram of every text."""
        vocab, n = self.vocab, self.n
        ids, lengths = [], np.zeros(len(texts), dtype=np.int64)
        for d, text in enumerate(texts):
            words = normalize(text).split()
            lengths[d] = len(words)
            ids.extend(vocab.setdefault(w, len(vocab)) for w in words)
        arr = np.asarray(ids, dtype=np.uint64) + np.uint64(1)
        total = len(arr)
        if total < n:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
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

    benchmarks: list = field(default_factory=lambda: list(SHIPPED_BENCHMARKS))
    files: dict = field(default_factory=dict)      # name -> path, e.g. {aime25: f.jsonl, gpqa-diamond: g.csv}
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


def group_of(source_type: str, how: str) -> str:
    if how == "none":
        return ""
    if how == "source_type":
        return source_type or ""
    return "/".join((source_type or "").split("/")[:2])


def flag_rows(questions: list[str], groups: list[str], references: list[str], n: int,
              cumulative: bool) -> tuple[np.ndarray, Hasher, tuple[np.ndarray, np.ndarray]]:
    """Per question: -1 if kept, else the index (into references + questions) of a document it
    shares an n-gram hash with. Also the hasher and the (hash, doc) pairs of everything."""
    hasher = Hasher(n)
    ref_h, ref_d = hasher.hashes(references)
    q_h, q_d = hasher.hashes(questions)
    owner = np.full(len(questions), -1, dtype=np.int64)
    known_h, known_d = ref_h, ref_d
    order = list(dict.fromkeys(groups))
    group_ix = {g: i for i, g in enumerate(order)}
    gid = np.array([group_ix[g] for g in groups], dtype=np.int64)
    for g in range(len(order)):
        members = gid[q_d] == g
        h, d = q_h[members], q_d[members]
        sort = np.argsort(known_h, kind="stable")
        sorted_h, sorted_d = known_h[sort], known_d[sort]
        pos = np.searchsorted(sorted_h, h)
        pos_c = np.minimum(pos, max(len(sorted_h) - 1, 0))
        hit = (pos < len(sorted_h)) & (sorted_h[pos_c] == h) if len(sorted_h) else np.zeros(len(h), bool)
        for doc, src in zip(d[hit], sorted_d[pos_c[hit]]):
            if owner[doc] < 0:
                owner[doc] = src
        if cumulative:
            kept = (owner[d] < 0)
            known_h = np.concatenate([known_h, h[kept]])
            known_d = np.concatenate([known_d, d[kept] + len(references)])
    all_h = np.concatenate([ref_h, q_h])
    all_d = np.concatenate([ref_d, q_d + len(references)])
    return owner, hasher, (all_h, all_d)


def document_frequency(all_h: np.ndarray, all_d: np.ndarray) -> dict[int, int]:
    """Hash -> number of distinct documents holding it, for hashes in two documents or more."""
    pairs = np.unique(np.stack([all_h, all_d.astype(np.uint64)], axis=1), axis=0)
    values, counts = np.unique(pairs[:, 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values[counts > 1], counts[counts > 1])}


@step("decontaminate", DecontaminateConfig, needs=("question", "source_type", "question_hash"))
def decontaminate(data, config: DecontaminateConfig, ctx) -> StepOutput:
    """Drop questions sharing a word 8-gram with a benchmark (and, cumulatively, an earlier source)."""
    bench = load_benchmark_questions(list(config.benchmarks), dict(config.files))
    references = [q for _, _, q in bench]
    questions = list(data["question"])
    groups = [group_of(s, config.group_by) for s in data["source_type"]]
    owner, hasher, (all_h, all_d) = flag_rows(questions, groups, references, config.ngram,
                                              config.cumulative)
    df = document_frequency(all_h, all_d)
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
        boiler = [df.get(int(h), 1) >= config.boilerplate_docs for h in hasher.hashes(shared)[0]]
        boilerplate_only = bool(boiler) and all(boiler)
        if src < len(references):
            kind, name, item = "benchmark", bench[src][0], bench[src][1]
        else:
            j = src - len(references)
            kind, name, item = "pool", data[j]["source_type"], data[j]["question_hash"]
        private = is_private(name)
        row = data[i]
        flagged.append({
            "question_hash": row["question_hash"], "source_type": row["source_type"],
            "question": row["question"][:400], "matched": kind, "matched_name": name,
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
    return StepOutput(data.select(keep), drops, {"flagged": flagged}, dict(stats))


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
