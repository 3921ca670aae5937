"""Paraphrase audit: embedding throughput of all-MiniLM-L6-v2 against the light character
TF-IDF path (same run, same texts), and detection figures on the hand-written fixture
(tests/curation/data/paraphrases.jsonl: paraphrases and hard negatives of MATH500 problems):
retrieval top-1, recall of the paraphrases, false flags on the negatives, for each decision rule;
then the share of a MATH-train sample the audit flags, with its top flagged pairs.

    PYTHONPATH=src python bench/bench_audit.py [--pool 1000] [--threads 1] [--report-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from datasets import Dataset

from s1.curation.audit import AuditConfig, audit, load_bench_texts, nearest
from s1.curation.embed import CharTfidf, SentenceEncoder

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/curation/data/paraphrases.jsonl"
POOL = ROOT / "src/s1/data/pool/math_12k_train.jsonl"


def pool_sample(n: int, seed: int = 0) -> Dataset:
    rows = [json.loads(line) for line in POOL.open()]
    rows = random.Random(seed).sample(rows, min(n, len(rows)))
    from s1.evaluation.extract import last_boxed
    return Dataset.from_list([{"question": r["problem"], "answer": last_boxed(r["solution"]) or "",
                               "unique_id": r["unique_id"]} for r in rows])


def detection(name: str, embedder, fixture: list[dict], items) -> None:
    cases = Dataset.from_list([{"question": f["text"], "answer": f["answer"]} for f in fixture])
    keys = [it.key for it in items]
    vecs = embedder.embed([it.question for it in items])
    idx, sim = nearest(embedder.embed(cases["question"]), vecs, 3)
    para = [i for i, f in enumerate(fixture) if f["kind"] == "paraphrase"]
    neg = [i for i, f in enumerate(fixture) if f["kind"] == "negative"]
    top1 = sum(keys[idx[i, 0]] == f"math500:{fixture[i]['unique_id']}" for i in para)
    print(f"  {name}: true source ranked first for {top1}/{len(para)} paraphrases; "
          f"mean cosine paraphrase {np.mean(sim[para, 0]):.3f}, hard negative {np.mean(sim[neg, 0]):.3f}")
    rules = [("similarity >= 0.85", dict(decide="similarity", flag_similarity=0.85, min_similarity=0.0)),
             ("similarity >= 0.92", dict(decide="similarity", flag_similarity=0.92, min_similarity=0.0)),
             ("retrieve + same answer", dict(decide="answer"))]
    for label, kw in rules:
        out = audit(cases, AuditConfig(benchmarks=("math500",), embedder=name, **kw), embedder=embedder)
        hit = [m == f"math500:{fixture[i]['unique_id']}" for i, m in enumerate(out["audit_match"])]
        recall = sum(hit[i] for i in para) / len(para)
        false = sum(out["audit_flagged"][i] for i in neg)
        print(f"    {label:24s} recall {recall:6.1%} ({sum(hit[i] for i in para)}/{len(para)}), "
              f"false flags on hard negatives {false}/{len(neg)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=300, help="MATH-train questions to audit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-dir", default=None)
    args = ap.parse_args()

    fixture = [json.loads(line) for line in FIXTURE.open()]
    items = load_bench_texts(AuditConfig(benchmarks=("math500", "aime24")))
    math500 = [it for it in items if it.benchmark == "math500"]
    pool = pool_sample(args.pool)
    texts = pool["question"]

    minilm = SentenceEncoder(threads=args.threads)
    minilm.embed(texts[:16])   # warm-up
    t = time.perf_counter(); minilm.embed(texts); t_minilm = time.perf_counter() - t
    tfidf = CharTfidf()
    tfidf.embed([it.question for it in items])
    t = time.perf_counter(); tfidf.embed(texts); t_tfidf = time.perf_counter() - t
    print(f"embedding {len(texts)} MATH-train problems, {args.threads} thread(s):")
    print(f"  minilm {len(texts) / t_minilm:8.1f} problems/s")
    print(f"  tfidf  {len(texts) / t_tfidf:8.1f} problems/s (baseline, same run)")
    print(f"  ratio minilm/tfidf throughput: {t_tfidf / t_minilm:.3f}x")

    print(f"detection on {FIXTURE.name} ({sum(f['kind'] == 'paraphrase' for f in fixture)} paraphrases, "
          f"{sum(f['kind'] == 'negative' for f in fixture)} hard negatives) against MATH500:")
    detection("minilm", minilm, fixture, math500)
    detection("tfidf", CharTfidf(), fixture, math500)

    cfg = AuditConfig(benchmarks=("math500", "aime24"), report_dir=args.report_dir)
    t = time.perf_counter()
    out = audit(pool, cfg, embedder=minilm)
    n = sum(out["audit_flagged"])
    print(f"audit of {len(pool)} MATH-train questions (minilm, retrieve + same answer): "
          f"{n} flagged = {n / len(pool):.2%} of the pool, {time.perf_counter() - t:.1f}s")
    ranked = sorted((s, i) for i, (f, s) in enumerate(zip(out["audit_flagged"], out["audit_similarity"])) if f)
    for s, i in ranked[::-1][:5]:
        print(f"  {s:.3f}  {out[i]['unique_id']} ~ {out[i]['audit_match']}")


if __name__ == "__main__":
    main()
