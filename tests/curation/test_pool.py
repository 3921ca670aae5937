"""The pool schema and its loaders, on the shipped data."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from s1.curation.pool import COLUMNS, PoolConfig, SourceSpec, load_pool, load_reference
from s1.errors import UserError
from s1.evaluation.extract import last_boxed


def _family(source_type):
    return "/".join(source_type.split("/")[:2])


def test_offline_pool_holds_every_shipped_source_in_the_paper_order(pool):
    assert tuple(pool.column_names) == COLUMNS
    fam = Counter(_family(s) for s in pool["source_type"])
    assert fam["simplescaling/openaimath"] == 12000
    assert fam["KbsdJames/Omni-MATH"] == 2821
    assert fam["qq8933/AIME_1983_2024"] == 933 - 73     # 2022-2024 is the test set
    assert fam["TIGER-Lab/TheoremQA"] == 747             # the rows without a picture, as s1
    assert fam["openai/gsm8k"] == 7473
    assert fam["Hothan/OlympiadBench"] == 675
    # cumulative decontamination follows this order: MATH first, GSM8K last
    order = list(dict.fromkeys(_family(s) for s in pool["source_type"]))
    assert order[0] == "simplescaling/openaimath" and order[-1] == "openai/gsm8k"


def test_question_hash_is_s1s_key_and_math_answers_are_the_last_box(pool):
    for row in pool.select(range(0, len(pool), 997)):
        assert row["question_hash"] == hashlib.sha256(row["question"].encode()).hexdigest()[:16]
    math = pool.select(range(50))
    for row in math:
        assert row["answer"] == last_boxed(row["solution"])
    meta = json.loads(math[0]["metadata"])
    assert meta["unique_id"].startswith("train/") and meta["level"].startswith("Level")


def test_s1k_hashes_match_ours_for_questions_in_the_shipped_pool(pool):
    ours = set(pool["question_hash"])
    ref = [r for r in load_reference() if r.get("matched_in") and r["hash_verified"]]
    found = sum(r["question_hash"] in ours for r in ref)
    assert found >= 0.8 * len(ref), (found, len(ref))


def test_a_file_with_a_field_mapping_and_boxed_answers(tmp_path):
    rows = [json.loads(line) for line in open(
        __import__("s1.curation.pool", fromlist=["x"]).data_path("benchmarks", "math500.jsonl"))][:5]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"prob": r["problem"], "sol": r["solution"]}) + "\n"
                            for r in rows))
    ds = load_pool(PoolConfig(sources=[{"path": str(path), "question": "prob", "solution": "sol",
                                        "source_type": "mine"}]))
    assert ds["question"] == [r["problem"] for r in rows]
    assert ds["answer"] == [last_boxed(r["solution"]) for r in rows]
    assert set(ds["source_type"]) == {"mine"}


def test_hub_sources_offline_are_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="hub is offline"):
        load_pool(PoolConfig(sources=["simplescaling/data_ablation_full59K"]))


@pytest.mark.parametrize("bad", [["nope"], [{"path": "a.jsonl", "hub": "x/y"}], [{"colour": 1}], []])
def test_bad_source_specs(bad):
    with pytest.raises(UserError):
        PoolConfig(sources=bad)


def test_missing_mapped_column(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"q": "What is 1+1?"}\n')
    with pytest.raises(UserError, match="no column 'question'"):
        load_pool(PoolConfig(sources=[str(path)]))


def test_source_spec_parses_names():
    assert SourceSpec.parse("math").name == "math"
    assert SourceSpec.parse("KbsdJames/Omni-MATH").split == "test"
    assert SourceSpec.parse("someone/data").hub == "someone/data"


# A user's own file in the shapes people have: with or without a worked solution, an answer
# column or a boxed answer in the solution, extra fields named like the schema's.
USER_SHAPES = {
    "question+answer+solution": {"question": "What is 2+3?", "answer": "5",
                                 "solution": "2+3 = \\boxed{5}"},
    "question+answer": {"question": "What is 2+3?", "answer": "5"},
    "question+boxed solution": {"question": "What is 2+3?", "solution": "2+3 = \\boxed{5}"},
    "schema-named extras": {"question": "What is 2+3?", "answer": "5", "cot_type": "science",
                            "id": 7, "level": "Level 1"},
}


@pytest.mark.parametrize("shape", list(USER_SHAPES))
def test_a_users_jsonl_in_the_common_shapes_becomes_the_pool(shape, tmp_path, s1_cli):
    record = USER_SHAPES[shape]
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps({**record, "question": "What is 1+4?"})
                    + "\n")
    r = s1_cli("curate", "pool", path, "--out", tmp_path / "p", "--quiet")
    assert r.returncode == 0, r.stderr                       # no traceback, no refusal
    import datasets

    ds = datasets.Dataset.from_parquet(str(tmp_path / "p" / "data.parquet"))
    assert tuple(ds.column_names) == COLUMNS
    assert ds["answer"] == ["5", "5"]                        # what difficulty and audit grade against
    assert ds["solution"] == [record.get("solution", "5")] * 2   # s1 kept the answer as solution
    meta = json.loads(ds["metadata"][0])
    assert not set(meta) & {"question", "answer", "solution"}
    assert meta.get("id", 7) == 7 and set(ds["source_type"]) == {"mine"}


def test_the_59k_schema_without_an_answer_column_takes_the_solutions_box(tmp_path):
    path = tmp_path / "full59k.jsonl"
    path.write_text(json.dumps({"question": "What is 2+3?", "solution": "so \\boxed{5}",
                                "cot_type": "math", "source_type": "simplescaling/openaimath/x",
                                "metadata": "{}"}) + "\n")
    ds = load_pool(PoolConfig(sources=[str(path)]))
    assert ds["answer"] == ["5"] and ds["source_type"] == ["simplescaling/openaimath/x"]
