"""The Forcer on scripted token streams: budget semantics, token-exact, no model needed."""

import pytest

from s1.errors import UserError
from s1.generation.budget import Budget, LoopGuard, Sampling
from s1.generation.forcer import FormatIds, Forcer, Phase

# A tiny vocabulary: the ids a tokenizer would give the s1 format's strings.
START, ANSWER_WORD, NL, EOS, WAIT, HMM, FINAL = 1, 2, 3, 4, 5, 6, 7
TEXT = {START: "<|im_start|>", ANSWER_WORD: "answer", NL: "\n", EOS: "<|im_end|>", WAIT: "Wait",
        HMM: "Hmm", FINAL: "Final Answer:"}
WORD = 100  # ids >= 100 are ordinary words "w100", "w101", ...


def decode(ids):
    return "".join(TEXT.get(i, f" w{i}") for i in ids)


def make(budget: Budget, max_thinking=None, ignore=((WAIT,),)) -> Forcer:
    ids = FormatIds(end=(START, ANSWER_WORD), suffix=(NL, FINAL), newline=(NL,), ignore=ignore,
                    eos=frozenset({EOS}), decode=decode)
    return Forcer(budget, ids, max_thinking)


def drive(forcer: Forcer, script: list[int], fill=None) -> list[int]:
    """Feed proposals from the script (then `fill` forever); return the emitted stream.

    While a forced token is due the model's proposal is not consulted, so none is consumed.
    """
    out, i = [], 0
    for _ in range(10_000):
        if forcer.done:
            break
        if forcer.due():
            tok = forcer.step(None)
        else:
            proposal = script[i] if i < len(script) else fill
            i += 1
            tok = forcer.step(proposal)
        if tok is not None:
            out.append(tok)
    return out


def test_plain_thinking_then_answer():
    f = make(Budget(max_thinking_tokens=None, max_answer_tokens=10))
    out = drive(f, [100, 101, START, 200, 201, EOS])
    assert out == [100, 101, START, ANSWER_WORD, 200, 201]
    assert f.thinking_ids == [100, 101] and f.answer_ids == [200, 201]
    assert f.thinking_finish == "end" and f.finish_reason == "stop" and f.events == []


def test_max_forces_end_and_final_answer_exactly_at_the_limit():
    f = make(Budget(max_thinking_tokens=5, max_answer_tokens=10), max_thinking=5)
    out = drive(f, [100, 101, 102, 103, 104, 105, 106, 300, EOS])
    # Thinking stops at 5 tokens; the 6th proposal is replaced by "\n<|im_start|>answer\nFinal Answer:".
    assert f.thinking_ids == [100, 101, 102, 103, 104]
    assert out[5:9] == [NL, START, ANSWER_WORD, NL]
    assert f.thinking_finish == "max"
    assert [(e.kind, e.at) for e in f.events] == [("forced_end", 5)]
    assert f.answer_ids[:2] == [NL, FINAL]


def test_forced_end_adds_no_newline_after_one():
    f = make(Budget(max_thinking_tokens=2), max_thinking=2)
    drive(f, [100, NL, 300, EOS])
    assert f.delimiter_ids == [START, ANSWER_WORD]


def test_zero_budget_ends_immediately():
    f = make(Budget(max_thinking_tokens=0), max_thinking=0)
    assert f.due()
    drive(f, [100, 300, EOS])
    assert f.thinking_ids == [] and f.thinking_finish == "max"


def test_min_suppresses_end_and_eos_with_wait():
    f = make(Budget(max_thinking_tokens=None, min_thinking_tokens=6), max_thinking=None)
    out = drive(f, [100, START, 101, EOS, 102, 103, START, 300, EOS])
    # Both early attempts (delimiter at 1, EOS at 3) became "Wait"; at 6 tokens the end is allowed.
    assert f.thinking_ids == [100, WAIT, 101, WAIT, 102, 103]
    assert [(e.kind, e.at, e.detail) for e in f.events] == [("wait", 1, "min"), ("wait", 3, "min")]
    assert out[6:8] == [START, ANSWER_WORD] and f.thinking_finish == "end"


def test_num_ignore_counts_ends_and_cycles_ignore_strings():
    f = make(Budget(max_thinking_tokens=None, num_ignore=3, ignore_strings=("Hmm", "Wait")),
             ignore=((HMM,), (WAIT,)))
    drive(f, [100, START, 101, START, 102, EOS, 103, START, 300, EOS])
    assert f.thinking_ids == [100, HMM, 101, WAIT, 102, HMM, 103]
    assert [e.detail for e in f.events] == ["num_ignore"] * 3
    assert f.thinking_finish == "end"


def test_multi_token_ignore_string_counts_every_token_and_respects_max():
    f = make(Budget(max_thinking_tokens=4, num_ignore=5), max_thinking=4, ignore=((WAIT, 150),))
    drive(f, [100, START, START, 300, EOS], fill=EOS)
    # 1 + 2 (Wait, ",") = 3 tokens; a second ignore would need 5 > 4, so the model's end stands.
    assert f.thinking_ids == [100, WAIT, 150]
    assert f.thinking_finish == "end" and len(f.events) == 1


def test_thinking_never_exceeds_max_with_waits():
    for mx in range(0, 12):
        f = make(Budget(max_thinking_tokens=mx, num_ignore=50), max_thinking=mx)
        drive(f, [100, START] * 20, fill=EOS)
        assert len(f.thinking_ids) <= mx


def test_eos_in_thinking_closes_with_the_delimiter():
    f = make(Budget(max_thinking_tokens=None))
    out = drive(f, [100, EOS, 300, EOS])
    assert out[:3] == [100, START, ANSWER_WORD]
    assert f.answer_ids == [300] and f.thinking_finish == "end"


def test_answer_budget_and_length_finish():
    f = make(Budget(max_thinking_tokens=None, max_answer_tokens=3))
    drive(f, [START], fill=300)
    assert f.answer_ids == [300, 300, 300] and f.finish_reason == "length"
    assert f.phase is Phase.DONE


def test_empty_answer_is_nudged_once_unless_disabled():
    f = make(Budget(max_thinking_tokens=None))
    drive(f, [100, START, NL, EOS, 300, EOS])
    assert f.answer_ids == [NL, NL, FINAL, 300]
    assert [e.kind for e in f.events] == ["answer_forced"]
    g = make(Budget(max_thinking_tokens=None, require_answer=False))
    drive(g, [100, START, NL, EOS])
    assert g.answer_ids == [NL] and g.events == []


def test_loop_guard_records_or_stops():
    loop = [100, 101, 102] * 10
    rec = make(Budget(max_thinking_tokens=None, loop=LoopGuard("record", 3, 3)))
    drive(rec, loop + [START, EOS], fill=EOS)
    assert [e.kind for e in rec.events] == ["loop", "answer_forced"]
    assert rec.thinking_finish == "end"
    stop = make(Budget(max_thinking_tokens=None, loop=LoopGuard("stop", 3, 3),
                       num_ignore=5))
    drive(stop, loop + [START, EOS], fill=EOS)
    assert stop.thinking_finish == "loop"
    assert len(stop.thinking_ids) == 3 * 2 + 3      # stopped at the 3rd occurrence
    assert [e.kind for e in stop.events] == ["loop", "forced_end"]
    off = make(Budget(max_thinking_tokens=None, loop=LoopGuard("off", 3, 3)))
    drive(off, loop + [START, EOS], fill=EOS)
    assert [e.kind for e in off.events] == ["answer_forced"]


def test_step_none_only_when_due():
    f = make(Budget(max_thinking_tokens=None))
    with pytest.raises(ValueError):
        f.step(None)


@pytest.mark.parametrize("kwargs, words", [
    ({"min_thinking_tokens": 10, "max_thinking_tokens": 5}, "exceed"),
    ({"max_thinking_tokens": -1}, "negative"),
    ({"max_thinking_tokens": "lots"}, "integer"),
    ({"min_thinking_tokens": -2}, "negative"),
    ({"num_ignore": -1}, "negative"),
    ({"max_answer_tokens": 0}, "at least 1"),
    ({"num_ignore": 1, "ignore_strings": ()}, "ignore string"),
    ({"temperature": -0.5}, "negative"),
    ({"top_p": 0}, "top_p"),
    ({"loop_guard": "maybe"}, "loop guard"),
])
def test_invalid_budgets_fail_at_construction(kwargs, words):
    with pytest.raises(UserError, match=words):
        Budget.from_dict(kwargs)     # the flat form: sampling and loop-guard fields nest


def test_budget_nests_sampling_and_loop_guard_and_keeps_the_flat_schema():
    b = Budget(max_thinking_tokens=8, sampling=Sampling(temperature=0.7, seed=3),
               loop=LoopGuard("stop", 5, 2))
    d = b.to_dict()
    assert d["temperature"] == 0.7 and d["seed"] == 3 and d["loop_guard"] == "stop"
    assert "top_k" not in d and "sampling" not in d        # the schema runs were written with
    assert Budget.from_dict(d) == b
    assert b.with_(seed=9, top_k=4).sampling == Sampling(temperature=0.7, top_k=4, seed=9)
    assert Budget.from_dict(b.with_(top_k=4).to_dict()).sampling.top_k == 4


def test_auto_budget_fills_the_context():
    b = Budget(max_thinking_tokens="auto", answer_reserve=100)
    assert b.resolve_max_thinking(prompt_tokens=500, context_length=4096, forced_end_tokens=6) == 3490
    assert Budget(max_thinking_tokens=64).resolve_max_thinking(500, 4096) == 64
    with pytest.raises(UserError, match="no room"):
        b.resolve_max_thinking(prompt_tokens=4090, context_length=4096)


def test_loop_stop_found_inside_an_ignore_string_ends_after_it():
    f = make(Budget(max_thinking_tokens=None, loop=LoopGuard("stop", 2, 2),
                    num_ignore=3), ignore=((WAIT, 150, 151),))
    drive(f, [WAIT, 150, START], fill=EOS)
    # The loop (WAIT 150 twice) shows mid-"Wait": the ignore string finishes, then thinking ends.
    assert f.thinking_ids == [WAIT, 150, WAIT, 150, 151]
    assert f.thinking_finish == "loop"
    assert [e.kind for e in f.events] == ["wait", "loop", "forced_end"]
