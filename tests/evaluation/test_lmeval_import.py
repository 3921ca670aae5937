"""`s1 import-lm-eval`: lm-evaluation-harness --log_samples files (the s1 paper's released
format; fixtures in data/lmeval built from the shipped AIME24 / MATH500 items by
make_fixtures.py) become run directories graded here, with lm-eval's verdicts kept beside ours;
report and regrade work on them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s1.evaluation.aggregate import load_run, summarize_run
from s1.evaluation.metrics import question_interval

S1 = [sys.executable, "-m", "s1.cli"]
DATA = Path(__file__).parent / "data" / "lmeval"
AIME = DATA / "samples_aime24_nofigures_2025-01-20T10-00-00.123456.jsonl"
MATH = DATA / "samples_openai_math_2025-01-20T11-00-00.654321.jsonl"
AIME_RUN = "aime24-lmeval-aime24-nofigures-max8000-ign1-s0"
MATH_RUN = "openai_math-lmeval-openai-math-max4000-ign0-n4-s0"


def s1(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900)


def records(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("imported") / "runs"
    p = s1("import-lm-eval", str(AIME), "--benchmark", "aime24", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    q = s1("import-lm-eval", str(MATH), "--out", str(out), "--json")
    assert q.returncode == 0, q.stderr
    runs = {r["run"]: r for r in json.loads(p.stdout)["runs"] + json.loads(q.stdout)["runs"]}
    return out, runs


@pytest.mark.slow
def test_aime_outputs_are_graded_here_on_their_answer_segment(imported):
    out, runs = imported
    d = out / AIME_RUN
    recs = records(d)
    assert [r["id"] for r in recs] == ["aime24-60", "aime24-61", "aime24-62", "aime24-63"]
    # the thinking's abandoned \boxed{180} is not the answer; "371 ways" is 371; 42 is wrong
    assert [r["correct"] for r in recs] == [True, True, True, False]
    assert [r["lm_eval"]["correct"] for r in recs] == [True, True, False, False]
    assert runs[AIME_RUN]["agree"] == 3 and runs[AIME_RUN]["we_right_they_wrong"] == 1
    first = recs[0]
    assert first["trace"]["end"] == "<|im_start|>answer"
    assert "\\boxed{180}" in first["trace"]["thinking"]
    assert "\\boxed{180}" not in first["trace"]["answer"] and first["waits"] == 1
    assert first["thinking_tokens"] > 20 and first["answer_tokens"] > 5
    m = json.loads((d / "manifest.json").read_text())
    assert m["imported_from"]["sha256"] == hashlib.sha256(AIME.read_bytes()).hexdigest()
    assert m["imported_from"]["tokenizer"].startswith("embedded")
    assert m["config"]["setting"]["a_max"] == 8000
    s = json.loads((d / "summary.json").read_text())
    assert s["correct"] == 3 and s["questions"] == 4 and s["accuracy"] == 0.75
    assert s["wilson_low"] < 0.75 < s["wilson_high"]


@pytest.mark.slow
def test_repeated_samples_become_a_majority_run(imported):
    out, runs = imported
    d = out / MATH_RUN
    recs = records(d)
    by_q: dict[str, list[bool]] = {}
    for r in recs:
        by_q.setdefault(r["id"], []).append(r["correct"])
    # graded against each document's own answer: (3,\pi/2) = (3, \frac{\pi}{2}); p-q = p - q
    assert list(by_q.values()) == [[True, True, True, False], [True, True, False, True]]
    assert runs[MATH_RUN]["we_right_they_wrong"] == 3 and runs[MATH_RUN]["agree"] == 5
    s = json.loads((d / "summary.json").read_text())
    assert s["method"] == "majority" and s["samples_per_question"] == 4
    assert s["at_k"]["1"]["pass"] == pytest.approx(0.75)
    assert s["at_k"]["4"]["prediction"] == 1.0 and s["complete"]
    # Read as the R1 protocol: pass@1 is the mean over samples with the interval of the
    # per-question means (n = 2 questions, not 8 samples); cons@4 is the equivalence vote.
    run = load_run(d)
    run.setting = dataclasses.replace(run.setting, method="r1")
    r1 = summarize_run(run)
    assert r1.accuracy == pytest.approx(0.75) and r1.pass_at_1["samples"] == 8
    assert (r1.wilson_low, r1.wilson_high) == pytest.approx(question_interval([0.75, 0.75]))
    assert r1.wilson_high - r1.wilson_low > 0.5       # two questions: a wide interval
    assert r1.cons_at_n == {**r1.cons_at_n, "n": 4, "correct": 2, "questions": 2}


@pytest.mark.slow
def test_report_and_regrade_work_on_imported_runs(imported, tmp_path):
    out, _ = imported
    copy = tmp_path / "runs"
    shutil.copytree(out, copy)
    p = s1("report", str(copy), "--out", str(tmp_path / "report"))
    assert p.returncode == 0, p.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert AIME_RUN in md and MATH_RUN in md
    # lm-eval logs no finish reason and no loop guard: those shares are unknown, not 0%
    row = next(line for line in md.splitlines() if line.startswith(f"| {AIME_RUN} |"))  # runs
    # forced end, answer cut, thinking filled context, loops
    assert [c.strip() for c in row.split("|")].count("unknown") == 4
    s = json.loads((copy / AIME_RUN / "summary.json").read_text())
    assert {k: s[k] for k in ("forced_end_share", "answer_cut_share", "context_full_share",
                              "loop_share")} == dict.fromkeys(
        ("forced_end_share", "answer_cut_share", "context_full_share", "loop_share"))
    p = s1("regrade", str(copy), "--json")
    assert p.returncode == 0, p.stderr
    assert all(r["flipped"] == 0 for r in json.loads(p.stdout)["runs"])


@pytest.mark.slow
def test_reimport_is_idempotent_and_another_file_is_refused(imported, tmp_path):
    out, _ = imported
    before = records(out / AIME_RUN)
    p = s1("import-lm-eval", str(AIME), "--benchmark", "aime24", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert [(r["key"], r["correct"]) for r in records(out / AIME_RUN)] == \
           [(r["key"], r["correct"]) for r in before]
    other = tmp_path / AIME.name
    lines = AIME.read_text().splitlines()
    other.write_text("\n".join(lines[:3]) + "\n")
    p = s1("import-lm-eval", str(other), "--benchmark", "aime24", "--out", str(out))
    assert p.returncode == 2 and "holds another run" in p.stderr


def test_bad_files_are_one_line(tmp_path):
    bad = tmp_path / "samples_x.jsonl"
    bad.write_text('{"question": "no doc id"}\n')
    p = s1("import-lm-eval", str(bad), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "doc_id" in p.stderr
    ll = tmp_path / "samples_ll.jsonl"
    ll.write_text(json.dumps({"doc_id": 0, "doc": {"answer": "1"}, "target": "1",
                              "resps": [[[-1.5, False]]]}) + "\n")
    p = s1("import-lm-eval", str(ll), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "loglikelihood" in p.stderr
    p = s1("import-lm-eval", str(MATH), "--benchmark", "aime24", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "match no question of aime24" in p.stderr
    assert all(len(x.stderr.strip().splitlines()) == 1 for x in [p])
    assert not (tmp_path / "o").exists()
