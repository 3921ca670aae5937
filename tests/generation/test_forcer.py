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


# --- banned ids: the harness's min_tokens=1 after each "Wait", and min_mode="suppress" ------------

def drive_masked(forcer: Forcer, model) -> list[int]:
    """Drive like an engine that masks `banned()`: `model(banned)` proposes the next token."""
    out = []
    for _ in range(10_000):
        if forcer.done:
            break
        tok = forcer.step(None if forcer.due() else model(forcer.banned()))
        if tok is not None:
            out.append(tok)
    return out


def eager_to_end(then: int = 100):
    """A model that always wants to stop thinking; when it may not, it says `then`."""
    def model(banned):
        return then if EOS in banned else START
    return model


def test_end_and_eos_are_banned_for_one_token_right_after_a_wait():
    f = make(Budget(max_thinking_tokens=None, min_thinking_tokens=6))
    seen = []

    def model(banned):
        seen.append(banned)
        return eager_to_end()(banned)
    drive_masked(f, model)
    # Without the ban the model would end again at once ("WaitWaitWait..."); with it, every
    # "Wait" is followed by one of its own tokens before the next end attempt.
    assert f.thinking_ids == [WAIT, 100, WAIT, 100, WAIT, 100]
    assert seen[:4] == [frozenset(), frozenset({START, EOS}), frozenset(), frozenset({START, EOS})]
    assert f.thinking_finish == "end" and len(f.events) == 3


def test_the_ban_lasts_one_proposal_and_waits_for_a_multi_token_ignore_string():
    f = make(Budget(max_thinking_tokens=None, num_ignore=1), ignore=((WAIT, 150),))
    assert f.step(START) == WAIT
    assert f.banned() == frozenset()        # ", " of the ignore string is still due
    assert f.step(None) == 150
    assert f.banned() == {START, EOS}
    assert f.step(101) == 101
    assert f.banned() == frozenset()


def test_suppress_mode_bans_the_end_through_the_minimum_and_appends_nothing():
    f = make(Budget(max_thinking_tokens=None, min_thinking_tokens=4, min_mode="suppress"))
    bans = []

    def model(banned):
        bans.append(bool(banned))
        return eager_to_end()(banned)
    drive_masked(f, model)
    assert f.thinking_ids == [100, 100, 100, 100] and f.events == []
    assert bans[:5] == [True, True, True, True, False]
    assert f.thinking_finish == "end"


def test_suppress_mode_falls_back_to_a_wait_when_the_engine_cannot_mask():
    f = make(Budget(max_thinking_tokens=None, min_thinking_tokens=3, min_mode="suppress"))
    drive(f, [100, START, 101, 102, START, 300, EOS])
    assert f.thinking_ids == [100, WAIT, 101, 102]
    assert [(e.kind, e.detail) for e in f.events] == [("wait", "min")]


def test_suppress_mode_needs_no_ignore_string_and_is_written_only_when_used():
    b = Budget(min_thinking_tokens=5, min_mode="suppress", ignore_strings=())
    assert Budget.from_dict(b.to_dict()) == b and b.to_dict()["min_mode"] == "suppress"
    assert "min_mode" not in Budget().to_dict() and "loop_window" not in Budget().to_dict()
    with pytest.raises(UserError, match="min mode"):
        Budget(min_mode="never")


def test_nothing_is_banned_in_the_answer():
    f = make(Budget(max_thinking_tokens=None, min_thinking_tokens=1, num_ignore=1))
    for t in [START, 100, START, 101, START, None]:
        f.step(t)
    assert f.thinking_ids == [WAIT, 100, WAIT, 101]
    assert f.phase is Phase.ANSWER and f.banned() == frozenset()


# --- a multi-token delimiter is matched whole ---------------------------------------------------

LT, SLASH_THINK, GT, LTS, LTSB = 20, 21, 22, 23, 24     # "<", "/think", ">", "</", "</b"
TAGS = {**TEXT, LT: "<", SLASH_THINK: "/think", GT: ">", LTS: "</", LTSB: "</b", 25: "think",
        26: "b>", 27: "</think>\n", 28: ".</"}


def tags_decode(ids):
    return "".join(TAGS.get(i, f" w{i}") for i in ids)


def make_tags(budget: Budget, max_thinking=None) -> Forcer:
    ids = FormatIds(end=(LTS, 25, GT), suffix=(NL, FINAL), newline=(NL,), ignore=((WAIT,),),
                    eos=frozenset({EOS}), decode=tags_decode, end_text="</think>", whole=True)
    return Forcer(budget, ids, max_thinking)


def test_an_html_tag_starting_like_the_delimiter_does_not_end_thinking():
    f = make_tags(Budget(max_thinking_tokens=None))
    drive(f, [100, LTS, 26, 101, LTSB, GT, 102, LTS, 25, GT, 300, EOS])
    assert f.thinking_ids == [100, LTS, 26, 101, LTSB, GT, 102]
    assert f.delimiter_ids == [LTS, 25, GT] and f.answer_ids == [300]
    assert f.thinking_finish == "end" and f.take_rewind() == 0


@pytest.mark.parametrize("spelling", [[LTS, 25, GT], [LT, SLASH_THINK, GT], [27], [28, 25, GT]],
                         ids=["canonical", "other-split", "one-token", "starts-mid-token"])
def test_the_delimiter_is_found_in_any_tokenization(spelling):
    f = make_tags(Budget(max_thinking_tokens=None))
    drive(f, [100, *spelling, 300, EOS])
    assert f.thinking_ids == [100] and f.delimiter_ids == spelling
    assert f.phase is Phase.DONE and f.answer_ids == [300]


def test_an_ignored_multi_token_delimiter_is_taken_back_and_replaced_by_wait():
    f = make_tags(Budget(max_thinking_tokens=None, num_ignore=1))
    emitted, rewinds = [], []
    for proposal in [100, LT, SLASH_THINK, GT]:
        emitted.append(f.step(proposal))
        rewinds.append(f.take_rewind())
    assert emitted == [100, LT, SLASH_THINK, WAIT]
    assert rewinds == [0, 0, 0, 2]      # the engine drops "<" "/think" from its cache, feeds "Wait"
    assert f.thinking_ids == [100, WAIT]
    assert [(e.kind, e.at) for e in f.events] == [("wait", 1)]
    assert f.banned() == {LTS, EOS}
    drive(f, [101, LTS, 25, GT, 300, EOS])
    assert f.thinking_ids == [100, WAIT, 101] and f.thinking_finish == "end"


def test_a_special_first_token_ends_thinking_alone_as_the_harness_stops_on_it():
    ids = FormatIds.build(__import__("s1.generation.formats", fromlist=["FORMATS"]).FORMATS["s1"],
                          encode=lambda s: {"<|im_start|>answer": [START, ANSWER_WORD],
                                            "\nFinal Answer:": [NL, FINAL], "\n": [NL],
                                            "Wait": [WAIT]}[s],
                          decode=decode, eos=[EOS], ignore_strings=["Wait"], special=[START, EOS])
    assert not ids.whole
    assert FormatIds.build(__import__("s1.generation.formats", fromlist=["FORMATS"]).FORMATS["s1"],
                           encode=lambda s: {"<|im_start|>answer": [START, ANSWER_WORD]}.get(s, [NL]),
                           decode=decode, eos=[EOS], ignore_strings=[]).whole


# --- the loop guard: back-to-back repetition only -------------------------------------------------

def test_scattered_repeats_of_a_long_formula_are_not_a_loop():
    formula = list(range(500, 516))                   # a 16-token formula, used 6 times
    script = []
    for i in range(6):
        script += formula + [600 + i, 601 + i, 602 + i]
    f = make(Budget(max_thinking_tokens=None, loop=LoopGuard("stop", 16, 4)))
    drive(f, script + [START, EOS], fill=EOS)
    assert [e.kind for e in f.events if e.kind == "loop"] == []


@pytest.mark.parametrize("period", [1, 5, 16, 40])
def test_back_to_back_repetition_of_any_period_is_a_loop(period):
    block = list(range(700, 700 + period))
    f = make(Budget(max_thinking_tokens=None, loop=LoopGuard("stop", 16, 4)))
    drive(f, [100, 101] + block * 200, fill=EOS)
    loop = [e for e in f.events if e.kind == "loop"]
    assert loop and f.thinking_finish == "loop"
    # Found as soon as 4 copies of some block of ≥ 16 tokens stand back to back.
    size = period * -(-16 // period)
    assert loop[0].at == 2 + 4 * size


def test_loop_guard_window_must_hold_the_copies():
    with pytest.raises(UserError, match="window"):
        LoopGuard("record", 16, 4, window=32)


def test_a_remote_segment_stops_on_the_trigger_only_when_it_alone_ends_thinking():
    assert make(Budget()).ids.stop_ids == [START, EOS]
    assert make_tags(Budget()).ids.stop_ids == [EOS]


# --- step-wise generation: a prefix continued, a pause at the end of a step ---------------------


def make_step(budget: Budget, max_thinking=None, prefix=(), step_end="\n") -> Forcer:
    ids = FormatIds(end=(START, ANSWER_WORD), suffix=(NL, FINAL), newline=(NL,),
                    ignore=((WAIT,),), eos=frozenset({EOS}), decode=decode)
    return Forcer(budget, ids, max_thinking, prefix, step_end)


def test_a_step_ends_at_the_delimiter_after_some_text():
    f = make_step(Budget(), prefix=[100, NL])
    # a leading newline is no step; text then a newline is one
    out = drive(f, [NL, 101, 102, NL, 103])
    assert out == [NL, 101, 102, NL]
    assert f.done and f.finish_reason == "step" and f.thinking_finish == "step"
    assert f.thinking_ids == [100, NL, NL, 101, 102, NL] and f.prefix_tokens == 2
    assert f.new_thinking() == "\n w101 w102\n"


def test_the_prefix_counts_toward_the_thinking_cap():
    f = make_step(Budget(max_answer_tokens=2), max_thinking=5, prefix=[100, 101, NL, 102])
    out = drive(f, [103, 104, 105], fill=106)
    # one more thinking token fits, then the forced end and the answer
    assert out[:1] == [103] and f.thinking_tokens == 5 and f.thinking_finish == "max"
    assert out[1:4] == [NL, START, ANSWER_WORD] and f.answer_ids[:2] == [NL, FINAL]


def test_a_step_that_ends_the_thinking_goes_on_to_answer():
    f = make_step(Budget(max_answer_tokens=3), prefix=[100, NL])
    drive(f, [101, START, 107, 108, EOS])
    assert f.thinking_finish == "end" and f.finish_reason == "stop"
    assert f.answer_ids == [107, 108] and f.new_thinking() == " w101"


def test_without_a_step_end_a_continued_thinking_runs_to_its_end():
    f = make_step(Budget(max_answer_tokens=2), prefix=[100, NL], step_end=None)
    drive(f, [101, NL, 102, NL, START, 107, EOS])
    assert f.thinking_finish == "end" and f.thinking_ids == [100, NL, 101, NL, 102, NL]
