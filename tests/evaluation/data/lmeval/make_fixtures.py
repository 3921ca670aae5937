"""Writes the lm-eval `--log_samples` fixtures beside this file from the shipped AIME24 and
MATH500 items, shaped as lm-evaluation-harness 0.4 saves them (EvaluationTracker:
`arguments` as {"gen_args_i": {"arg_j": ...}}, `resps` per request, `filtered_resps`, `filter`,
`metrics`, hashes, then the task's metrics) with the s1 harness's metrics (`exact_match`,
`extracted_answers`; `exact_matches`, cov@k, maj@k with repeats). The continuations are written
by hand in the s1 format; lm-eval's verdicts are the s1 harness's exact-string ones without its
gpt-4o-mini answer processor. No GPQA question is in here. Run: python make_fixtures.py"""

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE.parents[3] / "src/s1/data/benchmarks"
SYSTEM = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
          "assistant.<|im_end|>\n")


def h(x: str) -> str:
    return hashlib.sha256(x.encode()).hexdigest()


def prompt(q: str) -> str:
    return f"{SYSTEM}<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n<|im_start|>think"


def line(doc_id, doc, target, conts, verdicts, extracted, kwargs):
    p = prompt(doc["problem"])
    out = {"doc_id": doc_id, "doc": doc, "target": target,
           "arguments": {"gen_args_0": {"arg_0": p, "arg_1": kwargs}},
           "resps": [conts], "filtered_resps": [conts if len(conts) > 1 else conts[0]],
           "filter": "none", "metrics": ["exact_match", "extracted_answers"],
           "doc_hash": h(json.dumps(doc)), "prompt_hash": h(p), "target_hash": h(target),
           "exact_match": verdicts[0], "extracted_answers": extracted}
    if len(conts) > 1:
        out["exact_matches"] = verdicts
        for k in (2, 4):
            out[f"cov@{k}"] = int(any(verdicts[:k]))
            votes = extracted[:k]
            out[f"maj@{k}"] = int(max(votes, key=votes.count) == target)
    return out


def rows(name):
    return [json.loads(x) for x in (DATA / name).read_text().splitlines()]


aime = rows("aime24_nofigures.jsonl")[:4]
kw = {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": 32768,
      "max_tokens_thinking": 8000, "thinking_n_ignore": 1, "thinking_n_ignore_str": "Wait"}
A = [
    ("\nLet the speed be s. Then 9/s + t/60 = 4 and 9/(s+2) + t/60 = 2.4, so s = 2.5 and "
     "t = 24. Maybe the answer is \\boxed{180}? Wait, at s + 1/2 = 3 km/h the walk is 3 hours, "
     "plus 24 minutes: 204 minutes.\n<|im_start|>answer\nAnswer: The walk takes "
     "$\\boxed{204}$ minutes.", 1, "204"),
    ("\nBy power of a point, DB^2 = DA * DP. With the side lengths 5, 9, 10 we find "
     "AP = 100/13.\n<|im_start|>answer\nAnswer: $AP = \\frac{100}{13}$, so "
     "$m + n = \\boxed{113}$.", 1, "113"),
    ("\nCount the colorings fixed under some rotation that maps blue into red ... the "
     "probability is 115/256.\n<|im_start|>answer\nAnswer: $\\boxed{371 \\text{ ways}}$", 0,
     "371 \\text{ ways}"),
    ("\nLet me guess from the shape of the problem.\n<|im_start|>answer\nAnswer: "
     "$\\boxed{42}$", 0, "42"),
]
with open(HERE / "samples_aime24_nofigures_2025-01-20T10-00-00.123456.jsonl", "w") as f:
    for i, (doc, (cont, ok, ext)) in enumerate(zip(aime, A)):
        doc = {k: doc[k] for k in ("id", "problem", "solution", "answer", "url")}
        f.write(json.dumps(line(i, doc, doc["answer"], [cont], [ok], [ext], kw)) + "\n")

math = rows("math500.jsonl")[:2]
kw = {"until": [], "do_sample": True, "temperature": 1.0, "max_gen_toks": 32768,
      "max_tokens_thinking": 4000, "thinking_n_ignore": 0}
M = [
    [("(3, \\frac{\\pi}{2})", 0), ("(3,\\pi/2)", 0),
     ("\\left( 3, \\frac{\\pi}{2} \\right)", 1), ("(3, \\pi)", 0)],
    [("p - q", 1), ("p-q", 0), ("q - p", 0), ("p - q", 1)],
]
with open(HERE / "samples_openai_math_2025-01-20T11-00-00.654321.jsonl", "w") as f:
    for i, (doc, samples) in enumerate(zip(math, M)):
        doc = {k: doc[k] for k in ("problem", "solution", "answer", "subject", "level",
                                   "unique_id")}
        conts = [f"\nConvert and check the result carefully.\n<|im_start|>answer\nAnswer: "
                 f"$\\boxed{{{a}}}$" for a, _ in samples]
        f.write(json.dumps(line(i, doc, doc["answer"], conts, [v for _, v in samples],
                                [a for a, _ in samples], kw)) + "\n")
