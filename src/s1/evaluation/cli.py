"""`s1 eval`, `s1 compare`, `s1 report`: test-time scaling runs, paired comparisons, reports."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from s1.cli_options import ENGINE_FIELDS, engine_options
from s1.config import default
from s1.evaluation.config import BenchmarkOptions as B
from s1.evaluation.config import BudgetOptions as G
from s1.evaluation.config import EvalConfig
from s1.evaluation.config import MethodOptions as M
from s1.evaluation.config import RunOptions as R
from s1.evaluation.methods import BestOfN
from s1.evaluation.records import RunSummary
from s1.generation.options import EngineOptions
from s1.status import note

# Each flag of `s1 eval` is one field of EvalConfig: the flag → section.field table.
FLAGS = {
    "benchmark": "benchmark.name", "benchmark_file": "benchmark.file",
    "question_field": "benchmark.question_field", "answer_field": "benchmark.answer_field",
    "answer_type": "benchmark.answer_type", "limit": "benchmark.limit",
    "subset": "benchmark.subset", "protocol": "benchmark.protocol",
    "method": "method.name", "max_thinking": "method.max_thinking",
    "num_ignore": "method.num_ignore", "ignore_string": "method.ignore_strings",
    "min_thinking": "method.min_thinking", "prompt": "method.prompt", "forcing": "method.forcing",
    "tokens_per_step": "method.tokens_per_step", "samples": "method.samples",
    "scorer": "method.scorer", "max_tries": "method.max_tries",
    "on_failure": "method.on_failure", "width": "method.width",
    "softmax_temperature": "method.softmax_temperature", "beams": "method.beams",
    "expansions": "method.expansions", "step_delimiter": "method.step_delimiter",
    "aggregate": "method.aggregate", "select": "method.select", "max_depth": "method.max_depth",
    "max_answer": "budget.max_answer", "temperature": "budget.temperature",
    "answer_reserve": "budget.answer_reserve", "require_answer": "budget.require_answer",
    "min_mode": "budget.min_mode",
    "top_p": "budget.top_p", "top_k": "budget.top_k", "min_p": "budget.min_p",
    "presence_penalty": "budget.presence_penalty", "system": "benchmark.system",
    "out": "run.out", "seeds": "run.seeds", "judge_url": "run.judge_url",
    "judge_model": "run.judge_model", "model_params": "run.model_params", "quiet": "run.quiet",
    "allow_greedy_repeats": "run.allow_greedy_repeats",
    **{f: f"engine.{f}" for f in ENGINE_FIELDS},
}


def given_flags(ctx: typer.Context) -> dict[str, dict]:
    """{section: {field: value}} for the flags typed on the command line (not defaults)."""
    out: dict[str, dict] = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)   # by name: typer may vendor its own click
        if name in FLAGS and source is not None and source.name == "COMMANDLINE":
            section, field = FLAGS[name].split(".")
            out.setdefault(section, {})[field] = value
    return out


# --- renderers -------------------------------------------------------------------------------

def render_run(s: RunSummary) -> str:
    failed = (f" · {s.errors} engine error{'s' * (s.errors > 1)}, not graded (re-run to retry)"
              if s.errors else "")
    return _render_run(s) + failed


def _render_run(s: RunSummary) -> str:
    if s.pass_at_1 is not None:   # the R1 protocol: pass@1 over n samples, and the vote
        c = s.cons_at_n
        return (f"{s.name}: pass@1 {100 * s.accuracy:.1f}% [{100 * s.wilson_low:.1f}, "
                f"{100 * s.wilson_high:.1f}] ({s.questions} questions × "
                f"{s.samples_per_question} samples) · cons@{c['n']} {100 * c['accuracy']:.1f}% "
                f"({c['correct']}/{c['questions']}) · {s.thinking_per_question:.0f} thinking "
                f"tokens/question")
    head = (f"{s.name}: {100 * s.accuracy:.1f}% [{100 * s.wilson_low:.1f}, "
            f"{100 * s.wilson_high:.1f}] ({s.correct}/{s.questions}) · ")
    if s.tries_mean is not None:   # rejection sampling: the failed samples apart, as Control
        samples = s.questions * s.samples_per_question
        kept = ("no sample within the threshold" if s.accepted_thinking_mean is None else
                f"{s.accepted_thinking_mean:.0f} thinking tokens/sample within the threshold")
        return (head + f"{kept} · {s.rejection_failed}/{samples} out of tries "
                f"({'scored wrong' if s.rejection_on_failure == 'wrong' else 'last sample kept'})"
                f" · {s.tries_mean:.1f} tries/sample · "
                f"{s.compute['generated_tokens']} generated tokens")
    return (head + f"{s.thinking_per_question:.0f} thinking tokens/question · "
            f"{s.compute['generated_tokens']} generated tokens")


def render_table(summaries: List[RunSummary]) -> str:
    """One row per run, grouped by benchmark (as lm-eval prints its task list)."""
    head = ("benchmark", "run", "accuracy", "95% interval", "questions", "thinking/question")
    rows = [(s.benchmark or "", s.name, f"{100 * s.accuracy:.1f}",
             f"[{100 * s.wilson_low:.1f}, {100 * s.wilson_high:.1f}]",
             f"{s.questions}/{s.expected_questions}", f"{s.thinking_per_question or 0:.0f}")
            for s in sorted(summaries, key=lambda s: (s.benchmark or "", s.name)) if not s.empty]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, rows)])


def render_curve(c: dict) -> str:
    ctrl = "n/a" if c["control"] is None else f"{100 * c['control']:.0f}%"
    slope = "n/a" if c["scaling_log2"] is None else f"{c['scaling_log2']:+.2f} pp/doubling"
    if c["scaling_log2"] is not None and c.get("scaling_log2_low") is not None:
        slope += f" [{c['scaling_log2_low']:+.2f}, {c['scaling_log2_high']:+.2f}]"
    if c.get("scaling_log2_fit") is not None:
        slope += f" (least squares {c['scaling_log2_fit']:+.2f})"
    if c.get("near_ties"):
        slope += (f", {len(c['near_ties'])} pair(s) of points < 0.1 doublings apart: the "
                  "pairwise mean may be dominated by their noise")
    return (f"{c['benchmark']} · {c.get('name', c['label'])}: Control {ctrl} · Scaling {slope} · "
            f"Performance {c['performance']:.1f}%")


# --- commands --------------------------------------------------------------------------------

def eval_(
    ctx: typer.Context,
    overrides: Optional[List[str]] = typer.Argument(None, metavar="SECTION.FIELD=VALUE", help="Change any field of the config, e.g. method.max_thinking=64,128 budget.max_answer=8."),
    config: Optional[str] = typer.Option(None, "--config", help="Eval config: configs/eval/NAME or a .yaml path; flags and overrides change it."),
    show: bool = typer.Option(False, "--show", help="Print the resolved config and exit."),
    benchmark: Optional[str] = typer.Option(None, help="aime24, math500, gsm8k, tiny (the miniature world), aime25, gpqa-diamond, or a JSONL path; several comma-separated (aime24,math500,gpqa-diamond), each its own runs."),
    out: Optional[str] = typer.Option(None, help="Directory of the runs (one sub-directory per run); re-run to resume."),
    method: str = typer.Option(default(M, "name"), help="budget, conditional, rejection, majority, best-of-n, weighted-majority (votes weighted by a reward model), r1 (DeepSeek-R1: n samples at T=0.6, top-p 0.95, boxed prompt; pass@1 and cons@n), beam (step-level beam search) or rebase (REBASE tree search); beam and rebase need --scorer."),
    benchmark_file: Optional[str] = typer.Option(None, help="Local file for a named benchmark (aime25, gpqa-diamond offline); with several benchmarks NAME=PATH[,NAME=PATH]."),
    question_field: Optional[str] = typer.Option(None, help="Question field of a JSONL benchmark."),
    answer_field: Optional[str] = typer.Option(None, help="Answer field of a JSONL benchmark."),
    answer_type: Optional[str] = typer.Option(None, help="integer, math or choice (JSONL benchmarks)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions."),
    subset: Optional[str] = typer.Option(None, help="Metadata filter, e.g. level=5 or subject=Algebra."),
    protocol: str = typer.Option(default(B, "protocol"), help="Prompt protocol: s1 (bare question) or boxed."),
    max_thinking: str = typer.Option(default(M, "max_thinking"), help="Thinking caps, comma-separated: e.g. 0,64,128,256,auto (rejection: thresholds)."),
    num_ignore: str = typer.Option(default(M, "num_ignore"), help="Budget forcing: times to ignore the end of thinking, comma-separated, e.g. 0,1,2."),
    ignore_string: Optional[List[str]] = typer.Option(None, help="Budget forcing: string appended when an end is ignored; repeat for one run per string (default: Wait)."),
    min_thinking: int = typer.Option(default(M, "min_thinking"), help="Budget forcing: minimum thinking tokens."),
    prompt: Optional[str] = typer.Option(None, help="Conditional: prompts, comma-separated: tokens:N, steps:N, long, short."),
    forcing: bool = typer.Option(default(M, "forcing"), "--forcing/--no-forcing", help="Conditional: also budget-force the prompted bound."),
    tokens_per_step: int = typer.Option(default(M, "tokens_per_step"), help="Conditional steps:N with --forcing: token cap per step."),
    samples: Optional[int] = typer.Option(None, help="Majority / best-of-n / weighted-majority (default 8) and r1 (default 16): samples per question."),
    scorer: Optional[str] = typer.Option(None, help="Best-of-n: oracle (default), shortest, module:function(item, trace, grade), or a reward model reading the thinking's steps: programmatic (the miniature world's checker), prm:MODEL (Qwen2.5-Math-PRM or Math-Shepherd style; prm-qwen:/prm-shepherd: to force one), orm:MODEL, served:URL[#model] (vLLM's pooling API), module:function(question, steps). Weighted-majority: a reward model (default programmatic). Beam / rebase: the reward model (required)."),
    aggregate: Optional[str] = typer.Option(None, help="Reward model: one score from the step scores: min, last, prod or mean (default: best-of-n and weighted-majority min, beam and rebase last)."),
    step_delimiter: str = typer.Option(default(M, "step_delimiter"), show_default=False, help="Reward model / beam / rebase: where the thinking splits into steps (\\n\\n; the miniature world writes one step per line: '\\n'). Escapes \\n and \\t are read."),
    width: int = typer.Option(default(M, "width"), help="Rebase: total width of the tree (answers collected)."),
    softmax_temperature: float = typer.Option(default(M, "softmax_temperature"), help="Rebase: T of softmax(reward / T), how expansions are shared among nodes."),
    beams: int = typer.Option(default(M, "beams"), help="Beam: beams kept at each step."),
    expansions: int = typer.Option(default(M, "expansions"), help="Beam: expansions of each beam per step."),
    select: Optional[str] = typer.Option(None, help="Beam / rebase: the answer, best (highest reward) or vote (reward-weighted); default beam best, rebase vote."),
    max_depth: int = typer.Option(default(M, "max_depth"), help="Beam / rebase: steps at most, then open branches finish and answer."),
    max_tries: int = typer.Option(default(M, "max_tries"), help="Rejection sampling: tries per question before giving up."),
    on_failure: str = typer.Option(default(M, "on_failure"), help="Rejection sampling, a question out of tries: wrong (the paper) or keep (grade the last, cut sample)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (default: 0 for budget/conditional, 1 for sampling methods)."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling mass (default: 1; the R1 protocol 0.95)."),
    top_k: int = typer.Option(default(G, "top_k"), help="Sample among the k likeliest tokens (0 = all)."),
    min_mode: str = typer.Option(default(G, "min_mode"), help="How a minimum holds: wait (append the ignore string) or suppress (mask the end, vLLM min_tokens)."),
    answer_reserve: int = typer.Option(default(G, "answer_reserve"), help="Tokens 'auto' thinking leaves free for the answer (the s1 harness: 100)."),
    require_answer: bool = typer.Option(default(G, "require_answer"), "--require-answer/--no-require-answer", help="An empty answer gets the forced suffix once; --no-require-answer is the harness exactly."),
    min_p: float = typer.Option(default(G, "min_p"), help="Drop tokens below min_p × the likeliest token's probability (0 = off)."),
    presence_penalty: float = typer.Option(default(G, "presence_penalty"), help="Subtracted from the logits of tokens already generated (0 = off; in-process engines)."),
    system: Optional[str] = typer.Option(None, help="System prompt (default: the model's own, as the paper)."),
    max_answer: str = typer.Option(default(G, "max_answer"), help="Max answer tokens, or auto: the rest of the model's context (the paper's harness)."),
    seeds: int = typer.Option(default(R, "seeds"), help="Seeds 0..N-1, one run each (accuracy reported as mean ± sd)."),
    judge_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of an LLM equivalence judge."),
    judge_model: Optional[str] = typer.Option(None, help="Model name of the judge (with --judge-url)."),
    model_params: Optional[float] = typer.Option(None, help="Parameter count for FLOPs when the engine cannot tell (remote)."),
    quiet: bool = typer.Option(default(R, "quiet"), "--quiet", help="No progress bar."),
    allow_greedy_repeats: bool = typer.Option(default(R, "allow_greedy_repeats"), "--allow-greedy-repeats", help="Allow --seeds > 1 or several samples at temperature 0 (identical greedy repeats; to measure engine nondeterminism)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summaries and curves as one JSON object."),
    *,
    engine: EngineOptions,
):
    """Evaluate a test-time scaling method on a benchmark: one run per setting and seed."""
    # Everything the user typed is checked before a model loads or a directory appears.
    cfg = EvalConfig.load(config, given_flags(ctx), overrides or [])
    if show:
        print(cfg.show(), end="")
        return
    if not cfg.run.quiet:
        note(cfg.engine.loading_note())
    from s1.evaluation.evaluate import evaluate

    result = evaluate(cfg)
    if json_out:
        print(json.dumps({"out": str(result.out), "runs": [s.to_dict() for s in result.summaries],
                          "curves": result.curves}))
        return
    if len(cfg.benchmark.names()) > 1:
        print(render_table(result.summaries))
    else:
        for s in result.summaries:
            if not s.empty:
                print(render_run(s))
            elif s.errors:
                print(f"{s.name}: no graded sample · {s.errors} engine errors (re-run to retry)")
    for c in result.curves:
        if len(c["points"]) >= 2:
            print(render_curve(c))
    print(f"records, manifests and summaries in {cfg.run.out}; `s1 report {cfg.run.out}` draws them")


def compare(
    run_a: str = typer.Argument(..., help="Run directory A."),
    run_b: str = typer.Argument(..., help="Run directory B."),
    resamples: int = typer.Option(10_000, help="Bootstrap resamples (the paper: 10,000)."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    metric: str = typer.Option("headline", help="What is compared per question: headline (what the run's table shows: pass@1 for the R1 protocol, else the method's answer), pass@1 (mean over the samples) or prediction (the method's answer: cons@n, maj@k, best-of-n)."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as one JSON object."),
):
    """Accuracy of run A minus run B on their shared questions: a paired bootstrap 95% CI and an
    exact paired test (McNemar's on the questions where the runs disagree)."""
    from s1.evaluation.aggregate import compare_runs

    c = compare_runs(run_a, run_b, resamples=resamples, seed=seed, metric=metric)
    if json_out:
        print(json.dumps(c))
        return
    print(f"A {c['a']}: {c['compared_a']} {100 * c['accuracy_a']:.1f}%   B {c['b']}: "
          f"{c['compared_b']} {100 * c['accuracy_b']:.1f}%   ({c['shared']} shared questions; "
          f"{c['only_a']} only in A, {c['only_b']} only in B)")
    print(f"A − B = {100 * c['difference']:+.1f} points, 95% paired bootstrap CI "
          f"[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] ({c['resamples']} resamples)")
    print(f"p = {c['p_value']:.3f} ({c['test']}: A better on {c['a_better']}, B better on "
          f"{c['b_better']} of the {c['shared']} questions)")


def report(
    dirs: List[str] = typer.Argument(..., help="Run directories or sweep directories (from s1 eval --out)."),
    out: Optional[str] = typer.Option(None, help="Where report.md, report.html and the PNGs go (default: the first DIR)."),
):
    """report.md + a standalone report.html + PNGs: scaling curves, Control/Scaling/Performance,
    matched compute, per-question outcomes."""
    from s1.evaluation.report import write_report

    for p in write_report(dirs, out):
        print(p)


def compare_compute(
    benchmark: str = typer.Option(..., help="aime24, math500, gsm8k, tiny (the miniature world), aime25, gpqa-diamond, or a JSONL path."),
    budgets: str = typer.Option(..., help="Thinking budgets B per question, comma-separated, e.g. 512,1024,2048."),
    out: str = typer.Option(..., help="Directory of the runs (re-run to resume); compute.json/md/png go here too."),
    ks: str = typer.Option("1,2,4", help="Parallel samples k, comma-separated: majority@k and oracle best-of-k at B/k each."),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions."),
    subset: Optional[str] = typer.Option(None, help="Metadata filter, e.g. level=5."),
    benchmark_file: Optional[str] = typer.Option(None, help="Local file for a named benchmark."),
    protocol: str = typer.Option(default(B, "protocol"), help="Prompt protocol: s1 or boxed."),
    temperature: float = typer.Option(1.0, help="Temperature of the parallel samples (budget forcing stays greedy)."),
    num_ignore: int = typer.Option(0, help="Budget forcing: times to ignore the end of thinking at each B."),
    max_answer: str = typer.Option(default(G, "max_answer"), help="Max answer tokens, or auto (the rest of the context)."),
    model_config: Optional[str] = typer.Option(None, help="config.json (or its directory) of the model, for FLOPs when the engine cannot tell (remote)."),
    seeds: int = typer.Option(5, help="Seeds of the parallel runs (mean ± sd over them; budget forcing is greedy, one run)."),
    scorer: Optional[str] = typer.Option(None, help="A reward model (programmatic, prm:MODEL, orm:MODEL, served:URL, module:function(question, steps)): its best-of-k joins the comparison, its reading counted in the compute."),
    aggregate: str = typer.Option(default(BestOfN, "aggregate"), help="With --scorer: one score from the step scores: min, last, prod or mean."),
    step_delimiter: str = typer.Option(default(M, "step_delimiter"), show_default=False, help="With --scorer: where the thinking splits into steps (default a blank line; the miniature world: '\\n')."),
    resamples: int = typer.Option(10_000, help="Paired bootstrap resamples."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as one JSON object."),
    *,
    engine: EngineOptions,
):
    """Matched compute: majority@k and oracle best-of-k at B/k against budget forcing at the
    same measured FLOPs (interpolated along its budgets), on the same questions, over seeds,
    with paired differences, a table and a plot."""
    from s1.evaluation.compute import ComputePlan, matched_compute, table
    from s1.evaluation.config import _ints
    from s1.evaluation.rewards import read_delimiter

    plan = ComputePlan(tuple(_ints(budgets, "--budgets")), tuple(_ints(ks, "--ks")),
                       temperature=temperature, num_ignore=num_ignore, seeds=seeds,
                       scorer=scorer, aggregate=aggregate,
                       step_delimiter=read_delimiter(step_delimiter))
    bench = B(name=benchmark, file=benchmark_file, limit=limit, subset=subset, protocol=protocol)
    result = matched_compute(plan, engine, bench, out, max_answer=max_answer,
                             model_config=model_config, resamples=resamples, quiet=quiet)
    if json_out:
        print(json.dumps({"cells": [c.to_dict() for c in result["cells"]],
                          "budget_forcing": [{"budget": p.budget, "cost_per_question": p.cost}
                                             for p in result["curve"]],
                          "unit": result["unit"], "model_shape": result["shape"],
                          "files": [str(f) for f in result["files"]]}))
        return
    header, rows = table(result["cells"], result["unit"])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(row))
    for f in result["files"]:
        print(f)
def regrade(
    dirs: List[str] = typer.Argument(..., help="Run directories or sweep directories (from s1 eval --out)."),
    judge_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL of an LLM equivalence judge (none: the rules alone)."),
    judge_model: Optional[str] = typer.Option(None, help="Model name of the judge (with --judge-url)."),
    timeout: float = typer.Option(5.0, help="Seconds per math-verify call."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the changes as one JSON object."),
):
    """Grade stored answers again (a grader fix, a judge) without generating: records, manifests
    and summaries are rewritten atomically; the runs still resume."""
    from s1.evaluation.regrade import regrade as run_regrade

    if timeout <= 0:
        from s1.errors import UserError
        raise UserError(f"--timeout must be positive, not {timeout}")
    results = run_regrade(dirs, judge_url, judge_model, timeout=timeout, dry_run=dry_run)
    if json_out:
        print(json.dumps({"dry_run": dry_run, "runs": [r.to_dict() for r in results]}))
        return
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"   # noqa: E731
    for r in results:
        print(f"{r.run}: {r.records} records · right→wrong {r.right_to_wrong} · wrong→right "
              f"{r.wrong_to_right} · answers read differently {r.extracted_changed} · accuracy "
              f"{pct(r.accuracy_before)} → {pct(r.accuracy_after)}")
    print(f"{sum(r.flipped for r in results)} grades changed in {len(results)} runs"
          + (" (dry run: nothing written)" if dry_run else ""))


def import_lm_eval(
    samples: List[str] = typer.Argument(..., help="lm-eval --log_samples files (samples_TASK_DATE.jsonl), one run each."),
    out: str = typer.Option(..., help="Directory of the runs (as s1 eval --out)."),
    benchmark: Optional[str] = typer.Option(None, help="Match documents to this benchmark's questions (aime24, math500, ...) and grade against its golds; default: each document's own answer."),
    model: str = typer.Option("imported", help="Model name the runs carry."),
    format: str = typer.Option("s1", "--format", help="Thinking format of the outputs: s1, think-tags or none (all of it is the answer)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer of the generating model for exact token counts (default: the embedded model's, approximate)."),
    name: Optional[str] = typer.Option(None, help="Task name (default: from the file name)."),
    json_out: bool = typer.Option(False, "--json", help="Print the imports as one JSON object."),
):
    """Import lm-evaluation-harness --log_samples outputs (the s1 paper's released outputs)
    into run directories: graded by this package, with lm-eval's verdicts kept beside ours."""
    from s1.evaluation.lmeval_import import import_samples

    if name and len(samples) > 1:
        from s1.errors import UserError
        raise UserError("--name names one import; give one samples file with it")
    done = [import_samples(p, out, benchmark=benchmark, model=model, fmt=format,
                           tokenizer=tokenizer, name=name) for p in samples]
    if json_out:
        print(json.dumps({"out": out, "runs": [d.to_dict() for d in done]}))
        return
    for d in done:
        print(f"{d.run}: {d.questions} questions, {d.samples} samples · agrees with lm-eval on "
              f"{d.agree} · right here, wrong there {d.we_right_they_wrong} · wrong here, right "
              f"there {d.we_wrong_they_right} · no lm-eval verdict {d.no_verdict}"
              + (" · token counts approximate (give --tokenizer)" if d.approximate_tokens else ""))
    print(f"runs in {out}; `s1 report {out}` draws them, `s1 regrade {out}` grades them again")


def register(app: typer.Typer) -> None:
    app.command("eval")(engine_options(eval_))
    app.command()(regrade)
    app.command("import-lm-eval")(import_lm_eval)
    app.command()(compare)
    app.command()(report)
    app.command("compare-compute")(engine_options(compare_compute))
