"""The batched llama.cpp engine: batch-size invariance, continuous batching, per-row forcing and
sampling, and branching greedy sweeps, on the embedded GGUF."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from s1.generation.budget import Budget, Sampling
from s1.generation.engines import Request, load_engine

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 7*8?",
             "How many times does the letter r appear in the word raspberry? Think carefully.",
             "Name a prime number larger than 10.",
             "A train travels 60 km in 1.5 hours. What is its average speed in km/h?",
             "Is 91 prime?"]

# Batch shapes change llama.cpp's float sums: on the embedded Q4_1 GGUF the same tokens fed as one
# chunk or one by one give top logits up to 0.5 apart (measured), so two
# greedy paths may part where the model's two best tokens are this close; anything further
# apart is a real difference.
NEAR_TIE = 0.6


@pytest.fixture(scope="module")
def engine():
    e = load_engine(engine="llama.cpp", batch_size=16, threads=1)
    yield e
    e.close()


def path(engine, tr) -> list[int]:
    """Every token the sequence fed after its prompt."""
    return tr.thinking_ids + engine.tokenizer.encode(tr.end) + tr.answer_ids


def logits_after(engine, tr, ids, k) -> np.ndarray:
    """The logits after prompt + ids[:k], replayed on the single-sequence context the way the
    engine decodes (the prompt at once, then token by token)."""
    llm = engine.llm
    llm.reset()
    llm.eval(engine.tokenizer.encode(tr.prompt))
    for t in ids[:k]:
        llm.eval([t])
    return engine._logits().copy()


def assert_same_greedy_path(engine, a, b) -> None:
    """Same tokens and events, or the same up to a near-tie of the model's two choices (the
    events before it agreeing). A path that stops where the other goes on chose an EOS there."""
    x, y = path(engine, a), path(engine, b)
    k = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
    if k is None and len(x) != len(y) and "stop" in (a.finish_reason, b.finish_reason):
        k = min(len(x), len(y))
    ev = lambda t: [e.to_dict() for e in t.events]
    if k is None and ev(a) != ev(b):
        # The same tokens, but where one model proposed an end (and a "Wait" was forced) the
        # other wrote that "Wait" itself: they part at that event.
        k = next((p or q)["at"] for p, q in itertools.zip_longest(ev(a), ev(b)) if p != q)
    if k is None:
        assert (x, a.finish_reason) == (y, b.finish_reason)
        return
    logits = logits_after(engine, a, x, k)
    best = float(logits.max())
    stops = [*engine.tokenizer.eos_ids, engine.format_ids(Budget()).trigger]
    eos = float(logits[stops].max())

    def chosen(t, p):
        """The logit of what the model proposed at k: its token, or (where the Forcer may have
        replaced it) an end of thinking or of the turn."""
        if k >= len(p):
            return eos
        forced = k >= min(len(a.thinking_ids), len(b.thinking_ids)) or bool(t.events)
        return max(float(logits[p[k]]), eos) if forced else float(logits[p[k]])
    gaps = [best - chosen(t, p) for t, p in ((a, x), (b, y))]
    assert max(gaps) <= NEAR_TIE, f"paths part at token {k}, gaps {gaps}: not a near-tie"
    within = min(k, len(a.thinking_ids))
    before = lambda t: [e.to_dict() for e in t.events if e.at < within]
    assert before(a) == before(b)


def run(engine, requests, budget, batch_size, branching=True):
    engine.batch_size, engine.branching = batch_size, branching
    if engine.pool is not None:
        engine.forget_cache()       # every run starts from the same cache state
    try:
        return engine.generate(requests, budget)
    finally:
        engine.batch_size, engine.branching = 16, True


BUDGETS = {
    "max": Budget(max_thinking_tokens=24, max_answer_tokens=8),
    "ignore": Budget(max_thinking_tokens=48, num_ignore=2, max_answer_tokens=8),
    "min": Budget(max_thinking_tokens=60, min_thinking_tokens=40, max_answer_tokens=8),
}


@pytest.mark.parametrize("name", list(BUDGETS))
def test_batch_16_gives_the_greedy_tokens_of_batch_1(engine, name):
    requests = [Request(q, id=str(i)) for i, q in enumerate(QUESTIONS)]
    one = run(engine, requests, BUDGETS[name], 1)
    many = run(engine, requests, BUDGETS[name], 16)
    assert [t.id for t in many] == [r.id for r in requests]
    for a, b in zip(one, many):
        assert_same_greedy_path(engine, a, b)


def test_more_requests_than_rows_join_as_rows_leave(engine):
    """Continuous batching: 10 requests through 3 rows, mixed budgets, every trace in order and
    each the one its request gets alone."""
    budgets = [Budget(max_thinking_tokens=8 + 6 * (i % 3), max_answer_tokens=4) for i in range(10)]
    requests = [Request(QUESTIONS[i % 5], id=str(i), budget=b) for i, b in enumerate(budgets)]
    seen = []
    engine.batch_size, engine.branching = 3, False
    try:
        traces = engine.generate(requests, on_trace=lambda i, t: seen.append(i))
    finally:
        engine.batch_size, engine.branching = 16, True
    assert [t.id for t in traces] == [r.id for r in requests] and sorted(seen) == list(range(10))
    assert seen != list(range(10)) or len({b.max_thinking_tokens for b in budgets}) == 1
    for r, tr in zip(requests, traces):
        assert tr.thinking_tokens <= r.budget.max_thinking_tokens
        alone = run(engine, [r], None, 1)[0]
        assert_same_greedy_path(engine, alone, tr)


def test_seeded_sampling_is_per_row(engine):
    """Each sampled row draws from its own generator, seeded by its request: the same batch
    twice gives the same tokens, and rows with other seeds other tokens. (Across batch shapes
    llama.cpp's float noise can move a draw, as on any server.)"""
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=4,
                    sampling=Sampling(temperature=1.0, top_p=0.95))
    requests = [Request(QUESTIONS[1], seed=s) for s in (1, 2, 3)] + [Request(QUESTIONS[3], seed=1)]
    engine.forget_cache()
    first = run(engine, requests, budget, 16)
    engine.forget_cache()
    again = run(engine, requests, budget, 16)
    assert [t.thinking_ids for t in first] == [t.thinking_ids for t in again]
    assert len({tuple(t.thinking_ids) for t in first[:3]}) == 3


CAPS = (6, 12, 24, 48)


def sweep(q):
    """A greedy sweep of thinking caps on one prompt (the paper's budget-forcing curve)."""
    return [Request(q, id=f"{q}@{c}", budget=Budget(max_thinking_tokens=c, max_answer_tokens=6))
            for c in CAPS]


def test_branching_sweep_decodes_the_shared_thinking_once(engine):
    requests = [r for q in QUESTIONS[:3] for r in sweep(q)]
    before = engine.tokens_fed
    plain = run(engine, requests, None, 16, branching=False)
    fed_plain = engine.tokens_fed - before
    branched = run(engine, requests, None, 16, branching=True)
    fed_branched = engine.tokens_fed - before - fed_plain
    for a, b in zip(plain, branched):
        assert a.id == b.id
        assert_same_greedy_path(engine, a, b)
    # each prompt and its longest thinking are decoded once, not once per cap
    assert fed_branched < 0.6 * fed_plain, (fed_branched, fed_plain)
    assert any(t.thinking_finish == "max" for t in branched)


def test_branches_fork_on_waits_and_take_backs(engine):
    """Members that append a Wait at different points (other minimums) fork off; each matches
    its own unbranched run."""
    budgets = [Budget(max_thinking_tokens=60, min_thinking_tokens=m, max_answer_tokens=4)
               for m in (0, 20, 40)]
    requests = [Request(QUESTIONS[4], id=str(m), budget=b) for m, b in zip((0, 20, 40), budgets)]
    plain = run(engine, requests, None, 16, branching=False)
    branched = run(engine, requests, None, 16, branching=True)
    assert any(t.waits for t in branched)
    for a, b in zip(plain, branched):
        assert_same_greedy_path(engine, a, b)
