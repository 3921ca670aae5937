"""The miniature world: procedurally generated reasoning problems with exact answers.

Six task families, each a domain with its MSC code (so the curation stage's domains step and
Algorithm 1 work on them unchanged). Every problem has a difficulty `d` (the number of steps
its solution needs) and a programmatic teacher that writes the solution one step per line, in
the plain text a small model can learn character by character. With probability `slip_rate`
the teacher makes one slip at a random step, then writes "Wait, " and the step again, correctly
(s1's traces re-check after "Wait"; here that re-check is something a forced "Wait" can do).
With probability `recheck_rate` it also re-checks one right step after "Wait" and confirms it,
as s1's traces mostly do: "Wait" means "check again", not "the line before was wrong".

A problem's solution needs all its steps: the answer is the last line's value, so thinking cut
before the end leaves only an intermediate value to answer with. Trace length grows linearly
with `d`; that is what makes accuracy rise with the thinking budget.

`generate(n, seed, ...)` is deterministic in its arguments. Problems are keyed by their question
text; the shipped benchmark (`tiny`) is disjoint from every pool generated with another seed
because `benchmark_questions()` is excluded in `pool_rows`.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from s1.errors import UserError

MAX_DIFFICULTY = 12


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str
    domain: str          # the task family
    difficulty: int      # steps the solution needs
    steps: tuple[str, ...]   # the correct solution, one line per step

    def trace(self, rng: random.Random, slip_rate: float,
              recheck_rate: float = 0.0) -> tuple[str, bool]:
        """The teacher's thinking: the steps, maybe with one slip corrected after "Wait", maybe
        with one correct step re-checked after "Wait" and confirmed. Without the confirmations a
        student learns that "Wait" means "the line before was wrong" and, forced to wait after a
        right answer, changes it (measured: docs/miniature.md)."""
        lines = list(self.steps)
        slipped = False
        if recheck_rate and rng.random() < recheck_rate:   # no draw at 0: the benchmark stays
            at = rng.randrange(len(lines))
            lines[at:at + 1] = [lines[at], "Wait, " + lines[at]]
        if rng.random() < slip_rate:
            at = rng.randrange(len(lines))
            wrong = None if lines[at].startswith("Wait, ") else _slip(lines[at], rng)
            if wrong is not None:
                lines[at:at + 1] = [wrong, "Wait, " + lines[at]]
                slipped = True
        return "\n".join(lines), slipped


def _slip(line: str, rng: random.Random) -> str | None:
    """The line with its last number off by a little (a plausible slip)."""
    found = re.search(r"(\d+)$", line)
    if found is None:
        return None
    value = int(found.group(1))
    wrong = value + rng.choice((-2, -1, 1, 2))
    return line[:found.start()] + str(wrong if wrong >= 0 else value + 1)


# ---------------------------------------------------------------------------------------------
# the task families: each (rng, d) -> Problem, and each question -> its solution's steps
#
# A family's step format lives in one function (`*_steps`), which both the generator and the
# question's parser call: the programmatic reward model (`s1.miniature.steps`) checks a model's
# lines against the steps the question itself determines.


def arithmetic_steps(value: int, ops: list[tuple[str, int]]) -> tuple[list[str], int]:
    steps = []
    for op, k in ops:
        new = value + k if op == "+" else value - k
        steps.append(f"{value}{op}{k}={new}")
        value = new
    return steps, value


def arithmetic(rng: random.Random, d: int) -> Problem:
    """Left-to-right sums and differences of one-digit numbers, staying within 0..19."""
    start = value = rng.randint(1, 19)
    ops = []
    for _ in range(d):
        k = rng.randint(1, 9)
        op = rng.choice("+-") if k <= value and value + k <= 19 else ("-" if value + k > 19 else "+")
        ops.append((op, k))
        value = value + k if op == "+" else value - k
    steps, value = arithmetic_steps(start, ops)
    expr = str(start) + "".join(f"{op}{k}" for op, k in ops)
    return Problem(f"Compute {expr} from left to right.", str(value), "arithmetic", d,
                   tuple(steps))


def parse_arithmetic(question: str) -> list[str] | None:
    found = re.fullmatch(r"Compute (\d+)((?:[+-]\d+)+) from left to right\.", question)
    if found is None:
        return None
    ops = [(op, int(k)) for op, k in re.findall(r"([+-])(\d+)", found.group(2))]
    return arithmetic_steps(int(found.group(1)), ops)[0]


def modular_power_steps(value: int, b: int, d: int, m: int) -> tuple[list[str], int]:
    steps = []
    for _ in range(d):
        prod = value * b
        value = prod % m
        steps.append(f"{prod // b}*{b}={prod}={value}" if prod != value else f"{prod // b}*{b}={value}")
    return steps, value


def modular_power(rng: random.Random, d: int) -> Problem:
    """c * b^d mod m by d multiplications, reducing at each step."""
    m = rng.randint(5, 13)
    b = rng.choice([x for x in range(2, min(9, m - 1) + 1) if math.gcd(x, m) == 1])  # no zeros
    value = rng.randint(1, m - 1)
    question = f"Compute {value}*{b}^{d} mod {m}."
    steps, value = modular_power_steps(value, b, d, m)
    return Problem(question, str(value), "modular_power", d, tuple(steps))


def parse_modular_power(question: str) -> list[str] | None:
    found = re.fullmatch(r"Compute (\d+)\*(\d+)\^(\d+) mod (\d+)\.", question)
    return None if found is None else modular_power_steps(*map(int, found.groups()))[0]


def base_conversion_steps(n: int, base: int) -> tuple[list[str], str]:
    steps, value, digits = [], n, []
    while value:
        q, r = divmod(value, base)
        steps.append(f"{value}={base}*{q}+{r}")
        digits.append(str(r))
        value = q
    answer = "".join(reversed(digits))
    steps.append(f"digits reversed: {answer}")
    return steps, answer


def base_conversion(rng: random.Random, d: int) -> Problem:
    """A number written in base 2..9 by repeated division: d digits, so d divisions."""
    base = rng.choice([b for b in range(2, 10) if b ** (d - 1) <= 255])   # numbers below 256
    n = rng.randint(base ** (d - 1), min(base ** d - 1, 255))
    steps, answer = base_conversion_steps(n, base)
    return Problem(f"Write {n} in base {base}.", answer, "base_conversion", d, tuple(steps))


def parse_base_conversion(question: str) -> list[str] | None:
    found = re.fullmatch(r"Write (\d+) in base (\d+)\.", question)
    return None if found is None else base_conversion_steps(*map(int, found.groups()))[0]


Layer = tuple[str, str, int]   # the expression so far, its last operation, and its operand


def linear_equation_steps(layers: list[Layer], value: int) -> list[str]:
    """Undo the layers from the outside in, one step each."""
    steps, rhs = [], value
    for i in range(len(layers) - 1, -1, -1):
        _, op, k = layers[i]
        inner = layers[i - 1][0] if i else "x"
        undo, new = {"+": ("-", rhs - k), "-": ("+", rhs + k), "*": ("/", rhs // k)}[op]
        steps.append(f"{inner}={rhs}{undo}{k}={new}")
        rhs = new
    return steps


def linear_equation(rng: random.Random, d: int) -> Problem:
    """Solve an equation built by d operations on x, undoing them one at a time."""
    x = rng.randint(1, 20)
    expr, value, layers = "x", x, []
    for i in range(d):
        op = rng.choice("+-*") if value <= 40 else rng.choice("+-")
        k = rng.randint(2, 5) if op == "*" else rng.randint(1, 9)
        if op == "-" and value - k < 0:
            op = "+"
        value = value * k if op == "*" else value + k if op == "+" else value - k
        expr = f"({expr}){op}{k}" if i else f"x{op}{k}"
        layers.append((expr, op, k))
    return Problem(f"Solve for x: {expr}={value}.", str(x), "linear_equation", d,
                   tuple(linear_equation_steps(layers, value)))


def parse_linear_equation(question: str) -> list[str] | None:
    found = re.fullmatch(r"Solve for x: (.+)=(\d+)\.", question)
    if found is None:
        return None
    expr, layers = found.group(1), []
    while True:        # peel "(inner)op k" down to "x op k", outermost layer first
        outer = re.fullmatch(r"\((.+)\)([+*-])(\d+)", expr) or re.fullmatch(r"(x)([+*-])(\d+)", expr)
        if outer is None:
            return None
        layers.append((expr, outer.group(2), int(outer.group(3))))
        if outer.group(1) == "x":
            break
        expr = outer.group(1)
    return linear_equation_steps(layers[::-1], int(found.group(2)))


def counting_steps(word: str, target: str) -> tuple[list[str], int]:
    steps, count = [], 0
    for ch in word:
        count += ch == target
        steps.append(f"{ch} {count}")
    return steps, count


def counting(rng: random.Random, d: int) -> Problem:
    """Occurrences of a letter in a word of 2d letters, counted letter by letter."""
    letters = rng.sample("abcde", 3)
    word = "".join(rng.choice(letters) for _ in range(2 * d))
    target = rng.choice(letters)
    steps, count = counting_steps(word, target)
    return Problem(f"How many times does {target} occur in {word}?", str(count), "counting", d,
                   tuple(steps))


def parse_counting(question: str) -> list[str] | None:
    found = re.fullmatch(r"How many times does (\w) occur in (\w+)\?", question)
    return None if found is None else counting_steps(found.group(2), found.group(1))[0]


def recurrence_steps(first: int, second: int, m: int, d: int) -> tuple[list[str], int]:
    older, newer, steps = first, second, []
    for k in range(3, d + 3):
        total = newer + older
        value = total % m
        steps.append(f"a{k}={newer}+{older}={total}={value}" if total != value
                     else f"a{k}={newer}+{older}={value}")
        older, newer = newer, value
    return steps, newer


def recurrence(rng: random.Random, d: int) -> Problem:
    """A Fibonacci-like sequence mod m: d additions from a1 and a2, reducing at each step."""
    m = rng.randint(7, 13)
    first, second = rng.randint(0, m - 1), rng.randint(0, m - 1)
    steps, value = recurrence_steps(first, second, m, d)
    return Problem(f"Let a1={first}, a2={second}, a(n)=a(n-1)+a(n-2) mod {m}. Find a{d + 2}.",
                   str(value), "recurrence", d, tuple(steps))


def parse_recurrence(question: str) -> list[str] | None:
    found = re.fullmatch(r"Let a1=(\d+), a2=(\d+), a\(n\)=a\(n-1\)\+a\(n-2\) mod (\d+)\. "
                         r"Find a(\d+)\.", question)
    if found is None:
        return None
    first, second, m, last = map(int, found.groups())
    return recurrence_steps(first, second, m, last - 2)[0] if last >= 3 else None


@dataclass(frozen=True)
class Domain:
    name: str
    msc: str             # the MSC top-level code (s1/data/msc/msc.json)
    make: Callable[[random.Random, int], Problem]
    max_difficulty: int  # past it the question itself gets too long for a small context
    parse: Callable[[str], list[str] | None]   # a question of this family -> its steps, else None


DOMAINS: dict[str, Domain] = {d.name: d for d in (
    Domain("arithmetic", "97", arithmetic, MAX_DIFFICULTY,              # Mathematics education
           parse_arithmetic),
    Domain("modular_power", "11", modular_power, MAX_DIFFICULTY,        # Number theory
           parse_modular_power),
    Domain("base_conversion", "68", base_conversion, 10,                # Computer science
           parse_base_conversion),
    Domain("linear_equation", "15", linear_equation, 5,                 # Linear algebra
           parse_linear_equation),
    Domain("counting", "05", counting, MAX_DIFFICULTY, parse_counting),  # Combinatorics
    Domain("recurrence", "39", recurrence, MAX_DIFFICULTY,              # Difference equations
           parse_recurrence),
)}


@dataclass
class WorldConfig:
    """Which problems: domains, difficulties (steps), how often the teacher slips."""

    domains: list[str] = field(default_factory=lambda: list(DOMAINS))
    min_difficulty: int = 1
    max_difficulty: int = 8
    slip_rate: float = 0.2      # traces with one slip, corrected after "Wait"
    recheck_rate: float = 0.2   # traces with one right step re-checked after "Wait", confirmed

    def __post_init__(self) -> None:
        if isinstance(self.domains, str):
            self.domains = [x.strip() for x in self.domains.split(",") if x.strip()]
        if not self.domains:
            raise UserError(f"the miniature world needs at least one domain (of "
                            f"{', '.join(DOMAINS)})")
        unknown = [x for x in self.domains if x not in DOMAINS]
        if unknown:
            raise UserError(f"unknown domain(s) {', '.join(unknown)}: use {', '.join(DOMAINS)}")
        if not 1 <= self.min_difficulty <= self.max_difficulty <= MAX_DIFFICULTY:
            raise UserError(f"difficulty must satisfy 1 <= min ({self.min_difficulty}) <= max "
                            f"({self.max_difficulty}) <= {MAX_DIFFICULTY} steps")
        for name in ("slip_rate", "recheck_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"{name} must be in [0, 1], not {getattr(self, name)}")


@dataclass
class SyntheticConfig(WorldConfig):
    """A generated pool: how many problems, from which seed, of which world."""

    size: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise UserError(f"synthetic.size must be a positive number of problems, not "
                            f"{self.size!r}")
        if self.seed == BENCHMARK_SEED:
            raise UserError(f"seed {BENCHMARK_SEED} draws the tiny benchmark; use another")


def generate(n: int, seed: int, config: WorldConfig | None = None,
             exclude: set[str] = frozenset()) -> list[dict]:
    """n distinct problems with their teacher traces, deterministic in (n, seed, config).

    Domains take turns; each problem's difficulty is uniform on the domain's range. A domain
    whose distinct problems run out (base conversion has ~500 below 256) stops taking turns. Each row:
    question, answer, solution (the correct steps), trace (the teacher's thinking, maybe with a
    slip and its correction), slip, domain, msc, difficulty.
    """
    config = config or WorldConfig()
    if n < 0:
        raise UserError(f"the number of problems must be at least 0, not {n}")
    rng = random.Random(f"s1-miniature-{seed}")
    rows, seen = [], set(exclude)
    live = list(config.domains)        # domains that still have unused problems
    misses = dict.fromkeys(live, 0)
    while len(rows) < n:
        if not live:
            raise UserError(f"cannot draw {n} distinct problems from these domains and "
                            "difficulties; widen them or ask for fewer")
        dom = DOMAINS[live[len(rows) % len(live)]]
        high = min(config.max_difficulty, dom.max_difficulty)
        d = rng.randint(min(config.min_difficulty, high), high)
        problem = dom.make(rng, d)
        if problem.question in seen:
            misses[dom.name] += 1   # consecutive: a domain whose problems are used up drops out
            if misses[dom.name] > 500:
                live.remove(dom.name)
            continue
        misses[dom.name] = 0
        seen.add(problem.question)
        trace, slipped = problem.trace(rng, config.slip_rate, config.recheck_rate)
        rows.append({"question": problem.question, "answer": problem.answer,
                     "solution": "\n".join(problem.steps), "trace": trace, "slip": slipped,
                     "domain": dom.name, "msc": dom.msc, "difficulty": problem.difficulty})
    return rows


# ---------------------------------------------------------------------------------------------
# the held-out benchmark (`s1 eval --benchmark tiny`)

BENCHMARK_SEED = 1_000_003        # no pool is drawn from this seed's stream
BENCHMARK_SIZE = 600              # 100 per domain, difficulties 1..8
BENCHMARK_FILE = "tiny.jsonl"


def benchmark_rows() -> list[dict]:
    """The shipped benchmark as generated (a test checks the shipped file against this)."""
    rows = generate(BENCHMARK_SIZE, BENCHMARK_SEED, WorldConfig(slip_rate=0.0, recheck_rate=0.0))
    return [{"id": f"tiny-{i:04d}", "question": r["question"], "answer": r["answer"],
             "domain": r["domain"], "msc": r["msc"], "difficulty": r["difficulty"],
             "solution": r["solution"]} for i, r in enumerate(rows)]


@lru_cache(maxsize=1)
def benchmark_questions() -> frozenset[str]:
    """The benchmark's questions, which no generated pool or training set contains."""
    from s1.evaluation.benchmarks import shipped_benchmark

    with open(shipped_benchmark(BENCHMARK_FILE), encoding="utf-8") as f:
        return frozenset(json.loads(line)["question"] for line in f if line.strip())
