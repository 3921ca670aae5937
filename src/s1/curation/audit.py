"""Paraphrase-level contamination audit (after LMSYS's llm-decontaminator): word 8-grams miss a
benchmark problem that was reworded, so embed every pool question and every benchmark item,
retrieve each question's nearest benchmark items, and decide on those candidates.

Similarity alone cannot decide: a hard negative (the same template with other numbers and
another answer) is often closer to its benchmark item than a true paraphrase. Nor can equal
answers alone: on 1,500 pool questions most pairs they flagged were different problems that
share an answer (small integers are common). So, by `decide` (default `auto`: `answer+judge`
when a judge is configured, else `answer`, whose flags are leads to read, not verdicts; keep
`action: flag` with it):
- `answer`: a candidate is contaminated when the two reference answers are equal
  (the evaluation stage's grader, `s1.evaluation.grading`); a pool row without an answer, and
  a multiple-choice benchmark item, fall back to `flag_similarity`;
- `similarity`: cosine at or above `flag_similarity`;
- `judge`: an LLM (`s1.curation.llm`, any engine) reads both problems and says YES/NO;
- `answer+judge`: equal answers and the judge agrees (the judge is asked only about those).
GPQA items never go to a judge (they must not leave the machine) and are never written to a
report: their pairs show the item id only.

Config: `AuditConfig`. Columns in: `question`, `answer` (optional; `question_hash` is used in
the report when present). Columns out (action `flag`): `audit_flagged` (bool),
`audit_match` ("benchmark:item id" or ""), `audit_similarity` (best cosine, float),
`audit_reason` (str). With action `drop` the flagged rows are removed instead, each passed to
`on_drop(row, reason)`. `report_dir` receives `audit_flags.jsonl` (every flagged pair, ranked by
similarity), `audit_candidates.jsonl` (every retrieved pair and its decision) and `audit.md`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from s1.curation.llm import LLM, LLMConfig, llm_config
from s1.errors import UserError

log = logging.getLogger("s1.curation")

DECISIONS = ("auto", "answer", "similarity", "judge", "answer+judge")
ACTIONS = ("flag", "drop")
WITHHELD = ("gpqa",)
POOL_BLOCK = 2048   # pool questions embedded and searched at a time
# Retrieval floors, measured on tests/curation/data/paraphrases.jsonl: MiniLM puts paraphrases at
# 0.77-0.97 (two outliers at 0.52-0.57); character TF-IDF puts them at 0.17-0.78.
FLOORS = {"minilm": 0.6, "tfidf": 0.3}   # benchmark names whose text is never written or sent anywhere

JUDGE_SYSTEM = """\
You decide whether two problems are the same problem. They are the same when one is a copy, \
a rewording, a translation or a change of notation or variable names of the other, so that any \
correct solution of one is a correct solution of the other, with the same final answer. They are \
NOT the same when any number, condition, constraint or the quantity asked for differs, even if \
the wording is almost identical, or when one is only on the same topic.

Reply with one word: YES if they are the same problem, NO otherwise."""

JUDGE_USER = "## Problem 1\n{a}\n\n## Problem 2\n{b}"


@dataclass
class AuditConfig:
    """What to audit against and how to decide."""

    benchmarks: tuple[str, ...] = ("math500", "aime24")  # names for load_benchmark, or JSONL paths
    benchmark_paths: dict = field(default_factory=dict)  # name -> local file (gpqa-diamond, aime25)
    embedder: str = "minilm"          # minilm (shipped) | tfidf (no model) | encoder dir / hub id
    device: str = "cpu"
    batch_size: int = 64
    threads: int | None = None
    top_k: int = 3                    # nearest benchmark items examined per question
    min_similarity: float | None = None   # retrieval floor (None: 0.6 for minilm, 0.3 for tfidf,
                                          # whose cosines run lower); pairs below are never candidates
    flag_similarity: float = 0.92     # see `decide`; also the fallback for rows without an answer
    decide: str = "auto"              # auto (answer+judge with a judge, else answer) | answer |
                                      # similarity | judge | answer+judge
    judge: LLMConfig | None = None    # which model judges (needed by the judge modes)
    action: str = "flag"              # flag: add columns; drop: remove flagged rows
    report_dir: str | None = None
    grade_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.benchmarks, str):
            self.benchmarks = tuple(b.strip() for b in self.benchmarks.split(",") if b.strip())
        self.benchmarks = tuple(self.benchmarks)
        if not self.benchmarks:
            raise UserError("the audit needs at least one benchmark")
        if self.decide not in DECISIONS:
            raise UserError(f"unknown audit decision {self.decide!r}; choose one of {', '.join(DECISIONS)}")
        if self.action not in ACTIONS:
            raise UserError(f"unknown audit action {self.action!r}; choose flag or drop")
        if self.top_k < 1:
            raise UserError(f"top_k must be at least 1, not {self.top_k}")
        if self.min_similarity is None:
            self.min_similarity = FLOORS.get(self.embedder, FLOORS["minilm"])
        for name in ("min_similarity", "flag_similarity"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} is a cosine between -1 and 1, not {getattr(self, name)}")
        self.judge = llm_config(self.judge, "audit.judge")
        if self.decide == "auto":
            self.decide = "answer+judge" if self.judge is not None else "answer"
        if "judge" in self.decide and self.judge is None:
            raise UserError(f"decide={self.decide} needs a judge (an LLMConfig: api, base_url, model)")


@dataclass
class BenchText:
    benchmark: str
    id: str
    question: str
    answer: str
    answer_type: str

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.id}"

    @property
    def withheld(self) -> bool:
        return any(w in self.benchmark for w in WITHHELD)


def load_bench_texts(config: AuditConfig) -> list[BenchText]:
    from s1.evaluation.benchmarks import load_benchmark

    out = []
    for name in config.benchmarks:
        bench = load_benchmark(name, path=config.benchmark_paths.get(name))
        out += [BenchText(bench.name, it.id, it.question, it.answer, it.answer_type) for it in bench]
    return out


def answers_equal(pairs: list[tuple[str, BenchText]], timeout: float = 5.0) -> list[bool]:
    """The evaluation stage's verdicts on pool reference answers against benchmark items'."""
    from s1.evaluation.benchmarks import Item
    from s1.evaluation.grading import grade_many

    boxed = [(a if "\\boxed" in a else f"\\boxed{{{a}}}", Item(it.id, "", it.answer, it.answer_type))
             for a, it in pairs]
    return [g.correct for g in grade_many(boxed, timeout=timeout)]


def nearest(pool: np.ndarray, bench: np.ndarray, k: int, chunk: int = 4096
            ) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of the k nearest benchmark rows of each pool row, best first."""
    k = min(k, bench.shape[0])
    idx = np.zeros((pool.shape[0], k), dtype=np.int64)
    sim = np.zeros((pool.shape[0], k), dtype=np.float32)
    for s in range(0, pool.shape[0], chunk):
        block = pool[s:s + chunk] @ bench.T
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-vals, axis=1)
        idx[s:s + chunk] = np.take_along_axis(top, order, axis=1)
        sim[s:s + chunk] = np.take_along_axis(vals, order, axis=1)
    return idx, sim


def _parse_yes_no(text: str) -> bool | None:
    from s1.evaluation.judge import parse_verdict

    verdict = parse_verdict(text)
    if verdict is None:   # a judge that explains first: its last word decides
        words = [w.strip(".*!:").lower() for w in text.split()]
        verdict = {"yes": True, "no": False}.get(words[-1] if words else "")
    return verdict


def audit(ds, config: AuditConfig | None = None,
          on_drop: Callable[[dict, str], None] | None = None, embedder=None):
    """Audit a pool `Dataset` against the configured benchmarks (see the module docstring)."""
    from s1.curation.embed import load_embedder

    config = config or AuditConfig()
    if "question" not in ds.column_names:
        raise UserError("the audit needs a 'question' column")
    items = load_bench_texts(config)
    questions = [q or "" for q in ds["question"]]
    answers = ([str(a) if a is not None else "" for a in ds["answer"]]
               if "answer" in ds.column_names else [""] * len(questions))
    embedder = embedder or load_embedder(config.embedder, config.device, config.batch_size,
                                         config.threads)
    bench_vecs = embedder.embed([it.question for it in items])   # first: TF-IDF fits on it
    # the pool in blocks: TF-IDF rows are 32K wide, the whole pool at once would take gigabytes
    found = [nearest(embedder.embed(questions[s:s + POOL_BLOCK]), bench_vecs, config.top_k)
             for s in range(0, len(questions), POOL_BLOCK)]
    if found:
        idx, sim = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
    else:
        idx, sim = np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32)

    candidates = []   # (row, rank, item index, cosine)
    for row in range(len(questions)):
        for rank in range(idx.shape[1]):
            if sim[row, rank] >= config.min_similarity:
                candidates.append((row, rank, int(idx[row, rank]), float(sim[row, rank])))
    decisions = _decide(candidates, questions, answers, items, config)

    flagged: dict[int, dict] = {}
    for cand, (hit, reason) in zip(candidates, decisions):
        if hit and cand[0] not in flagged:   # candidates come best first per row
            flagged[cand[0]] = {"item": items[cand[2]], "similarity": cand[3], "reason": reason}
    if config.report_dir:
        write_report(Path(config.report_dir), ds, questions, answers, items, candidates,
                     decisions, flagged, config, embedder.name)
    log.info("audit: %d of %d questions flagged (%d candidates)", len(flagged), len(questions),
             len(candidates))

    if config.action == "drop":
        keep = [i for i in range(len(questions)) if i not in flagged]
        if on_drop:
            for i, f in sorted(flagged.items()):
                on_drop(ds[i], f"audit: {f['reason']} ({f['item'].key}, cosine {f['similarity']:.3f})")
        return ds.select(keep)
    best = sim[:, 0] if sim.shape[1] else np.zeros(len(questions))
    cols = {
        "audit_flagged": [i in flagged for i in range(len(questions))],
        "audit_match": [flagged[i]["item"].key if i in flagged else "" for i in range(len(questions))],
        "audit_similarity": [round(float(s), 4) for s in best],
        "audit_reason": [flagged[i]["reason"] if i in flagged else "" for i in range(len(questions))],
    }
    for name, values in cols.items():
        if name in ds.column_names:
            ds = ds.remove_columns(name)
        ds = ds.add_column(name, values)
    return ds


def _decide(candidates, questions, answers, items, config) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str] | None] = [None] * len(candidates)
    to_judge, to_grade = [], []
    for n, (row, _rank, j, cos) in enumerate(candidates):
        item = items[j]
        by_sim = (cos >= config.flag_similarity, f"cosine {'>=' if cos >= config.flag_similarity else '<'} "
                                                 f"{config.flag_similarity:g}")
        if config.decide == "similarity":
            out[n] = by_sim
            continue
        if config.decide == "judge":
            if item.withheld:
                out[n] = by_sim
            else:
                to_judge.append(n)
            continue
        if not answers[row].strip() or item.answer_type == "choice":
            out[n] = (by_sim[0], f"no comparable answer; {by_sim[1]}")
            continue
        to_grade.append(n)
    verdicts = answers_equal([(answers[candidates[n][0]], items[candidates[n][2]]) for n in to_grade],
                             config.grade_timeout_s)
    for n, same in zip(to_grade, verdicts):
        out[n] = (same, "same answer" if same else "different answer")
        if same and config.decide == "answer+judge" and not items[candidates[n][2]].withheld:
            to_judge.append(n)
    if to_judge:
        judge_cfg = config.judge
        if judge_cfg.system is None:
            judge_cfg = LLMConfig(**{**judge_cfg.__dict__, "system": JUDGE_SYSTEM})
        prompts = [JUDGE_USER.format(a=questions[candidates[n][0]], b=items[candidates[n][2]].question)
                   for n in to_judge]
        with LLM(judge_cfg) as llm:
            replies = llm.ask(prompts)
        for n, reply in zip(to_judge, replies):
            verdict = _parse_yes_no(reply.text or reply.thinking) if reply.ok else None
            prefix = "same answer; " if config.decide == "answer+judge" else ""
            if verdict is None:
                why = reply.error or "no YES/NO in the reply"
                out[n] = (False, f"{prefix}judge gave no verdict ({why})")
            else:
                out[n] = (verdict, f"{prefix}judge {'YES' if verdict else 'NO'}")
    return out  # type: ignore[return-value]


def _row_hash(ds, row: int, question: str) -> str:
    if "question_hash" in ds.column_names:
        return ds[row]["question_hash"]
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:16]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(out: Path, ds, questions, answers, items, candidates, decisions, flagged,
                 config: AuditConfig, embedder_name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)

    def pair(row, j, cos, rank, hit, reason) -> dict:
        item = items[j]
        hidden = "[withheld: GPQA]"
        return {"question_hash": _row_hash(ds, row, questions[row]), "pool_index": row,
                "benchmark": item.benchmark, "benchmark_id": item.id, "similarity": round(cos, 4),
                "rank": rank + 1, "flagged": hit, "reason": reason,
                "question": hidden if item.withheld else questions[row],
                "benchmark_question": hidden if item.withheld else item.question,
                "answer": answers[row], "benchmark_answer": "" if item.withheld else item.answer}

    rows = [pair(r, j, c, k, hit, why) for (r, k, j, c), (hit, why) in zip(candidates, decisions)]
    rows.sort(key=lambda p: -p["similarity"])
    flags = [p for p in rows if p["flagged"] and flagged.get(p["pool_index"], {}).get("item")
             and flagged[p["pool_index"]]["item"].key == f"{p['benchmark']}:{p['benchmark_id']}"]
    _write_atomic(out / "audit_candidates.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in rows))
    _write_atomic(out / "audit_flags.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in flags))

    n = len(questions)
    per_bench: dict[str, int] = {}
    for f in flagged.values():
        per_bench[f["item"].benchmark] = per_bench.get(f["item"].benchmark, 0) + 1
    lines = [
        "# Paraphrase contamination audit", "",
        f"- embedder: `{embedder_name}`, top-{config.top_k}, retrieval floor cosine {config.min_similarity:g}, "
        f"decision `{config.decide}` (similarity fallback {config.flag_similarity:g})",
        f"- benchmarks: {', '.join(f'{b} ({sum(it.benchmark == b for it in items)})' for b in sorted({it.benchmark for it in items}))}",
        f"- pool questions: {n}; candidate pairs: {len(candidates)}; "
        f"**flagged: {len(flagged)} ({100 * len(flagged) / max(n, 1):.2f}% of the pool)**",
        f"- flagged per benchmark: {', '.join(f'{k} {v}' for k, v in sorted(per_bench.items())) or 'none'}",
        "", "| # | cosine | benchmark item | pool question | answers | reason |", "|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(flags[:200], 1):
        q = p["question"].replace("\n", " ").replace("|", "\\|")[:160]
        lines.append(f"| {i} | {p['similarity']:.3f} | {p['benchmark']}:{p['benchmark_id']} | {q} | "
                     f"{p['answer'][:30]} / {p['benchmark_answer'][:30]} | {p['reason']} |".replace("\n", " "))
    _write_atomic(out / "audit.md", "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# the `audit` step of `s1 curate` (contract: s1.curation.steps)

from s1.curation.steps import Drops, StepOutput, step  # noqa: E402


@step("audit", AuditConfig, needs=("question", "question_hash"))
def audit_step(data, config: AuditConfig, ctx) -> StepOutput:
    """Paraphrase-level contamination audit: embedding retrieval, then a decision by answer / judge."""
    import dataclasses

    from s1.curation.modelsteps import drop_into, split_reason

    report = Path(config.report_dir) if config.report_dir else Path(ctx.work_dir) / "audit"
    if config.action == "drop" and config.decide == "answer":
        ctx.log("WARNING: action drop on equal answers alone also drops different problems that "
                "share an answer; give a judge (decide: answer+judge) or use action: flag")
    drops = Drops()
    out = audit(data, dataclasses.replace(config, report_dir=str(report)),
                on_drop=drop_into(drops, split_reason({}, "paraphrase-contamination")))
    # the ranked report travels with the step's output (written whole, renamed into place)
    artifacts = {name: (report / name).read_text(encoding="utf-8")
                 for name in ("audit.md", "audit_flags.jsonl", "audit_candidates.jsonl")}
    flags = artifacts["audit_flags.jsonl"].count("\n")
    stats = {"flagged": len(drops) if config.action == "drop" else sum(out["audit_flagged"]),
             "flagged_pairs": flags, "candidates": artifacts["audit_candidates.jsonl"].count("\n"),
             "embedder": config.embedder, "decide": config.decide}
    # a judge request that failed left its pair undecided: the next run asks again
    failed = sum("judge gave no verdict" in r.get("reason", "") and "no YES/NO" not in r["reason"]
                 for r in map(json.loads, artifacts["audit_candidates.jsonl"].splitlines()))
    return StepOutput(out, drops, artifacts, stats,
                      incomplete=f"{failed} judge requests failed" if failed else "")
