"""Grading is bounded: adversarial answers each finish within the verification timeout.

Every case is graded through the public `grade()` (extraction in this process, math-verify in a
worker process under a hard deadline). Printed per case: wall time as a ratio of the timeout and
as a multiple of a normal answer's grading time measured in the same run, and the recorded
reason. Run: python bench/bench_grading.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from s1.evaluation import Item, grade, load_benchmark

MB = 1 << 20


def adversarial_cases() -> list[tuple[str, str, Item]]:
    """(name, answer text, item) for inputs built to hang, blow up or crash a grader."""
    five = Item("adv-math", "q", "5", "math")
    half = Item("adv-frac", "q", "\\frac{1}{2}", "math")
    aime = Item("adv-int", "q", "073", "integer")
    choice = Item("adv-choice", "q", "B", "choice")
    deep = "{" * 10_000 + "1" + "}" * 10_000
    return [
        ("braces nested 10,000 deep", f"\\boxed{{{deep}}}", five),
        ("braces nested 4,000 deep (verified)", "\\boxed{" + "{" * 4000 + "1" + "}" * 4000 + "}",
         five),
        ("10,000 unclosed braces", "\\boxed{" + "{" * 10_000 + "1", five),
        ("tower 10^{10^{10^{10}}}", "\\boxed{10^{10^{10^{10}}}}", five),
        ("tower 9^{9^{9}}", "\\boxed{9^{9^{9}}}", aime),
        ("factorial (10^{10})!", "\\boxed{(10^{10})!}", five),
        ("product to 10^6", "\\boxed{\\prod_{n=1}^{10^{6}} n}", half),
        ("(1+x)^{100000}", "\\boxed{(1+x)^{100000}}", half),
        ("3,000 \\left(", "\\boxed{" + "\\left(" * 3000 + "1}", five),
        ("500 nested \\sqrt", "\\boxed{" + "\\sqrt{" * 500 + "2" + "}" * 500 + "}", half),
        ("1 MB without an answer", "lorem ipsum " * (MB // 12), five),
        ("1 MB answer line", "Answer: " + "1+" * (MB // 2), five),
        ("1 MB of boxes", "\\boxed{7} " * (MB // 10), five),
        ("1 MB of whitespace after Answer:", "Answer:" + " " * MB + "x", choice),
        ("1 MB of 'Answer: ' for a letter", "Answer: " * (MB // 8), choice),
        ("100,000-digit integer", "\\boxed{" + "9" * 100_000 + "}", aime),
        ("unbalanced \\frac{1}{", "\\boxed{\\frac{1}{}", half),
        ("unbalanced \\left( \\frac12", "Answer: $\\left( \\frac{1}{2}$", half),
        ("stray closing braces", "\\boxed{1}}}}}{{{", five),
        ("LaTeX garbage", "\\boxed{\\begin{pmatrix} 1 & \\\\ \\end{array} ^^ _ \\frac}", half),
        ("python in a box", "\\boxed{__import__('os').system('echo pwned')}", five),
    ]


def _normal_answers(n: int) -> list[tuple[str, Item]]:
    """Real MATH500 answers rewritten with \\dfrac: each goes through math-verify, and each is
    distinct, so math-verify's parse cache cannot make the baseline look faster than it is."""
    items = [it for it in load_benchmark("math500") if "\\frac" in it.answer]
    return [("Thus the answer is $\\boxed{" + it.answer.replace("\\frac", "\\dfrac") + "}$.", it)
            for it in items[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="verification timeout (s)")
    parser.add_argument("--repeats", type=int, default=20, help="normal-answer timings")
    args = parser.parse_args()

    normals = _normal_answers(args.repeats + 2)
    grade(*normals[-1], timeout=args.timeout)  # start the worker outside the measurements
    normal_times = []
    for text, item in normals[:args.repeats]:
        t = time.perf_counter()
        g = grade(text, item, timeout=args.timeout)
        normal_times.append(time.perf_counter() - t)
        assert g.correct and g.reason == "math-verify equal", g
    normal = statistics.median(normal_times)
    print(f"normal answer: {1000 * normal:.1f} ms median over {len(normal_times)} MATH500 answers "
          f"({g.reason}); timeout {args.timeout:g} s\n")

    header = f"{'case':38} {'time s':>8} {'/timeout':>9} {'x normal':>9}  reason"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, answer, case_item in adversarial_cases():
        t = time.perf_counter()
        g = grade(answer, case_item, timeout=args.timeout)
        dt = time.perf_counter() - t
        worst = max(worst, dt / args.timeout)
        print(f"{name:38} {dt:8.3f} {dt / args.timeout:9.3f} {dt / normal:9.1f}  {g.reason}")
        if g.correct:
            print(f"  !! graded correct: {name}")
            return 1
    # The grader still works after the kills.
    text, item = normals[-2]
    t = time.perf_counter()
    g = grade(text, item, timeout=args.timeout)
    print(f"\nnormal answer after the adversarial cases: {1000 * (time.perf_counter() - t):.1f} ms "
          f"({g.reason})")
    print(f"worst case: {worst:.3f} x the timeout")
    return 0 if g.correct else 1


if __name__ == "__main__":
    sys.exit(main())
