"""Evaluation: benchmarks, prompts, answer grading and the metrics of test-time scaling."""

from s1.evaluation.benchmarks import Benchmark, Item, load_benchmark
from s1.evaluation.extract import extract_answer, extract_choice, last_boxed, split_answer
from s1.evaluation.grading import Grade, grade, grade_many
from s1.evaluation.judge import Judge
from s1.evaluation.metrics import (accuracy, bootstrap_interval, control, cov_at_k,
                                   estimate_flops, maj_at_k, mean_sd, paired_bootstrap, pass_at_k,
                                   performance, question_interval, scaling, scaling_bootstrap,
                                   seed_means, thinking_stats, wilson_interval)
from s1.evaluation.verifier import GraderUnavailable, cluster_answers
from s1.evaluation.prompts import format_prompt

__all__ = [
    "Benchmark", "Item", "load_benchmark", "format_prompt",
    "split_answer", "extract_answer", "extract_choice", "last_boxed",
    "Grade", "grade", "grade_many", "Judge", "GraderUnavailable", "cluster_answers",
    "accuracy", "wilson_interval", "question_interval", "seed_means", "bootstrap_interval",
    "mean_sd", "pass_at_k", "maj_at_k", "cov_at_k",
    "thinking_stats", "control", "scaling", "scaling_bootstrap", "performance", "estimate_flops",
    "paired_bootstrap",
]
