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
