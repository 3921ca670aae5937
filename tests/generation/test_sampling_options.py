"""min_p and presence_penalty (the R1-style sampling knobs) on the real engines: honoured by the
in-process engines, refused by the remote engine where a server cannot do the same."""

import pytest
import torch

from s1.errors import UserError
from s1.generation.budget import Budget, Sampling
from s1.generation.engines import Request, load_engine

QUESTION = "How many times does the letter r appear in the word raspberry? Think carefully."


def test_sampling_fields_are_checked_and_written_only_when_used():
    assert "min_p" not in Budget().to_dict() and "presence_penalty" not in Budget().to_dict()
    b = Budget().with_(min_p=0.05, presence_penalty=1.5, temperature=0.6)
    d = b.to_dict()
    assert d["min_p"] == 0.05 and d["presence_penalty"] == 1.5
    assert Budget.from_dict(d) == b
    for bad in ({"min_p": 1.0}, {"min_p": -0.1}, {"presence_penalty": 2.5}):
        with pytest.raises(UserError):
            Sampling(**bad)


@pytest.fixture(scope="module")
def hf_engine():
    return load_engine(engine="transformers", batch_size=2)


@pytest.fixture(scope="module")
def llama_engine():
    return load_engine(engine="llama.cpp")


class _Presence:
    """The reference: transformers' own decode loop with the penalty as a logits processor."""

    def __init__(self, prompt_len: int, penalty: float):
        self.prompt_len, self.penalty = prompt_len, penalty

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(input_ids):
            seen = sorted(set(ids[self.prompt_len:].tolist()))
            if seen:
                scores[row, seen] -= self.penalty
        return scores


@pytest.mark.slow
def test_hf_presence_penalty_matches_a_reference_decode(hf_engine):
    from transformers import LogitsProcessorList

    budget = Budget(max_thinking_tokens=32, max_answer_tokens=1,
                    sampling=Sampling(presence_penalty=1.5))
    tr = hf_engine.generate([Request(QUESTION)], budget)[0]
    plain = hf_engine.generate([Request(QUESTION)], budget.with_(presence_penalty=0.0))[0]
    ids = torch.tensor([hf_engine.tokenizer.encode(tr.prompt)])
    out = hf_engine.model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False,
        logits_processor=LogitsProcessorList([_Presence(ids.shape[1], 1.5)]))[0, ids.shape[1]:]
    forced_at = tr.events[0].at if tr.events else len(tr.thinking_ids)
    n = min(forced_at, 32)
    assert n > 8 and tr.thinking_ids[:n] == out.tolist()[:n]
    assert tr.thinking_ids != plain.thinking_ids          # the penalty changed the decode


@pytest.mark.slow
@pytest.mark.parametrize("which", ["hf", "llama.cpp"])
def test_min_p_near_one_leaves_only_the_likeliest_token(which, request):
    engine = request.getfixturevalue("hf_engine" if which == "hf" else "llama_engine")
    # (On the raspberry question two tokens tie within 0.04% at step 8: min_p rightly keeps both.)
    q = "What is 7*8?"
    greedy = Budget(max_thinking_tokens=24, max_answer_tokens=4)
    hot = greedy.with_(temperature=1.5, min_p=0.9999)
    g = engine.generate([Request(q)], greedy)[0]
    seeds = [engine.generate([Request(q, seed=s)], hot)[0] for s in (1, 2)]
    assert all(t.thinking_ids == g.thinking_ids for t in seeds)
    # without min_p, the same temperature wanders off the greedy path
    wild = [engine.generate([Request(q, seed=s)], hot.with_(min_p=0.0))[0]
            for s in (1, 2)]
    assert any(t.thinking_ids != g.thinking_ids for t in wild)


@pytest.mark.slow
def test_llama_cpp_presence_penalty_is_applied_to_every_generated_token(llama_engine):
    e = llama_engine
    budget = Budget(max_thinking_tokens=24, max_answer_tokens=1,
                    sampling=Sampling(presence_penalty=2.0))
    req = Request(QUESTION).resolve(budget)
    _, ids, forcer = e.prepare(req)
    e.llm.reset()
    e.llm.eval(ids)
    for _ in range(12):        # each proposal is the argmax of the penalized logits
        logits = e._logits().astype("float64").copy()
        seen = sorted({*forcer.thinking_ids})
        logits[seen] -= 2.0
        proposal = e.propose(e._logits(), budget.sampling, None, forcer)
        assert proposal == int(logits.argmax())
        token = forcer.step(proposal)
        if token is None or forcer.due():       # the model ended its thinking
            break
        e.llm.eval([token])
    assert len(set(forcer.thinking_ids)) > 3
    tr = e.generate([Request(QUESTION)], budget)[0]
    plain = e.generate([Request(QUESTION)], budget.with_(presence_penalty=0.0))[0]
    assert tr.thinking_ids != plain.thinking_ids


@pytest.mark.slow
def test_remote_engine_refuses_what_the_server_cannot_honour(llama_server):
    engine = load_engine(server=llama_server)
    try:
        for sampling, what in ((Sampling(presence_penalty=0.5), "presence_penalty"),
                               (Sampling(temperature=0.6, min_p=0.05), "min_p")):
            with pytest.raises(UserError, match=what):
                engine.generate([Request(QUESTION)], Budget(max_thinking_tokens=4,
                                                            max_answer_tokens=2,
                                                            sampling=sampling))
    finally:
        engine.close()
