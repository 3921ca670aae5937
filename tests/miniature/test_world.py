"""The miniature world: every answer checked by an independent computation from the question text,
traces that end on the answer, slips corrected after "Wait", trace length growing with difficulty,
the shipped benchmark reproducible and disjoint from every generated pool."""

from __future__ import annotations

import ast
import json
import re
import statistics

import pytest

from s1.cli import main
from s1.errors import UserError
from s1.evaluation.benchmarks import load_benchmark, shipped_benchmark
from s1.evaluation.grading import grade
from s1.curation.pool import load_msc
from s1.miniature.world import (DOMAINS, SyntheticConfig, WorldConfig, benchmark_questions,
                                benchmark_rows, generate)


def _evaluate(node, x: int) -> int:
    """The value of a generated linear expression at x (+, -, * on integers only)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, x)
    if isinstance(node, ast.Name) and node.id == "x":
        return x
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, x), _evaluate(node.right, x)
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        return ops[type(node.op)]
    raise AssertionError(f"unexpected node {ast.dump(node)}")


def solve(domain: str, q: str) -> str:
    """The answer computed from the question alone, not from the generator's steps."""
    if domain == "arithmetic":
        expr = re.fullmatch(r"Compute (.+) from left to right\.", q).group(1)
        return str(sum(int(t) for t in re.findall(r"[+-]?\d+", expr)))
    if domain == "modular_power":
        c, b, d, m = map(int, re.fullmatch(r"Compute (\d+)\*(\d+)\^(\d+) mod (\d+)\.", q).groups())
        return str(c * pow(b, d, m) % m)
    if domain == "base_conversion":
        n, base = map(int, re.fullmatch(r"Write (\d+) in base (\d+)\.", q).groups())
        digits = ""
        while n:
            digits = str(n % base) + digits
            n //= base
        return digits
    if domain == "linear_equation":
        lhs, rhs = re.fullmatch(r"Solve for x: (.+)=(\d+)\.", q).groups()
        tree = ast.parse(lhs, mode="eval")
        (x,) = [x for x in range(-100, 1000) if _evaluate(tree, x) == int(rhs)]
        return str(x)
    if domain == "counting":
        letter, word = re.fullmatch(r"How many times does (\w) occur in (\w+)\?", q).groups()
        return str(word.count(letter))
    if domain == "recurrence":
        a, b, m, n = map(int, re.fullmatch(
            r"Let a1=(\d+), a2=(\d+), a\(n\)=a\(n-1\)\+a\(n-2\) mod (\d+)\. Find a(\d+)\.",
            q).groups())
        for _ in range(n - 2):
            a, b = b, (a + b) % m
        return str(b)
    raise AssertionError(domain)


def test_six_domains_with_msc_codes():
    codes = {m["code"] for m in load_msc()}
    assert len(DOMAINS) >= 6
    assert all(d.msc in codes for d in DOMAINS.values())
    assert len({d.msc for d in DOMAINS.values()}) == len(DOMAINS)


def test_answers_are_exact_and_traces_end_on_them():
    rows = generate(1200, seed=5, config=WorldConfig(slip_rate=0.3))
    assert len({r["question"] for r in rows}) == 1200
    assert {r["domain"] for r in rows} == set(DOMAINS)
    for r in rows:
        assert r["answer"] == solve(r["domain"], r["question"]), r
        last = r["trace"].splitlines()[-1]
        assert last.endswith(r["answer"]) and not last.endswith("=" + r["answer"] + "0")
    slipped = [r for r in rows if r["slip"]]
    assert 0.15 < len(slipped) / len(rows) < 0.45
    confirmed = corrected = 0
    for r in rows:
        lines = r["trace"].splitlines()
        # without its Waits, a trace is the solution with at most one line changed (the slip)
        kept = [x for x in lines if not x.startswith("Wait, ")]
        wrong = [a for a, b in zip(kept, r["solution"].splitlines()) if a != b]
        assert len(kept) == len(r["solution"].splitlines()) and len(wrong) == int(r["slip"]), r
        for i, line in enumerate(lines):
            if line.startswith("Wait, "):
                again = line.removeprefix("Wait, ")
                assert again in r["solution"].splitlines()    # what follows Wait is right
                before = lines[i - 1].removeprefix("Wait, ")
                confirmed += before == again
                corrected += before != again
    assert corrected == len(slipped) and 0.1 < confirmed / len(rows) < 0.3


def test_generation_is_deterministic_and_seeded():
    assert generate(50, 3) == generate(50, 3)
    assert generate(50, 3) != generate(50, 4)


def test_trace_length_grows_with_difficulty():
    rows = generate(3000, seed=1, config=WorldConfig(slip_rate=0.0))
    for domain in DOMAINS:
        means = [statistics.mean(len(r["trace"]) for r in rows
                                 if r["difficulty"] == d and r["domain"] == domain)
                 for d in range(1, min(8, DOMAINS[domain].max_difficulty) + 1)]
        assert all(a < b for a, b in zip(means, means[1:])), (domain, means)
        assert means[-1] > 2.5 * means[0], (domain, means)


@pytest.mark.parametrize("kwargs, message", [
    ({"domains": []}, "at least one domain"),
    ({"domains": ["geometry"]}, "unknown domain"),
    ({"min_difficulty": -1}, "difficulty"),
    ({"max_difficulty": 0}, "difficulty"),
    ({"slip_rate": 1.5}, "slip_rate"),
])
def test_bad_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        WorldConfig(**kwargs)


def test_pool_command_bad_settings_exit_2(capsys, tmp_path):
    for setting in ("synthetic.domains=[]", "synthetic.max_difficulty=-3", "synthetic.size=0"):
        code = main(["curate", "pool", "synthetic", "--out", str(tmp_path / "p"), setting])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "p").exists()


def test_pool_source_and_benchmark_are_disjoint(tmp_path, capsys):
    code = main(["curate", "pool", "synthetic", "--out", str(tmp_path / "pool"), "--quiet",
                 "synthetic.size=300", "synthetic.seed=7"])
    assert code == 0, capsys.readouterr().err
    from s1.curation.steps import load_input

    pool, _ = load_input(str(tmp_path / "pool"))
    assert len(pool) == 300
    assert not set(pool["question"]) & benchmark_questions()
    meta = json.loads(pool[0]["metadata"])
    assert meta["msc"] in {d.msc for d in DOMAINS.values()} and meta["trace"]
    assert pool[0]["source_type"].startswith("s1/synthetic/")


def test_shipped_benchmark_is_the_generated_one_and_grades():
    with open(shipped_benchmark("tiny.jsonl"), encoding="utf-8") as f:
        shipped = [json.loads(line) for line in f]
    assert shipped == benchmark_rows()
    bench = load_benchmark("tiny")
    assert len(bench) == 600 and len({i.question for i in bench}) == 600
    for item, row in zip(bench, shipped):
        assert item.answer == solve(row["domain"], item.question)
    item = bench[0]
    assert grade(f"Answer: {item.answer}", item).correct
    assert not grade(f"Answer: {int(item.answer) + 1}", item).correct
    assert len(load_benchmark("tiny", subset="difficulty=8")) > 30


def test_synthetic_config_refuses_the_benchmark_seed():
    from s1.miniature.world import BENCHMARK_SEED

    with pytest.raises(UserError, match="benchmark"):
        SyntheticConfig(seed=BENCHMARK_SEED)
