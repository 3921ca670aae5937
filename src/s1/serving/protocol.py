"""The wire format: OpenAI's request and response shapes plus s1's thinking-budget extensions.

Extensions beside OpenAI's fields: `max_thinking_tokens` (vLLM's `thinking_token_budget` is an
alias), `min_thinking_tokens`, `num_ignore`, `ignore_strings`, `thinking_format`, and
`reasoning_effort` as a thinking cap (`EFFORT`). Fields of other servers that this one does not
act on are ignored (and logged, as vLLM does) where that cannot change the result, and refused
where it would (`HARMLESS`); an unknown field that looks like one of ours misspelt is refused,
as a typo in `max_thinking_tokens` must not silently serve an unbounded request. `stop` strings
are looked for in the answer only, never in the thinking.

Responses carry the thinking in `reasoning_content` and `reasoning` (vLLM's older and newer
names), reasoning tokens in `usage.completion_tokens_details.reasoning_tokens`, and what the
Forcer did in each choice's `s1`.
"""

from __future__ import annotations

import difflib
import secrets
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict
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


#: the codes of a proxy's failures (the upstream's own 4xx pass through as they are)
GATEWAY_CODES = {500: "engine_failed", 502: "upstream_error", 503: "upstream_unavailable",
                 504: "upstream_timeout"}


def failure(status: int, message: str) -> APIError:
    """A request the engine could not serve, as the client is told (streamed or not)."""
    if status >= 500:
        return APIError(status, message, type="server_error", code=GATEWAY_CODES.get(status))
    return APIError(status, message, type="rate_limit_error" if status == 429
                    else "invalid_request_error")


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


Tokens = Annotated[int, Strict()]   # a count: `true` is not 1 token

#: reasoning_effort → max thinking tokens (OpenAI's levels; "none" answers at once)
EFFORT = {"none": 0, "minimal": 256, "low": 1024, "medium": 4096, "high": 16384}


def _empty(v) -> bool:
    return not v


def _anything(v) -> bool:
    return True


#: Fields other OpenAI-compatible servers take that this one does not act on: ignoring them is
#: harmless for the values the test accepts (their defaults); other values are refused.
HARMLESS = {
    **dict.fromkeys(("store", "metadata", "service_tier", "parallel_tool_calls",
                     "prompt_cache_key", "safety_identifier", "request_id", "priority"), _anything),
    **dict.fromkeys(("tools", "functions", "logit_bias", "min_tokens", "ignore_eos",
                     "stop_token_ids", "bad_words", "allowed_token_ids", "use_beam_search",
                     "top_logprobs", "include_stop_str_in_output", "continue_final_message",
                     "echo", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
                     "structured_outputs", "prompt_logprobs", "truncate_prompt_tokens",
                     "chat_template", "prediction", "audio", "web_search_options",
                     "logits_processors"), _empty),
    "tool_choice": lambda v: v in (None, "none", "auto"),
    "function_call": lambda v: v in (None, "none", "auto"),
    "response_format": lambda v: v is None or isinstance(v, dict) and v.get("type") == "text",
    "repetition_penalty": lambda v: v in (None, 1),
    "length_penalty": lambda v: v in (None, 1),
    "best_of": lambda v: v in (None, 1),
    "skip_special_tokens": lambda v: v in (None, True),
    "spaces_between_special_tokens": lambda v: v in (None, True),
    "add_generation_prompt": lambda v: v in (None, True),
    "modalities": lambda v: v in (None, ["text"]),
}
#: words that make an unknown field look like a misspelt budget field
_BUDGET_WORDS = ("think", "reason", "budget", "ignore", "wait", "effort")


class _Sampling(BaseModel):
    """Fields both endpoints share, with vLLM's defaults."""

    model_config = ConfigDict(extra="allow")   # see `other_fields`

    model: str
    max_tokens: Tokens | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: Tokens = Field(0, ge=-1)          # 0 or -1 (vLLM's "off"): all tokens
    min_p: float = Field(0.0, ge=0.0, lt=1.0)
    seed: Tokens | None = Field(None, ge=0, lt=2**63)
    n: Tokens = Field(1, ge=1, le=64)
    stop: Union[str, list[str], None] = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    include_reasoning: bool = True
    # s1's budget forcing
    max_thinking_tokens: Union[Tokens, Literal["auto"], None] = None
    thinking_token_budget: Tokens | None = None     # vLLM's name for the maximum
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    min_thinking_tokens: Tokens | None = Field(None, ge=0)
    num_ignore: Tokens | None = Field(None, ge=0)
    ignore_strings: Union[str, list[str], None] = None
    thinking_format: Union[str, FormatSpec, None] = None

    def other_fields(self) -> list[str]:
        """The fields beyond ours that are ignored (to be logged); refuses those whose value
        would change the result if ignored, and unknown names that look like ours misspelt."""
        ignored = []
        for name, value in (self.model_extra or {}).items():
            harmless = HARMLESS.get(name)
            if harmless is not None:
                if not harmless(value):
                    raise APIError(400, f"{name}={_short(value)} is not supported by this server",
                                   param=name)
                if harmless is _anything or value not in (None, False, [], {}):
                    ignored.append(name)
                continue
            close = difflib.get_close_matches(name, type(self).model_fields, n=1, cutoff=0.75)
            if close or any(w in name.lower() for w in _BUDGET_WORDS):
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise APIError(400, f"unknown field {name!r}{hint}", param=name)
            ignored.append(name)
        return ignored

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
        mx = self._max_thinking(defaults)
        ignore = self.ignore_strings
        ignore = ((ignore,) if isinstance(ignore, str) else tuple(ignore)) if ignore is not None \
            else defaults.ignore_strings
        low = self.min_thinking_tokens
        try:
            budget = Budget(
                max_thinking_tokens=mx, min_thinking_tokens=_pick(low, defaults.min_thinking_tokens),
                num_ignore=_pick(self.num_ignore, defaults.num_ignore), ignore_strings=ignore,
                # max_tokens caps thinking + answer together (the scheduler counts it); without
                # it the answer runs to EOS or the end of the context, as in vLLM
                max_answer_tokens=max_tokens or context_length,
                answer_reserve=defaults.answer_reserve, require_answer=defaults.require_answer,
                sampling=Sampling(temperature=self.temperature, top_p=self.top_p,
                                  top_k=max(self.top_k, 0), min_p=self.min_p,
                                  seed=self.seed if self.seed is not None else secrets.randbits(31)),
                loop=defaults.loop)
        except UserError as err:
            raise APIError(400, str(err), param=_param_of(str(err))) from None
        if low is not None and low > (max_tokens or context_length):
            # never clamped: the client asked for more thinking than it lets the model write
            limit = f"max_tokens ({max_tokens})" if max_tokens else f"the context ({context_length})"
            raise APIError(400, f"min_thinking_tokens ({low}) exceeds {limit}, which counts the "
                                "thinking too", param="min_thinking_tokens")
        if max_tokens is None:
            return budget
        # thinking counts towards max_tokens, as in vLLM: no segment of it may ask for more
        cap = max_tokens if not isinstance(budget.max_thinking_tokens, int) \
            else min(budget.max_thinking_tokens, max_tokens)
        # (only the server's default minimum can exceed it here: a request's own was refused)
        return budget.with_(max_thinking_tokens=cap,
                            min_thinking_tokens=min(budget.min_thinking_tokens, cap))

    def _max_thinking(self, defaults: Budget):
        given = {name: value for name, value in (
            ("max_thinking_tokens", self.max_thinking_tokens),
            ("thinking_token_budget", self.thinking_token_budget),
            ("reasoning_effort", EFFORT.get(self.reasoning_effort))) if value is not None}
        if len(set(given.values())) > 1:
            names = " and ".join(f"{k} ({self.reasoning_effort if k == 'reasoning_effort' else v})"
                                 for k, v in given.items())
            raise APIError(400, f"{names} disagree; give one", param=list(given)[-1])
        return next(iter(given.values()), defaults.max_thinking_tokens)

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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Budget's own checks name these (with spaces or underscores); the first one named is the param
_BUDGET_PARAMS = ("min_thinking_tokens", "max_thinking_tokens", "num_ignore", "ignore_strings",
                  "temperature", "top_p", "top_k", "min_p", "seed")


def _param_of(message: str) -> str | None:
    low = message.lower()
    return next((p for p in _BUDGET_PARAMS if p in low or p.replace("_", " ") in low), None)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: Tokens | None = Field(None, ge=1)
    logprobs: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def limit(self) -> int | None:
        if self.logprobs:
            raise APIError(400, "logprobs are not supported", param="logprobs")
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[Tokens], list[list[Tokens]]]
    echo: bool = False
    logprobs: Tokens | None = None
    suffix: str | None = None

    def limit(self) -> int | None:
        for name in ("echo", "logprobs", "suffix"):
            if getattr(self, name):
                raise APIError(400, f"{name} is not supported", param=name)
        if self.max_tokens is None:
            return 16       # OpenAI's and vLLM's default for /v1/completions
        return self.max_tokens

    def prompts(self, tokenizer) -> list[str]:
        """The prompts as text; token-id prompts are taken when the ids are the tokenizer's
        own encoding of their text (then the engine sees exactly these ids)."""
        p = self.prompt
        prompts = [p] if isinstance(p, str) or p and isinstance(p[0], int) else list(p)
        if not prompts or any(not x for x in prompts):
            raise APIError(400, "prompt must be a non-empty string, list of strings, list of "
                                "token ids or list of those", param="prompt")
        return [x if isinstance(x, str) else _ids_text(tokenizer, x) for x in prompts]


def _ids_text(tokenizer, ids: list[int]) -> str:
    from s1.generation.engines.served import vocab_size

    size = vocab_size(tokenizer)
    bad = next((t for t in ids if t < 0 or size is not None and t >= size), None)
    if bad is not None:
        raise APIError(400, f"token id {bad} is out of the vocabulary (0..{size - 1 if size else '?'})",
                       param="prompt")
    text = tokenizer.decode(ids)
    if tokenizer.encode(text) != list(ids):
        raise APIError(400, "these token ids are not this model's tokenization of any text (the "
                            "engines take text prompts); send the text", param="prompt")
    return text


#: the names a validation error's location may show (pydantic adds its union members' and
#: validators' names, which mean nothing to a client)
def _field_names() -> frozenset[str]:
    models = (ChatRequest, CompletionRequest, Message, TextPart, FormatSpec, StreamOptions)
    return frozenset(name for m in models for name in m.model_fields)


def where(loc) -> str | None:
    """A validation error's field path for `param`: `messages[0].role`, `max_thinking_tokens`."""
    names = _field_names()
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]" if path else ""   # (a byte offset of broken JSON has no path)
        elif part in names:
            path += f".{part}" if path else part
    return path or None


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
