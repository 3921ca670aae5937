"""In-process llama.cpp engine (llama-cpp-python): the fastest CPU path for GGUF models.

One sequence at a time. The KV cache is kept across forced tokens: tokens the Forcer emits are
evaluated in one batch before the next proposal, exactly the batches an OpenAI-compatible
llama.cpp server evaluates when the remote engine appends the same forced tokens to a cached
prompt — so under greedy decoding both give the same tokens. Consecutive prompts reuse their
common prefix (the system prompt) the way the server's cache does. Ids the Forcer bans are masked
before the greedy or sampled choice; tokens it takes back are removed from the KV cache.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Sequence

import numpy as np

from s1.errors import UserError
from s1.generation.budget import Sampling, seed_bits
from s1.generation.engines.base import Engine, Request, resolve_context_length
from s1.generation.forcer import Forcer
from s1.generation.formats import ThinkingFormat
from s1.generation.trace import Trace


_QUIET = None


def _silence_llama_logs() -> None:
    """llama.cpp prints context warnings to stderr even with verbose=False; our errors are one line."""
    global _QUIET
    if _QUIET is None:
        import ctypes

        import llama_cpp

        _QUIET = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p(0))


def _llama(gguf_path: str, **kwargs):
    try:
        from llama_cpp import Llama
    except ImportError:
        raise UserError("llama.cpp support is not installed: pip install 'llama-cpp-python[server]'"
                        " (scripts/setup.sh does it)") from None
    if not os.path.isfile(gguf_path):
        raise UserError(f"GGUF file not found: {gguf_path}")
    _silence_llama_logs()
    return Llama(model_path=gguf_path, verbose=False, **kwargs)


def load_llama(gguf_path: str, n_ctx: int = 8192, n_threads: int | None = None, seed: int = 0):
    """A llama_cpp.Llama with the settings the project's llama.cpp server also uses."""
    return _llama(gguf_path, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), seed=seed)


def trained_context(gguf_path: str) -> int | None:
    """The context length a GGUF was trained with (its metadata), read without the weights."""
    vocab = load_vocab(gguf_path)
    try:
        meta = vocab.metadata
        ctx = meta.get(f"{meta.get('general.architecture', 'llama')}.context_length")
        return int(ctx) if ctx else None
    finally:
        vocab.close()


def reuse_prefix(llm, ids: list[int]) -> list[int]:
    """Keep the cached prefix `ids` shares with the last sequence a `Llama` evaluated (as a
    server's prefix cache does); return what is left to evaluate, at least one token so that
    fresh logits come out."""
    common = 0
    for a, b in zip(llm.input_ids[: llm.n_tokens], ids):
        if a != b:
            break
        common += 1
    common = min(common, len(ids) - 1)
    if common > 0 and llm._ctx.kv_cache_seq_rm(-1, common, -1):
        llm.n_tokens = common
    else:
        llm.reset()
        common = 0
    return ids[common:]


def load_vocab(gguf_path: str):
    """Only the tokenizer of a GGUF (no weights): what a remote llama.cpp server of it uses."""
    return _llama(gguf_path, vocab_only=True)


class LlamaTokenizer:
    """llama.cpp's own tokenizer and the GGUF's chat template."""

    def __init__(self, llm):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llm
        meta = llm.metadata
        # Every end-of-generation token: llama.cpp (and so its server) stops on all of them.
        vocab = llm._model.vocab
        self.eos_ids = sorted({llm.token_eos(), *(i for i in range(llm.n_vocab())
                                                  if llama_cpp.llama_vocab_is_eog(vocab, i))} - {-1})
        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        self.special_ids = frozenset(i for i in range(llm.n_vocab())
                                     if llama_cpp.llama_vocab_get_attr(vocab, i) & control)
        arch = meta.get("general.architecture", "")
        ctx = meta.get(f"{arch}.context_length")
        self.context_length = int(ctx) if ctx else None   # trained context, a hint for servers
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise UserError("this GGUF has no chat template; give --model a GGUF with one")
        tok = lambda key: (llm.detokenize([int(meta[key])], special=True).decode("utf-8", "replace")
                           if key in meta else "")
        self._chat = Jinja2ChatFormatter(template, tok("tokenizer.ggml.eos_token_id"),
                                         tok("tokenizer.ggml.bos_token_id"))

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids), special=True).decode("utf-8", "replace")

    def chat(self, messages: list[dict]) -> str:
        return self._chat(messages=messages).prompt


class LlamaCppEngine(Engine):
    name = "llama.cpp"

    def __init__(self, gguf_path: str, fmt: ThinkingFormat, n_ctx: int | None = None,
                 n_threads: int | None = None):
        """`n_ctx`: the context (None: min(the GGUF's trained context, 32768))."""
        self.gguf_path = str(gguf_path)
        self.fmt = fmt
        if not os.path.isfile(self.gguf_path):
            raise UserError(f"GGUF file not found: {self.gguf_path}")
        n_ctx = resolve_context_length(n_ctx, trained_context(self.gguf_path))
        self.llm = load_llama(self.gguf_path, n_ctx=n_ctx, n_threads=n_threads)
        self.tokenizer = LlamaTokenizer(self.llm)
        self.context_length = self.llm.n_ctx()
        self._n_vocab = self.llm.n_vocab()

    def describe(self) -> dict:
        import llama_cpp

        meta = self.llm.metadata
        arch = meta.get("general.architecture", "llama")
        layers, width = meta.get(f"{arch}.block_count"), meta.get(f"{arch}.embedding_length")
        return {"n_params": int(llama_cpp.llama_model_n_params(self.llm.model)),
                "n_layers": int(layers) if layers else None,
                "d_model": int(width) if width else None,
                "context_length": self.context_length}

    def _generate(self, requests: list[Request],
                  on_trace: Callable[[int, Trace], None] | None,
                  on_step: Callable[[int, Forcer], None] | None = None) -> list[Trace]:
        traces = []
        for i, request in enumerate(requests):
            tr = self._one(request, (lambda f, i=i: on_step(i, f)) if on_step else None)
            traces.append(tr)
            if on_trace:
                on_trace(i, tr)
        return traces

    def _one(self, request: Request, on_step: Callable[[Forcer], None] | None = None) -> Trace:
        started = time.perf_counter()
        prompt, ids, forcer = self.prepare(request)
        rng = np.random.default_rng(seed_bits(request.seed))   # numpy takes no negative seed
        pending = reuse_prefix(self.llm, ids)
        length = len(ids)
        while not forcer.done:
            if length >= self.context_length:
                forcer.stop("length")
                break
            self.llm.eval(pending)
            proposal = (self._propose(request.budget.sampling, rng, forcer)
                        if not forcer.due() else None)
            token = forcer.step(proposal)
            back = forcer.take_rewind()
            if back:   # a multi-token delimiter taken back: drop it from the cache
                self.llm._ctx.kv_cache_seq_rm(-1, self.llm.n_tokens - back, -1)
                self.llm.n_tokens -= back
                length -= back
            pending = [] if token is None else [token]
            while forcer.due() and not forcer.done:   # forced tokens go in as one batch
                pending.append(forcer.step(None))
            pending = [t for t in pending if t is not None]
            length += len(pending)
            if on_step:
                on_step(forcer)
            if forcer.done or not pending:
                break
        return self.trace(request, prompt, ids, forcer, started)

    def _logits(self) -> np.ndarray:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def _propose(self, sampling: Sampling, rng: np.random.Generator,
                 forcer: Forcer | None = None) -> int:
        """The next token from llama.cpp's logits: presence penalty (the whole output so far,
        as vLLM), the Forcer's banned ids masked, then greedy or temperature/top-k/top-p/min-p."""
        logits = self._logits()
        banned = forcer.banned() if forcer is not None else frozenset()
        if banned or (sampling.presence_penalty and forcer is not None):
            logits = logits.astype(np.float64)     # a copy: the view is llama.cpp's own buffer
        if sampling.presence_penalty and forcer is not None:
            seen = sorted({*forcer.thinking_ids, *forcer.delimiter_ids, *forcer.answer_ids})
            logits[seen] -= sampling.presence_penalty
        if banned:
            logits[[i for i in banned if i < len(logits)]] = -np.inf
        if sampling.greedy:
            return int(logits.argmax())
        z = logits.astype(np.float64) / sampling.temperature
        if sampling.top_k and sampling.top_k < len(z):
            z[z < np.partition(z, -sampling.top_k)[-sampling.top_k]] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        if sampling.top_p < 1.0:
            order = np.argsort(-p)
            sp = p[order]
            sp[np.cumsum(sp) - sp >= sampling.top_p] = 0
            p = np.zeros_like(p)
            p[order] = sp
            p /= p.sum()
        if sampling.min_p:
            p[p < sampling.min_p * p.max()] = 0
            p /= p.sum()
        return int(rng.choice(len(p), p=p))

    def close(self) -> None:
        self.llm.close()
