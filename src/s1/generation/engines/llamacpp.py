"""In-process llama.cpp engine (llama-cpp-python): the fastest CPU path for GGUF models.

Up to `batch_size` sequences are decoded together, one llama.cpp sequence (and KV stream) each
(llamacpp_batch.py); greedy requests with the same prompt share one sequence until their Forcers
part. Tokens the Forcer emits are evaluated in one chunk before the next proposal; ids it bans are
masked before the greedy or sampled choice; tokens it takes back are removed from the KV cache.
With flash attention on, the logits do not depend on batch shapes, so the tokens are the same at
any batch size and the same as an OpenAI-compatible llama.cpp server's with the settings of
`load_llama`.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from s1.errors import UserError
from s1.generation.budget import Sampling
from s1.generation.engines.base import Engine, Request, resolve_context_length
from s1.generation.engines.llamacpp_batch import BatchLoop, Pool
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


#: llama.cpp's LLAMA_MAX_SEQ: the sequence ids one context can hold.
MAX_SEQUENCES = 256
#: The most memory the batched engine's KV streams take (F16 keys and values). Each stream holds
#: the longest sequence a call may grow to (the whole context under `--max-answer auto`): where
#: `batch_size` streams do not fit, fewer sequences are decoded together.
KV_BUDGET_BYTES = 4 << 30


def load_llama(gguf_path: str, n_ctx: int = 8192, n_threads: int | None = None, seed: int = 0):
    """A llama_cpp.Llama with the settings the project's llama.cpp server also uses (serve it
    with `--flash_attn true`). Flash attention makes llama.cpp's floats independent of how the
    tokens are split into batches: a prompt fed at once or token by token, a sequence decoded
    alone or beside others (llamacpp_batch.py), give the same logits."""
    return _llama(gguf_path, n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(), seed=seed,
                  flash_attn=True)


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

    def chat(self, messages: list[dict], **template_kwargs) -> str:
        return self._chat(messages=messages, **template_kwargs).prompt


class LlamaCppEngine(Engine):
    """`batch_size` sequences are decoded together (llamacpp_batch.py); `branching`: greedy
    requests with the same prompt share their common tokens (a sweep of caps decodes once)."""

    name = "llama.cpp"

    def __init__(self, gguf_path: str, fmt: ThinkingFormat, n_ctx: int | None = None,
                 n_threads: int | None = None, batch_size: int = 16, branching: bool = True):
        """`n_ctx`: the context of each sequence (None: min(the GGUF's trained context, 32768))."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1 ({batch_size})")
        self.gguf_path = str(gguf_path)
        self.fmt = fmt
        if not os.path.isfile(self.gguf_path):
            raise UserError(f"GGUF file not found: {self.gguf_path}")
        n_ctx = resolve_context_length(n_ctx, trained_context(self.gguf_path))
        # `llm` is the single-sequence context llama-cpp-python builds (the tokenizer, the
        # metadata, and what a llama.cpp server of this GGUF runs); generation runs on `pool`.
        self.llm = load_llama(self.gguf_path, n_ctx=n_ctx, n_threads=n_threads)
        self.tokenizer = LlamaTokenizer(self.llm)
        self.context_length = self.llm.n_ctx()
        self._n_vocab = self.llm.n_vocab()
        self.batch_size = min(batch_size, MAX_SEQUENCES - 1)
        self.branching = branching
        self.pool: Pool | None = None
        self.kept: list = []          # finished sequences kept for their prefixes, oldest first
        self.keep = 1                 # how many to keep (the pool is sized for them)
        self.tokens_fed = 0           # tokens the model has evaluated (what branching saves)
        self.parked_forks = 0         # forks that waited for a free stream

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
                  on_step: Callable[[int, Forcer], None] | None = None,
                  incoming: Callable[[int], Sequence[Request]] | None = None) -> list[Trace]:
        """`incoming(free)` (a server) is asked before each step for up to `free` more requests
        to join the running batch; they are numbered after `requests` and reach `on_trace` only."""
        return BatchLoop(self, requests, on_trace, on_step, incoming).run()

    # --- what the batch loop asks ------------------------------------------------------------

    def reach(self, n_prompt: int, forcer: Forcer) -> int:
        """The most positions a sequence can fill: prompt, thinking cap, the forced delimiter
        and answer suffix (twice: a cut thinking, then an empty answer), the answer budget."""
        if forcer.max_thinking_tokens is None:
            return self.context_length
        ids, budget = forcer.ids, forcer.budget
        # a continued thinking's prefix is part of `n_prompt` and of the thinking cap
        most = (n_prompt - forcer.prefix_tokens + forcer.max_thinking_tokens + len(ids.newline) + len(ids.end)
                + 2 * len(ids.suffix) + budget.max_answer_tokens + 2)
        return min(most, self.context_length)

    def ensure_pool(self, cells: int, spare: int = 0, keep: int = 1) -> None:
        """Streams of at least `cells` cells for `batch_size` sequences, `spare` forks and `keep`
        finished sequences kept for their prefixes (1: the last, as a server slot; a search keeps
        a whole step's branches), as many as `KV_BUDGET_BYTES` holds (called only while no
        sequence is live)."""
        cells = -(-min(cells, self.context_length) // 256) * 256      # whole pages
        fit = max(2, KV_BUDGET_BYTES // (cells * self.kv_bytes_per_token))
        n_seq = min(self.batch_size + spare + keep, fit, MAX_SEQUENCES)
        if self.pool is None or self.pool.cells < cells or self.pool.n_seq < n_seq:
            if self.pool is not None:
                self.pool.close()
            self.kept = []
            self.pool = Pool(self.llm, cells, n_seq)
        self.pool.limit = n_seq
        self.keep = keep

    @property
    def kv_bytes_per_token(self) -> int:
        """F16 keys and values of one token in every layer (from the GGUF's metadata)."""
        meta = self.llm.metadata
        arch = meta.get("general.architecture", "llama")
        get = lambda key, default=None: int(meta.get(f"{arch}.{key}", default))
        layers, width = get("block_count"), get("embedding_length")
        heads = get("attention.head_count")
        kv_heads = get("attention.head_count_kv", heads)
        k = get("attention.key_length", width // heads)
        v = get("attention.value_length", width // heads)
        return 2 * layers * kv_heads * (k + v)

    def forget_cache(self, all: bool = True) -> None:
        """Drop the kept sequences (all, or the oldest one): what they share is evaluated again."""
        for branch in self.kept if all else self.kept[:1]:
            self.pool.drop(branch.seq)
        self.kept = [] if all else self.kept[1:]

    def propose(self, logits: np.ndarray, sampling: Sampling, rng: np.random.Generator | None,
                forcer: Forcer | None = None) -> int:
        """The next token from one row of llama.cpp's logits: presence penalty (the whole output
        so far, as vLLM), the Forcer's banned ids masked, then greedy or temperature/top-k/
        top-p/min-p with the row's own generator."""
        banned = forcer.banned() if forcer is not None else frozenset()
        if banned or (sampling.presence_penalty and forcer is not None):
            logits = logits.astype(np.float64)     # a copy: the view is llama.cpp's own buffer
        if sampling.presence_penalty and forcer is not None:
            seen = sorted({*forcer.thinking_ids, *forcer.delimiter_ids, *forcer.answer_ids})
            logits[seen] -= sampling.presence_penalty
        if banned:
            logits[[i for i in banned if i < len(logits)]] = -np.inf
        if sampling.greedy or rng is None:
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

    def _logits(self) -> np.ndarray:
        """The last logits of the single-sequence context `llm` (after `llm.eval`)."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool, self.kept = None, []
        self.llm.close()
