"""Selection: Algorithm 1 seeded and reproducible, the notebook variant, the ablations."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pytest

from s1.curation.proxies import ProxyConfig, proxy_columns
from s1.curation.select import SelectConfig, algorithm1, choose
from s1.curation.steps import Context
from s1.errors import UserError


@pytest.fixture(scope="module")
def pool_cols(pool, tmp_path_factory):
    ctx = Context(work_dir=tmp_path_factory.mktemp("w"), show_progress=False, name="proxy")
    return proxy_columns(pool, ProxyConfig(), ctx).data


def test_same_seed_same_set_other_seed_other_set(pool_cols):
    a, _ = choose(pool_cols, SelectConfig(size=300, seed=7))
    b, _ = choose(pool_cols, SelectConfig(size=300, seed=7))
    c, _ = choose(pool_cols, SelectConfig(size=300, seed=8))
    assert a == b and len(a) == 300 and len(set(a)) == 300
    assert set(a) != set(c)


def test_domains_are_drawn_uniformly_and_long_traces_preferred(pool_cols):
    chosen, _ = choose(pool_cols, SelectConfig(size=1000, seed=0))
    doms = Counter(pool_cols.select(chosen)["domain"])
    pool_doms = Counter(pool_cols["domain"])
    # uniform over domains: small domains are over-represented against their pool share
    small = [d for d, n in pool_doms.items() if n < 60]
    assert sum(doms[d] for d in small) / 1000 > 2 * sum(pool_doms[d] for d in small) / len(pool_cols)
    # within its domain, a chosen question is among the longest (2^-rank weights)
    lengths = np.array(pool_cols["trace_length"])
    domains = np.array(pool_cols["domain"])
    pct = [np.mean(lengths[domains == domains[i]] <= lengths[i]) for i in chosen
           if pool_doms[domains[i]] >= 200 and len(set(lengths[domains == domains[i]])) > 20]
    assert len(pct) > 100 and np.mean(pct) > 0.95


def test_weight_two_to_the_minus_rank():
    # one domain, lengths 0..9: the longest is drawn first about half the time
    rng = np.random.default_rng(0)
    firsts = Counter(algorithm1(["d"] * 10, np.arange(10.0), 1, rng)[0] for _ in range(4000))
    assert 0.45 < firsts[9] / 4000 < 0.55 and 0.2 < firsts[8] / 4000 < 0.3


def test_ablations(pool_cols):
    n = len(pool_cols)
    rand, _ = choose(pool_cols, SelectConfig(strategy="random", size=500, seed=1))
    assert len(set(rand)) == 500
    longest, _ = choose(pool_cols, SelectConfig(strategy="longest", size=100))
    lengths = np.array(pool_cols["trace_length"])
    assert lengths[longest].min() >= np.sort(lengths)[-100]
    diverse, _ = choose(pool_cols, SelectConfig(strategy="diverse", size=500, seed=1))
    assert len(set(diverse)) == 500
    full, _ = choose(pool_cols, SelectConfig(strategy="full"))
    assert full == list(range(n))


def test_notebook_variant_takes_benchmark_related_first(pool_cols):
    cfg = SelectConfig(strategy="notebook", size=1000, seed=3, math_min_length=400)
    chosen, info = choose(pool_cols, cfg)
    start = info["benchmark_related"]
    assert start > 0
    first = pool_cols.select(chosen[:start])
    assert all("AIME" in s or "openaimath" in s for s in first["source_type"])
    # after switch_at, domains follow the AIME histogram: AIME-only proxy domain dominates
    late = Counter(pool_cols.select(chosen[cfg.switch_at:])["domain"])
    assert late and max(late, key=late.get) == "qq8933/AIME_1983_2024"


def test_missing_columns_and_bad_strategy(pool):
    with pytest.raises(UserError):
        SelectConfig(strategy="best")
    from s1.curation.select import select

    ctx = Context(work_dir=__import__("pathlib").Path("."), show_progress=False)
    with pytest.raises(UserError, match="domain"):
        select(pool.select(range(10)), SelectConfig(), ctx)


def test_s1_with_benchmark_related_adds_what_the_teacher_got_right_first():
    """The paper's s1K: its benchmark-related questions (GPQA, AIME, long MATH, each only where
    the teacher was right: 384 of them) added directly, then Algorithm 1."""
    rows = []
    for i in range(40):
        source = ["qq8933/AIME_1983_2024", "Idavidrein/gpqa", "simplescaling/openaimath/Algebra",
                  "KbsdJames/Omni-MATH"][i % 4]
        rows.append({"question_hash": f"h{i}", "source_type": source, "domain": f"d{i % 5}",
                     "trace_tokens": 6000 if i % 8 == 2 else 100, "teacher_correct": i % 3 != 0})
    data = datasets.Dataset.from_list(rows)
    related = [i for i, r in enumerate(rows) if r["teacher_correct"] and (
        "AIME" in r["source_type"] or "gpqa" in r["source_type"]
        or "openaimath" in r["source_type"] and r["trace_tokens"] > 5600)]
    chosen, info = choose(data, SelectConfig(size=20, seed=1, benchmark_related=True))
    assert chosen[:len(related)] == related and len(chosen) == 20
    assert info["benchmark_related"] == len(related) and info["graded_by"] == "teacher_correct"
    plain, _ = choose(data, SelectConfig(size=20, seed=1))
    assert plain[:len(related)] != related     # the plain strategy: Algorithm 1 only
