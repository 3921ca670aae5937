"""The batched llama.cpp engine: batch-size invariance, continuous batching, per-row forcing and
sampling, branching greedy sweeps, shared prefixes, on the embedded GGUF.

With flash attention and a KV stream per sequence, llama.cpp's logits for a row do not depend on
the other rows or on how its tokens were chunked, so every comparison here is exact: the same
tokens, events and endings. (llama.cpp's CPU flash attention takes other kernels, with other float
sums, for 64 or more new tokens of one sequence in a ubatch and for a sequence alone in a ubatch
past 256 cached tokens; the batch loop shapes its decodes so that neither happens.)"""

from __future__ import annotations

import numpy as np
import pytest

from s1.generation.budget import Budget, Sampling
from s1.generation.engines import Request, load_engine
from s1.generation.engines import llamacpp_batch as lb
from tests.generation.test_engines import QUESTIONS

pytestmark = pytest.mark.slow

STORY = "Write a long story about a dragon who learns to count."   # thinks long


@pytest.fixture(scope="module")
def engine():
    e = load_engine(engine="llama.cpp", batch_size=16, threads=1)
    yield e
    e.close()


def same(a, b) -> bool:
    """The same sequence: tokens, forcing events and how each phase ended."""
    return ((a.thinking_ids, a.answer_ids, a.end, a.thinking_finish, a.finish_reason)
            == (b.thinking_ids, b.answer_ids, b.end, b.thinking_finish, b.finish_reason)
            and [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events])


def assert_same(xs, ys) -> None:
    bad = [(x.id, x.thinking_ids[:12], y.thinking_ids[:12]) for x, y in zip(xs, ys) if not same(x, y)]
    assert len(xs) == len(ys) and not bad, bad


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
    assert_same(one, many)


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
    assert_same([run(engine, [r], None, 1)[0] for r in requests], traces)


def test_seeded_sampling_is_per_row(engine):
    """Each sampled row draws from its own generator, seeded by its request: a batch gives each
    row the tokens it gets alone, and rows with other seeds other tokens."""
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=4,
                    sampling=Sampling(temperature=1.0, top_p=0.95))
    requests = [Request(QUESTIONS[1], seed=s) for s in (1, 2, 3)] + [Request(QUESTIONS[3], seed=1)]
    together = run(engine, requests, budget, 16)
    assert_same(run(engine, requests, budget, 1), together)
    assert len({tuple(t.thinking_ids) for t in together[:3]}) == 3


CAPS = (6, 12, 24, 48)


def sweep(q):
    """A greedy sweep of thinking caps on one prompt (the paper's budget-forcing curve)."""
    return [Request(q, id=f"{q}@{c}", budget=Budget(max_thinking_tokens=c, max_answer_tokens=6))
            for c in CAPS]


def test_branching_sweep_decodes_the_shared_thinking_once(engine):
    # cap by cap, question by question (as a sweep submits them): requests on one prompt need
    # not be neighbours to share a branch
    requests = [sweep(q)[c] for c in range(len(CAPS)) for q in QUESTIONS[:3]]
    before = engine.tokens_fed
    plain = run(engine, requests, None, 16, branching=False)
    fed_plain = engine.tokens_fed - before
    branched = run(engine, requests, None, 16, branching=True)
    fed_branched = engine.tokens_fed - before - fed_plain
    assert [t.id for t in branched] == [r.id for r in requests]
    assert_same(plain, branched)
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
    assert_same(plain, branched)


def test_forks_without_a_free_stream_wait_and_start_from_a_copy(engine):
    """One sequence at a time leaves one spare stream: of a sweep's forks (caps close together,
    long answers), the ones that find no stream wait, then start again from a copy of the shared
    thinking. Same traces."""
    requests = [Request(STORY, id=str(c), budget=Budget(max_thinking_tokens=c,
                                                               max_answer_tokens=24))
                for c in (6, 8, 10, 40)]
    plain = run(engine, requests, None, 1, branching=False)
    parked = engine.parked_forks
    branched = run(engine, requests, None, 1, branching=True)
    assert engine.parked_forks > parked
    assert_same(plain, branched)


def test_a_long_shared_prefix_is_evaluated_once(engine):
    """Prompts behind the same long system prompt, decoded together: the later ones copy the
    first one's prefix from its stream once it is in the cache. Same traces as alone."""
    system = " ".join(f"Rule {i}: answer briefly and check the arithmetic twice." for i in range(8))
    requests = [Request(q, id=str(i), system=system) for i, q in enumerate(QUESTIONS)]
    budget = Budget(max_thinking_tokens=12, max_answer_tokens=4)
    n_system = len(engine.tokenizer.encode(system))
    before = engine.tokens_fed
    together = run(engine, requests, budget, 16)
    fed = engine.tokens_fed - before
    prompts = [len(engine.prepare(r.resolve(budget))[1]) for r in requests]
    assert n_system >= lb.COPY_PREFIX and min(prompts) > lb.CHUNK      # fed in pieces
    prompts = sum(prompts)
    assert fed < prompts + sum(t.generated_tokens for t in together) - 3 * n_system, fed
    assert_same([run(engine, [r], budget, 1)[0] for r in requests], together)


def test_rows_equal_the_single_sequence_context(engine):
    """A row decoded in a batch of 5 gives, token by token, the argmax of the single-sequence
    context `llm` (what a llama.cpp server with load_llama's settings computes) fed the prompt at
    once and the tokens one by one."""
    budget = Budget(max_thinking_tokens=20, max_answer_tokens=4)
    traces = run(engine, [Request(q) for q in QUESTIONS], budget, 16)
    llm = engine.llm
    for tr in traces[:3]:
        llm.reset()
        llm.eval(engine.tokenizer.encode(tr.prompt))
        for t in tr.thinking_ids:
            assert int(engine._logits().argmax()) == t
            llm.eval([t])


def test_the_kv_budget_bounds_the_sequences_decoded_together(engine, monkeypatch):
    """Streams are as long as the longest sequence may grow; where `batch_size` of them do not
    fit the KV budget, fewer sequences are decoded together, with the same results."""
    from s1.generation.engines import llamacpp

    budget = Budget(max_thinking_tokens=16, max_answer_tokens=4)
    requests = [Request(q, id=str(i)) for i, q in enumerate(QUESTIONS)]
    alone = run(engine, requests, budget, 1)
    stream = 256 * engine.kv_bytes_per_token               # one page: these sequences fit in it
    monkeypatch.setattr(llamacpp, "KV_BUDGET_BYTES", 3 * stream)
    engine.pool.close()
    engine.pool, engine.kept = None, []
    widths, decode = [], lb.Pool.decode
    monkeypatch.setattr(lb.Pool, "decode",
                        lambda pool, chunks: (widths.append(len(chunks)), decode(pool, chunks)))
    engine.batch_size = 16
    traces = engine.generate(requests, budget)
    assert engine.pool.n_seq == 3 and engine.pool.cells == 256
    assert max(widths) == 2          # two sequences at a time, the third stream for the cache
    assert_same(alone, traces)
    engine.pool.close()
    engine.pool = None


def test_long_sequences_are_the_same_alone_and_in_a_batch(engine, monkeypatch):
    """Every decode has a shape that gets flash attention's per-query kernel: one sequence with
    2..CHUNK new tokens, or several with one token each, their ids without a gap, none alone
    past LONE tokens. So a sequence past 256 cached tokens gets the same tokens alone (batch 1)
    and beside rows that come and go."""
    long = Budget(max_thinking_tokens=300, max_answer_tokens=4)
    short = Budget(max_thinking_tokens=8, max_answer_tokens=2)
    requests = [Request(STORY, id="long", budget=long)] + \
        [Request(q, id=str(i), budget=short if i % 2 else long.with_(max_thinking_tokens=120))
         for i, q in enumerate(QUESTIONS)]
    shapes, decode = [], lb.Pool.decode
    monkeypatch.setattr(lb.Pool, "decode", lambda pool, chunks: (
        shapes.append([(seq, pos, len(t)) for seq, pos, t, _ in chunks]), decode(pool, chunks)))
    together = run(engine, requests, None, 16, branching=False)
    alone = run(engine, [requests[0]], None, 1)
    assert together[0].thinking_tokens == 300
    assert_same(alone, together[:1])
    assert any(len(s) == 2 and s[0][1] >= lb.LONE for s in shapes)    # a partner was added
    for shape in shapes:
        if len(shape) == 1 and shape[0][2] > 1:
            assert shape[0][2] <= lb.CHUNK
        else:
            seqs = [seq for seq, _, n in shape]
            assert all(n == 1 for _, _, n in shape)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert len(seqs) > 1 or shape[0][1] < lb.LONE
