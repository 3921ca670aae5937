"""Remote engine: budget forcing against an OpenAI-compatible completions server.

About one request per forcing event, not one per token. Each segment is one streamed
completion of everything the Forcer could still take (thinking room, delimiter, answer). Every
streamed token goes through `Forcer.step` as it arrives; the stream stays open while the Forcer
emits what the model proposed (a delimiter the model writes itself, the answer after it) and is
closed at the first token the Forcer replaces ("Wait" for an end, the forced end at the cap).
The next segment sends the whole sequence again, so the server's prefix cache only evaluates
what is new. A stream that breaks (a timeout, a server restart) loses nothing: what arrived was
already fed, and the next segment continues from there. How ids cross the wire is the
dialect's business (`dialects.py`); which tokenizer the server uses, `served.py`'s.

Ids the Forcer bans for the next steps (an end right after "Wait", all through a minimum in
suppress mode) go to vLLM as `min_tokens` with those ids among the stops, as the s1 harness does;
a server that samples one anyway (llama-cpp-python has no such field) gets the segment cut there
and that position asked again with `logit_bias` -100. Ids beyond the tokenizer's vocabulary (a
padded embedding, the "out of vocabulary" error of vLLM at T=1) are masked the same way and
never sent back.

A sequence that fails (a prompt over the context, a 4xx, a server that keeps failing) becomes a
Trace with `error` set (and in `meta["status"]` the HTTP status a proxy answers) and the batch
goes on; 429, 408 and 5xx are retried with backoff. Only what dooms every sequence (a refused API
key, an unreachable server) is a UserError.
"""

from __future__ import annotations

import asyncio
import copy
import os
import sys
import time
from dataclasses import replace
from typing import Callable

import httpx

from s1.errors import UserError
from s1.generation.budget import Budget
from s1.generation.engines import served
from s1.generation.engines.base import Engine, Request, Tokenizer
from s1.generation.engines.dialects import (DIALECTS, IdsDialect, LlamaCppPythonDialect,
                                            first_line, sse)
from s1.generation.forcer import Forcer, Phase
from s1.generation.formats import ThinkingFormat
from s1.generation.trace import Trace

RETRIED = (408, 429)          # besides 5xx: the server asks to come back later
FATAL = (401, 403, 404)       # every sequence would fail the same way: stop the batch
BAN = -100.0                  # logit_bias that takes an id out (OpenAI's and vLLM's floor)
API_KEY_ENV = "S1_SERVER_API_KEY"


class SequenceFailed(Exception):
    """A request of one sequence failed; `retry`: worth asking again (after `after` seconds).
    `status`: what a proxy answers its client: the server's own 4xx, 502 for a 5xx or a broken
    reply, 503 for a server that cannot be reached, 504 for one that stopped answering."""

    def __init__(self, message: str, retry: bool = False, after: float | None = None,
                 status: int = 502):
        super().__init__(message)
        self.retry, self.after, self.status = retry, after, status


def transport_status(err: httpx.TransportError) -> int:
    """The gateway status of a failed connection: unreachable 503, silent 504, broken 502."""
    if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)):
        return 503
    return 504 if isinstance(err, httpx.TimeoutException) else 502


class RemoteEngine(Engine):
    name = "remote"

    def __init__(self, base_url: str, fmt: ThinkingFormat | None = None,
                 tokenizer: Tokenizer | str | None = None, model: str | None = None,
                 concurrency: int | None = None, timeout: float = 600.0, retries: int = 3,
                 context_length: int | None = None, dialect: str = "auto", backoff: float = 0.5,
                 api_key: str | None = None, check_tokenizer: bool = True,
                 key_hint: str = f"--api-key or ${API_KEY_ENV}"):
        """`tokenizer`: a Tokenizer, or where to load one (hub id, directory, .gguf); None = the
        served model's (see `served.py`). `timeout`: seconds without a byte from the server.
        `key_hint`: how the user gives the server's API key (named when it is refused)."""
        if dialect not in DIALECTS:
            raise UserError(f"unknown server dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
        if concurrency is not None and concurrency < 1:
            raise UserError(f"concurrency must be at least 1 ({concurrency})")
        if timeout <= 0:
            raise UserError(f"timeout must be positive ({timeout})")
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        api_key = api_key or os.environ.get(API_KEY_ENV)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.key_hint = key_hint
        entry = served.pick_entry(
            served.models(self.base_url, self.headers, timeout, retries, backoff,
                          key_hint).get("data") or [], model, self.base_url)
        self.model = entry.get("id")
        if dialect == "auto":
            owner = entry.get("owned_by")
            if owner == "s1":
                raise UserError(f"{self.base_url} is an `s1 serve` server: it budget-forces "
                                "already; call its API directly")
            # llama-cpp-python's server lists its models as owned by "me"
            dialect = "llama-cpp-python" if owner == "me" else "ids"
        self.concurrency = _concurrency(concurrency, dialect)
        source = tokenizer if isinstance(tokenizer, str) else None
        if tokenizer is None or isinstance(tokenizer, str):
            source = served.tokenizer_source(tokenizer or model, entry)
            tokenizer = served.load_tokenizer(source)
        self.tokenizer = tokenizer
        if fmt is None:
            from s1.generation.formats import format_for_model
            fmt = format_for_model(source)
        self.fmt = fmt
        self._meta = entry.get("meta") or {}
        # the server's own context, never the model's trained one: a prompt that fits one and
        # not the other is refused by the server (llama-cpp-python in the middle of a stream)
        self.context_length = (context_length or served.context_length(
            self.base_url, entry, self.headers, timeout, dialect, tokenizer)
            or getattr(tokenizer, "context_length", None))
        if not self.context_length:
            raise UserError(f"cannot tell the context length of the server at {self.base_url}; "
                            "give it with --context-length")
        self.vocab_size = served.vocab_size(tokenizer)
        self._masked: set[int] = set(served.padded_vocab(source, tokenizer) if source else ())
        self.dialect = dialect
        self._wire = (IdsDialect() if dialect == "ids"
                      else LlamaCppPythonDialect(tokenizer, self.format_ids(Budget()).trigger))
        self.tokenizer_checked = (served.check_tokenizer(
            self.base_url, self.model, tokenizer, self.headers, timeout,
            served.SAMPLE + fmt.start + fmt.end) if check_tokenizer else None)

    def health(self) -> dict:
        """Whether the server answers at all (its /health; llama-cpp-python has none and answers
        404, which is an answer: /v1/models would interrupt its running request)."""
        try:
            r = httpx.get(f"{self.base_url}/health", headers=self.headers, timeout=2.0)
        except httpx.TransportError as err:
            return {"reachable": False, "error": f"{type(err).__name__}: {err}"}
        if r.status_code >= 500:
            return {"reachable": True, "error": f"HTTP {r.status_code} on /health"}
        return {"reachable": True}

    def describe(self) -> dict:   # what the server tells (llama.cpp's: parameters and width)
        return {"n_params": self._meta.get("n_params"), "n_layers": None,
                "d_model": self._meta.get("n_embd"), "context_length": self.context_length}

    # --- a batch ------------------------------------------------------------------------------

    def _generate(self, requests: list[Request], on_trace: Callable[[int, Trace], None] | None,
                  on_step: Callable[[int, Forcer], None] | None = None) -> list[Trace]:
        for r in requests:
            self.check_sampling(r.budget.sampling)
        return asyncio.run(self._generate_all(requests, on_trace, on_step))

    def check_sampling(self, sampling) -> None:
        """Refuse what a server cannot do as the in-process engines do, rather than ignore it."""
        if sampling.presence_penalty:
            # Each segment after a forced token re-sends the earlier ones as prompt, and servers
            # penalize only the current reply's tokens.
            raise UserError("presence_penalty is not supported by the remote engine (a server "
                            "would not count tokens of earlier segments); use the transformers "
                            "or llama.cpp engine")
        if sampling.min_p and self.dialect != "ids":
            raise UserError("min_p is not supported with the llama-cpp-python server (it applies "
                            "min_p before the temperature); use a vLLM server or an in-process "
                            "engine")

    async def _generate_all(self, requests, on_trace, on_step) -> list[Trace]:
        traces: list[Trace | None] = [None] * len(requests)
        gate = asyncio.Semaphore(self.concurrency)
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0), pool=None)
        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=self.headers) as client:
            async def run(i: int, request: Request) -> None:
                async with gate:
                    step = (lambda f: on_step(i, f)) if on_step else None
                    traces[i] = await self._one(client, request, step)
                if on_trace:
                    on_trace(i, traces[i])

            tasks = [asyncio.create_task(run(i, r)) for i, r in enumerate(requests)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
        return traces  # type: ignore[return-value]

    # --- a sequence ---------------------------------------------------------------------------

    async def _one(self, client: httpx.AsyncClient, request: Request,
                   on_step: Callable[[Forcer], None] | None) -> Trace:
        started = time.perf_counter()
        meta = {"requests": 0, "failed_requests": 0, "aborted_streams": 0, "interrupted": 0,
                "retokenized_prompts": 0, "guessed_ids": 0, "masked_ids": 0, "banned_segments": 0}
        try:
            prompt, ids, forcer = self.prepare(request)
        except UserError as err:         # e.g. a prompt that leaves no room in the context
            return self._failed(request, str(err), started, meta, status=400)
        seq = list(ids)
        failures = 0        # failed requests in a row
        empty = 0           # segments in a row that brought nothing
        ban = False         # the server sampled a banned id: ask that position again, banned
        try:
            while not forcer.done:
                while forcer.due() and not forcer.done:      # forced tokens join the prompt
                    _feed(forcer, seq, None)
                if forcer.done:
                    break
                room = self._room(forcer, len(seq))
                if room <= 0:
                    forcer.stop("length")
                    break
                before = len(seq)
                try:
                    ban = await self._segment(client, request, forcer, seq, room, ban, meta, on_step)
                except SequenceFailed as err:
                    meta["failed_requests"] += 1
                    failures += 1
                    if not err.retry or failures > self.retries:
                        again = f" ({failures} times in a row)" if err.retry else ""
                        raise SequenceFailed(f"the server at {self.base_url} failed a completion"
                                             f"{again}: {err}", status=err.status) from None
                    await asyncio.sleep(err.after or self.backoff * 2 ** (failures - 1))
                    continue
                failures = 0
                if len(seq) > before or forcer.done or ban:
                    empty = 0
                else:
                    empty += 1
                    if empty > self.retries:
                        # the room asked for fits the context: a server that keeps sending
                        # nothing is failing (llama-cpp-python ends a stream it cannot serve so)
                        raise SequenceFailed(f"the server at {self.base_url} sent no token "
                                             f"{empty} times in a row")
        except SequenceFailed as err:
            return self._failed(request, str(err), started, meta, prompt, ids, forcer, err.status)
        tr = self.trace(request, prompt, ids, forcer, started)
        tr.meta.update(meta)
        return tr

    def _room(self, forcer: Forcer, length: int) -> int:
        """The most tokens the Forcer could still take from the model in one stream."""
        ids = forcer.ids
        answer = forcer.answer_room()
        if forcer.phase is Phase.THINKING:
            thinking = forcer.thinking_room()
            thinking = self.context_length if thinking is None else thinking
            answer += thinking + len(ids.newline) + len(ids.end) + len(ids.suffix)
        return max(0, min(answer, self.context_length - length))

    def _failed(self, request: Request, error: str, started: float, meta: dict,
                prompt: str | None = None, ids: list[int] | None = None,
                forcer: Forcer | None = None, status: int = 502) -> Trace:
        if forcer is None:
            tr = Trace(id=request.id, prompt=request.prompt_text or request.prompt,
                       prompt_tokens=0, thinking="", thinking_ids=[], answer="", answer_ids=[],
                       end="", thinking_finish="error", engine=self.name, seed=request.seed,
                       wall_s=time.perf_counter() - started)
        else:
            tr = self.trace(request, prompt, ids, forcer, started)
        tr.finish_reason = "error"
        tr.error = error
        tr.meta.update(meta, status=status)   # what `s1 serve --upstream` answers its client
        return tr

    # --- a segment ----------------------------------------------------------------------------

    async def _segment(self, client, request: Request, forcer: Forcer, seq: list[int], room: int,
                       ban: bool, meta: dict, on_step) -> bool:
        """Stream one segment into `seq` through the Forcer. Returns True when the server sampled
        an id the Forcer bans, so the next segment must ban it."""
        thinking = forcer.phase is Phase.THINKING
        steps, banned = _ban_window(forcer, room)
        bias = {t: BAN for t in self._masked}
        wire = self._wire
        stops = set(forcer.ids.stop_ids if thinking else forcer.ids.eos)
        if ban and banned:
            # asked again at the position where a banned id came: banned by bias for exactly
            # the steps the Forcer bans it
            bias.update((t, BAN) for t in banned)
            room = min(room, max(steps, 1))
            meta["banned_segments"] += 1
        sampling, seed = request.budget.sampling, self._seed(request, meta)
        if wire.stops_on_ids:
            # vLLM's min_tokens holds back EOS and the stop ids: the harness's ban after "Wait"
            stops |= banned & (forcer.ids.eos | {forcer.ids.trigger})
            body = wire.body(self.model, seq, room, sampling, seed, sorted(stops),
                             steps if banned and not ban else 0, bias)
        else:
            stops = set(forcer.ids.eos)       # the server stops on EOS only
            text, exact = wire.text(seq)
            meta["retokenized_prompts"] += not exact
            body = wire.body(self.model, text, room, sampling, seed, bias)
        meta["requests"] += 1
        received = 0
        finish = stop_reason = None
        cut = sampled_banned = False
        try:
            async with client.stream("POST", f"{self.base_url}/v1/completions", json=body) as r:
                if r.status_code >= 400:
                    self._refused(r.status_code, (await r.aread()).decode("utf-8", "replace"),
                                  r.headers.get("retry-after"))
                async for event in sse(r):
                    chunk = wire.parse(event, self.base_url)
                    if chunk is None:
                        continue
                    meta["guessed_ids"] += chunk.guessed
                    for t in ([] if cut else chunk.ids):
                        received += 1
                        if self.vocab_size is not None and t >= self.vocab_size:
                            self._masked.add(t)      # never sent back; asked again, masked
                            meta["masked_ids"] += 1
                            cut = True
                        elif t in _banned(forcer):
                            cut = sampled_banned = True
                        else:
                            out, rewound = _feed(forcer, seq, t)
                            cut = out != t or rewound or forcer.done
                        if cut:
                            break
                    if on_step and chunk.ids:
                        on_step(forcer)
                    finish = chunk.finish or finish
                    stop_reason = chunk.stop_reason if chunk.finish else stop_reason
                    if cut and not (finish or (chunk.ids and chunk.ids[-1] in stops)):
                        # close the stream: the server stops generating for us at once
                        meta["aborted_streams"] += 1
                        return sampled_banned
                    # (a server about to stop on its own is read to the end instead)
        except httpx.TransportError as err:
            raise SequenceFailed(f"{type(err).__name__}: {err}", retry=True,
                                 status=transport_status(err)) from None
        except ValueError as err:      # a broken event (JSONDecodeError)
            raise SequenceFailed(f"unreadable reply: {err}", retry=True) from None
        if cut:
            return sampled_banned
        if finish is None:
            meta["interrupted"] += 1   # ended early (llama-cpp-python's interrupt_requests)
        elif finish == "stop" and not forcer.done and (not received or seq[-1] not in stops):
            # the server stopped on an id it did not return (llama.cpp never returns EOS)
            t = stop_reason if isinstance(stop_reason, int) else min(forcer.ids.eos)
            if t in _banned(forcer):
                return True
            _feed(forcer, seq, t)
            if on_step:
                on_step(forcer)
        return False

    def _refused(self, status: int, text: str, retry_after: str | None) -> None:
        msg = f"HTTP {status}: {first_line(text)}"
        if status in FATAL:
            hint = f" (give it with {self.key_hint})" if status in (401, 403) else ""
            raise UserError(f"the server at {self.base_url} refused a completion ({msg}){hint}")
        try:
            after = min(float(retry_after), 60.0) if retry_after else None
        except ValueError:
            after = None
        raise SequenceFailed(msg, retry=status in RETRIED or status >= 500, after=after,
                             status=502 if status >= 500 else status)

    @staticmethod
    def _seed(request: Request, meta: dict) -> int:
        # a new seed per segment: one seed for all would replay the same random stream
        return (request.seed * 1_000_003 + meta["requests"]) % 2**31


DEFAULT_CONCURRENCY = 8


def _concurrency(given: int | None, dialect: str) -> int:
    """Requests in flight: llama-cpp-python's server runs one at a time and a new request
    interrupts the running stream (`interrupt_requests`), so more than one there only makes the
    streams cut each other short; vLLM batches many."""
    if dialect != "llama-cpp-python":
        return given or DEFAULT_CONCURRENCY
    if given is None:
        print("note: llama-cpp-python's server runs one request at a time (a new one interrupts "
              "it): concurrency 1", file=sys.stderr)
        return 1
    if given > 1:
        print(f"warning: llama-cpp-python's server runs one request at a time; with concurrency "
              f"{given} the requests interrupt each other (1 is faster)", file=sys.stderr)
    return given


def _feed(forcer: Forcer, seq: list[int], proposal: int | None) -> tuple[int | None, int]:
    """Step the Forcer and keep `seq` (what the server is sent next) equal to what it emitted:
    tokens it takes back (an ignored multi-token delimiter) leave `seq` too. Returns the emitted
    token and how many were taken back (then the stream must be cut: the server has them)."""
    out = forcer.step(proposal)
    back = forcer.take_rewind()
    if back:
        del seq[len(seq) - back:]
    if out is not None:
        seq.append(out)
    return out, back


def _banned(forcer: Forcer) -> frozenset[int]:
    """What the Forcer forbids at the next step (empty before issue 11's `banned` lands)."""
    return getattr(forcer, "banned", lambda: frozenset())()


def _ban_window(forcer: Forcer, limit: int) -> tuple[int, set[int]]:
    """For how many of the next model steps the Forcer bans ids, and which: found by stepping a
    copy with a neutral token (one the Forcer neither bans nor reads as an end)."""
    now = _banned(forcer)
    if not now or forcer.due():
        return 0, set(now)
    ids = forcer.ids
    probe = copy.deepcopy(forcer, {id(ids): ids, id(forcer.budget): forcer.budget})
    # the neutral token repeats: the copy's loop guard must not read it as a loop
    probe.budget = replace(forcer.budget, loop=replace(forcer.budget.loop, mode="off"))
    neutral = next(t for t in (*ids.newline, 0, 1, 2, 3) if t != ids.trigger and t not in ids.eos)
    steps, union = 0, set()
    while steps < limit and not probe.done and not probe.due():
        ban = _banned(probe)
        if not ban:
            break
        union |= ban
        steps += 1
        probe.step(neutral)
    return steps, union


def load_remote_engine(base_url: str, model: str | None = None, tokenizer: str | None = None,
                       fmt: ThinkingFormat | None = None, concurrency: int | None = None,
                       context_length: int | None = None, **kwargs) -> RemoteEngine:
    """A RemoteEngine with the tokenizer the server uses.

    `tokenizer` (else `model`, else the served model's name or path on /v1/models): a .gguf →
    llama.cpp's own tokenizer of that file; a hub id or directory → its transformers tokenizer;
    the embedded GGUF → its own. An unknown served model is a clear error asking for it.
    """
    return RemoteEngine(base_url, fmt, tokenizer, model=model, concurrency=concurrency,
                        context_length=context_length, **kwargs)
