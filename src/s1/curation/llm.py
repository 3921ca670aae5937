"""One way for every model-driven curation step (teacher traces, solvers, graders, the domain
classifier, the audit's judge) to ask a model: `LLM(LLMConfig(...)).ask(prompts)`.

Backends (`LLMConfig.api`):
- `chat`: any OpenAI-compatible `/v1/chat/completions` (vLLM, SGLang, llama.cpp's server, hosted
  APIs with a key from an environment variable). The thinking is read from `reasoning_content`
  (or `reasoning`) when the server separates it, else from `<think>...</think>` in the content.
- `completions`: `/v1/completions` with the prompt as given (a base model, a custom template).
- `local`: an in-process engine from `s1.generation.engines.load_engine` (default: the embedded
  SmolLM2 GGUF); the thinking is what it wrote in its thinking format.

`base_url` may name a fleet: a list (or comma-separated string) of servers serving the same
model; each gets `concurrency` requests in flight, pulled from one queue, so a fast server takes
more. Remote requests run concurrently, under a requests-per-minute limit (over the fleet), with
exponential backoff on 429 / 5xx / network errors (a `Retry-After` header is honoured). A request
that still fails becomes a `Reply` with `error` set: callers record it, nothing is dropped
silently. An unreachable server is one `UserError` before any work starts.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import httpx

from s1.errors import UserError

APIS = ("chat", "completions", "local")
_THINK = re.compile(r"(?s)^\s*<think>(.*?)</think>\s*")


@dataclass
class LLMConfig:
    """Which model to ask and how hard to push it."""

    api: str = "local"                 # chat | completions | local
    base_url: str | list | None = None   # http://host:port/v1, or a list of them (a fleet)
    model: str | None = None           # served model name / hub id / GGUF; None = server's first / embedded
    api_key_env: str | None = None     # name of the environment variable holding the key (never the key)
    system: str | None = None          # system prompt; None = the model's default (as the paper)
    temperature: float = 0.0
    max_tokens: int = 4096             # completion tokens (thinking included); remote: capped per
                                       # request at the server's context minus the prompt
    concurrency: int = 8               # requests in flight per server (remote)
    requests_per_minute: float | None = None   # None = no limit
    retries: int = 5                   # per request, on 429 / 5xx / network errors
    backoff_s: float = 1.0             # first wait; doubles each retry (capped at 60 s)
    timeout_s: float = 600.0
    max_failure_rate: float = 0.1      # more failed requests than this share of a step's rows stops
                                       # the step (one line; the replies that came are kept)
    price_in_per_mtok: float = 0.0     # cost accounting, per million prompt tokens
    price_out_per_mtok: float = 0.0    # per million completion tokens
    extra_body: dict = field(default_factory=dict)   # passed through (e.g. reasoning_effort)
    engine: str = "auto"               # local: auto | transformers | llama.cpp
    device: str | None = None          # local: cpu | cuda | cuda:N
    threads: int | None = None         # local: CPU threads
    batch_size: int | None = None      # local: rows decoded together (None: the engine's default)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise UserError(f"unknown LLM api {self.api!r}; choose one of {', '.join(APIS)}")
        if isinstance(self.base_url, str) and "," in self.base_url:
            self.base_url = [u.strip() for u in self.base_url.split(",") if u.strip()]
        if self.api != "local":
            urls = self.base_url if isinstance(self.base_url, list) else [self.base_url]
            if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                                   for u in urls):
                raise UserError(f"the {self.api} api needs base_url=http(s)://host:port/v1 (or a "
                                f"list of them), not {self.base_url!r}")
        if self.api_key_env is not None and not os.environ.get(self.api_key_env):
            raise UserError(f"the API key variable {self.api_key_env} is not set")
        for name in ("max_tokens", "concurrency", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise UserError(f"requests_per_minute must be positive, not {self.requests_per_minute}")
        if not 0.0 <= self.temperature <= 2.0:
            raise UserError(f"temperature must be between 0 and 2, not {self.temperature}")
        if self.retries < 0 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise UserError("retries and backoff_s must be non-negative, timeout_s positive")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise UserError(f"max_failure_rate is a share between 0 and 1, not {self.max_failure_rate}")

    @property
    def urls(self) -> list[str]:
        return self.base_url if isinstance(self.base_url, list) else [self.base_url]

    @property
    def label(self) -> str:
        if self.api == "local":
            where = "in-process"
        else:
            where = self.urls[0] + (f" +{len(self.urls) - 1} servers" if len(self.urls) > 1 else "")
        return f"{self.model or 'default'} @ {where}"

    def fingerprint(self) -> str:
        """Hash of what decides the replies (model, prompt settings, sampling), not of where the
        model runs or how fast it is asked: a reply cache under this key survives a change of
        servers, concurrency or prices."""
        import hashlib
        import json

        what = {k: getattr(self, k) for k in ("api", "model", "system", "temperature",
                                               "max_tokens", "extra_body", "engine")}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def llm_config(value, where: str) -> LLMConfig | None:
    """An LLMConfig from a recipe mapping, each key and type checked (one-line UserErrors)."""
    import dataclasses
    import typing

    if value is None or isinstance(value, LLMConfig):
        return value
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping of model settings (api, base_url, model, ...), "
                        f"not {value!r}")
    from s1.config import coerce

    hints = typing.get_type_hints(LLMConfig)
    names = [f.name for f in dataclasses.fields(LLMConfig)]
    out = {}
    for k, v in value.items():
        if k not in names:
            raise UserError(f"unknown field {where}.{k} (fields of a model: {', '.join(names)})")
        if k == "base_url" and isinstance(v, list):
            out[k] = [str(u) for u in v]
        elif k == "extra_body":
            if not isinstance(v, dict):
                raise UserError(f"{where}.extra_body must be a mapping, not {v!r}")
            out[k] = v
        else:
            out[k] = coerce(v, hints[k], f"{where}.{k}")
    return LLMConfig(**out)


@dataclass
class Reply:
    """What one prompt got back. `error` is set (and the texts empty) when it failed."""

    thinking: str = ""
    text: str = ""                     # the answer / visible content
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    error: str | None = None
    attempts: int = 1
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def split_thinking(content: str, reasoning: str | None) -> tuple[str, str]:
    """(thinking, answer): the server's reasoning field, else a leading <think> block."""
    if reasoning:
        return reasoning, content
    m = _THINK.match(content or "")
    if m:
        return m.group(1).strip(), content[m.end():]
    if content and "</think>" in content:   # templates that open <think> in the prompt
        head, _, tail = content.partition("</think>")
        return head.strip(), tail.lstrip()
    return "", content or ""


def _bound(body: dict) -> int:
    """An upper bound of a request's prompt tokens: a byte-level BPE token is at least one byte;
    plus room for the chat template's own tokens."""
    text = "".join(m["content"] for m in body.get("messages", ())) + body.get("prompt", "")
    return len(text.encode("utf-8")) + 64 + 8 * len(body.get("messages", ()))


class LLM:
    """Asks one model many prompts. Use as a context manager or call close()."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.prompt_tokens = self.completion_tokens = self.requests = self.failures = 0
        self.capped = 0                # requests whose max_tokens was cut to fit the context
        self.context: int | None = None   # the served model's context length, where it says
        self._can_tokenize = True
        self._engine = None
        self._last_start = 0.0
        if config.api != "local":
            self.bases = [u.rstrip("/") if u.rstrip("/").endswith("/v1") else u.rstrip("/") + "/v1"
                          for u in config.urls]
            self.base = self.bases[0]
            key = os.environ.get(config.api_key_env) if config.api_key_env else None
            self.headers = {"Authorization": f"Bearer {key}"} if key else {}
            contexts = [self._check_reachable(base) for base in self.bases]
            known = [c for c in contexts if c]
            self.context = min(known) if known else None   # a fleet: the smallest one

    # --- accounting -------------------------------------------------------------------------

    @property
    def cost(self) -> float:
        c = self.config
        return (self.prompt_tokens * c.price_in_per_mtok + self.completion_tokens * c.price_out_per_mtok) / 1e6

    def usage(self) -> dict:
        return {"model": self.config.label, "requests": self.requests, "failures": self.failures,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost": round(self.cost, 6), "max_tokens_capped": self.capped}

    # --- public -----------------------------------------------------------------------------

    def ask(self, prompts: Sequence[str], on_reply: Callable[[int, Reply], None] | None = None,
            total: int | None = None, what: str = "requests") -> list[Reply]:
        """Replies in prompt order; `on_reply(index, reply)` fires as each finishes (a caller
        appends it to a kill-safe file there).

        More failures than `max_failure_rate` of `total` (the step's rows; default: the prompts)
        stop the asking (no new request is sent) and raise one UserError naming the first error:
        a server that refuses every request is found after a tenth of the work, not all of it."""
        if not prompts:
            return []
        allowed = int(self.config.max_failure_rate * (total or len(prompts)))
        failed: list[Reply] = []

        def count(i: int, reply: Reply) -> None:
            if not reply.ok:
                failed.append(reply)
            if on_reply:
                on_reply(i, reply)

        stop = lambda: len(failed) > allowed  # noqa: E731
        if self.config.api == "local":
            replies = self._ask_local(prompts, count)
        else:
            replies = asyncio.run(self._ask_remote(list(prompts), count, stop))
        if stop():
            raise UserError(
                f"{len(failed)} {what} to {self.config.label} failed, more than max_failure_rate "
                f"{self.config.max_failure_rate:g} of {total or len(prompts)}; stopped (the replies "
                f"that came are kept: fix the cause and rerun). First error: {failed[0].error}")
        return replies

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- remote -----------------------------------------------------------------------------

    def _check_reachable(self, base: str) -> int | None:
        """Refuse an unreachable server or a wrong key; the served model's context length where
        /v1/models tells it (vLLM's `max_model_len`, llama.cpp's `meta.n_ctx`)."""
        try:
            r = httpx.get(f"{base}/models", headers=self.headers, timeout=10.0)
        except httpx.HTTPError as err:
            raise UserError(f"cannot reach the model server at {base} "
                            f"({type(err).__name__}); is it running?") from None
        if r.status_code in (401, 403):
            raise UserError(f"the model server at {base} refused the API key "
                            f"(HTTP {r.status_code}); set {self.config.api_key_env or 'api_key_env'}")
        try:
            entries = [e for e in r.json().get("data") or [] if isinstance(e, dict)]
        except (ValueError, AttributeError):
            return None
        named = [e for e in entries if self.config.model in (e.get("id"), e.get("root"))]
        entry = (named or entries or [{}])[0]
        context = entry.get("max_model_len") or (entry.get("meta") or {}).get("n_ctx")
        return int(context) if isinstance(context, (int, float)) and context > 0 else None

    async def _prompt_tokens(self, client: httpx.AsyncClient, base: str, body: dict) -> tuple[int, bool]:
        """(tokens, exact) of a request's prompt: the server's count where it has vLLM's
        `/tokenize` (chat template included), else an upper bound (a byte-level BPE token is at
        least one byte) plus room for the template's own tokens."""
        if self._can_tokenize:
            ask = {k: body[k] for k in ("model", "messages", "prompt") if k in body}
            try:
                r = await client.post(base[:-len("/v1")] + "/tokenize", json=ask, headers=self.headers)
                if r.status_code == 200:
                    data = r.json()
                    n = data.get("count", len(data.get("tokens") or []))
                    if isinstance(n, int) and n > 0:
                        return n, True
                elif r.status_code in (404, 405):
                    self._can_tokenize = False   # not vLLM: do not ask again
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
        return _bound(body), False

    async def _fit(self, client: httpx.AsyncClient, base: str, body: dict) -> bool:
        """Cut the request's max_tokens to the context left after its prompt (vLLM answers 400 to
        a request whose prompt plus max_tokens exceed the context). False when nothing is left."""
        if not self.context:
            return True
        if _bound(body) + body["max_tokens"] <= self.context:
            return True   # fits even by the upper bound: no need to ask the server to count
        n, exact = await self._prompt_tokens(client, base, body)
        room = self.context - n
        if room < 1:
            return not exact   # only a bound: let the server judge
        if room < body["max_tokens"]:
            body["max_tokens"] = room
            self.capped += 1
        return True

    def _body(self, prompt: str, base: str) -> tuple[str, dict]:
        c = self.config
        body = {"temperature": c.temperature, "max_tokens": c.max_tokens, **c.extra_body}
        if c.model:
            body["model"] = c.model
        if c.api == "chat":
            msgs = ([{"role": "system", "content": c.system}] if c.system is not None else [])
            body["messages"] = msgs + [{"role": "user", "content": prompt}]
            return f"{base}/chat/completions", body
        body["prompt"] = prompt
        return f"{base}/completions", body

    async def _pace(self, lock: asyncio.Lock) -> None:
        rpm = self.config.requests_per_minute
        if not rpm:
            return
        async with lock:
            wait = self._last_start + 60.0 / rpm - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_start = time.monotonic()

    async def _one(self, client: httpx.AsyncClient, prompt: str, lock: asyncio.Lock,
                   base: str) -> Reply:
        c = self.config
        url, body = self._body(prompt, base)
        started = time.perf_counter()
        if not await self._fit(client, base, body):
            # the prompt alone fills the context: a reply cut at zero tokens (asking again gives
            # the same, so it is no failure to retry)
            return Reply(finish_reason="length", attempts=0)
        for attempt in range(c.retries + 1):
            await self._pace(lock)
            delay = min(60.0, c.backoff_s * 2 ** attempt)
            try:
                r = await client.post(url, json=body, headers=self.headers)
            except httpx.HTTPError as err:
                why = f"{type(err).__name__}: {err}"
            else:
                if r.status_code == 200:
                    try:
                        return self._parse(r.json(), attempt + 1, time.perf_counter() - started)
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        why = f"malformed reply ({type(err).__name__}: {err})"
                else:
                    why = f"HTTP {r.status_code}: {r.text.strip().splitlines()[0][:200] if r.text.strip() else ''}"
                    if r.status_code != 429 and r.status_code < 500:
                        break   # a bad request stays bad: no retry
                    retry_after = r.headers.get("retry-after", "")
                    if retry_after.replace(".", "", 1).isdigit():
                        delay = min(120.0, float(retry_after))
            if attempt < c.retries:
                await asyncio.sleep(delay)
        return Reply(error=why, attempts=attempt + 1, wall_s=time.perf_counter() - started)

    def _parse(self, data: dict, attempts: int, wall: float) -> Reply:
        choice = data["choices"][0]
        if self.config.api == "chat":
            msg = choice["message"]
            thinking, text = split_thinking(msg.get("content") or "",
                                            msg.get("reasoning_content") or msg.get("reasoning"))
        else:
            thinking, text = split_thinking(choice.get("text") or "", None)
        usage = data.get("usage") or {}
        return Reply(thinking=thinking, text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0),
                     finish_reason=choice.get("finish_reason") or "", attempts=attempts, wall_s=wall)

    async def _ask_remote(self, prompts: list[str], on_reply, stop=lambda: False) -> list[Reply]:
        # `concurrency` workers per server pull from one queue: a faster server takes more work
        lock = asyncio.Lock()
        out: list[Reply | None] = [None] * len(prompts)
        queue = iter(range(len(prompts)))
        workers = len(self.bases) * self.config.concurrency
        limits = httpx.Limits(max_connections=workers)
        async with httpx.AsyncClient(timeout=self.config.timeout_s, limits=limits) as client:
            async def work(base: str) -> None:
                for i in queue:
                    if stop():
                        break   # too many failures: send nothing more
                    reply = await self._one(client, prompts[i], lock, base)
                    self._account(reply)
                    out[i] = reply
                    if on_reply:
                        on_reply(i, reply)
            await asyncio.gather(*(work(b) for b in self.bases for _ in range(self.config.concurrency)))
        return out  # type: ignore[return-value]

    def _account(self, reply: Reply) -> None:
        self.requests += reply.attempts
        self.failures += not reply.ok
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens

    # --- in-process -------------------------------------------------------------------------

    def _ask_local(self, prompts: Sequence[str], on_reply) -> list[Reply]:
        from s1.generation.budget import Budget, Sampling
        from s1.generation.engines import Request, load_engine

        c = self.config
        if self._engine is None:
            # llama.cpp's OpenMP threads spin while they wait: on a shared, loaded CPU that made the
            # embedded model 10-20x slower here (1.5 s -> 17-36 s for 30 tokens). Passive waiting
            # must be chosen before the OpenMP runtime starts, i.e. before llama.cpp is loaded.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            more = {"batch_size": c.batch_size} if c.batch_size else {}
            self._engine = load_engine(c.model, engine=c.engine, device=c.device, threads=c.threads,
                                       **more)
        # The completion budget is split as the harness does: thinking capped, the rest answers.
        answer = max(1, min(512, c.max_tokens // 4))
        budget = Budget(max_thinking_tokens=max(0, c.max_tokens - answer), max_answer_tokens=answer,
                        sampling=Sampling(temperature=c.temperature))
        out: list[Reply | None] = [None] * len(prompts)

        def done(i: int, trace) -> None:
            failed = trace.finish_reason == "error"   # the engine failed on it: no reply
            reply = Reply(thinking=trace.thinking, text=trace.answer,
                          prompt_tokens=trace.prompt_tokens,
                          completion_tokens=trace.generated_tokens,
                          finish_reason=trace.finish_reason, wall_s=trace.wall_s,
                          error=(trace.error or "the engine failed") if failed else None)
            self._account(reply)
            out[i] = reply
            if on_reply:
                on_reply(i, reply)

        requests = [Request(p, system=c.system, id=str(i)) for i, p in enumerate(prompts)]
        self._engine.generate(requests, budget, on_trace=done)
        return out  # type: ignore[return-value]
