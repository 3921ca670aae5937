"""`s1 import-lm-eval SAMPLES.jsonl`: turn lm-evaluation-harness `--log_samples` output (the
format of the s1 paper's released outputs) into a run directory, so existing generations get
this package's grading, intervals, regrading and report without generating again.

One line of a samples file is one document: `doc_id`, `doc` (the dataset row), `target`,
`arguments` ({"gen_args_0": {"arg_0": prompt, "arg_1": generation kwargs}}; older versions: a
list of [prompt, kwargs]), `resps` (per request, a list of continuations: `repeats: n` gives n),
`filtered_resps`, and the task's metrics (`exact_match`, ...). Each continuation becomes one
Record: the text after the format's end-of-thinking delimiter is the answer we grade; the text
before it the thinking. lm-eval's own verdict is kept beside ours (`lm_eval` in each record) and
the import reports where the two disagree.

Token counts come from `tokenizer` (the generating model's, for exact counts); without one the
embedded model's tokenizer gives approximate counts, and the manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from s1.errors import UserError
from s1.evaluation.benchmarks import Item, load_benchmark
from s1.evaluation.grading import grade_many
from s1.evaluation.methods import Setting
from s1.evaluation.records import Compute, Record
from s1.evaluation.runs import (MANIFEST, RECORDS, _sha, git_revision, is_gpqa,
                                package_versions)
from s1.generation.budget import Budget, parse_max_thinking
from s1.generation.formats import get_format
from s1.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic

QUESTION_KEYS = ("problem", "question", "Question", "Problem")


@dataclass
class Imported:
    run: str
    dir: Path
    questions: int
    samples: int
    agree: int                 # our grade equals lm-eval's
    we_right_they_wrong: int
    we_wrong_they_right: int
    no_verdict: int            # lm-eval logged no usable verdict for the sample
    approximate_tokens: bool

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "dir"}, "dir": str(self.dir)}


def _norm(text: str) -> str:
    return " ".join(str(text).split())


def _prompt_and_kwargs(sample: dict) -> tuple[str, dict]:
    args = sample.get("arguments")
    if isinstance(args, dict):
        first = args.get("gen_args_0") or {}
        return str(first.get("arg_0", "")), first.get("arg_1") or {}
    if isinstance(args, list) and args and isinstance(args[0], (list, tuple)):
        first = args[0]
        return str(first[0]) if first else "", (first[1] if len(first) > 1 else {}) or {}
    return "", {}


def _continuations(sample: dict, line: int) -> list[str]:
    resps = sample.get("resps")
    if not isinstance(resps, list) or not resps:
        raise UserError(f"line {line}: no `resps` (was lm-eval run with --log_samples?)")
    out: list[str] = []
    for r in resps:   # one entry per request; `repeats: n` puts n continuations in one
        out.extend(r if isinstance(r, list) else [r])
    if not all(isinstance(t, str) for t in out):
        raise UserError(f"line {line}: `resps` holds no generated text (a loglikelihood task "
                        "cannot be imported)")
    return out


def _their_verdicts(sample: dict, n: int) -> list[bool | None]:
    """lm-eval's per-sample verdicts: `exact_matches` (the s1 harness, one per sample) or
    `exact_match` (the first sample)."""
    many = sample.get("exact_matches")
    if isinstance(many, list) and len(many) == n:
        return [bool(x) for x in many]
    one = sample.get("exact_match")
    first = None if not isinstance(one, (int, float, bool)) else bool(one)
    return [first] + [None] * (n - 1)


def _split(text: str, end: str) -> tuple[str, str, str]:
    """(thinking, delimiter, answer) of a continuation; no delimiter: all of it is the answer."""
    if not end:
        return "", "", text
    i = text.rfind(end)
    if i < 0:
        return "", "", text
    after = text[i + len(end):]
    return text[:i], end, after


def _match(samples: list[dict], bench_name: str | None, task: str) -> list[Item]:
    """The benchmark item of each document: matched by question text to a named benchmark, or
    built from the document itself (gold: `doc["answer"]`, else `target`)."""
    if bench_name:
        bench = load_benchmark(bench_name)
        by_q = {_norm(it.question): it for it in bench}
        items, missing = [], 0
        for s in samples:
            doc = s.get("doc") or {}
            q = next((doc[k] for k in QUESTION_KEYS if k in doc), None)
            it = by_q.get(_norm(q)) if q is not None else None
            missing += it is None
            items.append(it)
        if missing:
            raise UserError(f"{missing} of {len(samples)} documents match no question of "
                            f"{bench_name} (by question text); import without --benchmark to "
                            "grade against the documents' own answers")
        return items
    items = []
    for s in samples:
        doc = s.get("doc") or {}
        gold = str(doc.get("answer", s.get("target", ""))).strip()
        if not gold:
            raise UserError(f"document {s.get('doc_id')} has no answer and no target")
        kind = ("integer" if re.fullmatch(r"\d+", gold)
                else "choice" if re.fullmatch(r"\(?[A-D]\)?", gold) else "math")
        if kind == "choice":
            gold = gold.strip("()")
        q = next((str(doc[k]) for k in QUESTION_KEYS if k in doc), "")
        items.append(Item(f"{task}-{s.get('doc_id')}", q, gold, kind))
    return items


def _token_counter(tokenizer: str | None):
    from s1.generation.models import load_tokenizer, resolve_model

    tok = load_tokenizer(resolve_model(tokenizer))
    return lambda text: len(tok.encode(text, add_special_tokens=False)) if text else 0


def import_samples(path: str | Path, out: str | Path, benchmark: str | None = None,
                   model: str = "imported", fmt: str = "s1", tokenizer: str | None = None,
                   name: str | None = None, timeout: float = 5.0) -> Imported:
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    raw = path.read_bytes()
    samples = read_jsonl(path, key="doc_id", damaged="is it an lm-eval samples_*.jsonl file?")
    if not samples:
        raise UserError(f"{path} holds no samples")
    task = name or re.sub(r"^samples_|_\d{4}-\d\d-\d\dT[\d\-:.]+$", "", path.stem)
    thinking = get_format(fmt)
    items = _match(samples, benchmark, task)
    bench_name = benchmark or task
    _, kwargs = _prompt_and_kwargs(samples[0])
    conts = [_continuations(s, n) for n, s in enumerate(samples, 1)]
    n = len(conts[0])
    if any(len(c) != n for c in conts):
        raise UserError("the documents have different numbers of continuations; import files "
                        "with one `repeats` setting each")
    setting = _setting(task, kwargs, n)
    run_dir = out / f"{bench_name}-{setting.name}-s0"
    source = {"path": str(path), "sha256": hashlib.sha256(raw).hexdigest(), "task": task,
              "filter": samples[0].get("filter"), "tokenizer": tokenizer or "embedded (approximate)"}
    if (run_dir / MANIFEST).is_file():
        old = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        if (old.get("imported_from") or {}).get("sha256") != source["sha256"]:
            raise UserError(f"{run_dir} holds another run; use another --out or delete it")
    counts = _token_counter(tokenizer)
    pairs, meta = [], []
    for s, item, texts in zip(samples, items, conts):
        prompt, _ = _prompt_and_kwargs(s)
        theirs = _their_verdicts(s, n)
        for k, text in enumerate(texts):
            pairs.append((_split(text, thinking.end)[2], item))
            meta.append((s, item, k, text, prompt, theirs[k]))
    grades = grade_many(pairs, timeout=timeout)
    records, agree, ours_only, theirs_only, unknown = [], 0, 0, 0, 0
    for (s, item, k, text, prompt, their), g in zip(meta, grades):
        think, end, answer = _split(text, thinking.end)
        if their is None:
            unknown += 1
        else:
            agree += their == g.correct
            ours_only += g.correct and not their
            theirs_only += their and not g.correct
        gpqa = is_gpqa(bench_name, item)
        trace = {"id": f"{item.id}#{k}", "prompt": _sha(prompt) if gpqa else prompt,
                 "thinking": think, "end": end, "answer": answer, "engine": "lm-eval",
                 "thinking_ids": [], "answer_ids": [], "events": [],
                 "thinking_finish": "end" if end else ("none" if not thinking.thinks else "unknown"),
                 "finish_reason": "unknown"}
        t_tok, a_tok = counts(think), counts(answer)
        records.append(Record(
            key=f"{item.id}#{k}", id=item.id, sample=k, seed=0, request_seed=0,
            gold=item.answer, answer_type=item.answer_type, extracted=g.extracted,
            correct=g.correct, reason=g.reason, thinking_tokens=t_tok, answer_tokens=a_tok,
            waits=text.count(kwargs.get("thinking_n_ignore_str") or "\0"),
            thinking_finish=trace["thinking_finish"], finish_reason="unknown", events=[],
            tries=1, compute=Compute(counts(prompt), t_tok + counts(end) + a_tok, None),
            wall_s=0.0, trace=trace,
            extra={"lm_eval": {"doc_id": s.get("doc_id"), "correct": their,
                               "filtered_resp": _first(s.get("filtered_resps"))}}))
    config = {"model": model, "engine": "lm-eval (imported)", "format": thinking.to_dict(),
              "benchmark": {"name": bench_name, "questions": len(samples),
                            "ids_sha256": hashlib.sha256("\n".join(
                                it.id for it in items).encode()).hexdigest()},
              "protocol": "imported", "judge": None, "setting": setting.to_dict(), "seed": 0}
    manifest = {"name": run_dir.name, "config": config, "model_shape": None,
                "versions": package_versions(), "git_revision": git_revision(),
                "command": ["s1", "import-lm-eval", str(path)], "imported_from": source,
                "generation_kwargs": kwargs, "benchmark_source": str(path),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(run_dir / RECORDS, [r.to_dict() for r in records])
    write_json_atomic(run_dir / MANIFEST, manifest)
    from s1.evaluation.aggregate import write_summaries
    write_summaries(out, [run_dir])
    return Imported(run_dir.name, run_dir, len(samples), len(records), agree, ours_only,
                    theirs_only, unknown, tokenizer is None)


def _first(x):
    while isinstance(x, list) and x:
        x = x[0]
    return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)


def _setting(task: str, kwargs: dict, n: int) -> Setting:
    """What the generation kwargs tell of the method: the s1 harness's thinking cap and
    ignores, the temperature; several continuations per document vote (majority)."""
    cap = kwargs.get("max_tokens_thinking", "auto")
    try:
        cap = parse_max_thinking(cap if cap is not None else "auto")
    except UserError:
        cap = "auto"
    ignores = int(kwargs.get("thinking_n_ignore") or 0)
    temperature = float(kwargs.get("temperature") or 0.0)
    budget = Budget(max_thinking_tokens=cap, num_ignore=ignores).with_(
        temperature=temperature, top_p=float(kwargs.get("top_p") or 1.0))
    method = "majority" if n > 1 else "budget"
    label = "imported (lm-eval)" if n == 1 else "imported (lm-eval, majority)"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", task).strip("-")
    name = f"lmeval-{slug}-max{cap}-ign{ignores}" + (f"-n{n}" if n > 1 else "")
    return Setting(method, name, budget, samples=n,
                   a_max=cap if isinstance(cap, int) else None, label=label,
                   params={"task": task, "max_thinking": cap, "num_ignore": ignores,
                           "temperature": temperature, "imported": True})
