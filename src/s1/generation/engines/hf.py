"""In-process transformers engine: our own batched decode loop with a KV cache.

Rows are left-padded and decoded together, one token per row per step. A forced token ("Wait",
the end delimiter) is just that row's next input token, so forcing never recomputes the prefix.
Finished rows leave the batch and waiting requests are prefilled and merged in (continuous
batching), so a sweep keeps the batch full.

Ids the Forcer bans are masked in the logits before greedy or sampled choice, both made for the
whole batch on the model's device (`sampler.sample_rows`). When the Forcer
takes back a row's last tokens (a multi-token delimiter it ignores), their cache columns are
masked out for that row and its positions continue from the shortened length: the row then
attends exactly as if those tokens had never been fed.

Shared prefixes are not recomputed (a search continues many branches from one thinking): requests
with the same ids are prefilled once and their cache rows copied, and a finished sequence's keys
and values stay in a small prefix cache (`PrefixCache`, least recently used out; a search's
branches only), so a request that continues it (a branch's next step) prefills only what is new. `tokens_fed` counts the
tokens the model evaluated.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from s1.generation.budget import seed_bits
from s1.generation.engines.base import Engine, HFTokenizer, Request, resolve_context_length
from s1.generation.engines.sampler import sample_rows
from s1.generation.forcer import Forcer
from s1.generation.formats import ThinkingFormat
from s1.generation.models import ModelRef, load_causal_lm, load_tokenizer
from s1.generation.trace import Trace


@dataclass
class _Row:
    index: int
    request: Request
    prompt: str
    prompt_ids: list[int]
    forcer: Forcer
    started: float
    gen: torch.Generator | None
    length: int = 0                      # tokens of this row in the cache (prompt + fed)
    next_token: int = -1                 # emitted but not yet fed
    out: list[int] = field(default_factory=list)
    fed: list[int] = field(default_factory=list)   # the ids in the cache, in order


class PrefixCache:
    """Keys and values of finished sequences, by their ids, up to `max_tokens` tokens in all
    (least recently used out). `lookup` finds the longest prefix a new sequence shares."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.entries: list[tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]]] = []

    def lookup(self, ids: Sequence[int]) -> tuple[int, list | None]:
        """(n, per-layer (keys, values) of the first n positions), n ≤ len(ids) − 1 so the last
        token is fed for fresh logits; (0, None) when nothing is shared."""
        best, hit = 0, None
        for entry in self.entries:
            n = _common(entry[0], ids, len(ids) - 1)
            if n > best:
                best, hit = n, entry
        if hit is None:
            return 0, None
        self.entries.remove(hit)
        self.entries.append(hit)             # most recently used last
        return best, [(k[:, :best], v[:, :best]) for k, v in hit[1]]

    def store(self, ids: Sequence[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        ids = tuple(ids)
        if not self.max_tokens or len(ids) > self.max_tokens:
            return
        # an entry this one extends says nothing more
        self.entries = [e for e in self.entries if _common(e[0], ids, len(e[0])) < len(e[0])]
        self.entries.append((ids, kv))
        while sum(len(e[0]) for e in self.entries) > self.max_tokens:
            self.entries.pop(0)


def _common(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n, limit = 0, min(len(a), len(b), limit)
    while n < limit and a[n] == b[n]:
        n += 1
    return n


class HFEngine(Engine):
    name = "transformers"

    def __init__(self, ref: ModelRef, fmt: ThinkingFormat, device: str = "cpu",
                 dtype: torch.dtype | None = None, batch_size: int = 16, model=None, tokenizer=None,
                 context_length: int | None = None, prefix_cache_tokens: int = 16384):
        self.ref = ref
        self.fmt = fmt
        self.device = device
        self.batch_size = batch_size
        self.model = model if model is not None else load_causal_lm(ref, dtype=dtype, device=device)
        self.tokenizer = HFTokenizer(tokenizer if tokenizer is not None else load_tokenizer(ref))
        gen_cfg = getattr(self.model, "generation_config", None)
        self.tokenizer.add_eos(getattr(gen_cfg, "eos_token_id", None))
        cfg = self.model.config
        trained = int(getattr(cfg, "max_position_embeddings", 0) or 0) or None
        self.context_length = resolve_context_length(context_length, trained)
        self.pad_id = self.tokenizer.tok.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_ids[0]
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self.tokens_fed = 0           # tokens the model has evaluated (what prefix sharing saves)

    # --- the loop ------------------------------------------------------------------------------

    def describe(self) -> dict:
        cfg = self.model.config
        return {"n_params": int(self.model.num_parameters()),
                "n_layers": getattr(cfg, "num_hidden_layers", None),
                "d_model": getattr(cfg, "hidden_size", None),
                "context_length": self.context_length}

    @torch.inference_mode()
    def _generate(self, requests: list[Request],
                  on_trace: Callable[[int, Trace], None] | None,
                  on_step: Callable[[int, Forcer], None] | None = None,
                  incoming: Callable[[int], Sequence[Request]] | None = None) -> list[Trace]:
        """`incoming(free)` (a server) is asked before each step for up to `free` more requests
        to join the running batch. They are numbered after `requests` and reach `on_trace` only
        (the returned list holds the traces of `requests`)."""
        waiting = deque(enumerate(requests))
        traces: list[Trace | None] = [None] * len(requests)
        joined = len(requests)
        rows: list[_Row] = []
        cache = mask = logits = None
        refill_at = max(1, self.batch_size // 4)   # prefill in groups, not one row at a time

        while True:
            free = self.batch_size - len(rows)
            if incoming and free > len(waiting):
                for r in incoming(free - len(waiting)):
                    waiting.append((joined, r.resolve()))
                    joined += 1
            if not (waiting or rows):
                break
            if waiting and (free >= refill_at or not rows):
                new = []
                for i, r in (waiting.popleft() for _ in range(min(free, len(waiting)))):
                    row = self._new_row(i, r)
                    if isinstance(row, Trace):       # could not start: an error on that request
                        if i < len(traces):
                            traces[i] = row
                        if on_trace:
                            on_trace(i, row)
                    else:
                        new.append(row)
                if not new:
                    continue
                n_cache, n_mask, n_logits = self._prefill(new)
                rows, cache, mask, logits = self._merge(rows, cache, mask, logits, new, n_cache,
                                                        n_mask, n_logits)
            proposals = self._sample(logits, rows)
            keep = []
            for j, row in enumerate(rows):
                token = row.forcer.step(proposals[j])
                back = row.forcer.take_rewind()
                if back:
                    self._rewind(mask, j, row, back)
                if token is not None:
                    row.out.append(token)
                    row.next_token = token
                if on_step:
                    on_step(row.index, row.forcer)
                if row.forcer.done or row.length + 1 >= self.context_length:
                    if not row.forcer.done:
                        row.forcer.stop("length")
                    self._keep_prefix(cache, mask, j, row)
                    tr = self.trace(row.request, row.prompt, row.prompt_ids, row.forcer,
                                    row.started)
                    if row.index < len(traces):
                        traces[row.index] = tr
                    if on_trace:
                        on_trace(row.index, tr)
                else:
                    keep.append(j)
            if len(keep) < len(rows):
                rows, cache, mask = self._select(rows, cache, mask, keep)
            if not rows:
                cache = mask = logits = None
                continue
            logits, cache, mask = self._decode(rows, cache, mask)
        return traces  # type: ignore[return-value]

    def _new_row(self, index: int, request: Request) -> _Row | Trace:
        prepared, failed = self.prepare_or_fail(request)
        if failed is not None:
            return failed
        prompt, ids, forcer = prepared
        gen = None
        if not request.budget.greedy:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed_bits(request.seed))
        return _Row(index, request, prompt, ids, forcer, time.perf_counter(), gen, len(ids),
                    fed=list(ids))

    def _prefill(self, rows: list[_Row]):
        """The new rows' caches, mask and last logits. Rows with the same ids are computed once;
        each distinct sequence starts from the longest prefix the prefix cache holds for it.
        Layout per sequence: its cached prefix right-aligned in the first `c` columns, its new
        tokens right-aligned in the last `s` (the gap between is masked; positions are given)."""
        distinct: dict[tuple[int, ...], int] = {}
        which = [distinct.setdefault(tuple(r.prompt_ids), len(distinct)) for r in rows]
        seqs = list(distinct)
        hits = [self.prefix_cache.lookup(ids) for ids in seqs]
        c = max(n for n, _ in hits)
        s = max(len(ids) - n for ids, (n, _) in zip(seqs, hits))
        ids = torch.full((len(seqs), s), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), c + s), dtype=torch.long)
        pos = torch.zeros((len(seqs), s), dtype=torch.long)
        for i, (seq, (n, _)) in enumerate(zip(seqs, hits)):
            new = len(seq) - n
            ids[i, s - new:] = torch.tensor(seq[n:])
            pos[i, s - new:] = torch.arange(n, len(seq))
            mask[i, c - n:c] = 1
            mask[i, c + s - new:] = 1
            self.tokens_fed += new
        past = {"past_key_values": self._past(hits, c)} if c else {}
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=pos.to(self.device), use_cache=True, logits_to_keep=1,
                         **past)
        cache, logits = out.past_key_values, out.logits[:, -1, :].float()
        if len(seqs) < len(rows):            # copies for the rows that share a sequence
            idx = torch.tensor(which, dtype=torch.long)
            mask, logits = mask[idx], logits[idx.to(logits.device)]
            for layer in self._layers(cache):
                layer.keys = layer.keys.index_select(0, idx.to(layer.keys.device))
                layer.values = layer.values.index_select(0, idx.to(layer.values.device))
        return cache, mask, logits

    def _past(self, hits, width: int):
        """A cache of `width` columns holding each sequence's cached prefix, right-aligned."""
        from transformers import DynamicCache

        like = next(kv for n, kv in hits if n)
        cache = DynamicCache()
        for layer, (k0, v0) in enumerate(like):
            keys = k0.new_zeros((len(hits), k0.shape[0], width, k0.shape[2]))
            values = v0.new_zeros((len(hits), v0.shape[0], width, v0.shape[2]))
            for i, (n, kv) in enumerate(hits):
                if n:
                    keys[i, :, width - n:] = kv[layer][0]
                    values[i, :, width - n:] = kv[layer][1]
            cache.update(keys, values, layer)
        return cache

    def _keep_prefix(self, cache, mask: torch.Tensor, j: int, row: _Row) -> None:
        """Keep a finishing search branch's keys and values for the requests that continue it
        (only a search's: a plain sweep would fill the cache, on a GPU too, for nothing)."""
        searching = row.request.step_end or row.request.thinking
        if not self.prefix_cache.max_tokens or cache is None or not searching:
            return
        cols = mask[j].nonzero().squeeze(1).to(self.device)
        self.prefix_cache.store(row.fed, [(layer.keys[j].index_select(1, cols),
                                           layer.values[j].index_select(1, cols))
                                          for layer in self._layers(cache)])

    def _decode(self, rows: list[_Row], cache, mask):
        ids = torch.tensor([[r.next_token] for r in rows], dtype=torch.long)
        pos = torch.tensor([[r.length] for r in rows], dtype=torch.long)
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        for r in rows:
            r.length += 1
            r.fed.append(r.next_token)
        self.tokens_fed += len(rows)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=pos.to(self.device), past_key_values=cache, use_cache=True)
        return out.logits[:, -1, :].float(), out.past_key_values, mask

    @staticmethod
    def _rewind(mask: torch.Tensor, j: int, row: _Row, n: int) -> None:
        """Forget the last n tokens row j fed: every step feeds one token per row, so they are
        the last n columns. Masked, they are never attended to again."""
        mask[j, mask.shape[1] - n:] = 0
        row.length -= n
        del row.fed[len(row.fed) - n:]

    # --- batch bookkeeping -------------------------------------------------------------------

    @staticmethod
    def _layers(cache):
        return cache.layers

    def _select(self, rows, cache, mask, keep):
        idx = torch.tensor(keep, dtype=torch.long)
        rows = [rows[j] for j in keep]
        if not rows:
            return rows, None, None
        mask = mask[idx]
        dev_idx = idx.to(self.device)
        for layer in self._layers(cache):
            layer.keys = layer.keys.index_select(0, dev_idx)
            layer.values = layer.values.index_select(0, dev_idx)
        # Columns every remaining row has as padding carry nothing: drop them.
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            mask = mask[:, first:]
            for layer in self._layers(cache):
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]
        return rows, cache, mask

    def _merge(self, rows, cache, mask, logits, new, n_cache, n_mask, n_logits):
        if not rows:
            return new, n_cache, n_mask, n_logits
        width = max(mask.shape[1], n_mask.shape[1])

        def left_pad(t: torch.Tensor, dim: int, to: int) -> torch.Tensor:
            short = to - t.shape[dim]
            if short == 0:
                return t
            shape = list(t.shape)
            shape[dim] = short
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        mask = torch.cat([left_pad(mask, 1, width), left_pad(n_mask, 1, width)], dim=0)
        for old, add in zip(self._layers(cache), self._layers(n_cache)):
            old.keys = torch.cat([left_pad(old.keys, 2, width), left_pad(add.keys, 2, width)], dim=0)
            old.values = torch.cat([left_pad(old.values, 2, width), left_pad(add.values, 2, width)], dim=0)
        return rows + new, cache, mask, torch.cat([logits, n_logits], dim=0)

    # --- sampling ------------------------------------------------------------------------------

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        """Banned ids masked; every row's choice made on the device in one batch: argmax for
        greedy rows, `sample_rows` for sampled ones (each with its own seeded uniform)."""
        self._penalize_presence(logits, rows)
        self._mask_banned(logits, rows)
        out = logits.argmax(dim=-1)
        drawn = [j for j, row in enumerate(rows)   # a forced row's proposal is thrown away
                 if not row.request.budget.greedy and not row.forcer.due()]
        if drawn:
            params = [rows[j].request.budget.sampling for j in drawn]
            dev = logits.device
            at = torch.tensor(drawn, device=dev)
            out[at] = sample_rows(
                logits[at], torch.tensor([s.temperature for s in params], device=dev),
                torch.tensor([s.top_p for s in params], device=dev),
                torch.tensor([s.top_k for s in params], device=dev),
                torch.cat([torch.rand(1, generator=rows[j].gen) for j in drawn]).to(dev),
                torch.tensor([s.min_p for s in params], device=dev))
        return out.tolist()

    @staticmethod
    def _penalize_presence(logits: torch.Tensor, rows: list[_Row]) -> None:
        """Presence penalty (vLLM / OpenAI semantics): subtracted once from the logit of every
        token the row has generated so far, thinking, delimiter and answer; greedy rows too."""
        for j, row in enumerate(rows):
            penalty = row.request.budget.sampling.presence_penalty
            if penalty and not row.forcer.due():   # a forced row's proposal is thrown away
                f = row.forcer
                seen = sorted({*f.thinking_ids, *f.delimiter_ids, *f.answer_ids})
                if seen:
                    logits[j, torch.tensor(seen, device=logits.device)] -= penalty

    @staticmethod
    def _mask_banned(logits: torch.Tensor, rows: list[_Row]) -> None:
        """−inf on the ids each row's Forcer bans at this step, in one indexed write."""
        at_rows, at_ids = [], []
        vocab = logits.shape[-1]
        for j, row in enumerate(rows):
            for i in row.forcer.banned():
                if i < vocab:
                    at_rows.append(j)
                    at_ids.append(i)
        if at_rows:
            logits[torch.tensor(at_rows, device=logits.device),
                   torch.tensor(at_ids, device=logits.device)] = float("-inf")
