"""Runs end to end on the embedded model: `s1 eval` sweeps, records/manifest/summary, resume after
a real SIGKILL, Control/Scaling/Performance against a hand computation, `s1 report`,
`s1 compare`, and one-line exit-2 errors. Tiny budgets keep it fast on 2 CPU cores."""

from __future__ import annotations

import itertools
import json
from collections import Counter
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s1.evaluation.aggregate import load_run, summarize_run
from s1.evaluation.metrics import wilson_interval

S1 = [sys.executable, "-m", "s1.cli"]
# 2 GSM8K questions × 3 budgets, greedy, llama.cpp (single-stream: batching is not tested here).
SWEEP = ["eval", "--benchmark", "gsm8k", "--limit", "2", "--method", "budget",
         "--max-thinking", "4,8,16", "--max-answer", "8", "--engine", "llama.cpp", "--quiet"]
RUNS = [f"gsm8k-budget-max{m}-ign0-s0" for m in (4, 8, 16)]


def s1(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*S1, *args], capture_output=True, text=True, timeout=900, **kw)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()
            if line.strip()]


def essence(run_dir: Path) -> dict:
    """What must not depend on interruptions: per key, the tokens and the grade."""
    return {r["key"]: (r["trace"]["thinking_ids"], r["trace"]["answer_ids"], r["extracted"],
                       r["correct"], r["reason"]) for r in records(run_dir)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "runs"
    p = s1(*SWEEP, "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.slow
def test_sweep_writes_records_manifest_and_summary(sweep):
    assert sorted(d.name for d in sweep.iterdir() if d.is_dir()) == sorted(RUNS)
    for name, cap in zip(RUNS, (4, 8, 16)):
        d = sweep / name
        recs = records(d)
        assert [r["id"] for r in recs] == ["gsm8k-1", "gsm8k-2"]
        for r in recs:
            assert r["thinking_tokens"] == len(r["trace"]["thinking_ids"]) <= cap
            assert r["gold"] and r["reason"] and isinstance(r["correct"], bool)
            # graded on the answer segment only: what was extracted is in the answer text
            if r["extracted"] is not None:
                assert r["extracted"] in r["trace"]["answer"]
            assert r["compute"]["generated_tokens"] >= r["thinking_tokens"] + r["answer_tokens"]
            assert r["compute"]["flops"] > 2 * 1e8 * (r["compute"]["prompt_tokens"])
        m = json.loads((d / "manifest.json").read_text())
        cfg = m["config"]
        assert cfg["engine"] == "llama.cpp" and cfg["model"] == "smollm2-135m"
        assert cfg["setting"]["budget"]["max_thinking_tokens"] == cap
        assert cfg["format"]["end"] == "<|im_start|>answer" and cfg["protocol"] == "s1"
        assert cfg["benchmark"]["questions"] == 2 and cfg["seed"] == 0
        for pkg in ("s1", "torch", "transformers", "llama_cpp_python", "math-verify"):
            assert m["versions"][pkg], pkg
        assert m["git_revision"] and "--max-thinking" in m["command"]
        assert m["model_shape"]["n_params"] > 1e8 and m["model_shape"]["n_layers"] == 30
        s = json.loads((d / "summary.json").read_text())
        assert s["complete"] and s["questions"] == 2
        assert s["correct"] == sum(r["correct"] for r in recs)
        assert s["thinking"]["max"] <= cap
        assert s["wilson_low"] <= s["accuracy"] <= s["wilson_high"]
        # every record's grading reason is counted in the summary
        assert s["grading_reasons"] == dict(Counter(r["reason"] for r in recs))
        assert s["compute"]["generated_tokens"] == sum(r["compute"]["generated_tokens"]
                                                       for r in recs)


@pytest.mark.slow
def test_control_scaling_performance_match_a_hand_computation(sweep):
    sweep_json = json.loads((sweep / "sweep.json").read_text())
    [curve] = sweep_json["curves"]
    assert curve["label"] == "budget forcing"
    points = []   # (mean thinking tokens, accuracy %, cap) straight from the records
    for name, cap in zip(RUNS, (4, 8, 16)):
        recs = records(sweep / name)
        points.append((sum(r["thinking_tokens"] for r in recs) / len(recs),
                       100 * sum(r["correct"] for r in recs) / len(recs), cap))
    by_x = sorted(points)
    assert [p["thinking"] for p in curve["points"]] == pytest.approx([p[0] for p in by_x])
    assert [100 * p["accuracy"] for p in curve["points"]] == pytest.approx([p[1] for p in by_x])
    # Control: share of runs whose average thinking stays within the cap they asked for.
    assert curve["control"] == pytest.approx(sum(x <= cap for x, _, cap in points) / 3)
    # Scaling: mean pairwise slope, linear and over log2 of thinking tokens.
    pairs = [(a, b) for a, b in itertools.combinations(by_x, 2) if a[0] != b[0]]
    lin = sum((b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs) / len(pairs)
    log = sum((b[1] - a[1]) / (math.log2(b[0]) - math.log2(a[0])) for a, b in pairs) / len(pairs)
    assert curve["scaling"] == pytest.approx(lin)
    assert curve["scaling_log2"] == pytest.approx(log)
    assert curve["performance"] == pytest.approx(max(p[1] for p in points))
    # per-sample Control beside it: the share of samples within their cap
    samples = [(r["thinking_tokens"], cap) for name, cap in zip(RUNS, (4, 8, 16))
               for r in records(sweep / name)]
    assert curve["control_per_sample"] == pytest.approx(
        sum(t <= cap for t, cap in samples) / len(samples))
    # the least-squares slope on log2 thinking tokens beside the pairwise mean
    xs = [math.log2(p[0]) for p in by_x]
    mx, my = sum(xs) / 3, sum(p[1] for p in by_x) / 3
    fit = (sum((x - mx) * (p[1] - my) for x, p in zip(xs, by_x))
           / sum((x - mx) ** 2 for x in xs))
    assert curve["scaling_log2_fit"] == pytest.approx(fit)
    assert curve["near_ties"] == [[a["name"], b["name"]] for a, b in itertools.combinations(
        curve["points"], 2) if abs(math.log2(b["thinking"] / a["thinking"])) < 0.1]
    # one seed: the interval is Wilson's on the run's questions
    for p in curve["points"]:
        assert (p["low"], p["high"]) == pytest.approx(wilson_interval(p["correct"], p["total"]))


@pytest.mark.slow
def test_report_writes_html_markdown_and_pngs(sweep, tmp_path):
    out = tmp_path / "report"
    p = s1("report", str(sweep), "--out", str(out))
    assert p.returncode == 0, p.stderr
    names = sorted(f.name for f in out.iterdir())
    assert names == ["compute-gsm8k.png", "report.html", "report.md", "scaling-gsm8k.png",
                     "thinking-gsm8k.png"]
    for png in ("compute-gsm8k.png", "scaling-gsm8k.png", "thinking-gsm8k.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<img" in html
    assert "Control" in html and "Performance" in html
    md = (out / "report.md").read_text()
    # the bars are unpaired intervals of points that share questions: the page says so
    assert "each point's own Wilson 95% interval" in md and "share their questions" in md
    # Control per point and per sample; the near-tie guard beside the paper's Scaling
    assert "Control % (per sample)" in md and "least-squares slope" in md
    assert "thinking filled context %" in md and "engine errors %" in md
    for name in RUNS:
        assert name in md
    for qid in ("gsm8k-1", "gsm8k-2"):
        assert f"| {qid} |" in md
    # Questions never go into reports: ids and answers only. The HTML page's drill-down shows
    # what the model wrote, which may quote a question's words (GPQA runs show none of it).
    from s1.evaluation.benchmarks import load_benchmark
    assert "Janet" not in md
    assert not any(item.question in html for item in load_benchmark("gsm8k", limit=10).items)
    assert "<details class='s1-q' id='trace-gsm8k-1'>" in html


@pytest.mark.slow
def test_compare_reports_the_paired_difference(sweep):
    a, b = sweep / RUNS[2], sweep / RUNS[0]
    p = s1("compare", str(a), str(b), "--resamples", "2000")
    assert p.returncode == 0, p.stderr
    acc = [sum(r["correct"] for r in records(d)) / 2 for d in (a, b)]
    assert "2 shared questions" in p.stdout
    assert f"A − B = {100 * (acc[0] - acc[1]):+.1f} points" in p.stdout
    assert "95% paired bootstrap CI" in p.stdout
    # the p-value is McNemar's exact test on the questions where the runs disagree
    ok = [{r["id"]: r["correct"] for r in records(d)} for d in (a, b)]
    a_better = sum(ok[0][q] and not ok[1][q] for q in ok[0])
    b_better = sum(ok[1][q] and not ok[0][q] for q in ok[0])
    assert (f"(exact McNemar: A better on {a_better}, B better on {b_better} of the 2 "
            "questions)") in p.stdout


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates_and_matches(sweep, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([*S1, *SWEEP, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / RUNS[0] / "records.jsonl"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if first.exists() and first.read_text().count("\n") >= 1:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)   # the run and its grading workers, no clean-up
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = sum(len(records(out / n)) for n in RUNS if (out / n / "records.jsonl").exists())
    assert 1 <= done_before < 6
    assert not (out / "sweep.json").exists()   # it never got to the end
    # A torn last line, as a kill in the middle of a write leaves it.
    with open(first, "a") as f:
        f.write('{"key": "gsm8k-2#0", "id": "gsm8k-2", "sample": 0, "thinki')

    p = s1(*SWEEP, "--out", str(out))
    assert p.returncode == 0, p.stderr
    for name in RUNS:
        recs = records(out / name)       # every line parses: the torn one is gone
        keys = [r["key"] for r in recs]
        assert len(keys) == len(set(keys)) == 2
        assert essence(out / name) == essence(sweep / name)
        assert (summarize_run(load_run(out / name)).per_question
                == summarize_run(load_run(sweep / name)).per_question)
    assert json.loads((out / RUNS[0] / "manifest.json").read_text())["resumed"] == 1

    # Re-running a finished sweep generates nothing and changes no record.
    before = {n: (out / n / "records.jsonl").read_bytes() for n in RUNS}
    p = s1(*SWEEP, "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert {n: (out / n / "records.jsonl").read_bytes() for n in RUNS} == before


@pytest.mark.slow
def test_a_changed_configuration_is_refused(sweep):
    before = (sweep / RUNS[0] / "manifest.json").read_text()
    args = [a if a != "8" else "9" for a in SWEEP]          # --max-answer 8 -> 9
    p = s1(*args, "--out", str(sweep))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "different configuration" in lines[0] and "setting" in lines[0]
    assert (sweep / RUNS[0] / "manifest.json").read_text() == before


@pytest.mark.parametrize("args, words", [
    (["eval", "--benchmark", "nosuchbench", "--out", "{out}"], "unknown benchmark"),
    (["eval", "--benchmark", "gsm8k", "--method", "mcts", "--out", "{out}"], "unknown method"),
    (["eval", "--benchmark", "gsm8k", "--method", "beam", "--out", "{out}"],
     "needs a reward model"),
    (["eval", "--benchmark", "gsm8k", "--max-thinking", "64,lots", "--out", "{out}"],
     "not a number"),
    (["eval", "--benchmark", "gsm8k", "--num-ignore", "1,-2", "--out", "{out}"], "non-negative"),
    (["eval", "--benchmark", "gsm8k", "--method", "conditional", "--out", "{out}"], "--prompt"),
    (["eval", "--benchmark", "gsm8k", "--method", "conditional", "--prompt", "tokens:x",
      "--out", "{out}"], "not a whole number"),
    (["eval", "--benchmark", "gsm8k", "--method", "rejection", "--max-thinking", "auto",
      "--out", "{out}"], "numeric thresholds"),
    (["eval", "--benchmark", "gsm8k", "--method", "best-of-n", "--scorer", "nowhere",
      "--out", "{out}"], "unknown scorer"),
    (["eval", "--benchmark", "gsm8k", "--max-thinking", "8,8", "--out", "{out}"], "twice"),
    (["eval", "--benchmark", "gsm8k", "--limit", "0", "--out", "{out}"], "limit"),
    (["report", "{out}"], "is not a directory"),
    (["compare", "{out}", "{out}"], "not a run directory"),
    (["compare", "{out}", "{out}", "--metric", "votes"], "unknown --metric 'votes'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, words, tmp_path):
    out = tmp_path / "missing"
    p = s1(*[a.replace("{out}", str(out)) for a in args])
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr
    assert not out.exists()


def test_report_on_a_directory_without_runs_is_refused(tmp_path):
    p = s1("report", str(tmp_path))
    assert p.returncode == 2 and "holds no runs" in p.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_gpqa_questions_stay_out_of_records_reports_and_output(tmp_path):
    """GPQA is kept out of training corpora on purpose: a run over a local GPQA-format file must
    write ids, answers and model output, never the question or its choices."""
    import csv

    question = "Which quantum number labels the zyxwvut orbital of a hypothetical atom?"
    choices = ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
    texts = ["the qwertyuiop number", "the asdfghjkl number", "the zxcvbnm number",
             "the poiuytrewq number"]
    src = tmp_path / "gpqa.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["Record ID", "Question", *choices])
        w.writeheader()
        w.writerow({"Record ID": "rec1", "Question": question, **dict(zip(choices, texts))})
    out = tmp_path / "runs"
    p = s1("eval", "--benchmark", "gpqa-diamond", "--benchmark-file", str(src), "--method",
           "budget", "--max-thinking", "4", "--max-answer", "4", "--engine", "llama.cpp",
           "--out", str(out))
    assert p.returncode == 0, p.stderr
    r = s1("report", str(out))
    assert r.returncode == 0, r.stderr
    [rec] = records(out / "gpqa-diamond-budget-max4-ign0-s0")
    assert rec["id"] == "gpqa-rec1" and rec["gold"] in "ABCD"
    assert rec["trace"]["prompt"].startswith("sha256:")
    secrets = ["zyxwvut", "qwertyuiop", "asdfghjkl", "zxcvbnm", "poiuytrewq"]
    for f in out.rglob("*"):
        if f.is_file() and f.suffix != ".png":
            text = f.read_text(errors="replace")
            model_output = rec["trace"]["thinking"] + rec["trace"]["answer"]
            for word in secrets:
                # the model may echo a word in its own output; nothing else may contain one
                assert word not in text or word in model_output, (f, word)
    for stream in (p.stdout, p.stderr, r.stdout, r.stderr):
        assert not any(word in stream for word in secrets)
    # Not even the model's own text is shown in the report: it may quote the question.
    html = (out / "report.html").read_text()
    assert "Traces of GPQA questions are not shown" in html
    assert "s1-thinking" not in html and "s1-answer" not in html


@pytest.mark.slow
def test_sampling_methods_count_samples_tries_and_compute(tmp_path):
    """Majority voting (k samples), rejection sampling (tries until thinking ≤ N) and a budget
    sweep in one directory: pass@k / maj@k from the records, tries and their compute counted,
    and the report sets sequential beside parallel."""
    from s1.evaluation.metrics import pass_at_k

    out = tmp_path / "runs"
    common = ["--benchmark", "gsm8k", "--limit", "2", "--max-answer", "6", "--engine",
              "llama.cpp", "--quiet", "--out", str(out)]
    for args in (["--method", "majority", "--samples", "3", "--max-thinking", "8"],
                 ["--method", "rejection", "--max-thinking", "2", "--max-tries", "3"],
                 ["--method", "budget", "--max-thinking", "4,8"]):
        p = s1("eval", *args, *common)
        assert p.returncode == 0, p.stderr

    maj = out / "gsm8k-majority-k3-max8-s0"
    recs = records(maj)
    assert sorted((r["id"], r["sample"]) for r in recs) == [
        (q, s) for q in ("gsm8k-1", "gsm8k-2") for s in range(3)]
    # sampled at temperature 1, each sample of a question with its own seed
    for q in ("gsm8k-1", "gsm8k-2"):
        assert len({r["request_seed"] for r in recs if r["id"] == q}) == 3
    assert {r["trace"]["seed"] for r in recs} == {r["request_seed"] for r in recs}
    summary = json.loads((maj / "summary.json").read_text())
    assert list(summary["at_k"]) == ["1", "2", "3"]
    for k in (1, 2, 3):
        per_q = [[r["correct"] for r in recs if r["id"] == q] for q in ("gsm8k-1", "gsm8k-2")]
        want = sum(pass_at_k(3, sum(c), k) for c in per_q) / 2
        assert summary["at_k"][str(k)]["pass"] == pytest.approx(want)
        assert summary["at_k"][str(k)]["cov"] == pytest.approx(sum(any(c[:k]) for c in per_q) / 2)
        # a vote at k pays for k thinkings
        assert summary["at_k"][str(k)]["thinking_per_question"] == pytest.approx(
            sum(r["thinking_tokens"] for r in recs if r["sample"] < k) / 2)

    rej = records(out / "gsm8k-reject-max2-s0")
    assert len(rej) == 2
    for r in rej:
        assert 1 <= r["tries"] <= 3
        assert r["accepted"] == (r["thinking_tokens"] <= 2)
        assert r["accepted"] or r["tries"] == 3          # gave up only after the last try
        # every try is compute: the prompt was paid once per try
        assert r["compute"]["prompt_tokens"] == r["tries"] * r["trace"]["prompt_tokens"]

    sweep = json.loads((out / "sweep.json").read_text())
    assert sorted(c["label"] for c in sweep["curves"]) == [
        "budget forcing", "majority voting", "rejection sampling"]
    p = s1("report", str(out))
    assert p.returncode == 0, p.stderr
    md = (out / "report.md").read_text()
    assert "majority voting" in md and "pass@k %" in md and "rejection sampling" in md
    # rejection's tries and failures are shown, as the records have them
    failed = sum(r["accepted"] is False for r in rej)
    assert "### Rejection sampling: tries and failures" in md
    assert (f"| gsm8k-reject-max2-s0 | {sum(r['tries'] for r in rej) / 2:.1f} | "
            f"{max(r['tries'] for r in rej)} | {failed}/2 | wrong (paper) |") in md
