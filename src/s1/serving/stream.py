"""Waiting for jobs, and streaming them as server-sent events with reasoning deltas.

The text of a running sequence is read from its Forcer (lists the engine thread only appends
to): the thinking goes out as `reasoning_content` deltas, the answer as `content` (chat) or
`text` (completions). Text is decoded whole and sent as it grows, so the streamed pieces add up
to exactly the non-streamed response: an unfinished UTF-8 character is held back, and so is a
possible start of a stop string.
"""

from __future__ import annotations

import asyncio
import json
from typing import Callable, Sequence

from fastapi import Request

from s1.serving.protocol import failure, finish_reason, s1_info, usage
from s1.serving.scheduler import Group, Job, Scheduler


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body is read: the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def all_finished(jobs: list[Job]) -> bool:
    return all(j.finished for j in jobs)


def started(jobs: list[Job]) -> bool:
    """Some job has a token or an end: a stream can begin (a failure before it is an HTTP error)."""
    return any(j.finished or j.forcer is not None for j in jobs)


async def wait(jobs: list[Job], group: Group, request: Request,
               ready: Callable[[list[Job]], bool] = all_finished) -> bool:
    """Wait until `ready(jobs)` (default: every job finished); False if the client went away first."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        while not ready(jobs):
            woken = asyncio.ensure_future(group.wait())
            done, _ = await asyncio.wait({woken, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                woken.cancel()
                return False
        return True
    finally:
        gone.cancel()


class _View:
    """What one choice has sent so far."""

    def __init__(self, job: Job, decode: Callable[[Sequence[int]], str]):
        self.job, self.decode = job, decode
        self.reasoning = self.content = ""
        self.closed = False
        self.hold = max((len(s) for s in job.stops), default=1) - 1

    def deltas(self) -> tuple[str, str]:
        job = self.job
        final = job.trace is not None
        source = job.trace if final else job.forcer
        if source is None:
            return "", ""
        thinking = self.decode(list(source.thinking_ids))
        answer = self.decode(list(source.answer_ids))
        hits = [i for i in (answer.find(s) for s in job.stops) if i >= 0]
        if hits:
            answer = answer[:min(hits)]
        elif not final and self.hold:
            answer = answer[:max(0, len(answer) - self.hold)]
        if not final:
            thinking, answer = thinking.rstrip("\ufffd"), answer.rstrip("\ufffd")
        return self._grow("reasoning", thinking), self._grow("content", answer)

    def _grow(self, name: str, text: str) -> str:
        sent = getattr(self, name)
        if len(text) <= len(sent) or not text.startswith(sent):
            return ""
        setattr(self, name, text)
        return text[len(sent):]


def _sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def events(kind: str, rid: str, created: int, model: str, jobs: list[Job], group: Group,
                 decode: Callable[[Sequence[int]], str], include_usage: bool, prompt_tokens: int,
                 request: Request, scheduler: Scheduler, include_reasoning: bool = True):
    """The SSE body of a streamed chat or text completion."""
    chat = kind == "chat"
    head = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created, "model": model}

    def chunk(i: int, reasoning: str | None = None, content: str | None = None,
              finish: str | None = None, extra: dict | None = None, role: bool = False) -> str:
        if chat:
            delta = {"role": "assistant", "content": ""} if role else {}
            if reasoning:
                delta["reasoning_content"] = delta["reasoning"] = reasoning
            if content:
                delta["content"] = content
            choice = {"index": i, "delta": delta}
        else:
            choice = {"index": i, "text": content or ""}
            if reasoning:
                choice["reasoning_content"] = reasoning
        choice.update(finish_reason=finish, logprobs=None, **(extra or {}))
        # with include_usage every chunk has the key, null until the last one (as OpenAI's)
        return _sse({**head, "choices": [choice], **({"usage": None} if include_usage else {})})

    views = [_View(j, decode) for j in jobs]
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        if chat:
            for i in range(len(jobs)):
                yield chunk(i, role=True)
        while True:
            finished = all(j.finished for j in jobs)
            for i, view in enumerate(views):
                if view.closed:
                    continue
                job = view.job
                if job.error:
                    view.closed = True
                    yield _sse(failure(*job.error).body())
                    continue
                reasoning, content = view.deltas()
                if reasoning and include_reasoning:
                    yield chunk(i, reasoning=reasoning)
                if content:
                    yield chunk(i, content=content)
                if job.trace is not None:
                    view.closed = True
                    yield chunk(i, finish=finish_reason(job.trace, job.stopped_at is not None),
                                extra={"s1": s1_info(job.trace)})
            if finished:
                break
            woken = asyncio.ensure_future(group.wait())
            done, _ = await asyncio.wait({woken, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                woken.cancel()
                return
        if include_usage:
            traces = [j.trace for j in jobs if j.trace is not None]
            yield _sse({**head, "choices": [], "usage": usage(traces, prompt_tokens)})
        yield "data: [DONE]\n\n"
    finally:
        gone.cancel()
        if not all(j.finished for j in jobs):
            scheduler.cancel(jobs)
