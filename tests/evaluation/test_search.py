"""Beam search and REBASE (evaluation/search.py): the allocation and selection rules on
hand-made rewards, the searches on the tiny model with the miniature world's step checker,
branch failures on a real server, and `s1 eval --method rebase/beam` runs that resume."""

from __future__ import annotations

import json
import math

import pytest

from s1.errors import UserError
from s1.evaluation.config import EvalConfig
from s1.evaluation.search import (TreeSearch, cut_step, rebase_widths, top_branches, vote)
from s1.generation.budget import Budget
from s1.generation.engines import Request, load_engine
from tests.evaluation.search_rewards import StepChecker

STEPS = "tests.evaluation.search_rewards:step_checker"


# --- the rules, on hand-made rewards --------------------------------------------------------


def test_rebase_gives_each_node_its_softmax_share_rounded_up_best_first():
    # w = exp(r / 0.2): 90.02, 12.18, 1.65 of 103.85. The best takes ceil(16 × 0.8668) = 14,
    # the next ceil(2 × 12.18 / 13.83) = 2, and nothing is left for the last.
    assert rebase_widths([0.9, 0.5, 0.1], 16, 0.2) == [14, 2, 0]
    assert rebase_widths([0.1, 0.9, 0.5], 16, 0.2) == [0, 14, 2]      # per node, any order
    # equal rewards: ceil(6/4) = 2, ceil(4/3) = 2, ceil(2/2) = 1, ceil(1/1) = 1
    assert rebase_widths([0.5] * 4, 6, 0.2) == [2, 2, 1, 1]
    # a hot softmax spreads the width (rounding up favours the better: ceil(4.02) = 5), a cold
    # one gives it all to the best
    assert rebase_widths([1.0, 0.0], 8, 100.0) == [5, 3]
    assert rebase_widths([1.0, 1.0], 8, 100.0) == [4, 4]
    assert rebase_widths([1.0, 0.0], 8, 0.01) == [8, 0]
    # w = 4.055, 3.320, 1.492, 6.050, 2.226: ceil(13 × 6.050/17.143 = 4.59) = 5, then
    # ceil(8 × 4.055/11.093 = 2.92) = 3, ceil(5 × 3.320/7.038 = 2.36) = 3, ceil(2 × 2.226/3.718
    # = 1.20) = 2, and the worst gets nothing
    assert rebase_widths([0.7, 0.6, 0.2, 0.9, 0.4], 13, 0.5) == [3, 3, 0, 5, 2]
    for rewards in ([0.3, 0.31, 0.29], [5.0, -5.0, 0.0, 2.5], [0.2] * 16):
        assert sum(rebase_widths(rewards, 16, 0.2)) == 16


def test_rebase_share_rule_matches_its_definition():
    rewards, width, t = [0.7, 0.6, 0.2, 0.9, 0.4], 13, 0.5
    w = {i: math.exp(r / t) for i, r in enumerate(rewards)}
    left, expected = width, {}
    for i in sorted(w, key=lambda i: -rewards[i]):
        expected[i] = math.ceil(left * w[i] / sum(w[j] for j in w if j not in expected))
        left -= expected[i]
    assert rebase_widths(rewards, width, t) == [expected[i] for i in range(len(rewards))]


def test_beam_keeps_the_best_rewards_and_the_earlier_on_ties():
    assert top_branches([0.2, 0.9, 0.5, 0.9, 0.1], 3) == [1, 3, 2]
    assert top_branches([0.2, 0.9], 0) == [] and top_branches([0.2, 0.9], 5) == [1, 0]


def test_weighted_vote_sums_rewards_per_equivalent_answer():
    # "3" (0.2 + 0.8 = 1.0) beats "4" (0.9); within "3" the higher reward is the answer shown;
    # a candidate without an answer does not vote
    assert vote(["3", "4", "03", None], [0.2, 0.9, 0.8, 5.0], "integer") == 2
    assert vote([None, None], [1.0, 1.0], "integer") is None


def test_a_step_is_cut_after_its_first_delimiter_that_follows_text():
    assert cut_step("\n7+6=13\n8", "\n") == "\n7+6=13\n"
    assert cut_step("a\n\nb\n\n", "\n\n") == "a\n\n"
    assert cut_step("no end", "\n") == "no end"


def test_search_settings_are_checked_before_anything_loads(tmp_path):
    base = {"benchmark": {"name": "tiny"}, "run": {"out": str(tmp_path)}}
    with pytest.raises(UserError, match="needs a reward model"):
        EvalConfig.load(values={**base, "method": {"name": "rebase"}})
    for bad, msg in [({"aggregate": "max"}, "unknown aggregation"),
                     ({"select": "first"}, "select must be"),
                     ({"width": 0}, "width must be"),
                     ({"softmax_temperature": 0.0}, "softmax temperature"),
                     ({"step_delimiter": ""}, "delimiter cannot be empty")]:
        with pytest.raises(UserError, match=msg):
            EvalConfig.load(values={**base, "method": {"name": "rebase", "scorer": STEPS, **bad}})
    with pytest.raises(UserError, match="identical copies"):
        EvalConfig.load(values={**base, "method": {"name": "beam", "scorer": STEPS},
                                "budget": {"temperature": 0.0}})
    cfg = EvalConfig.load(values={**base, "method": {"name": "beam", "scorer": STEPS,
                                                     "step_delimiter": "\\n"}})
    assert cfg.method.step_delimiter == "\n"


# --- the searches on the tiny model ---------------------------------------------------------

Q = "Compute 7+3-6+7-5+4 from left to right."


@pytest.fixture(scope="module")
def tiny():
    return load_engine("s1-tiny", engine="transformers", threads=1)


class Spy:
    """The real engine, with each call's requests and traces noted (which branches were
    continued, and how they ended)."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def generate(self, requests, *args, **kwargs):
        traces = self.engine.generate(requests, *args, **kwargs)
        self.calls.append((list(requests), traces))
        return traces

    def __getattr__(self, name):
        return getattr(self.engine, name)


class Noisy(StepChecker):
    """The step checker with a small jitter per text, so that rewards rank branches apart; it
    notes what it scored."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def score(self, question, candidates):
        exact = super().score(question, candidates)
        out = [[s - (sum(map(ord, "".join(c[: i + 1]))) % 97) / 1000 for i, s in enumerate(row)]
               for row, c in zip(exact, candidates)]
        self.seen.append(out)
        return out


def search(engine, method, rm, **params):
    p = {"step_delimiter": "\n", "aggregate": "last", "max_depth": 12, **params}
    budget = Budget(max_thinking_tokens=80, max_answer_tokens=12).with_(temperature=1.0)
    return TreeSearch(engine, rm, method, p, Request(Q, budget=budget, seed=7, id="q").resolve(),
                      Q)


def children(spy, rm, depth):
    """(thinking after the step, reward, finished) of each branch made at `depth`."""
    requests, traces = spy.calls[depth]
    return [(r.thinking + cut_step(t.meta["new_thinking"], "\n"), s[-1], t.thinking_finish != "step")
            for r, t, s in zip(requests, traces, rm.seen[depth])]


def continued(spy, depth) -> dict[str, int]:
    """How many children each parent thinking got at `depth`."""
    out: dict[str, int] = {}
    for r in spy.calls[depth][0]:
        out[r.thinking] = out.get(r.thinking, 0) + 1
    return out


def test_rebase_expands_the_open_nodes_of_each_depth_as_the_rule_allots(tiny):
    spy, rm, width = Spy(tiny), Noisy(), 6
    res = search(spy, "rebase", rm, width=width, softmax_temperature=0.2).run()
    assert len(spy.calls) >= 3 and len(spy.calls[0][0]) == width
    finished = 0
    for depth in range(len(spy.calls) - 1):
        made = children(spy, rm, depth)
        finished += sum(done for _, _, done in made)
        open_ = [(text, reward) for text, reward, done in made if not done]
        expected: dict[str, int] = {}
        for (text, _), n in zip(open_, rebase_widths([r for _, r in open_], width - finished, 0.2)):
            if n:
                expected[text] = expected.get(text, 0) + n
        assert continued(spy, depth + 1) == expected, depth
    assert 1 <= len(res.candidates) <= width and not res.errors
    assert res.branches == sum(len(c[0]) for c in spy.calls)
    assert res.evaluated_tokens < res.prompt_tokens + res.generated_tokens   # prefixes shared


def test_beam_search_goes_on_with_the_top_beams(tiny):
    spy, rm = Spy(tiny), Noisy()
    res = search(spy, "beam", rm, beams=2, expansions=3).run()
    assert len(spy.calls[0][0]) == 6                    # N × M from the root
    finished = 0
    for depth in range(len(spy.calls) - 1):
        made = children(spy, rm, depth)
        finished += sum(done for _, _, done in made)
        open_ = [(text, reward) for text, reward, done in made if not done]
        keep = [open_[i][0] for i in top_branches([r for _, r in open_], 2 - finished)]
        expected: dict[str, int] = {}
        step = spy.calls[depth + 1][0][0].step_end is not None
        for text in keep:
            expected[text] = expected.get(text, 0) + (3 if step else 1)
        assert continued(spy, depth + 1) == expected, depth
    # every finished child is a candidate (all M of a beam may finish in one step)
    assert res.candidates and all(c.done and c.trace.answer for c in res.candidates)


# --- branch failures ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_branch_is_an_error_on_that_branch_and_the_search_goes_on(llama_server):
    """The server refuses the first completion (HTTP 400): that branch is dropped and counted,
    the other branches are continued and answer (the remote engine, llama.cpp's server)."""
    from s1.generation.engines.remote import load_remote_engine
    from tests.evaluation.search_rewards import Constant
    from tests.loopback import Flaky

    flaky = Flaky(llama_server, failures=1, status=400)
    try:
        engine = load_remote_engine(flaky.url, concurrency=1, backoff=0.01, context_length=8192)
        budget = Budget(max_thinking_tokens=24, max_answer_tokens=8).with_(temperature=1.0)
        res = TreeSearch(engine, Constant(), "rebase",
                         {"step_delimiter": "\n", "aggregate": "last", "max_depth": 2,
                          "width": 3, "softmax_temperature": 0.2},
                         Request(Q, budget=budget, seed=1, id="q").resolve(), Q).run()
    finally:
        flaky.close()
    assert len(res.errors) == 1 and "HTTP 400" in res.errors[0]
    assert res.depth >= 2 and res.candidates
    assert all(c.trace.answer and not c.trace.error for c in res.candidates)
    assert res.evaluated_tokens is None          # a server's prefix cache is not seen


def test_a_question_no_branch_of_which_finishes_is_an_engine_error_and_retried(tmp_path):
    from s1.evaluation.evaluate import evaluate

    cfg = EvalConfig.load(values={
        "engine": {"model": "s1-tiny", "engine": "transformers", "threads": 1,
                   "context_length": 40},          # the prompt alone does not fit
        "benchmark": {"name": "tiny", "limit": 1},
        "method": {"name": "rebase", "scorer": STEPS, "width": 2, "step_delimiter": "\\n"},
        "run": {"out": str(tmp_path), "quiet": True}})
    result = evaluate(cfg)
    (summary,) = result.summaries
    assert summary.errors == 1 and summary.questions == 0
    (line,) = (result.run_dirs[0] / "records.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert rec["finish_reason"] == "error" and "no room" in rec["trace"]["error"]
    assert rec["search"]["failed_branches"] == 2 and rec["search"]["candidates"] == []


# --- s1 eval --method rebase / beam ---------------------------------------------------------


def eval_config(tmp_path, method, **extra):
    return EvalConfig.load(values={
        "engine": {"model": "s1-tiny", "engine": "transformers", "threads": 1},
        "benchmark": {"name": "tiny", "limit": 3},
        "method": {"name": method, "scorer": STEPS, "step_delimiter": "\\n", **extra},
        "run": {"out": str(tmp_path), "quiet": True}})


def test_eval_rebase_writes_one_search_per_question_and_a_killed_run_resumes(tmp_path,
                                                                            monkeypatch):
    from s1.evaluation.evaluate import evaluate
    from s1.generation.engines.base import Engine

    calls: list[str] = []
    real, kill = Engine.generate, False

    def counted(self, requests, *args, **kwargs):
        calls.append(requests[0].id.split("/")[1] if requests else "")
        if kill and calls.count("tiny-0001#0") == 3:
            raise KeyboardInterrupt
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(Engine, "generate", counted)
    cfg = eval_config(tmp_path / "whole", "rebase", width=4)
    result = evaluate(cfg)
    depths = calls.count("tiny-0001#0")
    (run_dir,) = result.run_dirs
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["key"] for r in records] == ["tiny-0000#0", "tiny-0001#0", "tiny-0002#0"]
    for r in records:
        s = r["search"]
        assert 1 <= len(s["candidates"]) <= 4 and s["chosen"] is not None
        chosen = s["candidates"][s["chosen"]]
        assert (chosen["extracted"], chosen["correct"]) == (r["extracted"], r["correct"])
        c = r["compute"]
        assert c["generated_tokens"] == s["tokens"]["generated"] and c["reward_tokens"] > 0
        # the engine evaluated fewer tokens than the continuations read: shared prefixes
        assert c["prompt_tokens"] + c["generated_tokens"] == s["tokens"]["evaluated"] \
            < s["tokens"]["prompt"] + s["tokens"]["generated"]
        assert r["thinking_tokens"] >= r["trace"]["thinking_tokens"] - 1
    (summary,) = result.summaries
    assert summary.questions == 3 and summary.complete and summary.method == "rebase"

    # killed in the middle of the second question (after two of its depths): a resume replays
    # those from the journal, generates only the rest, and draws the same trees
    other = eval_config(tmp_path / "killed", "rebase", width=4)
    kill, calls[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        evaluate(other)
    (killed_dir,) = [p for p in (tmp_path / "killed").iterdir() if p.is_dir()]
    journal = killed_dir / "search" / "tiny-0001_0.jsonl"
    assert len(journal.read_text().splitlines()) == 2
    assert len((killed_dir / "records.jsonl").read_text().splitlines()) == 1
    kill, calls[:] = False, []
    evaluate(other)
    again = [json.loads(x) for x in (killed_dir / "records.jsonl").read_text().splitlines()]
    assert depths >= 3 and "tiny-0000#0" not in calls
    assert calls.count("tiny-0001#0") == depths - 2
    assert not (killed_dir / "search").exists()          # nothing half-written left behind
    tree = lambda r: (r["extracted"], r["correct"], r["thinking_tokens"], r["search"]["branches"],
                      r["search"]["candidates"], r["compute"]["generated_tokens"],
                      r["compute"]["reward_tokens"])
    assert [tree(r) for r in again] == [tree(r) for r in records]
    assert [r["trace"]["prompt"] for r in again] == [r["trace"]["prompt"] for r in records]


def test_eval_beam_search_on_the_tiny_model(tmp_path):
    from s1.evaluation.evaluate import evaluate

    result = evaluate(eval_config(tmp_path, "beam", beams=2, expansions=2, select="vote"))
    (summary,) = result.summaries
    assert summary.questions == 3 and summary.method == "beam"
    recs = [json.loads(x) for x in (result.run_dirs[0] / "records.jsonl").read_text().splitlines()]
    assert all(r["search"]["method"] == "beam" and r["search"]["candidates"] for r in recs)


def test_the_search_flags_reach_the_config(capsys):
    import yaml

    from s1.cli import main

    code = main(["eval", "--benchmark", "tiny", "--out", "x", "--method", "rebase", "--scorer",
                 STEPS, "--width", "8", "--softmax-temperature", "0.5", "--step-delimiter", "\\n",
                 "--aggregate", "min", "--select", "best", "--max-depth", "9", "--show"])
    out, err = capsys.readouterr()
    assert code == 0, err
    m = yaml.safe_load(out)["method"]
    assert (m["name"], m["width"], m["softmax_temperature"], m["step_delimiter"], m["aggregate"],
            m["select"], m["max_depth"]) == ("rebase", 8, 0.5, "\n", "min", "best", 9)


def test_a_search_costs_its_reward_model_too_and_old_records_keep_their_schema():
    from s1.evaluation.compute import _cost
    from s1.evaluation.metrics import estimate_flops
    from s1.evaluation.records import Compute

    shape = {"n_params": 1e6, "n_layers": 4, "d_model": 128}
    plain = Compute(100, 50, 1.0)
    assert plain.to_dict() == {"prompt_tokens": 100, "generated_tokens": 50, "flops": 1.0}
    searched = Compute(100, 50, 2.0, reward_tokens=300, reward_flops=5e8)
    assert Compute(**searched.to_dict()) == searched

    class Rec:
        compute = searched

    assert _cost(Rec, shape) == estimate_flops(1e6, 100, 50, 4, 128) + 5e8
    assert _cost(Rec, None) == 2.0
    Rec.compute = Compute(100, 50, None, reward_tokens=300)
    assert _cost(Rec, None) == 450.0
