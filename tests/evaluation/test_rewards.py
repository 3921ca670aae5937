"""Reward models as scorers: each PRM convention on a tiny random model saved and loaded through
`load_reward_model` (scores read at exactly the step marks, checked against the model's own
logits), sequence classifiers, the miniature world's checker, a user function, vLLM's pooling API
on the fake server, aggregation, FLOPs, and one clear error for a model that is not there."""

from __future__ import annotations

import pytest
import torch

from s1.errors import UserError
from s1.evaluation.metrics import estimate_flops
from s1.evaluation.rewards import (QWEN_STEP, SHEPHERD_TAG, _qwen_prm_class, aggregate,
                                   is_reward_spec, load_reward_model, split_steps)
from s1.generation.models import embedded_gguf
from s1.miniature.steps import check_steps
from tests.fakes.vllm_server import FakeVLLM

QUESTION = "Compute 7*3^3 mod 10."
CANDIDATES = [["7*3=21=1", "1*3=3", "3*3=9"], ["7*3=21=2", "2*3=6"], ["7*3=21=1"]]
SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
             intermediate_size=64, max_position_embeddings=512)


def _tokenizer():
    """The tiny model's character tokenizer with both conventions' marks: <extra_0> (special,
    as in Qwen2.5-Math-PRM) and the step tag "ки"; "+" and "-" are single characters."""
    from s1.training.scratch import char_tokenizer

    tok = char_tokenizer()
    tok.add_tokens([QWEN_STEP], special_tokens=True)
    tok.add_tokens([SHEPHERD_TAG])
    return tok


def _save(model, tok, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import (Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification,
                              Qwen2ForTokenClassification)

    tok, root = _tokenizer(), tmp_path_factory.mktemp("rewards")
    torch.manual_seed(0)
    config = lambda **kw: Qwen2Config(vocab_size=len(tok), pad_token_id=0, **SHAPE, **kw)  # noqa: E731
    return tok, {
        "qwen": (root / "qwen", _save(_qwen_prm_class()(
            config(architectures=["Qwen2ForProcessRewardModel"])), tok, root / "qwen")),
        "token": (root / "token", _save(Qwen2ForTokenClassification(config(num_labels=2)), tok,
                                        root / "token")),
        "shepherd": (root / "shepherd", _save(Qwen2ForCausalLM(config()), tok, root / "shepherd")),
        "orm1": (root / "orm1", _save(Qwen2ForSequenceClassification(config(num_labels=1)), tok,
                                      root / "orm1")),
        "orm2": (root / "orm2", _save(Qwen2ForSequenceClassification(config(num_labels=2)), tok,
                                      root / "orm2")),
    }


def _flops(model, lengths):
    return sum(estimate_flops(model.num_parameters(), n, 0, 2, 32) for n in lengths)


@pytest.mark.parametrize("kind", ["qwen", "token"])
def test_qwen_convention_reads_the_positive_class_at_each_extra_0(models, kind):
    _, found = models
    path, model = found[kind]
    rm = load_reward_model(f"prm:{path}")
    tok = rm.tokenizer     # as transformers loads it beside a qwen2 config (it drops spaces)
    assert rm.convention == "qwen" and rm.process
    scores = rm.score(QUESTION, CANDIDATES)
    mark = tok.convert_tokens_to_ids(QWEN_STEP)
    lengths = []
    for steps, got in zip(CANDIDATES, scores):
        # The model card's input: system, question, the steps each followed by <extra_0>.
        text = tok.apply_chat_template(
            [{"role": "system", "content": "Please reason step by step, and put your final "
              "answer within \\boxed{}."}, {"role": "user", "content": QUESTION},
             {"role": "assistant", "content": "".join(s + QWEN_STEP for s in steps)}],
            tokenize=False)
        ids = tok.encode(text)
        lengths.append(len(ids))
        at = [i for i, t in enumerate(ids) if t == mark]
        assert [tok.decode(ids[i - len(s):i]) for i, s in zip(at, steps)] == steps
        with torch.no_grad():
            logits = model(torch.tensor([ids]))[0][0]
        p = torch.softmax(logits, -1)[:, 1]
        assert got == pytest.approx([float(p[i]) for i in at], abs=1e-5)
        # one position off would read another token's probability, which differs here
        assert all(abs(float(p[i - 1]) - float(p[i])) > 1e-6 for i in at)
    assert rm.tokens == sum(lengths)
    assert rm.flops == pytest.approx(_flops(model, lengths))


def test_shepherd_convention_reads_p_plus_at_each_tag(models):
    _, found = models
    path, model = found["shepherd"]
    rm = load_reward_model(f"prm:{path}")
    tok = rm.tokenizer
    assert rm.convention == "shepherd"
    scores = rm.score(QUESTION, CANDIDATES)
    tag, plus, minus = (tok.convert_tokens_to_ids(t) for t in (SHEPHERD_TAG, "+", "-"))
    for steps, got in zip(CANDIDATES, scores):
        ids = tok.encode(f"{QUESTION} " + "\n".join(f"{s} {SHEPHERD_TAG}" for s in steps))
        at = [i for i, t in enumerate(ids) if t == tag]
        assert len(at) == len(steps)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        want = torch.softmax(logits[at][:, [plus, minus]], -1)[:, 0]
        assert got == pytest.approx(want.tolist(), abs=1e-5)
    # forcing the convention reads the same model the same way
    assert load_reward_model(f"prm-shepherd:{path}").score(QUESTION, CANDIDATES) == scores


def test_outcome_models_give_one_score(models):
    _, found = models
    for kind in ("orm1", "orm2"):
        path, model = found[kind]
        rm = load_reward_model(f"orm:{path}")
        tok = rm.tokenizer
        assert not rm.process
        [[got]] = rm.score(QUESTION, CANDIDATES[:1])
        ids = tok.encode(rm.text(QUESTION, CANDIDATES[0]))
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        assert got == pytest.approx(float(logits[0]) if kind == "orm1"
                                    else float(torch.softmax(logits, -1)[1]), abs=1e-5)
        assert rm.flops == pytest.approx(_flops(model, [len(ids)]))


def test_aggregation_of_step_scores():
    steps = [0.9, 0.2, 0.5]
    assert [aggregate(steps, h) for h in ("min", "last", "prod", "mean")] == pytest.approx(
        [0.2, 0.5, 0.09, 1.6 / 3])
    with pytest.raises(UserError, match="unknown aggregation"):
        aggregate(steps, "max")


def test_programmatic_and_function_reward_models():
    rm = load_reward_model("programmatic")
    assert rm.score(QUESTION, CANDIDATES) == [[1.0, 1.0, 1.0], [0.0, 0.0], [1.0]]
    assert rm.flops == 0 and rm.tokens == 3 * len(QUESTION) + sum(
        len(s) for c in CANDIDATES for s in c)
    fn = load_reward_model("s1.miniature.steps:check_steps")   # (question, steps) -> per step
    assert fn.score(QUESTION, CANDIDATES) == rm.score(QUESTION, CANDIDATES)
    assert is_reward_spec("s1.miniature.steps:check_steps") and is_reward_spec("programmatic")
    # best-of-N's whole-sample scorers stay what they were
    assert not is_reward_spec("oracle") and not is_reward_spec("s1.evaluation.methods:_oracle")
    assert split_steps("a\n\nb\n\n\n\nc\n\n", "\n\n") == ["a", "b", "c"]
    assert split_steps("1+2=3\n3+4=7\n", "\n") == ["1+2=3", "3+4=7"]


@pytest.mark.parametrize("spec, message", [
    ("prm:/nowhere/prm", "unknown model"),
    ("prm:nobody/no-such-prm", "cannot load model"),
    ("orm:", "give the reward model"),
    ("served:localhost:8000", "served:http"),
    ("no.such.module:score", "cannot load scorer"),
    ("nothing", "unknown reward model"),
])
def test_a_missing_model_is_one_clear_error(spec, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=message):
        load_reward_model(spec)


def test_served_reward_model_speaks_vllms_pooling_api():
    server = FakeVLLM(str(embedded_gguf()), served_name="Qwen/Qwen2.5-Math-PRM-7B",
                      reward=check_steps)
    url = server.start()
    try:
        rm = load_reward_model(f"served:{url}")          # the model named by /v1/models
        assert rm.score(QUESTION, CANDIDATES) == [[1.0, 1.0, 1.0], [0.0, 0.0], [1.0]]
        assert rm.process and rm.tokens > 3 * len(QUESTION) // 4
        body = server.bodies[-1]
        assert body["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant"]
        assert body["messages"][2]["content"] == "7*3=21=1" + QWEN_STEP
        with pytest.raises(UserError, match="404"):
            load_reward_model(f"served:{url}/v1#other-model").score(QUESTION, CANDIDATES)
    finally:
        server.stop()
    with pytest.raises(UserError, match="cannot reach"):
        load_reward_model(f"served:{url}#m").score(QUESTION, CANDIDATES)
