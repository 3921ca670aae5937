"""Step-wise generation (a search continuing many branches): a request continues a thinking
prefix until the end of the next step; engines reuse what branches share; a branch that cannot
start is an error on that branch. On the tiny transformers model, the embedded GGUF (llama.cpp)
and the remote engine against a llama.cpp server and the fake vLLM server on loopback."""

from __future__ import annotations

import pytest

from s1.evaluation.search import cut_step
from s1.generation.budget import Budget
from s1.generation.engines import Request, load_engine
from s1.generation.engines.llamacpp import LlamaCppEngine
from s1.generation.engines.remote import load_remote_engine
from s1.generation.formats import FORMATS
from s1.generation.models import embedded_gguf

TINY_Q = "Compute 7+3-6+7-5+4 from left to right."
GGUF_Q = "What is 7*8? Explain step by step."
BUDGET = Budget(max_thinking_tokens=48, max_answer_tokens=12)


@pytest.fixture(scope="module")
def tiny():
    return load_engine("s1-tiny", engine="transformers", threads=1)


@pytest.fixture(scope="module")
def llama():
    engine = LlamaCppEngine(str(embedded_gguf()), FORMATS["s1"], n_ctx=1024, n_threads=1,
                            batch_size=4)
    yield engine
    engine.close()


def step_by_step(engine, question, delimiter, budget=BUDGET, limit=40):
    """Greedy, one step per call, each continuing the thinking so far; (traces, tokens the
    engine evaluated in each call)."""
    thinking, traces, fed = "", [], []
    for _ in range(limit):
        before = engine.tokens_fed
        tr = engine.generate([Request(question, budget=budget, thinking=thinking,
                                      step_end=delimiter)])[0]
        traces.append(tr)
        fed.append(engine.tokens_fed - before)
        if tr.thinking_finish != "step":
            return traces, fed
        thinking += cut_step(tr.meta["new_thinking"], delimiter)
    raise AssertionError("the thinking never ended")


def test_greedy_steps_add_up_to_one_generation_and_the_prefix_is_not_recomputed(tiny):
    """The tiny model's tokenizer has one token per character: its steps tokenize back to the
    ids generated, so the steps continued one by one are the one greedy generation."""
    whole = tiny.generate([Request(TINY_Q, budget=BUDGET)])[0]
    traces, fed = step_by_step(tiny, TINY_Q, "\n")
    last = traces[-1]
    assert len(traces) >= 3
    assert (last.thinking_ids, last.answer_ids, last.thinking_finish) == \
        (whole.thinking_ids, whole.answer_ids, whole.thinking_finish)
    assert_prefixes_reused(traces, fed)


def test_llama_cpp_steps_continue_from_the_kept_sequence_as_from_scratch(llama):
    """SmolLM2 writes "\n" "\n" where the text tokenizes to one "\n\n": a search continues the
    text, so a step may start from other ids than were generated. Continuing from the kept
    sequence gives what a fresh engine gives for the same text."""
    budget = BUDGET.with_(max_thinking_tokens=120)
    traces, fed = step_by_step(llama, GGUF_Q, "\n\n", budget)
    assert len(traces) >= 3
    assert_prefixes_reused(traces, fed)
    thinking = traces[-2].thinking[: -len(traces[-2].meta["new_thinking"]) or None]
    again = Request(GGUF_Q, budget=budget, thinking=thinking, step_end="\n\n")
    llama.forget_cache()
    fresh = llama.generate([again])[0]
    assert fresh.thinking_ids == traces[-2].thinking_ids and fresh.meta == traces[-2].meta


def assert_prefixes_reused(traces, fed):
    for tr, n in zip(traces[1:], fed[1:]):
        # a continued step reads its prompt and prefix, but the engine evaluates little more
        # than what is new: the prefix comes from the previous step's cache
        assert tr.meta["prefix_tokens"] > 0
        assert n <= tr.meta["generated_tokens"] + 3 < tr.prompt_tokens
    for tr in traces[:-1]:
        assert tr.finish_reason == "step" and tr.answer == ""
        assert tr.meta["generated_tokens"] == tr.thinking_tokens - tr.meta["prefix_tokens"]


@pytest.mark.parametrize("which", ["tiny", "llama"])
def test_sampled_siblings_evaluate_their_shared_prefix_once(which, request):
    engine = request.getfixturevalue(which)
    q = TINY_Q if which == "tiny" else GGUF_Q
    parent = engine.generate([Request(q, budget=BUDGET, step_end="\n")])[0]
    prefix = cut_step(parent.meta["new_thinking"], "\n")
    sampled = BUDGET.with_(temperature=1.0)
    before = engine.tokens_fed
    kids = engine.generate([Request(q, budget=sampled, thinking=prefix, step_end="\n", seed=s)
                            for s in range(4)])
    fed = engine.tokens_fed - before
    generated = sum(k.meta["generated_tokens"] for k in kids)
    assert all(k.finish_reason != "error" for k in kids)
    # four siblings of ~prompt+prefix tokens each: evaluated once (from the parent's cache)
    assert fed <= generated + 4 < generated + kids[0].prompt_tokens


@pytest.mark.parametrize("which", ["tiny", "llama"])
def test_a_branch_that_cannot_start_is_an_error_on_that_branch(which, request):
    engine = request.getfixturevalue(which)
    q = TINY_Q if which == "tiny" else GGUF_Q
    seen = []
    bad, good = engine.generate(
        [Request(q, budget=BUDGET, thinking="1+1=2\n" * 400, step_end="\n", id="long"),
         Request(q, budget=BUDGET, step_end="\n", id="ok")],
        on_trace=lambda i, tr: seen.append(i))
    assert bad.finish_reason == "error" and "context" in bad.error and bad.id == "long"
    assert good.finish_reason == "step" and not good.error
    assert sorted(seen) == [0, 1]


@pytest.mark.slow
def test_remote_continues_steps_as_the_in_process_engine_does(llama_server):
    """The remote engine continues from the text (completions API): the same greedy steps as
    llama.cpp in process, against llama.cpp's server and the fake vLLM server."""
    from tests.fakes.vllm_server import FakeVLLM

    local = LlamaCppEngine(str(embedded_gguf()), FORMATS["s1"], batch_size=1)
    fake = FakeVLLM(str(embedded_gguf()), root=str(embedded_gguf()), n_ctx=2048)
    fake.start()
    try:
        expected = local.generate([Request(GGUF_Q, budget=BUDGET, step_end="\n")])[0]
        step = cut_step(expected.meta["new_thinking"], "\n")
        expected2 = local.generate([Request(GGUF_Q, budget=BUDGET, thinking=step,
                                            step_end="\n")])[0]
        for url in (llama_server, fake.url):
            remote = load_remote_engine(url, concurrency=1, backoff=0.05)
            got = remote.generate([Request(GGUF_Q, budget=BUDGET, step_end="\n")])[0]
            assert got.finish_reason == "step" and got.meta["new_thinking"].startswith(step)
            got2 = remote.generate([Request(GGUF_Q, budget=BUDGET, thinking=step,
                                            step_end="\n")])[0]
            assert got2.meta["prefix_tokens"] == expected2.meta["prefix_tokens"]
            assert got2.thinking_ids == expected2.thinking_ids, url
    finally:
        fake.stop()
        local.close()


def test_a_batch_mixing_a_cached_prefix_and_a_fresh_prompt_gives_each_its_own_tokens(tiny):
    other = "Write 10 in base 7."
    first = tiny.generate([Request(TINY_Q, budget=BUDGET, step_end="\n")])[0]   # kept
    prefix = first.meta["new_thinking"]
    alone = tiny.generate([Request(TINY_Q, budget=BUDGET, thinking=prefix)])[0]
    tiny.prefix_cache.entries.clear()
    fresh = tiny.generate([Request(other, budget=BUDGET, step_end="\n")])[0]
    tiny.prefix_cache.entries.clear()
    tiny.generate([Request(TINY_Q, budget=BUDGET, step_end="\n")])             # kept again
    before = tiny.tokens_fed
    both = tiny.generate([Request(TINY_Q, budget=BUDGET, thinking=prefix),
                          Request(other, budget=BUDGET, step_end="\n")])
    assert (both[0].thinking_ids, both[0].answer_ids) == (alone.thinking_ids, alone.answer_ids)
    assert both[1].thinking_ids == fresh.thinking_ids
    # the cached row prefilled one token, the fresh one its whole prompt
    prefill = tiny.tokens_fed - before - sum(t.meta["generated_tokens"] - 1 for t in both)
    assert prefill <= 1 + fresh.prompt_tokens + 1
