"""The DeepSeek-R1 evaluation protocol (arXiv 2501.12948, §3.1), as one method.

n samples per question at temperature 0.6, top-p 0.95 (greedy decoding makes reasoning models
repeat themselves), the boxed-answer prompt; the headline is pass@1, the mean correctness over
the samples, with a 95% interval from the per-question means (n = questions: the samples re-ask
the same questions, they are not more of them). cons@n is the majority vote over the n samples,
answers grouped by equivalence (`\\frac12` = `0.5`), as majority voting does.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from s1.evaluation.metrics import accuracy, question_interval
from s1.evaluation.records import Record, RunSummary
from s1.generation.budget import Budget

R1_SAMPLES = 16          # R1 drew 4-64 per benchmark (64 on AIME); 16 keeps a laptop run short
R1_TEMPERATURE = 0.6
R1_TOP_P = 0.95


@dataclass(frozen=True)
class R1Sampling:
    """samples: n per question; temperature / top_p: the protocol's 0.6 / 0.95; max_thinking:
    the cap of every sample ("auto": the context, R1's 32,768-token generations)."""

    samples: int = R1_SAMPLES
    temperature: float = R1_TEMPERATURE
    top_p: float = R1_TOP_P
    max_thinking: int | str | None = "auto"

    def __post_init__(self) -> None:
        from s1.evaluation.methods import _check_max, _check_positive, _check_temperature

        _check_positive(self.samples, "the number of samples")
        _check_temperature(self.temperature, "the R1 protocol")
        if self.temperature == 0 and self.samples > 1:
            from s1.errors import UserError
            raise UserError("the R1 protocol at temperature 0 would draw the same sample n times; "
                            "use a positive temperature (R1: 0.6) or --samples 1")
        object.__setattr__(self, "max_thinking", _check_max(self.max_thinking))
        Budget().with_(temperature=self.temperature, top_p=self.top_p)   # checks top_p

    def settings(self, base: Budget):
        from s1.evaluation.methods import Setting, _max_label

        name = f"r1-n{self.samples}-t{self.temperature:g}-p{self.top_p:g}" \
               f"-max{_max_label(self.max_thinking)}"
        return [Setting("r1", name, base.with_(max_thinking_tokens=self.max_thinking,
                                               temperature=self.temperature, top_p=self.top_p),
                        samples=self.samples, label="R1 protocol (cons@k)",
                        params={"samples": self.samples, "temperature": self.temperature,
                                "top_p": self.top_p, "max_thinking": self.max_thinking})]


def r1_headline(summary: RunSummary, questions: dict[str, list[Record]],
                cons: dict[str, dict]) -> None:
    """Make pass@1 the run's accuracy (mean over samples, interval over question means) and
    record cons@n beside it; `cons` is the per-question majority prediction."""
    means = [statistics.fmean(bool(r.correct) for r in samples) for samples in questions.values()]
    low, high = question_interval(means)
    summary.accuracy = statistics.fmean(means)
    summary.wilson_low, summary.wilson_high = low, high
    summary.correct = sum(bool(r.correct) for v in questions.values() for r in v)
    vote = accuracy([o["correct"] for o in cons.values()])
    summary.pass_at_1 = {"mean": summary.accuracy, "low": low, "high": high,
                         "samples_correct": summary.correct,
                         "samples": sum(len(v) for v in questions.values()),
                         "interval": "Wilson at the mean of per-question means, n = questions"}
    summary.cons_at_n = {"n": summary.samples_per_question, "accuracy": vote.value,
                         "low": vote.low, "high": vote.high, "correct": vote.correct,
                         "questions": vote.total}
