"""math-verify in killable worker processes: verification with a hard deadline, and the
equivalence classes majority voting counts.

math-verify runs in worker processes, never in this one: its own timeouts use SIGALRM, which
fails in threads and cannot interrupt a long computation inside C (sympy raising 10 to a huge
power), so each call gets a hard deadline after which its worker is killed and replaced. A
worker that cannot start raises `GraderUnavailable`: no score is ever silently left to text
comparison. Model text only ever reaches a LaTeX parser; nothing is evaluated as code.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import logging
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

from s1.errors import UserError
from s1.evaluation.extract import canonical_answer, strip_currency

__all__ = ["GraderUnavailable", "VerifierPool", "verify_math", "cluster_answers",
           "shutdown_verifiers"]

log = logging.getLogger("s1.evaluation")

#: Longer extracted answers are not verified: no benchmark answer is this long, and parsing a
#: megabyte of LaTeX only burns the timeout.
MAX_ANSWER_CHARS = 20_000
#: First start of a worker (a fresh interpreter importing sympy) is not counted in the timeout.
WORKER_START_TIMEOUT = 120.0


class GraderUnavailable(UserError):
    """The math-verify worker cannot start (math-verify missing or broken): grading stops here
    rather than falling back to comparing text, which would quietly change every score."""


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
    # deadline grows with the number of distinct answers.
    reply = _cluster_call(pool, texts, timeout)
    if reply is not None:
        return {r: reps[j] for r, j in zip(reps, reply)}
    # Past it, some answer is pathological (a power tower sympy tries to evaluate). Each answer
    # is tried alone (against 0) under the deadline, which costs one deadline per pathological
    # answer and milliseconds per other; those that fail keep classes of their own and the
    # rest are clustered again.
    sane = [j for j, text in enumerate(texts)
            if pool.verify(text, "$0$", timeout) not in ("timeout", "crashed")]
    log.warning("%d of %d distinct answers could not be verified in %gs; each keeps its own "
                "majority-vote class", len(texts) - len(sane), len(texts), timeout)
    home = {r: r for r in reps}
    reply = _cluster_call(pool, [texts[j] for j in sane], timeout) if len(sane) > 1 else None
    if reply is not None:
        home.update({reps[j]: reps[sane[k]] for j, k in zip(sane, reply)})
    return home


def _cluster_call(pool: VerifierPool, texts: list[str], timeout: float) -> list[int] | None:
    reply = pool.request({"cluster": texts}, timeout * (1 + len(texts) / 8))
    ok = isinstance(reply, list) and len(reply) == len(texts)
    return reply if ok else None
