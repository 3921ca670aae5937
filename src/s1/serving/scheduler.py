"""The queue between HTTP requests and an engine, and the thread that drives the engine.

An engine whose `generate` takes `incoming` (transformers, llama.cpp) runs one long batched loop:
waiting requests join the running batch whenever rows free up (continuous batching). Other
engines (the remote engine of proxy mode) run one request per call on a pool of worker threads,
as many as the engine serves at once.

Everything the HTTP side needs crosses threads through `Job` (written by the engine thread)
and `Group.wake` (thread-safe): the engine thread never touches the event loop otherwise.
The engine's `on_step` hook is where a request is cut short: a client that went away, a stop
string, or `max_tokens` (thinking and answer together, as vLLM counts it).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from s1.errors import UserError
from s1.generation.engines.base import Engine, Request
from s1.generation.forcer import Forcer
from s1.generation.trace import Trace

log = logging.getLogger("s1.serving")


class QueueFull(Exception):
    """More requests are waiting than the queue holds (answered 429)."""


class Unavailable(Exception):
    """The server is shutting down or its engine failed (answered 503)."""


class Group:
    """The jobs of one HTTP request (its choices) and how the engine thread wakes its handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: bool):
        self.loop = loop
        self.stream = stream
        self.event = asyncio.Event()
        self._armed = False          # a wake-up is already on its way: don't flood the loop

    def wake(self) -> None:
        """Called from any thread."""
        if self._armed:
            return
        self._armed = True
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:         # the loop is closed: nobody is waiting any more
            pass

    async def wait(self) -> None:
        await self.event.wait()
        # cleared before the handler reads the jobs, so a later change always wakes it again
        self.event.clear()
        self._armed = False


@dataclass(eq=False)
class Job:
    """One sequence (one choice of one request) on its way through the engine."""

    request: Request
    group: Group
    max_tokens: int | None = None    # thinking + delimiter + answer tokens
    stops: tuple[str, ...] = ()      # stop strings, looked for in the answer
    forcer: Forcer | None = None     # set by the engine thread at the first step
    trace: Trace | None = None
    error: tuple[int, str] | None = None   # (HTTP status, message)
    stopped_at: int | None = None    # where the first stop string starts in the answer text
    cancelled: bool = False

    @property
    def finished(self) -> bool:
        return self.trace is not None or self.error is not None

    def content(self) -> str:
        answer = self.trace.answer if self.trace else ""
        return answer if self.stopped_at is None else answer[:self.stopped_at]


class Scheduler:
    def __init__(self, engine: Engine, max_queue: int = 256, workers: int | None = None):
        self.engine = engine
        self.batched = "incoming" in inspect.signature(engine._generate).parameters
        if self.batched:
            self.slots = int(getattr(engine, "batch_size", 1))
        else:
            self.slots = workers or int(getattr(engine, "concurrency", 1))
            if engine.name != "remote":
                self.slots = 1       # one model, one sequence at a time
        self.max_queue = max_queue
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._running = 0
        self._closing = False
        self._threads: list[threading.Thread] = []
        # the last failure that was not the client's (5xx), until a request succeeds again
        self.failing: dict | None = None

    # --- the HTTP side ---------------------------------------------------------------------

    def start(self) -> None:
        target = self._batch_loop if self.batched else self._pool_loop
        for k in range(1 if self.batched else self.slots):
            t = threading.Thread(target=target, name=f"s1-engine-{k}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, jobs: list[Job]) -> None:
        with self._cond:
            if self._closing:
                raise Unavailable("the server is shutting down")
            if len(self._queue) + len(jobs) > self.max_queue:
                raise QueueFull(f"the queue is full ({len(self._queue)} of {self.max_queue} "
                                f"waiting, {self._running} running); retry later")
            self._queue.extend(jobs)
            self._cond.notify_all()

    def cancel(self, jobs: list[Job]) -> None:
        """Free the slots of a client that went away: queued jobs leave the queue at once,
        running ones leave the batch at their next step."""
        with self._cond:
            for job in jobs:
                job.cancelled = True
                try:
                    self._queue.remove(job)
                except ValueError:
                    continue
                job.error = (499, "cancelled")

    def stats(self) -> dict:
        with self._cond:
            return {"running": self._running, "queued": len(self._queue), "slots": self.slots,
                    "max_queue": self.max_queue}

    @property
    def alive(self) -> bool:
        return not self._closing and all(t.is_alive() for t in self._threads)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closing = True
            queued, self._queue = list(self._queue), deque()
            self._cond.notify_all()
        for job in queued:
            self._finish(job, error=(503, "the server is shutting down"), counted=False)
        for t in self._threads:
            t.join(timeout)

    # --- the engine side -------------------------------------------------------------------

    def _take(self, k: int, block: bool) -> list[Job]:
        with self._cond:
            while block and not self._queue and not self._closing:
                self._cond.wait()
            out = []
            while self._queue and len(out) < k:
                out.append(self._queue.popleft())
            self._running += len(out)
            return out

    def _thread_setup(self) -> None:
        if "torch" in sys.modules:
            # CPU flush-to-zero is per thread: the loading thread's setting does not reach this one
            sys.modules["torch"].set_flush_denormal(True)

    def _batch_loop(self) -> None:
        self._thread_setup()
        while True:
            first = self._take(1, block=True)
            if not first:
                return
            jobs = {0: first[0]}
            numbers = itertools.count(1)   # the engine numbers joined requests in arrival order

            def incoming(free: int) -> list[Request]:
                new = self._take(free, block=False)
                for job in new:
                    jobs[next(numbers)] = job
                return [job.request for job in new]

            def on_trace(i: int, trace: Trace) -> None:
                self._finish(jobs.pop(i), trace)

            try:
                self.engine.generate([first[0].request], first[0].request.budget,
                                     on_trace=on_trace, on_step=lambda i, f: self._step(jobs[i], f),
                                     incoming=incoming)
            except Exception as err:   # one bad batch must not take the server down
                log.exception("the engine failed")
                for job in jobs.values():
                    self._finish(job, error=(500, f"the engine failed: {type(err).__name__}"))

    def _pool_loop(self) -> None:
        self._thread_setup()
        while True:
            got = self._take(1, block=True)
            if not got:
                return
            job = got[0]
            try:
                self.engine.generate([job.request], job.request.budget,
                                     on_trace=lambda i, tr: self._finish(job, tr),
                                     on_step=lambda i, f: self._step(job, f))
            except UserError as err:   # what dooms every request upstream: a refused key
                self._finish(job, error=(502, str(err)))
            except Exception as err:
                log.exception("the engine failed")
                self._finish(job, error=(500, f"the engine failed: {type(err).__name__}"))

    def _step(self, job: Job, forcer: Forcer) -> None:
        job.forcer = forcer
        if job.cancelled:
            forcer.stop("abort")
            return
        if job.max_tokens is not None and not forcer.done and \
                len(forcer.thinking_ids) + len(forcer.delimiter_ids) + len(forcer.answer_ids) >= job.max_tokens:
            forcer.stop("length")
        if job.stops and forcer.answer_ids and job.stopped_at is None:
            text = self.engine.tokenizer.decode(forcer.answer_ids)
            hits = [i for i in (text.find(s) for s in job.stops) if i >= 0]
            if hits:
                job.stopped_at = min(hits)
                if not forcer.done:
                    forcer.stop("stop")
        if job.group.stream:
            job.group.wake()

    def _finish(self, job: Job, trace: Trace | None = None, error: tuple[int, str] | None = None,
                counted: bool = True) -> None:
        if counted:
            with self._cond:
                self._running -= 1
        if job.finished:
            return
        if trace is not None and trace.error:
            # a sequence the engine could not serve (proxy mode: the upstream refused or failed)
            error, trace = (int(trace.meta.get("status", 502)), trace.error), None
        if trace is not None:
            job.trace = trace
            self.failing = None
        else:
            job.error = error
            if error[0] != 499:
                log.log(logging.ERROR if error[0] >= 500 else logging.WARNING,
                        "a request failed (HTTP %d): %s", *error)
            if error[0] >= 500 and not self._closing:
                self.failing = {"status": error[0], "error": error[1], "at": time.time()}
        job.group.wake()
