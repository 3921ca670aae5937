"""The in-process engines on the real embedded model."""

import pytest
import torch

from s1.generation.budget import Budget, Sampling
from s1.generation.engines import Request, load_engine
from s1.generation.engines.hf import HFEngine
from s1.generation.engines.llamacpp import LlamaCppEngine
from s1.generation.formats import FORMATS

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 7*8?",
             "How many times does the letter r appear in the word raspberry? Think carefully.",
             "Name a prime number larger than 10.",
             "A train travels 60 km in 1.5 hours. What is its average speed in km/h?",
             "Is 91 prime?"]


@pytest.fixture(scope="session")
def hf_engine():
    return load_engine(engine="transformers", batch_size=4)


@pytest.fixture(scope="session")
def llama_engine():
    return load_engine(engine="llama.cpp")


def same(a, b):
    return (a.thinking_ids, a.answer_ids, [e.to_dict() for e in a.events]) == \
           (b.thinking_ids, b.answer_ids, [e.to_dict() for e in b.events])


def test_load_engine_picks_llama_cpp_for_the_embedded_gguf(llama_engine, hf_engine):
    assert isinstance(llama_engine, LlamaCppEngine) and isinstance(hf_engine, HFEngine)
    assert llama_engine.fmt == FORMATS["s1"]


def test_hf_greedy_decode_matches_transformers_generate(hf_engine):
    """Our KV-cache loop is the model's own greedy decode while nothing is forced."""
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=1)
    tr = hf_engine.generate([Request(QUESTIONS[1])], budget)[0]
    ids = torch.tensor([hf_engine.tokenizer.encode(tr.prompt)])
    out = hf_engine.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                                   do_sample=False)[0, ids.shape[1]:].tolist()
    n = 0    # compare up to the first token the Forcer had a say in
    while n < len(out) and n < len(tr.thinking_ids) and out[n] == tr.thinking_ids[n]:
        n += 1
    forced_at = tr.events[0].at if tr.events else len(tr.thinking_ids)
    assert n >= min(forced_at, 24) and n > 0


def test_hf_batching_does_not_change_results(hf_engine):
    """Left-padded rows of different lengths, rows leaving and joining: same tokens as alone."""
    budget = Budget(max_thinking_tokens=40, num_ignore=2, max_answer_tokens=12)
    requests = [Request(q, id=str(i)) for i, q in enumerate(QUESTIONS)]
    batched = hf_engine.generate(requests, budget)          # batch 4, 5 requests: one joins later
    alone = [hf_engine.generate([r], budget)[0] for r in requests]
    assert [t.id for t in batched] == [r.id for r in requests]
    for a, b in zip(batched, alone):
        assert same(a, b)
    assert sum(t.waits for t in batched) > 0                 # forcing really happened


def test_hf_forced_tokens_are_fed_once_and_never_recompute_the_prefix(hf_engine):
    fed = []
    hook = hf_engine.model.get_input_embeddings().register_forward_hook(
        lambda mod, inp, out: fed.append(inp[0].shape))
    try:
        budget = Budget(max_thinking_tokens=60, min_thinking_tokens=40, max_answer_tokens=8)
        tr = hf_engine.generate([Request(QUESTIONS[0])], budget)[0]
    finally:
        hook.remove()
    assert tr.waits >= 1
    assert fed[0][1] == tr.prompt_tokens                     # one prefill of the prompt
    assert all(shape[1] == 1 for shape in fed[1:])          # then one token per step, Waits included
    assert len(fed) - 1 == tr.generated_tokens - 1           # every emitted token fed exactly once


def test_hf_seeded_sampling_is_reproducible_and_seed_dependent(hf_engine):
    budget = Budget(max_thinking_tokens=30, max_answer_tokens=8,
                    sampling=Sampling(temperature=0.9, top_p=0.95))
    reqs = [Request(QUESTIONS[1], seed=s) for s in (1, 1, 2)]
    a, b, c = hf_engine.generate(reqs, budget)
    assert a.thinking_ids == b.thinking_ids
    assert a.thinking_ids != c.thinking_ids


@pytest.mark.parametrize("budget", [
    Budget(max_thinking_tokens=32, max_answer_tokens=16),
    Budget(max_thinking_tokens=120, num_ignore=2, max_answer_tokens=16),
    Budget(max_thinking_tokens=80, min_thinking_tokens=50, ignore_strings=("Hmm", "Alternatively"),
           max_answer_tokens=16),
], ids=["max", "num_ignore", "min"])
def test_llama_cpp_budgets_hold(llama_engine, budget):
    traces = llama_engine.generate([Request(q) for q in QUESTIONS[:3]], budget)
    for tr in traces:
        assert tr.thinking_tokens <= budget.max_thinking_tokens
        assert tr.thinking_tokens >= min(budget.min_thinking_tokens, budget.max_thinking_tokens)
        assert tr.end.strip().endswith("<|im_start|>answer")
        if tr.thinking_finish == "max":
            assert tr.answer.startswith("\nFinal Answer:")
            assert any(e.kind == "forced_end" and e.at == budget.max_thinking_tokens for e in tr.events)
        assert tr.answer_tokens <= budget.max_answer_tokens + 4
    if budget.num_ignore:
        assert all(tr.waits == 2 or tr.thinking_finish == "max" for tr in traces)
        assert any("Wait" in tr.thinking for tr in traces)
    if budget.min_thinking_tokens:
        assert any("Hmm" in tr.thinking for tr in traces)


def test_llama_cpp_prefix_reuse_gives_the_same_tokens(llama_engine):
    budget = Budget(max_thinking_tokens=40, num_ignore=1, max_answer_tokens=8)
    first = llama_engine.generate([Request(QUESTIONS[2])], budget)[0]
    llama_engine.generate([Request(QUESTIONS[3])], budget)            # cache now holds another prompt
    again = llama_engine.generate([Request(QUESTIONS[2])], budget)[0]
    assert same(first, again)
