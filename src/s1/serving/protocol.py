"""The wire format: OpenAI's request and response shapes plus s1's thinking-budget extensions.

Requests are strict (an unknown field is a 400, as a typo in `max_thinking_tokens` must not
silently serve an unbounded request). Extensions beside OpenAI's fields:
`max_thinking_tokens` (vLLM's `thinking_token_budget` is an alias), `min_thinking_tokens`,
`num_ignore`, `ignore_strings`, `thinking_format`. Responses carry the thinking in
`reasoning_content` (vLLM's convention), reasoning tokens in
`usage.completion_tokens_details.reasoning_tokens`, and what the Forcer did in each choice's `s1`.
"""

from __future__ import annotations

import secrets
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from s1.errors import UserError
from s1.generation.budget import Budget, Sampling
from s1.generation.formats import FORMATS, ThinkingFormat
from s1.generation.trace import Trace


class APIError(HTTPException):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(status, message, headers=headers)
        self.message, self.type, self.param, self.code = message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


# --- requests ----------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormatSpec(_Strict):
    """A custom thinking format: the strings that open and close the thinking."""

    start: str
    end: str
    forced_suffix: str = ""


class StreamOptions(_Strict):
    include_usage: bool = False


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None
    reasoning_content: str | None = None   # clients echo it back; the template does not see it

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class _Sampling(_Strict):
    """Fields both endpoints share, with vLLM's defaults."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**63)
    n: int = Field(1, ge=1, le=64)
    stop: Union[str, list[str], None] = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # s1's budget forcing
    max_thinking_tokens: Union[int, Literal["auto"], None] = None
    thinking_token_budget: int | None = None     # vLLM's name for the maximum
    min_thinking_tokens: int | None = Field(None, ge=0)
    num_ignore: int | None = Field(None, ge=0)
    ignore_strings: Union[str, list[str], None] = None
    thinking_format: Union[str, FormatSpec, None] = None

    def stops(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not s for s in stops):
            raise APIError(400, "stop strings cannot be empty", param="stop")
        if len(stops) > 16:
            raise APIError(400, "at most 16 stop strings", param="stop")
        return tuple(stops)

    def budget(self, defaults: Budget, max_tokens: int | None, context_length: int) -> Budget:
        """This request's Budget: its own fields over the server's defaults."""
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise APIError(400, f"{name} is not supported (budget forcing samples plain "
                                    "temperature + top_p)", param=name)
        mx, alias = self.max_thinking_tokens, self.thinking_token_budget
        if mx is not None and alias is not None and mx != alias:
            raise APIError(400, f"max_thinking_tokens ({mx}) and thinking_token_budget ({alias}) "
                                "disagree; give one", param="thinking_token_budget")
        mx = mx if mx is not None else alias if alias is not None else defaults.max_thinking_tokens
        ignore = self.ignore_strings
        ignore = ((ignore,) if isinstance(ignore, str) else tuple(ignore)) if ignore is not None \
            else defaults.ignore_strings
        try:
            budget = Budget(
                max_thinking_tokens=mx,
                min_thinking_tokens=_pick(self.min_thinking_tokens, defaults.min_thinking_tokens),
                num_ignore=_pick(self.num_ignore, defaults.num_ignore), ignore_strings=ignore,
                # max_tokens caps thinking + answer together (the scheduler counts it); without
                # it the answer runs to EOS or the end of the context, as in vLLM
                max_answer_tokens=max_tokens or context_length,
                answer_reserve=defaults.answer_reserve, require_answer=defaults.require_answer,
                sampling=Sampling(temperature=self.temperature, top_p=self.top_p,
                                  seed=self.seed if self.seed is not None else secrets.randbits(31)),
                loop=defaults.loop)
        except UserError as err:
            raise APIError(400, str(err)) from None
        if max_tokens is None:
            return budget
        # thinking counts towards max_tokens, as in vLLM: no segment of it may ask for more
        cap = max_tokens if not isinstance(budget.max_thinking_tokens, int) \
            else min(budget.max_thinking_tokens, max_tokens)
        return budget.with_(max_thinking_tokens=cap,
                            min_thinking_tokens=min(budget.min_thinking_tokens, cap))

    def format(self, default: ThinkingFormat) -> ThinkingFormat | None:
        spec = self.thinking_format
        if spec is None:
            return None
        try:
            if isinstance(spec, str):
                if spec not in FORMATS:
                    raise UserError(f"unknown thinking_format {spec!r}; choose one of "
                                    f"{', '.join(FORMATS)} or give {{start, end, forced_suffix}}")
                return FORMATS[spec]
            return ThinkingFormat("custom", spec.start, spec.end, spec.forced_suffix)
        except UserError as err:
            raise APIError(400, str(err), param="thinking_format") from None


def _pick(value, default):
    return default if value is None else value


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None

    def limit(self) -> int | None:
        if self.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs")
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]]
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None

    def limit(self) -> int | None:
        for name in ("echo", "logprobs", "suffix"):
            if getattr(self, name):
                raise APIError(400, f"{name} is not supported", param=name)
        if self.max_tokens is None:
            return 16       # OpenAI's and vLLM's default for /v1/completions
        return self.max_tokens

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts or any(not p for p in prompts):
            raise APIError(400, "prompt must be a non-empty string or list of strings", param="prompt")
        return prompts


# --- responses -----------------------------------------------------------------------------------

def finish_reason(trace: Trace, stopped: bool) -> str:
    return "stop" if stopped or trace.finish_reason == "stop" else "length"


def s1_info(trace: Trace) -> dict:
    """What the Forcer did to one choice."""
    return {"thinking_tokens": trace.thinking_tokens, "waits": trace.waits,
            "forced_end": trace.thinking_finish in ("max", "loop"),
            "thinking_finish": trace.thinking_finish,
            "events": [e.to_dict() for e in trace.events]}


def usage(traces: list[Trace], prompt_tokens: int) -> dict:
    completion = sum(t.generated_tokens for t in traces)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": sum(t.thinking_tokens for t in traces)}}


def new_id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{secrets.token_hex(12)}"
