"""Benchmarks load from the shipped files, GPQA-format files and any JSONL, in one shape."""

import csv
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from s1 import hub
from s1.errors import UserError
from s1.evaluation import Item, load_benchmark

DATA = Path(str(resources.files("s1") / "data"))


def _manifest_rows():
    """(file, records, sha256) from the shipped manifest's table."""
    rows = []
    for line in (DATA / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("benchmarks/"):
            rows.append((cells[0], int(cells[1]), cells[4]))
    return rows


def _raw(filename):
    return [json.loads(l) for l in (DATA / "benchmarks" / filename).read_text().splitlines()
            if l.strip()]


def test_manifest_matches_shipped_files():
    rows = _manifest_rows()
    assert {r[0] for r in rows} == {"benchmarks/aime24_nofigures.jsonl",
                                    "benchmarks/math500.jsonl", "benchmarks/gsm8k_test.jsonl",
                                    "benchmarks/tiny.jsonl"}
    for name, records, sha in rows:
        data = (DATA / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, name
        assert len([l for l in data.splitlines() if l.strip()]) == records, name


@pytest.mark.parametrize("name,filename,answer_type", [
    ("aime24", "aime24_nofigures.jsonl", "integer"),
    ("math500", "math500.jsonl", "math"),
    ("gsm8k", "gsm8k_test.jsonl", "integer"),
])
def test_shipped_benchmarks_load_every_record(name, filename, answer_type):
    bench = load_benchmark(name)
    raw = _raw(filename)
    assert bench.name == name and len(bench) == len(raw) and not bench.skipped
    assert all(item.answer_type == answer_type for item in bench)
    assert len({item.id for item in bench}) == len(bench)
    question_key = "question" if name == "gsm8k" else "problem"
    assert [item.question for item in bench] == [r[question_key] for r in raw]


def test_aime24_keeps_published_answers_and_math500_metadata():
    aime = load_benchmark("aime24")
    assert [i.answer for i in aime] == [r["answer"] for r in _raw("aime24_nofigures.jsonl")]
    assert any(i.answer.startswith("0") for i in aime)  # "025": graded as an integer later
    math = load_benchmark("math500")
    raw = _raw("math500.jsonl")
    assert [(i.id, i.meta["level"], i.meta["subject"]) for i in math] == \
        [(r["unique_id"], r["level"], r["subject"]) for r in raw]


def test_gsm8k_answer_is_the_number_after_the_hashes_without_separators():
    bench = load_benchmark("gsm8k")
    raw = _raw("gsm8k_test.jsonl")
    for item, r in zip(bench, raw):
        final = r["answer"].split("####")[-1].strip()
        assert int(item.answer) == int(final.replace(",", ""))
        assert "," not in item.answer
    assert sum("," in r["answer"].split("####")[-1] for r in raw) > 0  # the case is exercised


def test_subset_and_limit():
    raw = _raw("math500.jsonl")
    level5 = load_benchmark("math500", subset="level=5")
    assert [i.id for i in level5] == [r["unique_id"] for r in raw if r["level"] == 5]
    algebra45 = load_benchmark("math500", subset="subject=Algebra,level=4|5")
    assert [i.id for i in algebra45] == [r["unique_id"] for r in raw
                                         if r["subject"] == "Algebra" and r["level"] in (4, 5)]
    assert len(load_benchmark("math500", subset={"subject": "Geometry"})) == \
        sum(r["subject"] == "Geometry" for r in raw)
    first3 = load_benchmark("math500", subset="level=5", limit=3)
    assert [i.id for i in first3] == [i.id for i in level5][:3]
    with pytest.raises(UserError, match="no field 'difficulty'"):
        load_benchmark("math500", subset="difficulty=hard")
    with pytest.raises(UserError, match="selects no question"):
        load_benchmark("math500", subset="level=9")
    with pytest.raises(UserError, match="key=value"):
        load_benchmark("math500", subset="level")
    with pytest.raises(UserError, match="positive"):
        load_benchmark("gsm8k", limit=0)


def test_unknown_benchmark_is_a_user_error():
    with pytest.raises(UserError, match="unknown benchmark 'aime1999'"):
        load_benchmark("aime1999")


def test_any_jsonl_with_fields_and_bad_records_reported_by_line(tmp_path, caplog):
    path = tmp_path / "mine.jsonl"
    lines = [
        json.dumps({"q": "What is 6*7?", "a": "42", "id": "x1"}),
        "{not json",
        json.dumps({"q": "Half of one?", "a": "\\frac{1}{2}", "id": "x2"}),
        json.dumps({"q": "No answer here", "id": "x3"}),
        "",
        json.dumps({"q": "Empty answer", "a": "  ", "id": "x4"}),
        json.dumps({"q": "Duplicate id", "a": "1", "id": "x1"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="s1.evaluation"):
        bench = load_benchmark(str(path), question_field="q", answer_field="a")
    assert [i.answer for i in bench] == ["42", "\\frac{1}{2}"]
    assert [line for line, _ in bench.skipped] == [2, 4, 6, 7]
    assert "missing field 'a'" in bench.skipped[1][1]
    assert "duplicate id" in bench.skipped[3][1]
    assert "record 2" in caplog.text and "record 7" in caplog.text
    assert all(i.answer_type == "math" for i in bench)
    with pytest.raises(UserError, match="record 2 is unusable"):
        load_benchmark(str(path), question_field="q", answer_field="a", strict=True)
    ints = load_benchmark("custom", path=path, question_field="q", answer_field="a",
                          answer_type="integer")
    assert [i.answer for i in ints] == ["42"]  # \frac{1}{2} is not an integer: skipped
    with pytest.raises(UserError, match="unknown answer type"):
        load_benchmark(str(path), answer_type="float")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_benchmark("gpqa-diamond", path=tmp_path / "nope.csv")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{\"x\": 1}\n")
    with pytest.raises(UserError, match="no usable records"):
        load_benchmark(str(empty))


# GPQA: never shipped; tests build a file in its column layout with made-up questions.
FAKE_GPQA = [
    {"Record ID": f"rec{i}", "Question": f"Made-up question number {i} about imaginary particles?",
     "Correct Answer": f"right {i}", "Incorrect Answer 1": f"wrong {i}a",
     "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c",
     "Subdomain": "Fiction", "High-level domain": "Physics"}
    for i in range(12)
]


def _write_gpqa_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_gpqa_from_csv_and_jsonl_shuffles_with_a_fixed_seed(tmp_path):
    csv_path = tmp_path / "gpqa_diamond.csv"
    _write_gpqa_csv(csv_path, FAKE_GPQA)
    jsonl_path = tmp_path / "gpqa_diamond.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in FAKE_GPQA))

    bench = load_benchmark("gpqa-diamond", path=csv_path)
    assert len(bench) == len(FAKE_GPQA) and all(i.answer_type == "choice" for i in bench)
    for item, row in zip(bench, FAKE_GPQA):
        question, options = item.question.split("\n\n")
        assert question == row["Question"]
        lines = options.split("\n")
        assert [l[:3] for l in lines] == ["A) ", "B) ", "C) ", "D) "]
        texts = [l[3:] for l in lines]
        assert sorted(texts) == sorted([row["Correct Answer"]] + [
            row[f"Incorrect Answer {k}"] for k in (1, 2, 3)])
        assert texts["ABCD".index(item.answer)] == row["Correct Answer"]
        assert item.meta == {"Subdomain": "Fiction", "High-level domain": "Physics"}

    same = load_benchmark("gpqa-diamond", path=jsonl_path)
    assert [(i.question, i.answer) for i in same] == [(i.question, i.answer) for i in bench]
    other = load_benchmark("gpqa-diamond", path=csv_path, seed=1)
    assert [i.answer for i in other] != [i.answer for i in bench]
    assert len({i.answer for i in bench}) > 1  # the gold letter is not always the same


def test_gpqa_questions_never_appear_in_reprs_or_logs(tmp_path, caplog):
    rows = [dict(r) for r in FAKE_GPQA[:3]]
    del rows[1]["Correct Answer"]
    rows[1]["Correct Answer"] = ""
    path = tmp_path / "g.csv"
    _write_gpqa_csv(path, rows)
    with caplog.at_level(logging.DEBUG):
        bench = load_benchmark("gpqa-diamond", path=path)
    assert len(bench) == 2 and bench.skipped[0][0] == 3  # header is line 1
    shown = repr(bench) + repr(list(bench)) + caplog.text + str(bench.skipped)
    for row in rows:
        assert row["Question"] not in shown
        assert "imaginary particles" not in shown


def test_hub_benchmarks_offline_give_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("aime25", "gpqa-diamond"):
        with pytest.raises(UserError, match=r"offline.*local copy") as err:
            load_benchmark(name)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["gpqa-diamond", "aime25"])
def test_hub_benchmarks_with_the_hub_unreachable_are_one_line_at_once(tmp_path, name):
    """No offline flag, no network (the hub is a closed port): one line naming --benchmark-file,
    at once, instead of a dozen lines of retries over half a minute (issue 19.9)."""
    env = {k: v for k, v in os.environ.items() if k not in hub.OFFLINE_FLAGS}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "s1.cli", "eval", "--benchmark", name, "--limit",
                        "1", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"error: {name} is not shipped and the hub is offline (127.0.0.1 cannot be reached); "
        f"give a local copy with --benchmark-file {name}=FILE"]
    assert time.monotonic() - start < 60   # a guard against the minute of retries; a loaded 2-core machine takes 30 s to start
    assert not (tmp_path / "run").exists()


def test_aime25_from_a_local_file(tmp_path):
    path = tmp_path / "aime25.jsonl"
    path.write_text(json.dumps({"id": "I-1", "problem": "Made-up problem?", "answer": "070"}) +
                    "\n" + json.dumps({"id": "I-2", "problem": "Another?", "answer": "x+1"}) + "\n")
    bench = load_benchmark("aime25", path=path)
    assert [(i.id, i.answer, i.answer_type) for i in bench] == [("aime25-I-1", "070", "integer")]
    assert bench.skipped[0][0] == 2 and "not an integer" in bench.skipped[0][1]


def test_item_repr_leaves_the_question_out():
    item = Item("q1", "a secret question", "4", "integer")
    assert "secret" not in repr(item) and "q1" in repr(item)
    assert re.search(r"answer='4'", repr(item))
