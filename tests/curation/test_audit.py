"""The paraphrase audit on real data: the shipped MATH500 / AIME24, MATH-train questions from the
shipped pool, hand-written paraphrases and hard negatives (data/paraphrases.jsonl), the real
all-MiniLM-L6-v2 and a real llama.cpp server as judge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datasets import Dataset

from s1.curation.audit import AuditConfig, audit
from s1.errors import UserError
from s1.evaluation.extract import last_boxed
from tests.loopback import JsonHandler

HERE = Path(__file__).parent
FIXTURE = [json.loads(line) for line in (HERE / "data" / "paraphrases.jsonl").open()]
POOL = Path(__file__).parents[2] / "src" / "s1" / "data" / "pool" / "math_12k_train.jsonl"
MATH500 = {r["unique_id"]: r for r in map(json.loads, (Path(__file__).parents[2] / "src" / "s1" / "data"
                                                       / "benchmarks" / "math500.jsonl").open())}
# MATH-train problems that restate MATH500 problems (found by this audit; checked by hand).
REWORDED_IN_TRAIN = {"test/algebra/2351.json": "test/intermediate_algebra/1566.json",
                     "train/algebra/1477.json": "test/algebra/170.json",
                     "train/prealgebra/273.json": "test/prealgebra/1743.json",
                     "train/algebra/658.json": "test/intermediate_algebra/337.json",
                     "test/geometry/151.json": "test/geometry/1108.json"}


def math_train(ids=None, n=None) -> list[dict]:
    rows = []
    for line in POOL.open():
        r = json.loads(line)
        if (ids is None or r["unique_id"] in ids):
            rows.append({"question": r["problem"], "answer": last_boxed(r["solution"]) or "",
                         "uid": r["unique_id"]})
        if n is not None and len(rows) >= n:
            break
    return rows


def planted_pool() -> Dataset:
    """40 MATH-train questions, an exact copy of a MATH500 problem, a light edit of another, and
    a hard negative (another template instance with another answer)."""
    copy, edit = MATH500["test/algebra/2214.json"], MATH500["test/number_theory/156.json"]
    negative = next(f for f in FIXTURE if f["kind"] == "negative"
                    and f["unique_id"] == "test/algebra/2214.json")
    rows = math_train(n=40)
    rows += [{"question": copy["problem"], "answer": copy["answer"], "uid": "planted-copy"},
             {"question": edit["problem"].replace("Let $n$ be a positive integer.", "Suppose $n$ is a positive integer."),
              "answer": edit["answer"], "uid": "planted-edit"},
             {"question": negative["text"], "answer": negative["answer"], "uid": "planted-negative"}]
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def minilm():
    from s1.curation.embed import SentenceEncoder
    return SentenceEncoder(threads=1)


def test_config_is_validated():
    with pytest.raises(UserError, match="decision"):
        AuditConfig(decide="vibes")
    with pytest.raises(UserError, match="flag or drop"):
        AuditConfig(action="delete")
    with pytest.raises(UserError, match="top_k"):
        AuditConfig(top_k=0)
    with pytest.raises(UserError, match="needs a judge"):
        AuditConfig(decide="answer+judge")
    with pytest.raises(UserError, match="cosine"):
        AuditConfig(min_similarity=1.5)
    assert AuditConfig(benchmarks="math500, aime24").benchmarks == ("math500", "aime24")


def test_tfidf_path_flags_planted_copy_and_light_edit_not_the_hard_negative(tmp_path):
    out = audit(planted_pool(), AuditConfig(embedder="tfidf", report_dir=str(tmp_path)))
    by_uid = {r["uid"]: r for r in out}
    assert by_uid["planted-copy"]["audit_flagged"]
    assert by_uid["planted-copy"]["audit_match"] == "math500:test/algebra/2214.json"
    assert by_uid["planted-copy"]["audit_similarity"] > 0.99
    assert by_uid["planted-edit"]["audit_match"] == "math500:test/number_theory/156.json"
    assert not by_uid["planted-negative"]["audit_flagged"]
    assert by_uid["planted-negative"]["audit_similarity"] > 0.8   # close, yet another answer
    flags = [json.loads(line) for line in (tmp_path / "audit_flags.jsonl").open()]
    assert [f["similarity"] for f in flags] == sorted((f["similarity"] for f in flags), reverse=True)
    assert {"planted-copy", "planted-edit"} <= {out[f["pool_index"]]["uid"] for f in flags}
    report = (tmp_path / "audit.md").read_text()
    assert f"flagged: {sum(out['audit_flagged'])} " in report and "test/algebra/2214.json" in report


def test_drop_action_records_each_dropped_row_and_why():
    dropped = []
    out = audit(planted_pool(), AuditConfig(embedder="tfidf", action="drop"),
                on_drop=lambda row, why: dropped.append((row["uid"], why)))
    uids = dict(dropped)
    assert "planted-copy" in uids and "same answer" in uids["planted-copy"]
    assert "math500:test/algebra/2214.json" in uids["planted-copy"]
    assert len(out) + len(dropped) == len(planted_pool())
    assert "planted-copy" not in out["uid"] and "planted-negative" in out["uid"]


def test_withheld_benchmark_text_never_reaches_the_report(tmp_path):
    # A file in GPQA's columns with made-up questions stands in for the user's GPQA copy.
    fake = tmp_path / "gpqa_like.csv"
    fake.write_text("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Record ID\n"
                    "What gas do green plants mostly absorb from the air to build sugars in photosynthesis?,"
                    "carbon dioxide,oxygen,nitrogen,argon,rec1\n"
                    "Which planet of the solar system has the shortest orbital period around the Sun?,"
                    "Mercury,Venus,Mars,Earth,rec2\n")
    leaked = "Which planet of the solar system has the shortest orbital period"
    pool = Dataset.from_list([{"question": leaked + " around the Sun?", "answer": ""},
                              {"question": "Compute 2+2.", "answer": "4"}])
    cfg = AuditConfig(benchmarks=("gpqa-diamond",), benchmark_paths={"gpqa-diamond": str(fake)},
                      embedder="tfidf", min_similarity=0.3, flag_similarity=0.5,
                      report_dir=str(tmp_path / "rep"))
    out = audit(pool, cfg)
    assert out["audit_flagged"] == [True, False]
    assert out["audit_match"][0] == "gpqa-diamond:gpqa-rec2"
    for name in ("audit.md", "audit_flags.jsonl", "audit_candidates.jsonl"):
        text = (tmp_path / "rep" / name).read_text()
        assert leaked not in text and "photosynthesis" not in text
    assert "[withheld: GPQA]" in (tmp_path / "rep" / "audit_flags.jsonl").read_text()


@pytest.mark.slow
def test_minilm_catches_paraphrases_and_spares_hard_negatives(minilm):
    cases = Dataset.from_list([{"question": f["text"], "answer": f["answer"], "kind": f["kind"],
                                "uid": f["unique_id"]} for f in FIXTURE])
    out = audit(cases, AuditConfig(benchmarks=("math500",)), embedder=minilm)
    para = [r for r in out if r["kind"] == "paraphrase"]
    neg = [r for r in out if r["kind"] == "negative"]
    caught = sum(r["audit_match"] == f"math500:{r['uid']}" for r in para)
    false_flags = sum(r["audit_flagged"] for r in neg)
    # Measured here: 30/32 caught, 1/32 hard negative flagged (a chance match of another
    # MATH500 item with the same answer).
    assert caught >= 28, caught
    assert false_flags <= 3, false_flags
    # Similarity alone could not have separated them: the negatives sit closer on average.
    mean = lambda rows: sum(r["audit_similarity"] for r in rows) / len(rows)  # noqa: E731
    assert mean(neg) > mean(para)


@pytest.mark.slow
def test_minilm_finds_reworded_math500_problems_inside_math_train(minilm):
    rows = math_train(ids=set(REWORDED_IN_TRAIN)) + math_train(n=30)
    out = audit(Dataset.from_list(rows), AuditConfig(benchmarks=("math500", "aime24")), embedder=minilm)
    found = {r["uid"] for r in out if r["uid"] in REWORDED_IN_TRAIN
             and r["audit_match"] == f"math500:{REWORDED_IN_TRAIN[r['uid']]}"}
    assert len(found) >= 4, found


@pytest.mark.slow
def test_judge_through_a_real_llama_server_decides_same_answer_candidates(llama_server, tmp_path, minilm):
    from s1.curation.llm import LLMConfig

    planted = next(f for f in FIXTURE if f["kind"] == "paraphrase" and f["unique_id"] == "test/algebra/1004.json")
    pool = Dataset.from_list([{"question": planted["text"], "answer": planted["answer"]},
                              {"question": "Compute $1+1$.", "answer": "2"}])
    judge = LLMConfig(api="chat", base_url=llama_server + "/v1", max_tokens=8, concurrency=1)
    out = audit(pool, AuditConfig(benchmarks=("math500",), decide="answer+judge", judge=judge,
                                  report_dir=str(tmp_path)), embedder=minilm)
    candidates = [json.loads(line) for line in (tmp_path / "audit_candidates.jsonl").open()]
    same = [c for c in candidates if c["reason"].startswith("same answer")]
    assert same, "the planted paraphrase has the benchmark's answer"
    # Every same-answer candidate went to the judge; its verdict (whatever the tiny model says)
    # is what decides, and a flag is only raised on a judge YES.
    # The judge answered (a reply without YES/NO is possible from a tiny model; a failed
    # request is not acceptable here).
    assert all(re.search(r"judge (YES|NO)$|no YES/NO in the reply\)$", c["reason"]) for c in same), same
    assert all(c["flagged"] == c["reason"].endswith("judge YES") for c in same)
    assert out["audit_flagged"][0] == any(c["flagged"] for c in same if c["pool_index"] == 0)


def test_unreachable_judge_is_one_clear_error():
    from s1.curation.llm import LLMConfig

    pool = Dataset.from_list([{"question": MATH500["test/algebra/1004.json"]["problem"], "answer": "4"}])
    judge = LLMConfig(api="chat", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(UserError, match="cannot reach the model server at http://127.0.0.1:9/v1"):
        audit(pool, AuditConfig(embedder="tfidf", decide="answer+judge", judge=judge))


# ---------------------------------------------------------------------------------------------
# equal answers alone flag different problems that share an answer: a judge decides by default

class SameProblemJudge(JsonHandler):
    """A judge on loopback: YES when the two problems are the same text, else NO."""

    def do_GET(self):
        self._send(200, {"data": [{"id": "judge"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        a, b = re.match(r"## Problem 1\n(.*)\n\n## Problem 2\n(.*)", body["messages"][-1]["content"],
                        re.S).groups()
        verdict = "YES" if a.strip().lower() == b.strip().lower() else "NO"
        self._send(200, {"choices": [{"message": {"content": verdict}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1}})


def test_a_judge_decides_by_default_where_one_is_configured_and_the_report_shows_pairs(tmp_path):
    import threading
    from http.server import ThreadingHTTPServer

    from s1.curation.report import _audit_blocks

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "question": "How many sides does a square have?",
                                 "answer": "4"}) + "\n"
                     + json.dumps({"id": "b2", "question": "How many legs does a cat have in all?",
                                   "answer": "4"}) + "\n")
    pool = Dataset.from_list([{"question": "How many sides does a square have?", "answer": "4"},
                              {"question": "How many wheels does a car have in all?", "answer": "4"}])
    assert AuditConfig().decide == "answer"
    plain = audit(pool, AuditConfig(benchmarks=(str(bench),), embedder="tfidf", min_similarity=0.05))
    assert plain["audit_flagged"] == [True, True]       # the car shares the cat's answer: a false flag

    server = ThreadingHTTPServer(("127.0.0.1", 0), SameProblemJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = {"api": "chat", "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1"}
        cfg = AuditConfig(benchmarks=(str(bench),), embedder="tfidf", min_similarity=0.05,
                          judge=judge, report_dir=str(tmp_path / "a"))
        assert cfg.decide == "answer+judge"
        judged = audit(pool, cfg)
    finally:
        server.shutdown()
    assert judged["audit_flagged"] == [True, False]
    blocks, _ = _audit_blocks(tmp_path, {"stats": {"flagged": 1}, "dir": "a", "rows_in": 2}, tmp_path)
    table = next(b for b in blocks if b[0] == "table")
    assert "pool question" in table[1] and table[2][0][2] == "How many sides does a square have?"
    assert table[2][0][5] == "same answer; judge YES"


def test_the_recipes_flag_rather_than_drop_on_answers_alone():
    import yaml

    root = Path(__file__).parents[2] / "configs"
    for name in ("curate-offline.yaml", "curate-s1k.yaml"):
        audit_cfg = next(s["audit"] for s in yaml.safe_load((root / name).read_text())["steps"]
                         if "audit" in s)
        assert audit_cfg["action"] == "flag" or audit_cfg.get("judge"), name
