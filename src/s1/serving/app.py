"""The OpenAI-compatible app: routes, errors in OpenAI's shape, API key, body limit.

`create_app(engine, config)` serves any engine: the in-process ones (continuous batching with
transformers) or the remote engine of proxy mode. Every client error is a 4xx in OpenAI's
shape; a 500 means a bug or a failed engine, never bad input.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from s1.errors import UserError
from s1.generation.budget import Budget
from s1.generation.engines.base import Engine
from s1.generation.engines.base import Request as EngineRequest
from s1.serving import stream
from s1.serving.protocol import (APIError, ChatRequest, CompletionRequest, failure, finish_reason,
                                 new_id, s1_info, usage, where)
from s1.serving.scheduler import Group, Job, QueueFull, Scheduler, Unavailable

log = logging.getLogger("s1.serving")

FAILING_S = 30.0   # /health says "degraded" this long after a request failed server-side


@dataclass
class ServeConfig:
    """How the server answers; the engine and its batch size are chosen apart."""

    model_name: str                    # the id /v1/models lists and requests name
    api_key: str | None = None         # None = no authentication (loopback use)
    max_queue: int = 256               # requests waiting beyond the running ones; more get 429
    max_body_bytes: int = 2 * 2**20    # larger request bodies get 413
    budget: Budget = field(default_factory=Budget)   # forcing defaults for requests that give none

    def __post_init__(self) -> None:
        if not self.model_name:
            raise UserError("the served model needs a name")
        if self.max_queue < 1:   # every request waits there first: 0 would refuse them all
            raise UserError(f"--max-queue must be at least 1 ({self.max_queue}): every request "
                            "waits in the queue before the engine takes it")
        if self.max_body_bytes < 1024:
            raise UserError(f"the body limit must be at least 1024 bytes ({self.max_body_bytes})")
        if self.api_key is not None and not self.api_key.strip():
            raise UserError("the API key cannot be empty")


def create_app(engine: Engine, config: ServeConfig, scheduler: Scheduler | None = None) -> FastAPI:
    scheduler = scheduler or Scheduler(engine, max_queue=config.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        yield
        scheduler.close()

    app = FastAPI(title="s1 serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.scheduler = scheduler
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    _errors(app)

    async def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 config.api_key.encode()):
            raise APIError(401, "invalid or missing API key (send Authorization: Bearer KEY)",
                           code="invalid_api_key")

    auth = [Depends(authorize)]

    @app.get("/health")
    async def health():
        stats = scheduler.stats()
        if not scheduler.alive:
            return JSONResponse({"status": "unavailable", **stats}, status_code=503)
        out = {"status": "ok", "model": config.model_name, **stats}
        degraded = False
        probe = getattr(engine, "health", None)          # proxy mode: does the upstream answer?
        if probe is not None:
            out["upstream"] = await asyncio.to_thread(probe)
            degraded = "error" in out["upstream"]
        failing = scheduler.failing
        if failing and time.time() - failing["at"] < FAILING_S:
            # the message (it names the upstream) is in the log: /health needs no key
            out["last_failure"] = {"status": failing["status"], "at": int(failing["at"])}
            degraded = True
        if degraded:
            return JSONResponse({**out, "status": "degraded"}, status_code=503)
        return out

    @app.get("/v1/models", dependencies=auth)
    async def models():
        return {"object": "list", "data": [_model_card(engine, config)]}

    @app.get("/v1/models/{name:path}", dependencies=auth)
    async def model(name: str):
        _check_model(name, config)
        return _model_card(engine, config)

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(body: ChatRequest, request: Request):
        _check_model(body.model, config)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in body.messages]
        try:
            text = engine.tokenizer.chat(messages, **(body.chat_template_kwargs or {}))
        except Exception as err:       # the model's template rejects these messages
            raise APIError(400, f"the chat template rejects these messages: {err}",
                           param="messages") from None
        return await _serve("chat", [text], body, body.limit(), request)

    @app.post("/v1/completions", dependencies=auth)
    async def completions(body: CompletionRequest, request: Request):
        _check_model(body.model, config)
        limit = body.limit()
        return await _serve("text", body.prompts(engine.tokenizer), body, limit, request)

    async def _serve(kind: str, prompts: list[str], body, limit: int | None, request: Request):
        ignored = body.other_fields()
        if ignored:     # as vLLM does: said, not refused
            log.warning("ignored fields of a request: %s", ", ".join(ignored))
        fmt = body.format(engine.fmt)
        budget = body.budget(config.budget, limit, engine.context_length)
        check = getattr(engine, "check_sampling", None)    # the remote engine's server may lack some
        if check is not None:
            try:
                check(budget.sampling)
            except UserError as err:
                raise APIError(400, str(err)) from None
        stops = body.stops()
        if len(prompts) * body.n > config.max_queue:   # would be refused 429 forever
            raise APIError(400, f"this request asks for {len(prompts) * body.n} sequences "
                                f"(n × prompts); this server queues at most {config.max_queue}",
                           param="n" if body.n > 1 else "prompt")
        group = Group(asyncio.get_running_loop(), stream=body.stream)
        jobs, prompt_tokens = [], 0
        for p, text in enumerate(prompts):
            for k in range(body.n):
                # choices of one request sample from consecutive seeds (greedy ones agree)
                req = EngineRequest("", id=f"{p}.{k}", prompt_text=text, fmt=fmt,
                                    budget=budget.with_(seed=budget.sampling.seed + k) if k else budget)
                jobs.append(Job(req, group, limit, stops))
            prompt_tokens += _prompt_tokens(engine, jobs[-1].request, budget, limit)
        try:
            scheduler.submit(jobs)
        except QueueFull as err:
            raise APIError(429, str(err), type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        except Unavailable as err:
            raise APIError(503, str(err), type="server_error", code="unavailable") from None
        rid, created = new_id(kind), int(time.time())
        # a stream starts at its first token, so a request that fails before has an HTTP status
        if not await stream.wait(jobs, group, request,
                                 stream.started if body.stream else stream.all_finished):
            scheduler.cancel(jobs)
            return JSONResponse({}, status_code=499)   # nobody reads it
        failed = next((j.error for j in jobs if j.error), None)
        if failed and not (body.stream and any(j.trace or j.forcer for j in jobs)):
            scheduler.cancel(jobs)
            raise failure(*failed)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = stream.events(kind, rid, created, config.model_name, jobs, group,
                                   engine.tokenizer.decode, include_usage, prompt_tokens,
                                   request, scheduler, body.include_reasoning)
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        traces = [j.trace for j in jobs]
        choices = []
        for i, job in enumerate(jobs):
            choice = {"index": i, "finish_reason": finish_reason(job.trace, job.stopped_at is not None),
                      "logprobs": None, "s1": s1_info(job.trace)}
            thinking = job.trace.thinking if body.include_reasoning else None
            if kind == "chat":
                choice["message"] = {"role": "assistant", "content": job.content(),
                                     "reasoning_content": thinking, "reasoning": thinking}
            else:
                choice.update(text=job.content(), reasoning_content=thinking)
            choices.append(choice)
        return {"id": rid, "object": "chat.completion" if kind == "chat" else "text_completion",
                "created": created, "model": config.model_name, "choices": choices,
                "usage": usage(traces, prompt_tokens)}

    return app


def _prompt_tokens(engine: Engine, request: EngineRequest, budget: Budget, limit: int | None) -> int:
    """Reject a prompt that leaves no room in the context here, not in the engine thread."""
    try:
        _, ids, _ = engine.prepare(request.resolve(budget))
    except UserError as err:
        raise APIError(400, str(err), param="messages", code="context_length_exceeded") from None
    if limit is not None and len(ids) + limit > engine.context_length:
        raise APIError(400, f"this model's context is {engine.context_length} tokens; the prompt "
                            f"({len(ids)}) plus max_tokens ({limit}) exceed it",
                       param="max_tokens", code="context_length_exceeded")
    return len(ids)


def _model_card(engine: Engine, config: ServeConfig) -> dict:
    return {"id": config.model_name, "object": "model", "created": 0, "owned_by": "s1",
            "max_model_len": engine.context_length, "engine": engine.name,
            "thinking_format": engine.fmt.to_dict()}


def _check_model(name: str, config: ServeConfig) -> None:
    if name != config.model_name:
        raise APIError(404, f"the model {name!r} does not exist; this server serves "
                            f"{config.model_name!r}", param="model", code="model_not_found")


# --- errors ------------------------------------------------------------------------------------

def _errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        if not isinstance(err, APIError):   # routing: unknown path, wrong method
            err = APIError(err.status_code, str(err.detail), headers=err.headers)
        return JSONResponse(err.body(), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        first = (err.errors() or [{}])[0]
        param = where(first.get("loc", ()))
        kind = first.get("type", "")
        if kind == "json_invalid":
            message = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'malformed')})"
        elif kind == "extra_forbidden":
            message = f"unknown field {param!r}"
        elif kind == "missing":
            message = f"missing field {param!r}"
        else:
            message = f"{param or 'body'}: {first.get('msg', 'invalid')}"
        return JSONResponse(APIError(400, message, param=param).body(), status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception):
        return JSONResponse(APIError(500, f"internal error ({type(err).__name__})",
                                     type="server_error").body(), status_code=500)


class BodyLimit:
    """Pure ASGI (it must not buffer streaming responses): 413 for bodies over the limit,
    whether Content-Length announces them or a chunked body grows past it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        announced = dict(scope.get("headers") or ()).get(b"content-length")
        if announced is not None and (not announced.isdigit() or int(announced) > self.limit):
            err = APIError(413, f"the request body exceeds {self.limit} bytes",
                           code="body_too_large")
            return await JSONResponse(err.body(), status_code=413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:   # FastAPI passes an HTTPException through body parsing
                    raise APIError(413, f"the request body exceeds {self.limit} bytes",
                                   code="body_too_large")
            return message

        await self.app(scope, limited, send)
