"""Remote engine: budget forcing against any OpenAI-compatible completions server.

Segment by segment: ask the server for at most the Forcer's remaining room, feed the returned
tokens through `Forcer.step` one by one, stop feeding at the first token after which the Forcer
forces something (a "Wait", the end delimiter), and continue with the whole sequence as the next
prompt, so the server's prefix cache only evaluates what is new.

Two dialects, because servers differ in how token ids cross the wire:
- "ids" (vLLM, SGLang-style, `s1 serve`): the prompt is sent as token ids, the reply carries the
  generated ids (`return_token_ids`), and the server stops on `stop_token_ids` itself.
- "llama-cpp-python" (`python -m llama_cpp.server`): prompts are text only, replies carry text
  only, and special tokens are rendered as "". Prompts are the exact decode of our ids (checked
  to re-tokenize to the same ids); generated ids come from streaming, where the server sends one
  chunk per token (only bytes of an unfinished UTF-8 character are grouped). It cannot stop on
  a special token, so a thinking segment runs past the trigger and we cut it client-side.

Parity with the in-process llama.cpp engine (greedy, concurrency 1): llama.cpp computes the
logits of a one-token batch slightly differently from those of the last row of a longer batch
(the KV cache is the same either way). The in-process engine evaluates each emitted model token
together with the forced tokens that follow it; here we make the single-slot server evaluate the
same batches, rewinding its cache with a one-token request when it has already evaluated past
the point where forcing starts (it does, when it generated beyond the trigger).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Callable, Sequence

import httpx

from s1.errors import UserError
from s1.generation.budget import Budget, Sampling
from s1.generation.engines.base import Engine, Request, Tokenizer
from s1.generation.forcer import Forcer, Phase
from s1.generation.formats import ThinkingFormat
from s1.generation.trace import Trace

DIALECTS = ("auto", "ids", "llama-cpp-python")


class RemoteEngine(Engine):
    name = "remote"

    def __init__(self, base_url: str, fmt: ThinkingFormat, tokenizer: Tokenizer,
                 model: str | None = None, concurrency: int = 8, timeout: float = 600.0,
                 retries: int = 3, context_length: int | None = None, dialect: str = "auto",
                 backoff: float = 0.5, api_key: str | None = None):
        if dialect not in DIALECTS:
            raise UserError(f"unknown server dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
        if concurrency < 1:
            raise UserError(f"concurrency must be at least 1 ({concurrency})")
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.fmt = fmt
        self.tokenizer = tokenizer
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        info = self._models()
        entries = info.get("data") or [{}]
        entry = next((e for e in entries if model is None or e.get("id") == model), None)
        if entry is None:
            names = ", ".join(str(e.get("id")) for e in entries)
            raise UserError(f"the server at {self.base_url} does not serve {model!r} (it serves {names})")
        self.model = model or entry.get("id")
        if dialect == "auto":
            # llama-cpp-python's server lists its models as owned by "me"; it alone lacks id prompts
            dialect = "llama-cpp-python" if entry.get("owned_by") == "me" else "ids"
        self.dialect = dialect
        meta = self._meta = entry.get("meta") or {}
        self.context_length = (context_length or entry.get("max_model_len") or meta.get("n_ctx")
                               or getattr(tokenizer, "context_length", None))
        if not self.context_length:
            raise UserError(f"cannot tell the context length of the server at {self.base_url}; "
                            "give it as load_remote_engine(..., context_length=N)")
        self._pieces: dict[bytes, int] | None = None
        self._served: list[int] | None = None   # what the single-slot server has evaluated

    # --- HTTP -------------------------------------------------------------------------------

    def _models(self) -> dict:
        url = f"{self.base_url}/v1/models"
        for attempt in range(self.retries + 1):
            try:
                r = httpx.get(url, timeout=min(self.timeout, 10.0), headers=self.headers)
            except httpx.TransportError as err:
                if attempt == self.retries:
                    raise UserError(f"cannot reach the server at {self.base_url} "
                                    f"({type(err).__name__}: {err})") from None
            else:
                if r.status_code < 500:
                    break
                if attempt == self.retries:
                    raise UserError(f"the server at {self.base_url} keeps failing "
                                    f"(HTTP {r.status_code} on /v1/models)")
            time.sleep(self.backoff * 2 ** attempt)
        if r.status_code >= 400:
            raise UserError(f"the server at {self.base_url} refused /v1/models "
                            f"(HTTP {r.status_code}): {_first_line(r.text)}")
        try:
            return r.json()
        except ValueError:
            raise UserError(f"{self.base_url} is not an OpenAI-compatible server "
                            "(/v1/models is not JSON)") from None

    async def _post(self, client: httpx.AsyncClient, body: dict) -> tuple[list[dict], int]:
        """POST /v1/completions with retries; returns the reply's JSON objects (one per SSE event
        when streaming) and how many attempts failed before it succeeded."""
        url = f"{self.base_url}/v1/completions"
        for attempt in range(self.retries + 1):
            why = ""
            try:
                async with client.stream("POST", url, json=body, headers=self.headers) as r:
                    if r.status_code < 400:
                        if body.get("stream"):
                            return [c async for c in _sse(r)], attempt
                        return [json.loads(await r.aread())], attempt
                    text = (await r.aread()).decode("utf-8", "replace")
                    if r.status_code < 500:
                        raise UserError(f"the server at {self.base_url} rejected a completion "
                                        f"(HTTP {r.status_code}): {_first_line(text)}")
                    why = f"HTTP {r.status_code}: {_first_line(text)}"
            except (httpx.TransportError, json.JSONDecodeError) as err:
                why = f"{type(err).__name__}: {err}"
            if attempt == self.retries:
                raise UserError(f"the server at {self.base_url} failed {self.retries + 1} times "
                                f"in a row ({why})")
            await asyncio.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    # --- one segment --------------------------------------------------------------------------

    async def _complete(self, client: httpx.AsyncClient, seq: list[int], max_tokens: int,
                        stop_ids: list[int], sampling: Sampling, seed: int,
                        meta: dict) -> tuple[list[int], str | None]:
        """Generated ids and finish reason ("stop" = an EOS/stop id ended it, "length", or None
        when the server cut the reply short)."""
        body = {"model": self.model, "max_tokens": max_tokens, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "seed": seed}
        if self.dialect == "ids":
            if sampling.top_k:
                body["top_k"] = sampling.top_k
            if sampling.min_p:
                body["min_p"] = sampling.min_p
            body.update(prompt=seq, stop_token_ids=stop_ids, return_token_ids=True,
                        skip_special_tokens=False, spaces_between_special_tokens=False,
                        include_stop_str_in_output=True, repetition_penalty=1.0)
            replies, failed = await self._post(client, body)
            choice = replies[0]["choices"][0]
            ids = choice.get("token_ids")
            if ids is None:
                raise UserError(f"the server at {self.base_url} returns no token ids; it needs "
                                "`return_token_ids` (vLLM >= 0.10.2) or use dialect "
                                "'llama-cpp-python'")
            meta["failed_requests"] += failed
            ids, finish = list(ids), choice.get("finish_reason")
            stopped_on = choice.get("stop_reason")   # vLLM: the stop token id, if one ended it
            if finish == "stop" and isinstance(stopped_on, int) and stopped_on not in ids[-1:]:
                ids.append(stopped_on)
            return ids, finish
        # llama-cpp-python: neutral top_k/min_p/repeat_penalty so greedy is the argmax and
        # sampling is plain temperature + top-p (+ top-k), as in the in-process engines.
        body.update(prompt=self._text(seq, meta), stream=True, top_k=sampling.top_k, min_p=0.0,
                    repeat_penalty=1.0, typical_p=1.0, presence_penalty=0.0, frequency_penalty=0.0)
        replies, failed = await self._post(client, body)
        meta["failed_requests"] += failed
        ids: list[int] = []
        finish = None
        for chunk in replies:
            choice = (chunk.get("choices") or [{}])[0]
            finish = choice.get("finish_reason") or finish
            if choice.get("finish_reason") is None:
                ids += self._ids_of(choice.get("text", ""), meta)
        return ids, finish

    def _text(self, seq: list[int], meta: dict) -> str:
        text = self.tokenizer.decode(seq)
        if self.tokenizer.encode(text) != seq:
            # The server will see other tokens than ours: results stay valid, parity does not.
            meta["retokenized_prompts"] += 1
        return text

    def _ids_of(self, text: str, meta: dict) -> list[int]:
        """Ids of one streamed chunk: one token, or the tokens of one unfinished UTF-8 character."""
        pieces = self._piece_table()
        raw = text.encode("utf-8")
        if raw in pieces:
            return [pieces[raw]]
        meta["guessed_ids"] += 1
        return _split(raw, pieces) or self.tokenizer.encode(text)

    def _piece_table(self) -> dict[bytes, int]:
        """Bytes each token renders to in the server's text (special tokens render as b"")."""
        if self._pieces is None:
            llm = getattr(self.tokenizer, "llm", None)
            if llm is None:
                raise UserError("a llama-cpp-python server needs the GGUF's own tokenizer: "
                                "give the .gguf file as the tokenizer")
            table: dict[bytes, int] = {}
            for i in range(llm.n_vocab()):
                table.setdefault(llm.detokenize([i], special=False), i)
            # Special tokens all stream as "": the one that can occur is the trigger (the end of
            # thinking); EOS never streams, the server stops on it.
            trigger = self.format_ids(Budget()).trigger
            if trigger is not None and llm.detokenize([trigger], special=False) == b"":
                table[b""] = trigger
            self._pieces = table
        return self._pieces

    # --- a whole sequence ---------------------------------------------------------------------

    async def _one(self, client: httpx.AsyncClient, request: Request, exclusive: bool,
                   on_step: Callable[[Forcer], None] | None = None) -> Trace:
        started = time.perf_counter()
        prompt, ids, forcer = self.prepare(request)
        meta = {"requests": 0, "failed_requests": 0, "retokenized_prompts": 0, "guessed_ids": 0,
                "rewinds": 0, "discarded_tokens": 0}
        seq = list(ids)
        batch: list[int] | None = None      # what the in-process engine would evaluate next
        eos = self.tokenizer.eos_ids
        empty_replies = 0
        while not forcer.done:
            thinking = forcer.phase is Phase.THINKING
            room = forcer.thinking_room() if thinking else forcer.answer_room()
            room = min(room if room is not None else self.context_length,
                       self.context_length - len(seq))
            if room <= 0:
                forcer.stop("length")
                break
            if exclusive and self.dialect == "llama-cpp-python" and batch is not None:
                await self._align(client, seq, len(batch), meta)
            stop_ids = forcer.ids.stop_ids if thinking else sorted(forcer.ids.eos)
            # a new seed per segment: one seed for all would replay the same random stream
            seed = (request.seed * 1_000_003 + meta["requests"]) % 2**31
            meta["requests"] += 1
            sampling = request.budget.sampling
            tokens, finish = await self._complete(client, seq, room, stop_ids, sampling, seed, meta)
            if self.dialect == "llama-cpp-python":
                # the server evaluated every generated token but the last, all of them if an EOS stopped it
                kept = tokens if finish == "stop" else tokens[:-1]
                self._served = (self.tokenizer.encode(self.tokenizer.decode(seq)) + kept
                                if exclusive else None)
            if not tokens and finish is None and empty_replies < self.retries:
                empty_replies += 1      # cut short before any token (llama.cpp's interrupt_requests)
                continue
            empty_replies = 0
            emitted, batch, used = _feed(forcer, tokens, finish, eos[0] if eos else None)
            meta["discarded_tokens"] += len(tokens) - used   # generated past a forcing point
            seq += emitted
            if not emitted and not forcer.done:
                forcer.stop("length")   # the server gave nothing back: its context is full
            if on_step:
                on_step(forcer)         # once per segment
        tr = self.trace(request, prompt, ids, forcer, started)
        tr.meta.update(meta)
        return tr

    async def _align(self, client: httpx.AsyncClient, seq: list[int], fresh: int, meta: dict) -> None:
        """Make the server evaluate exactly the last `fresh` tokens of seq on the next request."""
        if self._served is None:
            return
        common = 0
        for a, b in zip(self._served, seq):
            if a != b:
                break
            common += 1
        keep = len(seq) - fresh
        if min(common, len(seq) - 1) <= keep or keep < 1:
            return
        # Asking for one token after seq[:keep] rolls the server's cache back to seq[:keep].
        body = {"model": self.model, "prompt": self.tokenizer.decode(seq[:keep]), "max_tokens": 1,
                "temperature": 0.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
        await self._post(client, body)
        meta["rewinds"] += 1
        self._served = list(seq[:keep])

    def describe(self) -> dict:   # what the server tells (llama.cpp's: parameters and width)
        return {"n_params": self._meta.get("n_params"), "n_layers": None,
                "d_model": self._meta.get("n_embd"), "context_length": self.context_length}

    def _generate(self, requests: list[Request],
                  on_trace: Callable[[int, Trace], None] | None,
                  on_step: Callable[[int, Forcer], None] | None = None) -> list[Trace]:
        for r in requests:
            self._check_sampling(r.budget.sampling)
        return asyncio.run(self._generate_all(requests, on_trace, on_step))

    def _check_sampling(self, sampling: Sampling) -> None:
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

    async def _generate_all(self, requests: list[Request],
                            on_trace: Callable[[int, Trace], None] | None,
                            on_step: Callable[[int, Forcer], None] | None = None) -> list[Trace]:
        traces: list[Trace | None] = [None] * len(requests)
        gate = asyncio.Semaphore(self.concurrency)
        exclusive = self.concurrency == 1
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            async def run(i: int, request: Request) -> None:
                async with gate:
                    step = (lambda f: on_step(i, f)) if on_step else None
                    traces[i] = await self._one(client, request, exclusive, step)
                if on_trace:
                    on_trace(i, traces[i])

            tasks = [asyncio.create_task(run(i, r)) for i, r in enumerate(requests)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
        return traces  # type: ignore[return-value]


def _feed(forcer: Forcer, tokens: list[int], finish: str | None,
          eos: int | None) -> tuple[list[int], list[int], int]:
    """Feed a segment to the Forcer. Returns every emitted token, the last evaluation batch the
    in-process engine would make (the last emitted model token with the forced ones after it),
    and how many of the segment's tokens were used (the rest came after a forcing point)."""
    emitted: list[int] = []
    batch: list[int] = []
    used = 0
    fed_all = True
    for t in tokens:
        out = forcer.step(t)
        used += 1
        if out is None:
            return emitted, [], used
        emitted.append(out)
        batch = [out]
        if out != t or forcer.due():
            fed_all = False
            break
    if fed_all and finish == "stop" and eos is not None and not forcer.done \
            and not (tokens and tokens[-1] in forcer.ids.stop_ids):
        # the server stopped on an EOS it did not return (llama.cpp never returns it)
        out = forcer.step(eos)
        if out is None:
            return emitted, [], used
        emitted.append(out)
        batch = [out]
    while forcer.due() and not forcer.done:
        out = forcer.step(None)
        if out is not None:
            emitted.append(out)
            batch.append(out)
    return emitted, batch, used


def _split(raw: bytes, pieces: dict[bytes, int]) -> list[int] | None:
    """The fewest tokens whose bytes make up raw (an unfinished UTF-8 character streamed as one)."""
    best: list[list[int] | None] = [None] * (len(raw) + 1)
    best[0] = []
    for i in range(len(raw)):
        if best[i] is None:
            continue
        for j in range(i + 1, len(raw) + 1):
            t = pieces.get(raw[i:j])
            if t is not None and raw[i:j] and (best[j] is None or len(best[i]) + 1 < len(best[j])):
                best[j] = best[i] + [t]
    return best[-1]


async def _sse(response: httpx.Response):
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


def _first_line(text: str) -> str:
    try:
        err = json.loads(text)
        err = err.get("error", err) if isinstance(err, dict) else err
        text = err.get("message", text) if isinstance(err, dict) else str(err)
    except ValueError:
        pass
    return (text.strip().splitlines() or [""])[0][:300]


def load_remote_engine(base_url: str, model: str | None = None, tokenizer: str | None = None,
                       fmt: ThinkingFormat | None = None, concurrency: int = 8,
                       context_length: int | None = None, **kwargs) -> RemoteEngine:
    """A RemoteEngine with the tokenizer the server uses.

    `tokenizer` (else `model`): a .gguf path → llama.cpp's own tokenizer of that file (what a
    llama.cpp server of it uses); a hub id or directory → its transformers tokenizer; nothing →
    the embedded GGUF's.
    """
    from s1.generation.formats import format_for_model

    from s1.generation.models import EMBEDDED

    source = tokenizer or model
    # a GGUF is served under a name of the server's choosing; a hub id under its own name
    served = None if model is None or model == EMBEDDED or model.endswith(".gguf") else model
    tok = _load_tokenizer(source)
    return RemoteEngine(base_url, fmt or format_for_model(source), tok, model=served,
                        concurrency=concurrency, context_length=context_length, **kwargs)


def _load_tokenizer(source: str | None) -> Tokenizer:
    from s1.generation.models import resolve_model

    ref = resolve_model(source)
    if ref.is_gguf:
        from s1.generation.engines.llamacpp import LlamaTokenizer, load_vocab
        return LlamaTokenizer(load_vocab(str(ref.gguf_path)))
    from s1.generation.engines.base import HFTokenizer
    from s1.generation.models import load_tokenizer
    return HFTokenizer(load_tokenizer(ref))
