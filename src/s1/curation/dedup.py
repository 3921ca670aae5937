"""Deduplication: s1's exact-string dedup, and near-duplicates by MinHash-LSH (datasketch).

`dedup`: the paper's last pool step: identical `question` strings keep their first occurrence.

`near-dup`: questions whose word-shingle Jaccard similarity is at least `threshold`, found with
MinHash-LSH and then checked on the real shingles, so every reported link is a true near-duplicate.
Inside the pool, near-duplicates form clusters (linked transitively; `near_duplicates.jsonl` holds
one record per cluster, each member with the earlier question it was found near): a template with
thousands of variants is one record, not millions of pairs. With `benchmarks`, also each pool
question close to a benchmark item (an edited copy that the 8-gram check misses when the edits
break every 8-gram), one record per pool question. Report-only by default (`action: report`);
`action: drop` keeps the first question of each cluster (and drops any pool question near a
benchmark item).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from s1.curation.decontaminate import is_private, load_benchmark_questions, normalize
from s1.curation.steps import Drops, StepOutput, column, step
from s1.errors import UserError


@dataclass
class DedupConfig:
    """Exact dedup on the question text (s1: on `question`, first occurrence kept)."""

    column: str = "question"
    normalized: bool = False       # True: compare lowercased, whitespace-collapsed text


@step("dedup", DedupConfig, needs=("question", "question_hash"))
def dedup(data, config: DedupConfig, ctx) -> StepOutput:
    """Exact-string dedup on the question, first occurrence kept (the paper's last pool step)."""
    if config.column not in data.column_names:
        raise UserError(f"dedup.column {config.column!r} is not a column of the input")
    seen, keep, drops = {}, [], Drops()
    hashes, sources = column(data, "question_hash"), column(data, "source_type") if \
        "source_type" in data.column_names else [None] * len(data)
    for i, text in enumerate(column(data, config.column)):
        key = normalize(text or "") if config.normalized else text
        if key in seen:
            drops.add({"question_hash": hashes[i], "source_type": sources[i]}, "duplicate",
                      hashes[seen[key]])
        else:
            seen[key] = i
            keep.append(i)
    return StepOutput(data.select(keep), drops)


@dataclass
class NearDupConfig:
    """MinHash-LSH over word shingles."""

    threshold: float = 0.8         # Jaccard similarity of the shingle sets
    shingle: int = 3               # words per shingle
    num_perm: int = 128
    seed: int = 1
    action: str = "report"         # report (keep everything) or drop
    benchmarks: list = field(default_factory=list)    # also look for near-copies of these
    files: dict = field(default_factory=dict)

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise UserError("near-dup.threshold must be in (0, 1]")
        if self.action not in ("report", "drop"):
            raise UserError("near-dup.action must be report or drop")
        if self.shingle < 1 or self.num_perm < 16:
            raise UserError("near-dup.shingle must be >= 1 and near-dup.num_perm >= 16")


def shingles(text: str, k: int) -> set[str]:
    words = normalize(text).split()
    if len(words) <= k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def minhashes(sets: list[set[str]], config: NearDupConfig):
    from datasketch import MinHash

    # bulk shares one set of permutations: building them per MinHash costs 7x the hashing
    return MinHash.bulk([[x.encode("utf-8") for x in s] for s in sets],
                        num_perm=config.num_perm, seed=config.seed)


class Clusters:
    """Union-find over row indices: near-duplicates form clusters (memory linear in the pool,
    where listing every pair of a cluster of k variants takes k^2/2 records)."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        root = i
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while i != root:   # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, earlier: int, later: int) -> None:
        for i in (earlier, later):
            self.parent.setdefault(i, i)   # both members, roots included
        a, b = self.find(earlier), self.find(later)
        if a != b:
            self.parent[max(a, b)] = min(a, b)   # the root is a cluster's first row

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in sorted(self.parent):
            out.setdefault(self.find(i), []).append(i)
        return {root: members for root, members in out.items() if len(members) > 1}


@step("near-dup", NearDupConfig, needs=("question", "question_hash", "source_type"), version=2)
def near_dup(data, config: NearDupConfig, ctx) -> StepOutput:
    """Near-duplicate questions by MinHash-LSH (inside the pool, and against benchmarks if named)."""
    from datasketch import MinHashLSH

    questions = column(data, "question")
    hashes, sources = column(data, "question_hash"), column(data, "source_type")
    sets = [shingles(q, config.shingle) for q in questions]
    sigs = minhashes(sets, config)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    clusters = Clusters()
    first_match: dict[int, tuple[int, float]] = {}   # later row -> (an earlier row, Jaccard)
    for i, m in enumerate(ctx.progress(sigs, total=len(sigs), desc="lsh")):
        if not sets[i]:
            continue
        for j in sorted(lsh.query(m)):
            if i in first_match and clusters.find(j) == clusters.find(i):
                continue   # already joined through another member: no need to check the pair
            sim = jaccard(sets[i], sets[j])
            if sim >= config.threshold:
                clusters.union(j, i)
                first_match.setdefault(i, (j, sim))
        lsh.insert(i, m)
    records = []
    for root, members in sorted(clusters.groups().items()):
        records.append({
            "kind": "pool", "cluster": hashes[root], "size": len(members),
            "sources": dict(Counter(sources[i] for i in members).most_common()),
            "members": [{"question_hash": hashes[i], "source_type": sources[i],
                         "near": hashes[first_match[i][0]] if i in first_match else None,
                         "jaccard": round(first_match[i][1], 4) if i in first_match else None}
                        for i in members],
            "question": questions[root][:300], "example": questions[members[1]][:300]})
    near_bench: dict[int, str] = {}
    if config.benchmarks:
        bench = load_benchmark_questions(list(config.benchmarks), dict(config.files))
        bsets = [shingles(q, config.shingle) for _, _, q in bench]
        for (name, item, text), bset, m in zip(bench, bsets, minhashes(bsets, config)):
            if not bset:
                continue
            for i in sorted(lsh.query(m)):
                if i in near_bench:
                    continue   # one record per pool question: its first benchmark match
                sim = jaccard(sets[i], bset)
                if sim >= config.threshold:
                    near_bench[i] = f"{name}:{item}"
                    records.append({"kind": "benchmark", "a": f"{name}:{item}",
                                    "b": hashes[i], "jaccard": round(sim, 4),
                                    "a_source": name, "b_source": sources[i],
                                    "a_question": None if is_private(name) else text[:300],
                                    "b_question": None if is_private(name) else questions[i][:300]})
    drops, keep = Drops(), []
    for i in range(len(data)):
        if config.action == "drop" and (i in first_match or i in near_bench):
            drops.add({"question_hash": hashes[i], "source_type": sources[i]},
                      "near-benchmark" if i in near_bench else "near-duplicate",
                      near_bench.get(i, ""))
        else:
            keep.append(i)
    records.sort(key=lambda r: (r["kind"] != "pool", -r.get("size", 0), -r.get("jaccard", 0)))
    pool_clusters = [r for r in records if r["kind"] == "pool"]
    stats = {"clusters_in_pool": len(pool_clusters),
             "questions_in_clusters": sum(r["size"] for r in pool_clusters),
             "largest_cluster": max((r["size"] for r in pool_clusters), default=0),
             "questions_near_benchmarks": len(near_bench),
             "questions_with_an_earlier_near_duplicate": len(first_match)}
    return StepOutput(data.select(keep), drops, {"near_duplicates": records}, stats)
