"""The in-process engines on the real embedded model."""

import pytest
import torch

from s1.errors import UserError
from s1.generation.budget import Budget, LoopGuard, Sampling
from s1.generation.engines import Request, load_engine
from s1.generation.engines.hf import HFEngine
from s1.generation.engines.llamacpp import LlamaCppEngine
from s1.generation.formats import FORMATS, ThinkingFormat

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


# --- harness-exact forcing: banned ids, suppress mode, whole delimiters, context, seeds --------

MIN_QUESTIONS = ["Name a prime number larger than 10.", "Is 91 prime?", "What is 7*8?"]


def gaps_after_waits(engine, trace):
    """Model tokens between each ignore string and the next end attempt."""
    wait = len(engine.tokenizer.encode("Wait"))
    ats = [e.at for e in trace.events if e.kind == "wait"]
    return [b - a - wait for a, b in zip(ats, ats[1:])]


@pytest.mark.parametrize("which", ["llama", "hf"])
def test_the_model_cannot_end_right_after_a_wait(which, request):
    """The harness's min_tokens=1 per round: after each "Wait" at least one token of the model's
    own comes before the next end, so no "WaitWaitWait" runs."""
    engine = request.getfixturevalue(f"{which}_engine")
    budget = Budget(max_thinking_tokens=60, min_thinking_tokens=50, max_answer_tokens=2)
    traces = engine.generate([Request(q) for q in MIN_QUESTIONS], budget)
    assert sum(t.waits for t in traces) >= 2                  # the minimum was really enforced
    for tr in traces:
        assert all(g >= 1 for g in gaps_after_waits(engine, tr)), tr.events
        assert "WaitWait" not in tr.thinking
        assert tr.thinking_tokens >= 50


@pytest.mark.parametrize("which", ["llama", "hf"])
def test_suppress_mode_holds_the_minimum_without_waits(which, request):
    engine = request.getfixturevalue(f"{which}_engine")
    budget = Budget(max_thinking_tokens=40, min_thinking_tokens=30, min_mode="suppress",
                    max_answer_tokens=2)
    for tr in engine.generate([Request(q) for q in MIN_QUESTIONS[:2]], budget):
        assert tr.thinking_tokens >= 30 and tr.waits == 0 and "Wait" not in tr.thinking


def test_sampled_rows_obey_the_ban_too(hf_engine, llama_engine):
    budget = Budget(max_thinking_tokens=40, min_thinking_tokens=30, max_answer_tokens=2,
                    sampling=Sampling(temperature=1.0, top_p=0.95))
    for engine in (hf_engine, llama_engine):
        traces = engine.generate([Request(q, seed=s) for s, q in enumerate(MIN_QUESTIONS)], budget)
        for tr in traces:
            assert all(g >= 1 for g in gaps_after_waits(engine, tr)), tr.events


# A delimiter the embedded model writes within a few tokens ("er\n\nIn mathematics, ..."):
# two ordinary tokens, so it must be matched whole, and ignoring it takes one token back.
EARLY_END = ThinkingFormat("early", "<|im_start|>think", "In mathematics", "\nFinal Answer:")


@pytest.mark.parametrize("which", ["llama", "hf"])
def test_think_tags_on_smollm2_match_the_whole_delimiter(which, request):
    engine = request.getfixturevalue(f"{which}_engine")
    ids = engine.format_ids(Budget(), FORMATS["think-tags"])
    assert ids.whole and len(ids.end) == 3                    # "</" "think" ">"
    enc = engine.tokenizer.encode
    assert ids.completes_end(enc("x </b"), enc(">")[0]) == 0
    assert ids.completes_end(enc("x </think"), enc(">")[0]) == 3
    assert not engine.format_ids(Budget()).whole              # s1: "<|im_start|>" is special


def test_hf_ignored_whole_delimiter_is_taken_back_from_the_cache(hf_engine):
    budget = Budget(max_thinking_tokens=24, num_ignore=1, max_answer_tokens=2)
    tr = hf_engine.generate([Request("What is 2+2?", fmt=EARLY_END)], budget)[0]
    assert [e.kind for e in tr.events][:1] == ["wait"]
    at = tr.events[0].at
    assert "In mathematics" not in tr.thinking[: len(hf_engine.tokenizer.decode(tr.thinking_ids[:at + 1]))]
    # Teacher-forced from scratch (no cache): the tokens after the Wait are the model's greedy
    # choices given exactly prompt + thinking, so the taken-back "In" left no trace in the cache.
    ids = torch.tensor([hf_engine.tokenizer.encode(tr.prompt) + tr.thinking_ids])
    with torch.inference_mode():
        pred = hf_engine.model(ids).logits[0].argmax(-1).tolist()
    start = tr.prompt_tokens + at + len(hf_engine.tokenizer.encode("Wait"))
    free = [i for i in range(start, tr.prompt_tokens + len(tr.thinking_ids))][:6]
    assert free and all(pred[i - 1] == ids[0, i].item() for i in free)


def test_llama_cpp_ignored_whole_delimiter_is_taken_back_from_the_cache(llama_engine):
    budget = Budget(max_thinking_tokens=24, num_ignore=1, max_answer_tokens=2)
    tr = llama_engine.generate([Request("What is 2+2?", fmt=EARLY_END)], budget)[0]
    assert tr.events and tr.events[0].kind == "wait"
    import llama_cpp

    seq = llama_engine.kept[-1]               # the finished sequence, kept as a prefix cache
    cached = seq.tokens[: seq.fed]
    whole = llama_engine.tokenizer.encode(tr.prompt) + tr.thinking_ids + \
        llama_engine.tokenizer.encode(tr.end) + tr.answer_ids
    # The cache holds exactly the sequence the trace tells (the last token need not be fed),
    # and llama.cpp's KV sequence ends where it does: the taken-back tokens are gone.
    assert cached == whole[: len(cached)] and len(cached) >= len(whole) - 1
    assert llama_cpp.llama_memory_seq_pos_max(llama_engine.pool.ctx.memory, seq.seq) == seq.fed - 1


def test_auto_cap_is_stored_in_each_trace_and_follows_the_context(llama_engine):
    assert llama_engine.context_length == 8192                # min(SmolLM2's 8192, 32768)
    tr = llama_engine.generate([Request("Hi")], Budget(max_thinking_tokens="auto",
                                                       max_answer_tokens=1,
                                                       loop=LoopGuard("stop")))[0]
    assert tr.context_length == 8192
    assert tr.max_thinking_tokens == 8192 - tr.prompt_tokens - 100 - len(
        llama_engine.tokenizer.encode("\n<|im_start|>answer\nFinal Answer:"))
    small = load_engine(engine="llama.cpp", context_length=512)
    try:
        assert small.context_length == 512 and small.llm.n_ctx() == 512
        tr = small.generate([Request("Hi")], Budget(max_thinking_tokens="auto",
                                                    max_answer_tokens=1))[0]
        assert tr.max_thinking_tokens < 512 and tr.context_length == 512
    finally:
        small.close()
    with pytest.raises(UserError, match="trained context"):
        load_engine(engine="llama.cpp", context_length=100_000)


def test_negative_seeds_map_onto_64_bits_alike_in_both_engines(llama_engine, hf_engine):
    budget = Budget(max_thinking_tokens=12, max_answer_tokens=2,
                    sampling=Sampling(temperature=1.0))
    for engine in (llama_engine, hf_engine):
        a, b = engine.generate([Request("Is 91 prime?", seed=-1),
                                Request("Is 91 prime?", seed=2**64 - 1)], budget)
        assert a.thinking_ids == b.thinking_ids
    with pytest.raises(UserError, match="out of range"):
        llama_engine.generate([Request("x", seed=2**64)], budget)


def test_generation_config_eos_ids_are_stop_ids(hf_engine):
    eos = hf_engine.model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    assert set(eos) <= set(hf_engine.tokenizer.eos_ids)
    hf_engine.tokenizer.add_eos([7, None, -1])
    try:
        assert 7 in hf_engine.tokenizer.eos_ids and -1 not in hf_engine.tokenizer.eos_ids
    finally:
        hf_engine.tokenizer.eos_ids.remove(7)
