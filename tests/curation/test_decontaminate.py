"""Decontamination on real data: the fast check equals s1's loop, and planted copies are caught."""

from __future__ import annotations

import json

import pytest

from s1.curation.decontaminate import (DecontaminateConfig, flag_rows, group_of,
                                       load_benchmark_questions, reference_flags)
from s1.curation.pool import _jsonl, data_path, question_hash
from s1.curation.steps import Context, run_step
from s1.errors import UserError


@pytest.fixture(scope="module")
def math500():
    return list(_jsonl(data_path("benchmarks", "math500.jsonl")))


def _sample(pool, n=4000):
    # every 6th row: all sources, in the pool's order
    return pool.select(range(0, len(pool), max(1, len(pool) // n)))


def test_fast_check_equals_s1s_loop_on_the_real_pool(pool):
    sub = _sample(pool)
    refs = [q for _, _, q in load_benchmark_questions(["math500", "aime24", "aime22-24"], {})]
    groups = [group_of(s, "family") for s in sub["source_type"]]
    owner, _, _ = flag_rows(list(sub["question"]), groups, refs, 8, True)
    oracle = reference_flags(list(sub["question"]), groups, refs, 8, True)
    assert [o >= 0 for o in owner] == oracle
    assert 50 < sum(oracle) < len(sub)     # the check does flag real rows


def _with_planted(pool, rows):
    import datasets

    base = pool.select(range(300)).to_list()
    extra = [{**base[0], "question": q, "question_hash": question_hash(q),
              "source_type": "planted/test", "metadata": "{}"} for q in rows]
    return datasets.Dataset.from_list(base + extra)


def test_planted_verbatim_and_edited_copies_of_math500_are_caught(pool, math500, tmp_path):
    long = next(r for r in math500 if len(r["problem"].split()) > 40)
    words = long["problem"].split()
    edited = " ".join(words[:20] + ["seven"] + words[21:]).replace("Find", "Determine", 1)
    data = _with_planted(pool, [long["problem"], "  " + edited.upper() + "\n"])
    run = run_step("decontaminate", data, "test", DecontaminateConfig(), tmp_path / "d",
                   progress=False, quiet=True)
    flagged = [json.loads(line) for line in open(tmp_path / "d" / "flagged.jsonl")]
    planted = {f["question_hash"]: f for f in flagged if f["source_type"] == "planted/test"}
    assert len(planted) == 2
    assert {f["matched_id"] for f in planted.values()} == {long["unique_id"]}
    assert all(f["matched_name"] == "math500" for f in planted.values())
    drops = [json.loads(line) for line in open(tmp_path / "d" / "drops.jsonl")]
    assert {d["question_hash"] for d in drops} >= set(planted)
    assert run.record["rows_out"] == len(data) - len(drops)


def test_boilerplate_flags_are_counted(pool, tmp_path):
    run = run_step("decontaminate", pool.select(range(3000)), "t", DecontaminateConfig(),
                   tmp_path / "d", progress=False, quiet=True)
    st = run.record["stats"]
    assert st["flagged_by_benchmark"] > 0
    assert 0 < st["boilerplate_only"] <= st["flagged_by_benchmark"] + st.get("flagged_by_pool", 0)
    kept = run_step("decontaminate", pool.select(range(3000)), "t",
                    DecontaminateConfig(keep_boilerplate_only=True), tmp_path / "k",
                    progress=False, quiet=True)
    assert kept.record["rows_out"] == run.record["rows_out"] + st["boilerplate_only"]


def test_private_benchmark_text_is_never_written(pool, math500, tmp_path):
    # a stand-in file named like GPQA (real MATH500 text, not GPQA): its text must not appear
    item = next(r for r in math500 if len(r["problem"].split()) > 30)
    bench = tmp_path / "gpqa_diamond.jsonl"
    bench.write_text(json.dumps({"Question": item["problem"], "id": "g1"}) + "\n")
    data = _with_planted(pool, [item["problem"]])
    run_step("decontaminate", data, "t", DecontaminateConfig(
        benchmarks=["gpqa-diamond"], files={"gpqa-diamond": str(bench)}, cumulative=False),
        tmp_path / "d", progress=False, quiet=True)
    flagged = [json.loads(line) for line in open(tmp_path / "d" / "flagged.jsonl")]
    hit = [f for f in flagged if f["matched_name"] == "gpqa-diamond"]
    assert hit and all(f["matched_question"] is None and f["example_ngram"] == "<withheld>"
                       for f in hit)


def test_unshipped_benchmark_without_a_file_is_a_user_error():
    # offline (conftest): the hub cannot give it, and without a `missing` list that is refused
    with pytest.raises(UserError, match="aime25"):
        load_benchmark_questions(["aime25"], {})


GPQA_LIKE = ("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,"
             "Record ID\n"
             "Which planet of the solar system has the shortest orbital period around the Sun "
             "when measured in Earth days?,Mercury,Venus,Mars,Earth,rec2\n")


def test_gpqa_diamond_is_a_default_benchmark_and_its_absence_is_said(pool, tmp_path, capsys):
    """The paper decontaminated against GPQA Diamond; it is never shipped, so without a file or
    the hub the step says so in one line and in its stats (and the report), never silently."""
    assert "gpqa-diamond" in DecontaminateConfig().benchmarks
    run = run_step("decontaminate", pool.select(range(200)), "t", DecontaminateConfig(),
                   tmp_path / "d", progress=False, quiet=True)
    assert run.record["stats"]["missing_benchmarks"] == ["gpqa-diamond"]
    assert run.record["stats"]["benchmarks"] == ["aime22-24", "aime24", "math500"]
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "gpqa-diamond" in ln]
    assert len(warned) == 1 and "NOT decontaminated" in warned[0]
    with pytest.raises(UserError, match="gpqa-diamond"):
        run_step("decontaminate", pool.select(range(200)), "t",
                 DecontaminateConfig(on_missing="error"), tmp_path / "e", progress=False, quiet=True)
    # given as a file in GPQA's columns (made-up questions here), a copy is caught, text withheld
    fake = tmp_path / "gpqa_like.csv"
    fake.write_text(GPQA_LIKE)
    leaked = "Which planet of the solar system has the shortest orbital period around the Sun"
    data = _with_planted(pool, [leaked + " when measured in Earth days?"])
    run = run_step("decontaminate", data, "t", DecontaminateConfig(files={"gpqa-diamond": str(fake)}),
                   tmp_path / "g", progress=False, quiet=True)
    assert run.record["stats"]["missing_benchmarks"] == []
    assert run.record["stats"]["flagged_by:gpqa-diamond"] == 1
    for name in ("flagged.jsonl", "step.json", "drops.jsonl"):   # nor the pool's copy of it
        assert "shortest orbital period" not in (tmp_path / "g" / name).read_text()


def test_aime_2022_2024_comes_from_the_shipped_aime_file():
    items = load_benchmark_questions(["aime22-24"], {})
    assert len(items) == 73 and all(i[1][:4] in ("2022", "2023", "2024") for i in items)


def test_near_dup_finds_an_edited_copy_the_8grams_miss(pool, math500, tmp_path):
    from s1.curation.dedup import NearDupConfig

    item = next(r for r in math500 if 25 < len(r["problem"].split()) < 40)
    words = item["problem"].split()
    # an edit every 7 words breaks every 8-gram but keeps most 3-word shingles
    edited = " ".join(w + ("," if i % 7 == 6 else "") for i, w in enumerate(words))
    refs = [item["problem"]]
    assert not reference_flags([edited], [""], refs, 8, False)[0]
    data = _with_planted(pool, [edited, edited + " Explain."])
    run = run_step("near-dup", data, "t", NearDupConfig(threshold=0.3, benchmarks=["math500"]),
                   tmp_path / "n", progress=False, quiet=True)
    pairs = [json.loads(line) for line in open(tmp_path / "n" / "near_duplicates.jsonl")]
    assert any(p["kind"] == "benchmark" and p["a"] == f"math500:{item['unique_id']}"
               for p in pairs)
    cluster = next(p for p in pairs if p["kind"] == "pool" and p["cluster"] == question_hash(edited))
    assert [m["question_hash"] for m in cluster["members"]] == [question_hash(edited),
                                                                 question_hash(edited + " Explain.")]
    assert cluster["members"][1]["near"] == question_hash(edited)
    assert run.record["stats"]["questions_near_benchmarks"] >= 2


def test_near_dup_keeps_clusters_not_pairs_so_memory_stays_linear(tmp_path):
    """2,000 variants of one template are one cluster record of 2,000 members (the pairs would
    be 2 million records, each with two texts)."""
    import datasets

    from s1.curation.dedup import NearDupConfig

    base = ("Let $f(x) = x^2 + bx + c$ be a polynomial whose two roots are positive integers and "
            "whose value at one is a prime number; find the smallest possible value of the sum")
    rows = [{"question": f"{base} b + c when the constant is {n}.",
             "source_type": "synthetic/template", "metadata": "{}"} for n in range(2000)]
    rows += [{"question": "What is the capital of a country whose flag is red and white?",
              "source_type": "other", "metadata": "{}"}]
    for r in rows:
        r["question_hash"] = question_hash(r["question"])
    data = datasets.Dataset.from_list(rows)
    run = run_step("near-dup", data, "t", NearDupConfig(threshold=0.8, action="drop"),
                   tmp_path / "n", progress=False, quiet=True)
    records = [json.loads(line) for line in open(tmp_path / "n" / "near_duplicates.jsonl")]
    assert len(records) == 1 and records[0]["size"] == 2000
    assert (tmp_path / "n" / "near_duplicates.jsonl").stat().st_size < 400_000
    st = run.record["stats"]
    assert st["clusters_in_pool"] == 1 and st["largest_cluster"] == 2000
    assert run.record["dropped"] == {"near-duplicate": 1999}   # the cluster's first is kept
    assert run.record["rows_out"] == 2


def test_exact_dedup_keeps_the_first(pool, tmp_path):
    data = _with_planted(pool, [pool[5]["question"]])
    run = run_step("dedup", data, "t", __import__("s1.curation.dedup", fromlist=["x"]).DedupConfig(),
                   tmp_path / "x", progress=False, quiet=True)
    assert run.record["dropped"] == {"duplicate": 1}
    assert Context  # the context type is part of the public contract


def test_the_documented_rule_on_the_s1k_reference(pool):
    """s1K passed s1's decontamination; the rule as documented flags AIME (added after it) and
    mostly boilerplate otherwise. Pinning these facts keeps the rule from drifting."""
    from s1.curation.decontaminate import word_ngrams
    from s1.curation.pool import load_reference

    ref = load_reference()
    refs = [q for _, _, q in load_benchmark_questions(["math500", "aime24", "aime22-24"], {})]
    qs = [r["question"] for r in ref]
    owner, hasher, df = flag_rows(qs + list(pool["question"]), [""] * (len(qs) + len(pool)), refs,
                                  8, False)
    aime = [i for i, o in enumerate(owner[:len(qs)]) if o >= 0 and "AIME" in ref[i]["source_type"]]
    other = [i for i, o in enumerate(owner[:len(qs)]) if o >= 0 and "AIME" not in ref[i]["source_type"]]
    assert len(aime) == 105 and len(other) == 28
    boiler = 0
    for i in other:
        shared = [g for g in word_ngrams(qs[i]) if g in set(word_ngrams(refs[owner[i]]))]
        boiler += bool((df(hasher.hashes(shared)[0]) >= 5).all())
    assert boiler == 23
