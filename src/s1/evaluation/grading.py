"""Grading: is a model's answer to a benchmark item correct, and why.

1. The caller passes the answer segment (see `split_answer`); the short answer is extracted from
   it (`extract.py`).
2. It is verified by the item's answer type:
   - `integer`: compared as integers when the answer is one ("023" = 23); a short plain-text
     `Answer:` line by the one number it states ("16 eggs * 4 = 64 eggs"); anything else,
     boxes and LaTeX above all (`2^9`, `\\frac{3}{5}`), as mathematics by math-verify;
   - `math`: exact text, then math-verify on the extracted answer only, wrapped in `$...$`,
     gold first (the call is not symmetric), then a formatting-free text comparison;
   - `choice`: the letter extractor against the gold letter.
3. An optional LLM judge gets a second look at answers the rules call wrong.

math-verify runs in worker processes, never in this one: its own timeouts use SIGALRM, which
fails in threads and cannot interrupt a long computation inside C (sympy raising 10 to a huge
power), so each verification gets a hard deadline after which its worker is killed and replaced.
Model text only ever reaches a LaTeX parser; nothing is evaluated as code. A worker that cannot
start stops grading with `GraderUnavailable`: no score is ever silently left to text comparison.
Majority voting groups answers by the same verifier (`cluster_answers`).
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from s1.errors import UserError
from s1.evaluation.benchmarks import Item
from s1.evaluation.extract import (as_integer, canonical_answer, canonical_math, extract_choice,
                                   locate_answer, plain_number, split_answer, strip_currency)

if TYPE_CHECKING:
    from s1.evaluation.judge import Judge

__all__ = ["Grade", "GraderUnavailable", "grade", "grade_many", "split_answer", "verify_math",
           "cluster_answers", "shutdown_verifiers"]

log = logging.getLogger("s1.evaluation")

#: Longer extracted answers are not verified: no benchmark answer is this long, and parsing a
#: megabyte of LaTeX only burns the timeout.
MAX_ANSWER_CHARS = 20_000
#: First start of a worker (a fresh interpreter importing sympy) is not counted in the timeout.
WORKER_START_TIMEOUT = 120.0


class GraderUnavailable(UserError):
    """The math-verify worker cannot start (math-verify missing or broken): grading stops here
    rather than falling back to comparing text, which would quietly change every score."""


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# verifier worker processes (the worker itself is `_verify_worker.py`)

# The worker file runs by path: it imports nothing from s1, so a worker never pays for (or
# breaks on) whatever the package imports.
_WORKER_FILE = str(Path(__file__).resolve().with_name("_verify_worker.py"))
_WORKER_CODE = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


class _Worker:
    """One `python -c` child speaking JSON lines; a reader thread makes replies awaitable."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, _WORKER_FILE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1)
        self.replies: queue.Queue = queue.Queue()
        self.stderr_tail: collections.deque = collections.deque(maxlen=20)
        self._reader = threading.Thread(target=self._read, daemon=True, name="s1-verifier-reader")
        self._reader.start()
        threading.Thread(target=self._drain, daemon=True, name="s1-verifier-stderr").start()
        self.ready = False

    def _drain(self) -> None:
        # Kept only to explain a failed start; reading it also keeps a chatty library from
        # filling the pipe and blocking the worker.
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip())

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.replies.put(json.loads(line))
            except ValueError:
                self.replies.put("error: bad reply")
        self.replies.put(None)  # end of stream: the worker died

    def _wait_ready(self) -> None:
        # Start-up (a fresh interpreter importing sympy) is not part of the deadline.
        try:
            hello = self.replies.get(timeout=WORKER_START_TIMEOUT)
        except queue.Empty:
            hello = None
        if hello != "ready":
            self.kill()
            why = next((l for l in reversed(self.stderr_tail) if l.strip()),
                       f"no reply within {WORKER_START_TIMEOUT:g}s")
            raise GraderUnavailable(f"the math-verify grading worker did not start ({why}); "
                                    f"install math-verify[antlr4_13_2] into this environment")
        self.ready = True

    def call(self, gold: str, pred: str, timeout: float) -> str:
        return self.request([gold, pred], timeout)

    def request(self, payload, timeout: float):
        """Send one request; its reply, or "timeout" / "crashed"."""
        if not self.ready:
            self._wait_ready()
        try:
            self.proc.stdin.write(json.dumps(payload) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return "crashed"
        try:
            verdict = self.replies.get(timeout=timeout)
        except queue.Empty:
            return "timeout"
        return "crashed" if verdict is None else verdict

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class VerifierPool:
    """Worker processes for math-verify, each call under a hard deadline.

    Thread-safe: `verify` checks a worker out, so up to `size` threads verify in parallel. A
    worker that times out or dies is killed at once and a replacement starts in the background.
    """

    def __init__(self, size: int = 1) -> None:
        if size < 1:
            raise UserError(f"the number of grading workers must be at least 1, not {size}")
        self.size = size
        self._idle: queue.Queue = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        # One started spare waits beside the workers so that a replacement after a kill is ready
        # at once: a fresh interpreter needs ~0.5-1 s to import sympy, which must not land on
        # the next question's clock.
        self._spare: _Worker | None = None
        for _ in range(size):
            self._idle.put(None)  # started on first use

    def _spawn(self) -> _Worker:
        """The spare (or a new worker when there is none), and a new spare behind it."""
        with self._lock:
            worker, self._spare = self._spare, None
            if worker is None:
                worker = _Worker()
                self._all.append(worker)
            if not self._closed and self._spare is None:
                self._spare = _Worker()
                self._all.append(self._spare)
        return worker

    def verify(self, gold: str, pred: str, timeout: float) -> str:
        """"equal", "not equal", "gold unparseable", "answer unparseable", "timeout",
        "crashed" or "error: ..."; raises GraderUnavailable when no worker can start."""
        verdict = self.request([gold, pred], timeout)
        return verdict if isinstance(verdict, str) else "error: bad reply"

    def request(self, payload, timeout: float):
        worker = self._idle.get()
        try:
            if worker is None:
                worker = self._spawn()
            reply = worker.request(payload, timeout)
            if reply in ("timeout", "crashed"):
                worker = self._replace(worker)
            return reply
        except GraderUnavailable:
            worker = None   # the next call tries a fresh start (and fails as loudly)
            raise
        finally:
            self._idle.put(worker)

    def _replace(self, dead: _Worker) -> _Worker | None:
        """Swap in the warm spare now; kill the dead worker and start a new spare off the
        caller's clock (killing a process that holds gigabytes takes a moment)."""
        with self._lock:
            if dead in self._all:
                self._all.remove(dead)
            fresh, self._spare = self._spare, None
        threading.Thread(target=self._bury_and_refill, args=(dead,), daemon=True,
                         name="s1-verifier-refill").start()
        return fresh  # None: a worker starts on the next use

    def _bury_and_refill(self, dead: _Worker) -> None:
        dead.kill()
        with self._lock:
            if not self._closed and self._spare is None:
                self._spare = _Worker()
                self._all.append(self._spare)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all, self._spare = self._all, [], None
        for w in workers:
            w.kill()


_pool: VerifierPool | None = None
_pool_lock = threading.Lock()


def _get_pool(size: int = 1) -> VerifierPool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.size < size:
            if _pool is not None:
                _pool.close()
            _pool = VerifierPool(size)
        return _pool


@atexit.register
def shutdown_verifiers() -> None:
    """Stop the verifier worker processes (they also die with this process)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def _math_env(answer: str) -> str:
    # math-verify only reads LaTeX inside a math environment; an answer that already has `$`
    # (an "Answer:" line such as "$x=5$") keeps its own. An escaped dollar (`\$36`) is money,
    # and would otherwise stop the gold or the answer from parsing at all.
    answer = strip_currency(answer)
    return answer if "$" in answer else f"${answer}$"


def verify_math(gold: str, answer: str, timeout: float = 5.0) -> str:
    """math-verify's verdict on an extracted answer against the gold, under a hard deadline."""
    return _get_pool().verify(_math_env(gold), _math_env(answer), timeout)


# ---------------------------------------------------------------------------------------------
# majority voting: answers grouped by mathematical equivalence


def cluster_answers(answers: Sequence[str | None], answer_type: str = "math",
                    timeout: float = 5.0) -> list[int | None]:
    """Equivalence classes of extracted answers, for majority voting: per answer, the index of
    the first answer of its class (None for a missing answer, which does not vote).

    Letters are grouped by letter, integers by value; other answers are grouped by their
    formatting-free form and then by math-verify in a worker process, so `\\frac12`,
    `\\frac{1}{2}`, `1/2` and `0.5` are one vote. Classes are built in sample order, so the
    classes of the first k answers are those of all answers cut at k.
    """
    return list(_clusters(tuple(answers), answer_type, timeout))


@functools.lru_cache(maxsize=4096)
def _clusters(answers: tuple, answer_type: str, timeout: float) -> tuple:
    heads: dict[str, int] = {}   # canonical form -> index of its first answer
    out: list[int | None] = []
    for i, a in enumerate(answers):
        key = canonical_answer(a, answer_type) if isinstance(a, str) else None
        if key is not None and len(a) > MAX_ANSWER_CHARS:
            key = f"#{i}"          # too long to be an answer: a class of its own
        out.append(None if key is None else heads.setdefault(key, i))
    reps = sorted(set(heads.values()))
    if answer_type == "choice" or len(reps) < 2:
        return tuple(out)
    merged = _merge(reps, [_math_env(answers[i]) for i in reps], timeout)
    return tuple(None if c is None else merged[c] for c in out)


def _merge(reps: list[int], texts: list[str], timeout: float) -> dict[int, int]:
    """Which representative each representative's class joins, by math-verify."""
    pool = _get_pool()
    # One request for all: pairs cost a fraction of a millisecond inside the worker. Its
    # deadline grows with the number of distinct answers; past it, pairs go one by one.
    reply = pool.request({"cluster": texts}, timeout * (1 + len(texts) / 8))
    if isinstance(reply, list) and len(reply) == len(reps):
        return {r: reps[j] for r, j in zip(reps, reply)}
    log.warning("clustering %d answers in one call gave %r; comparing them pair by pair",
                len(texts), reply)
    home: dict[int, int] = {}
    heads: list[int] = []    # (index into texts) of each class's first answer
    for j, (r, text) in enumerate(zip(reps, texts)):
        home[r], pathological = r, False
        for h in list(heads):
            verdict = pool.verify(texts[h], text, timeout)
            if verdict == "equal":
                home[r] = reps[h]
                break
            if verdict in ("timeout", "crashed"):
                # Which of the two is pathological? The one that cannot even be compared with 0
                # keeps its own class and is never compared again, so each costs a few deadlines.
                if pool.verify(text, "$0$", timeout) in ("timeout", "crashed"):
                    pathological = True
                    break
                if pool.verify(texts[h], "$0$", timeout) in ("timeout", "crashed"):
                    heads.remove(h)
        if home[r] == r and not pathological:
            heads.append(j)
    return home


# ---------------------------------------------------------------------------------------------
# grading


def _grade_math(item: Item, extracted: str, source: str, timeout: float,
                pool: VerifierPool) -> Grade:
    gold_int, pred_int = as_integer(item.answer), as_integer(extracted)
    if gold_int is not None and pred_int is not None:
        ok = gold_int == pred_int
        return Grade(ok, extracted, "integer match" if ok else "integer mismatch")
    if item.answer_type == "integer" and gold_int is not None and source == "line":
        # A plain-text answer line often shows its working ("16 eggs * 4 = 64 eggs"): read the
        # one number it states. Never a box or LaTeX: `\\frac{3}{5}` is not 5, `2^9` is 512;
        # those are evaluated as mathematics below.
        token = plain_number(extracted)
        value = as_integer(re.sub(r"\.0+$", "", token)) if token is not None else None
        if token is not None:
            ok = value == gold_int
            return Grade(ok, token, "answer line number match" if ok
                         else "answer line number mismatch")
    if "".join(item.answer.split()) == "".join(extracted.split()):
        return Grade(True, extracted, "exact match")
    if len(extracted) > MAX_ANSWER_CHARS:
        return Grade(False, extracted[:200],
                     f"answer too long to verify ({len(extracted)} characters)")
    verdict = pool.verify(_math_env(item.answer), _math_env(extracted), timeout)
    if verdict == "equal":
        return Grade(True, extracted, "math-verify equal")
    if verdict == "timeout":
        return Grade(False, extracted, f"timeout (verification over {timeout:g}s)")
    same_text = canonical_math(item.answer) == canonical_math(extracted)
    if verdict == "not equal":
        # math-verify can miss a match only formatting separates (text answers, odd units).
        return Grade(same_text, extracted,
                     "normalized text match" if same_text else "math-verify not equal")
    return Grade(same_text, extracted,
                 f"{verdict}; normalized text {'match' if same_text else 'mismatch'}")


def _grade_rules(answer_text: str, item: Item, timeout: float, pool: VerifierPool) -> Grade:
    if item.answer_type == "choice":
        letter = extract_choice(answer_text)
        if letter is None:
            return Grade(False, None, "no answer found")
        ok = letter == item.answer.strip().upper()
        return Grade(ok, letter, "letter match" if ok else "letter mismatch")
    extracted, source = locate_answer(answer_text)
    if extracted is None:
        return Grade(False, None, "no answer found")
    if item.answer_type in ("integer", "math"):
        return _grade_math(item, extracted, source, timeout, pool)
    raise UserError(f"item {item.id} has unknown answer type {item.answer_type!r}")


def _grade_one(answer_text: str, item: Item, judge: "Judge | None", timeout: float,
               pool: VerifierPool) -> Grade:
    if not isinstance(answer_text, str):
        raise UserError(f"the answer to {item.id} must be text, not {type(answer_text).__name__}")
    if timeout <= 0:
        raise UserError(f"the grading timeout must be positive, not {timeout}")
    result = _grade_rules(answer_text, item, timeout, pool)
    # The judge can only help where the rules may have missed an equivalence: not for two
    # different plain integers, a wrong letter, or an answer too long to be one.
    if (judge is None or result.correct or result.extracted is None
            or item.answer_type == "choice"
            or result.reason in ("integer mismatch", "answer line number mismatch")
            or result.reason.startswith("answer too long")):
        return result
    verdict = judge.equivalent(item.answer, result.extracted, question=item.question)
    if verdict is None:
        return Grade(False, result.extracted, f"{result.reason}; judge gave no verdict")
    return Grade(verdict, result.extracted,
                 f"{result.reason}; judge {'equal' if verdict else 'not equal'}")


def grade(answer_text: str, item: Item, judge: "Judge | None" = None,
          timeout: float = 5.0) -> Grade:
    """Grade one answer segment (the text after the end of thinking) against an item.

    `timeout` bounds each math-verify call in seconds. The judge, when given, is asked only
    about answers the rules call wrong, and never about letters or two different integers.
    """
    return _grade_one(answer_text, item, judge, timeout, _get_pool(1))


def grade_many(pairs: Iterable[tuple[str, Item]], judge: "Judge | None" = None,
               timeout: float = 5.0, workers: int | None = None) -> list[Grade]:
    """Grade (answer segment, item) pairs in parallel worker processes; results keep the order."""
    pairs = list(pairs)
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    pool = _get_pool(workers)
    if workers == 1 or len(pairs) <= 1:
        return [_grade_one(a, it, judge, timeout, pool) for a, it in pairs]
    # Threads only wait on pipes here; the verification itself runs in the pool's processes.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s1-grade") as ex:
        return list(ex.map(lambda p: _grade_one(p[0], p[1], judge, timeout, pool), pairs))
