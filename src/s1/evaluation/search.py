"""Verifier-guided tree search, one question at a time: step-level beam search and REBASE.

A branch is a thinking split into steps. At each depth every chosen branch is continued by one
step in one engine call (`Request.thinking` with `step_end`: the engines reuse what the branches
share), the reward model scores the new branches, and the method picks what goes on:

- beam search (search-and-learn's): each of the N beams is expanded M times, the top N by reward
  go on (fewer as beams finish), until N have finished or the depth runs out;
- REBASE (Wu et al., 2024, thu-wyz/rebase): a total width W; the open branches of the newest
  depth share the width left (W − answers finished so far) in proportion to softmax(reward / T),
  the best first, each taking ceil(left × its share of the mass left) (`rebase_widths`).

A branch that ends its thinking in a step answers in the same call (the Forcer goes on to the
answer) and is a finished candidate. Branches still open at the maximum depth are continued to
the end of their thinking. The answer is the best candidate's, or the reward-weighted vote.

The unit written is the question: its record holds the chosen candidate (graded like any
sample), every finished candidate (answer, grade, reward), and what the whole search cost:
generator tokens (evaluated: the engine's count where it keeps one, shared prefixes counted
once), FLOPs, and the reward model's tokens and FLOPs. A branch the engine fails is dropped and
counted; a question none of whose branches finished is an engine error (a resume asks again).
While a question is searched, each depth's continuations and scores are appended to its journal
(`search/<key>.jsonl` in the run directory, prompts left out): a killed run replays the depths
it finished and generates only the rest (every branch's seed is fixed, so the tree is the one an
uninterrupted run draws); the journal goes once the record is written.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from s1.errors import UserError
from s1.evaluation.rewards import RewardModel, aggregate, load_reward_model
from s1.generation.engines.base import Engine, Request
from s1.generation.trace import Trace


# ---------------------------------------------------------------------------------------------
# the rules, pure


def cut_step(text: str, delimiter: str) -> str:
    """The first step of `text`: up to and including the first delimiter that follows some text
    (the Forcer pauses on the token that completes it, which may carry more)."""
    lead = len(text) - len(text.lstrip())
    k = text.find(delimiter, lead + 1)
    return text if k < 0 else text[:k + len(delimiter)]


def rebase_widths(rewards: Sequence[float], width: int, temperature: float) -> list[int]:
    """REBASE's allocation: expansions per node (in the given order) out of `width`. Nodes are
    taken best first; each gets ceil(left × w / mass), w = exp(reward / T) and `left` / `mass`
    what the nodes before it left, so the counts sum to `width` and follow the softmax."""
    order = sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))
    top = max(rewards, default=0.0)
    weight = [math.exp((r - top) / temperature) for r in rewards]   # shifted: no overflow
    out, left = [0] * len(rewards), width
    for at, i in enumerate(order):
        if left <= 0:
            break
        mass = sum(weight[j] for j in order[at:])
        share = left * weight[i] / mass
        n = math.ceil(share - 1e-9 * left)    # 2.0000000001 from rounding is 2, not 3
        out[i] = min(left, max(n, 0))
        left -= out[i]
    return out


def top_branches(rewards: Sequence[float], keep: int) -> list[int]:
    """Indices of the `keep` best rewards (ties: the earlier), in that order."""
    return sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))[:max(keep, 0)]


def vote(answers: Sequence[str | None], rewards: Sequence[float], answer_type: str) -> int | None:
    """The candidate whose answer has the most reward summed over its equivalence class (and,
    within it, the highest reward); None when no candidate has an answer."""
    from s1.evaluation.verifier import cluster_answers

    mass: dict[int, float] = {}
    keys = cluster_answers(list(answers), answer_type)
    for key, r in zip(keys, rewards):
        if key is not None:
            mass[key] = mass.get(key, 0.0) + r
    if not mass:
        return None
    best = max(mass, key=lambda k: (mass[k], -k))
    return max((i for i, k in enumerate(keys) if k == best), key=lambda i: (rewards[i], -i))


# ---------------------------------------------------------------------------------------------
# one question's search


@dataclass
class Branch:
    steps: list[str]
    trace: Trace | None = None     # its last continuation (a finished branch's answer is there)
    done: bool = False
    scores: list[float] = field(default_factory=list)
    reward: float = 0.0

    @property
    def thinking(self) -> str:
        return "".join(self.steps)


@dataclass
class SearchResult:
    candidates: list[Branch]       # finished branches, in the order they finished
    depth: int = 0
    branches: int = 0              # continuations asked for
    errors: list[str] = field(default_factory=list)   # why branches failed
    prompt_tokens: int = 0         # read as prompt, summed over continuations (no sharing)
    generated_tokens: int = 0
    thinking_tokens: int = 0       # thinking generated over the whole tree
    evaluated_tokens: int | None = None   # what the engine evaluated (shared prefixes once)
    reward_tokens: int = 0
    reward_flops: float = 0.0


class TreeSearch:
    """Runs one question's search on an engine with a reward model. `params` are the setting's
    (`methods.BeamSearch` / `methods.Rebase`); `request` the question's plain request (prompt,
    budget, seed); `question` what the reward model reads. `replay`: the journal of an
    interrupted search (its engine calls, in order); `on_call(entry)` is handed each new one."""

    def __init__(self, engine: Engine, reward_model: RewardModel, method: str, params: dict,
                 request: Request, question: str, replay: Sequence[dict] = (),
                 on_call: Callable[[dict], None] | None = None):
        self.engine, self.rm, self.method, self.p = engine, reward_model, method, params
        self.request, self.question = request, question
        self.delimiter = params["step_delimiter"]
        self.result = SearchResult([])
        self.replay, self.on_call = list(replay), on_call
        self._drawn = self._calls = 0

    def run(self) -> SearchResult:
        self.result.evaluated_tokens = 0 if hasattr(self.engine, "tokens_fed") else None
        if self.method == "beam":
            self._beam()
        else:
            self._rebase()
        return self.result

    def _beam(self) -> None:
        n, m = self.p["beams"], self.p["expansions"]
        open_ = [Branch([])]
        for depth in range(self.p["max_depth"]):
            children = self._expand([(b, m if depth else n * m) for b in open_], depth)
            self._collect(children)
            keep = n - len(self.result.candidates)
            rest = [c for c in children if not c.done]
            open_ = [rest[i] for i in top_branches([c.reward for c in rest], keep)]
            if not open_:
                return
        self._finish([(b, 1) for b in open_])

    def _rebase(self) -> None:
        width, temperature = self.p["width"], self.p["softmax_temperature"]
        open_, widths = [Branch([])], [width]
        for depth in range(self.p["max_depth"]):
            children = self._expand(list(zip(open_, widths)), depth)
            self._collect(children)
            left = width - len(self.result.candidates)
            open_ = [c for c in children if not c.done]
            if left <= 0 or not open_:
                return
            widths = rebase_widths([c.reward for c in open_], left, temperature)
        self._finish(list(zip(open_, widths)))

    def _finish(self, parents: list[tuple[Branch, int]]) -> None:
        """The depth ran out: the open branches think on to their end and answer (as many times
        as they would have been expanded)."""
        self._collect(self._expand(parents, self.p["max_depth"], step=False))

    def _collect(self, children: list[Branch]) -> None:
        self.result.candidates += [c for c in children if c.done]

    def _expand(self, parents: list[tuple[Branch, int]], depth: int,
                step: bool = True) -> list[Branch]:
        """Continue each parent `count` times by one step (or to the end), in one engine call;
        the children scored."""
        base, res = self.request, self.result
        owners, requests = [], []
        for parent, count in parents:
            for _ in range(count):
                owners.append(parent)
                requests.append(replace(base, thinking=parent.thinking, seed=self._seed(),
                                        id=f"{base.id}/{self._drawn}",
                                        step_end=self.delimiter if step else None))
        res.depth, res.branches = depth + 1, res.branches + len(requests)
        traces, entry = self._call(requests)
        children = []
        for parent, tr in zip(owners, traces):
            if tr.finish_reason == "error":
                res.errors.append(tr.error or "the engine failed this branch")
                continue
            res.prompt_tokens += tr.prompt_tokens
            res.generated_tokens += tr.generated_tokens
            new = tr.meta.get("new_thinking", "")
            res.thinking_tokens += tr.thinking_tokens - tr.meta.get("prefix_tokens", 0)
            if tr.thinking_finish == "step":
                children.append(Branch(parent.steps + [cut_step(new, self.delimiter)], tr))
            else:
                steps = parent.steps + ([new] if new.strip() else [])
                children.append(Branch(steps, tr, done=True))
        if "scores" not in entry:
            tokens, flops = self.rm.tokens, self.rm.flops
            entry.update(scores=self._score(children), reward_tokens=self.rm.tokens - tokens,
                         reward_flops=self.rm.flops - flops)
            if self.on_call:
                self.on_call(entry)
        res.reward_tokens += entry["reward_tokens"]
        res.reward_flops += entry["reward_flops"]
        for b, s in zip(children, entry["scores"]):
            b.scores = [float(x) for x in s]
            b.reward = aggregate(b.scores, self.p["aggregate"])
        return children

    def _call(self, requests: list[Request]) -> tuple[list[Trace], dict]:
        """The engine's traces of one call, and its journal entry: replayed from the journal
        where an interrupted run got this far, else generated (the entry is journaled once
        its branches are scored)."""
        k, self._calls = self._calls, self._calls + 1
        if k < len(self.replay):
            entry = self.replay[k]
            traces = [Trace.from_dict({**d, "prompt": self._prompt()}) for d in entry["traces"]]
        else:
            fed = getattr(self.engine, "tokens_fed", 0)
            traces = self.engine.generate(requests) if requests else []
            entry = {"call": k, "traces": [{**t.to_dict(), "prompt": ""} for t in traces],
                     "evaluated": getattr(self.engine, "tokens_fed", 0) - fed}
        if self.result.evaluated_tokens is not None:
            self.result.evaluated_tokens += entry["evaluated"]
        return traces, entry

    def _score(self, branches: list[Branch]) -> list[list[float]]:
        if not branches:
            return []
        # a branch that ended its thinking at once has no step: the reward model reads one empty
        scores = self.rm.score(self.question, [b.steps or [""] for b in branches])
        if len(scores) != len(branches):
            raise UserError(f"the reward model {self.rm.name or type(self.rm).__name__} gave "
                            f"{len(scores)} scores for {len(branches)} candidates")
        return [[float(x) for x in s] for s in scores]

    def _prompt(self) -> str:
        """The prompt text a trace carries (journals leave it out: a GPQA question stays off
        the disk)."""
        if not hasattr(self, "_prompt_text"):
            try:
                self._prompt_text = self.engine.prepare(self.request)[0]
            except UserError:
                self._prompt_text = ""
        return self._prompt_text

    def _seed(self) -> int:
        # every branch its own reproducible seed: a resumed question draws the same tree
        self._drawn += 1
        return (self.request.seed * 1_000_003 + zlib.crc32(self.request.id.encode()) * 101
                + self._drawn * 10_007) % 2**63


# ---------------------------------------------------------------------------------------------
# the runs of `s1 eval --method beam / rebase`


def execute_searches(runs: Sequence, engine: Engine, judge=None, grading_timeout: float = 5.0,
                     bar=None) -> None:
    """Search every pending question of every run, one question at a time; each record is on
    disk before the next question starts."""
    models: dict[str, RewardModel] = {}
    try:
        for run in runs:     # every reward model loads before anything is generated
            if run.setting.scorer not in models:
                models[run.setting.scorer] = load_reward_model(run.setting.scorer,
                                                               device=getattr(engine, "device", None))
        for run in runs:
            for key in run.done:              # killed after its record, before its journal went
                journal_path(run, key).unlink(missing_ok=True)
            for item, sample in run.pending():
                run.append(search_record(run, item, sample, engine, models[run.setting.scorer],
                                         judge, grading_timeout))
                journal_path(run, run.key(item, sample)).unlink(missing_ok=True)
                if bar is not None:
                    bar.update(1)
            if (run.dir / JOURNALS).is_dir() and not any((run.dir / JOURNALS).iterdir()):
                (run.dir / JOURNALS).rmdir()
    finally:
        for model in models.values():
            model.close()


JOURNALS = "search"     # in a run directory: the journals of the questions being searched


def journal_path(run, key: str) -> Path:
    return run.dir / JOURNALS / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".jsonl")


def search_record(run, item, sample: int, engine: Engine, reward_model: RewardModel, judge=None,
                  grading_timeout: float = 5.0):
    """One question's search, graded and made a Record (`runs._record`'s schema, with the
    search in `extra["search"]`)."""
    import time

    from s1.evaluation.grading import grade
    from s1.evaluation.metrics import estimate_flops
    from s1.evaluation.runs import ENGINE_ERROR, _Job, _record, is_gpqa
    from s1.jsonl import JsonlAppender, read_jsonl

    setting, started = run.setting, time.perf_counter()
    job = _Job(run, item, sample)
    request = job.request()
    path = journal_path(run, job.run.key(item, sample))
    replay = read_jsonl(path, repair=True, key="call",
                        damaged="the search journal is damaged: delete it to search again")
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = JsonlAppender(path)
    try:
        res = TreeSearch(engine, reward_model, setting.method, setting.params, request,
                         item.question, replay, journal.append).run()
    finally:
        journal.close()
    gpqa = is_gpqa(run.bench.name, item)
    evaluated = (res.evaluated_tokens if res.evaluated_tokens is not None
                 else res.prompt_tokens + res.generated_tokens)
    job.prompt_tokens = max(0, evaluated - res.generated_tokens)
    job.generated_tokens = res.generated_tokens
    shape = run.manifest.get("model_shape")
    if shape and shape.get("n_params"):     # else unknown (None), as for any sample
        job.flops = estimate_flops(shape["n_params"], job.prompt_tokens, job.generated_tokens,
                                   shape.get("n_layers"), shape.get("d_model")) + res.reward_flops
    cands = res.candidates
    grades = [grade(c.trace.answer, item, judge=judge, timeout=grading_timeout) for c in cands]
    rewards = [c.reward for c in cands]
    pick = None
    if cands and setting.params["select"] == "vote":
        pick = vote([g.extracted for g in grades], rewards, item.answer_type)
    if cands and pick is None:
        pick = top_branches(rewards, 1)[0]
    summary = {
        "method": setting.method, "depth": res.depth, "branches": res.branches,
        "failed_branches": len(res.errors), "errors": res.errors[:3], "chosen": pick,
        "tokens": {"prompt": res.prompt_tokens, "generated": res.generated_tokens,
                   "evaluated": res.evaluated_tokens},
        "reward_model": {"name": reward_model.name, "tokens": res.reward_tokens,
                         "flops": res.reward_flops},
        "candidates": [{"extracted": g.extracted, "correct": g.correct, "reward": c.reward,
                        "scores": c.scores, "steps": len(c.steps),
                        "thinking_tokens": c.trace.thinking_tokens}
                       for c, g in zip(cands, grades)],
    }
    if pick is None:    # no branch finished: not an answer, so not a wrong one (resume retries)
        why = res.errors[0] if res.errors else "no branch of the search finished"
        rec = _record(job, engine.failed_trace(request, why, started), ENGINE_ERROR, None, gpqa)
    else:
        rec = _record(job, cands[pick].trace, grades[pick], cands[pick].reward, gpqa)
        rec.wall_s = round(time.perf_counter() - started, 3)
    # per question, as majority@k sums its samples: the thinking the whole tree generated
    rec.thinking_tokens = res.thinking_tokens
    rec.compute.reward_tokens, rec.compute.reward_flops = res.reward_tokens, res.reward_flops
    rec.extra["search"] = summary
    return rec
