"""What every engine shares: requests, tokenizers, prompt building, and turning a Forcer into a Trace.

An engine only has to produce proposals (the model's next token) and feed back what the Forcer
emits; budget semantics live in the Forcer alone.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Callable, Protocol, Sequence

from s1.errors import UserError
from s1.generation.budget import Budget, seed_bits
from s1.generation.forcer import FormatIds, Forcer
from s1.generation.formats import ThinkingFormat
from s1.generation.trace import Trace


@dataclass(frozen=True)
class Request:
    """One generation: the user turn, an optional system prompt, its own Budget and seed.

    Engines see requests only after `resolve`: every one carries its Budget and seed, so no
    engine decides again which budget or seed wins.
    """

    prompt: str                    # the user-turn text (question plus any instruction)
    system: str | None = None      # None = the model's default system prompt (as the paper)
    seed: int | None = None        # None = the budget's sampling seed
    id: str = ""
    budget: Budget | None = None   # None = the default the call gives (a sweep mixes budgets in one batch)
    prompt_text: str | None = None  # the whole prompt, already templated (a server's chat or raw
                                    # completion prompt); None = template `system` + `prompt`
    fmt: ThinkingFormat | None = None  # this request's thinking format; None = the engine's
    thinking: str = ""             # thinking so far, continued (a search's branch); counts
                                   # toward the thinking cap
    step_end: str | None = None    # pause at the end of the next step (e.g. "\n\n"); None = do not

    def resolve(self, default: Budget | None = None) -> "Request":
        """This request with its Budget and seed settled: its own, else the call's default."""
        budget = self.budget or default or Budget()
        seed = budget.sampling.seed if self.seed is None else self.seed
        seed_bits(seed)   # an unusable seed is the caller's error, before anything runs
        return replace(self, budget=budget, seed=seed)


class Tokenizer(Protocol):
    eos_ids: list[int]
    special_ids: frozenset[int]      # control tokens (a delimiter starting with one ends on it)

    def encode(self, text: str) -> list[int]:
        """Token ids of text: special tokens in the text parsed, no BOS added."""

    def decode(self, ids: Sequence[int]) -> str: ...

    def chat(self, messages: list[dict], **template_kwargs) -> str:
        """The chat-templated prompt text, generation prompt appended; `template_kwargs` are
        the template's own variables (`enable_thinking`, as vLLM's chat_template_kwargs)."""


class HFTokenizer:
    """A transformers tokenizer (also how a GGUF's tokenizer and template load)."""

    def __init__(self, tok):
        self.tok = tok
        eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        for name in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            i = tok.convert_tokens_to_ids(name)
            if isinstance(i, int) and i != tok.unk_token_id and name in tok.get_vocab():
                eos.add(i)
        self.eos_ids = sorted(eos)
        self.special_ids = frozenset(tok.all_special_ids) | frozenset(
            i for i, t in getattr(tok, "added_tokens_decoder", {}).items() if t.special)

    def add_eos(self, ids) -> None:
        """Also stop on these ids (a model's generation config lists its own end tokens)."""
        more = [ids] if isinstance(ids, int) else list(ids or ())
        self.eos_ids = sorted({*self.eos_ids, *(int(i) for i in more if i is not None and i >= 0)})

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def chat(self, messages: list[dict], **template_kwargs) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                            **template_kwargs)


#: The context `auto` fills when the user names none: the s1 harness's max_gen_toks.
DEFAULT_CONTEXT = 32768


def resolve_context_length(given: int | None, trained: int | None) -> int:
    """The context an engine runs with: the user's, else min(the model's trained context, 32768).
    More than the model was trained on is refused (as vLLM refuses a longer max_model_len)."""
    if given is not None:
        if given < 1:
            raise UserError(f"context length must be a positive number of tokens ({given})")
        if trained and given > trained:
            raise UserError(f"context length {given} exceeds the model's trained context ({trained})")
        return given
    return min(trained, DEFAULT_CONTEXT) if trained else DEFAULT_CONTEXT


def messages_for(request: Request) -> list[dict]:
    msgs = [{"role": "system", "content": request.system}] if request.system is not None else []
    return msgs + [{"role": "user", "content": request.prompt}]


def build_prompt(tokenizer: Tokenizer, request: Request, fmt: ThinkingFormat) -> str:
    """Chat template + the thinking start, as the s1 harness prefills it.

    Templates that already open the thinking (R1 distills end with "<think>\\n") are not given
    a second start.
    """
    text = request.prompt_text if request.prompt_text is not None else tokenizer.chat(messages_for(request))
    if text.rstrip().endswith(fmt.start.rstrip()):
        return text
    return text + fmt.start


class Engine(ABC):
    """Drives Forcers with a model. Subclasses set `name`, `fmt`, `tokenizer`, `context_length`."""

    name: str
    fmt: ThinkingFormat
    tokenizer: Tokenizer
    context_length: int

    def format_ids(self, budget: Budget, fmt: ThinkingFormat | None = None) -> FormatIds:
        fmt = fmt or self.fmt
        key = (fmt, tuple(budget.ignore_strings))
        cache = self.__dict__.setdefault("_format_ids", {})
        if key not in cache:
            cache[key] = FormatIds.build(fmt, self.tokenizer.encode, self.tokenizer.decode,
                                         self.tokenizer.eos_ids, budget.ignore_strings,
                                         getattr(self.tokenizer, "special_ids", ()))
        return cache[key]

    def prepare(self, request: Request) -> tuple[str, list[int], Forcer]:
        """Prompt text, the ids to feed (the prompt, then any thinking the request continues)
        and a fresh Forcer with this sequence's thinking cap (`request` resolved)."""
        budget = request.budget
        fmt = request.fmt or self.fmt
        prompt = build_prompt(self.tokenizer, request, fmt)
        ids = self.tokenizer.encode(prompt)
        fids = self.format_ids(budget, fmt)
        forced = len(fids.newline) + len(fids.end) + len(fids.suffix)
        max_thinking_tokens = budget.resolve_max_thinking(len(ids), self.context_length, forced)
        if request.thinking and not fmt.thinks:
            raise UserError("a request that continues a thinking needs a thinking format")
        # The prompt's ids stay those of a fresh request (its cache is shared); the thinking is
        # tokenized on its own, so a branch's prefix is the same ids in every request.
        prefix = self.tokenizer.encode(request.thinking) if request.thinking else []
        if len(ids) + len(prefix) >= self.context_length:
            raise UserError(f"the prompt and the thinking so far ({len(ids) + len(prefix)} tokens) "
                            f"fill the {self.context_length}-token context")
        return prompt, ids + prefix, Forcer(budget, fids, max_thinking_tokens, prefix,
                                            request.step_end)

    def prepare_or_fail(self, request: Request):
        """`prepare`, or the failed Trace of a request that cannot start (a prompt over the
        context): an error on that sequence, the others go on."""
        started = time.perf_counter()
        try:
            return self.prepare(request), None
        except UserError as err:
            return None, self.failed_trace(request, str(err), started)

    def failed_trace(self, request: Request, error: str, started: float) -> Trace:
        return Trace(id=request.id, prompt=request.prompt_text or request.prompt, prompt_tokens=0,
                     thinking="", thinking_ids=[], answer="", answer_ids=[], end="",
                     thinking_finish="error", finish_reason="error", error=error,
                     engine=self.name, seed=request.seed, wall_s=time.perf_counter() - started)

    def trace(self, request: Request, prompt: str, prompt_ids: list[int], forcer: Forcer,
              started: float) -> Trace:
        dec = self.tokenizer.decode
        return Trace(
            id=request.id, prompt=prompt, prompt_tokens=len(prompt_ids),
            thinking=dec(forcer.thinking_ids), thinking_ids=list(forcer.thinking_ids),
            answer=dec(forcer.answer_ids), answer_ids=list(forcer.answer_ids),
            end=dec(forcer.delimiter_ids), events=list(forcer.events),
            thinking_finish=forcer.thinking_finish or "context",
            finish_reason=forcer.finish_reason, wall_s=time.perf_counter() - started,
            engine=self.name, seed=request.seed,
            max_thinking_tokens=forcer.max_thinking_tokens, context_length=self.context_length,
            meta={"generated_tokens": len(forcer.thinking_ids) - forcer.prefix_tokens
                  + len(forcer.delimiter_ids) + len(forcer.answer_ids), **_wait_chars(dec, forcer),
                  **({"prefix_tokens": forcer.prefix_tokens, "new_thinking": forcer.new_thinking()}
                     if forcer.prefix_tokens or forcer.step_end else {})})

    def generate(self, requests: Sequence[Request], budget: Budget | None = None,
                 on_trace: Callable[[int, Trace], None] | None = None, **hooks) -> list[Trace]:
        """Traces in request order; `on_trace(index, trace)` fires as each one finishes.
        `budget` is the default of the requests that carry none.

        Engines may also take `on_step(index, forcer)`, called in the generating thread after
        each step of a sequence (streaming reads the Forcer; calling `forcer.stop()` there
        cancels the sequence, which then leaves the batch at once); the transformers engine
        also takes `incoming(free)`, asked before each step for requests that join the batch.
        """
        return self._generate([r.resolve(budget) for r in requests], on_trace, **hooks)

    @abstractmethod
    def _generate(self, requests: list[Request],
                  on_trace: Callable[[int, Trace], None] | None, **hooks) -> list[Trace]:
        """`generate` for resolved requests: each carries its Budget and seed."""

    @abstractmethod
    def describe(self) -> dict:
        """The model's shape for compute accounting: {"n_params", "n_layers", "d_model",
        "context_length"}, None where the engine cannot tell."""

    def close(self) -> None:
        """Free what the engine holds (servers, model memory)."""


def _wait_chars(decode, forcer: Forcer) -> dict:
    """Where each forced Wait starts in the thinking text, in characters: events count tokens,
    and the report marks the Waits in the text (a tokenizer is not at hand there)."""
    starts = [len(decode(forcer.thinking_ids[:e.at])) for e in forcer.events if e.kind == "wait"]
    return {"wait_chars": starts} if starts else {}
