"""Continuous batching for the llama.cpp engine: many sequences decoded by one `llama_decode`.

Each KV sequence (one llama.cpp sequence id) is a `Branch`: the tokens it has fed and the ones it
still has to feed. A branch carries one or more `Row`s, one per request, each driven by its own
Forcer. Every step feeds, in one batch, each branch's next tokens (a decoding branch its last
emitted token plus any forced tokens as one chunk; a new branch a chunk of its prompt), reads one
row of logits per branch that has fed all it had, and hands the proposal to each of its rows.

Branching greedy sweeps: greedy requests with the same prompt (a sweep of caps) start on one
branch, so the shared thinking is decoded once. As long as their Forcers emit the same tokens they
stay together; when they differ (one hits its cap, another appends "Wait") the branch forks: the
new branch gets a copy of the KV sequence (`llama_memory_seq_cp`) and each part feeds its own
tokens from there. A new prompt starts from the last finished sequence where it shares a prefix
with it (a server slot's prompt cache), or from a copy of a live branch that shares a long one.

Each sequence has a KV stream of its own (`kv_unified` off), as large as the longest sequence of
the call may grow (`reach`), and flash attention is on. Then a row's logits do not depend on the
other rows in the batch, nor on how its tokens were split into chunks: a sequence decoded in a
batch of 16, alone, or behind a shared prefix gives the same floats, bit for bit, as the
single-sequence context of `load_llama` (and so a llama.cpp server with the same settings). In a
unified cache every row would attend over all the rows' cells, masked: slower, and its sums
would depend on where the other rows' cells lie.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from s1.generation.budget import seed_bits
from s1.generation.engines.base import Request
from s1.generation.forcer import Forcer
from s1.generation.trace import Trace

#: A new prompt copies a live branch's stream when they share at least this many tokens (the copy
#: moves the whole stream; a short prefix is cheaper to evaluate again).
COPY_PREFIX = 64


@dataclass
class Row:
    """One request in flight."""

    index: int
    request: Request
    prompt: str
    prompt_ids: list[int]
    forcer: Forcer
    started: float
    rng: np.random.Generator | None
    reach: int                      # the most positions this sequence can ever fill


@dataclass
class Branch:
    """One KV sequence and the rows whose tokens so far are exactly its tokens."""

    seq: int
    tokens: list[int]               # every token of the sequence: fed, then pending
    fed: int                        # tokens[:fed] are in the KV cache (positions 0..fed-1)
    rows: list[Row] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.fed


class Pool:
    """A llama.cpp context of `n_seq` sequences, each with its own KV stream of `cells` cells."""

    def __init__(self, llm, cells: int, n_seq: int):
        import llama_cpp
        from llama_cpp._internals import LlamaContext

        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx = cells * n_seq
        params.n_seq_max = n_seq
        params.kv_unified = False
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = LlamaContext(model=llm._model, params=params, verbose=False)
        self.cells = llama_cpp.llama_n_ctx(self.ctx.ctx) // n_seq
        self.n_seq = n_seq
        self.n_batch = llama_cpp.llama_n_batch(self.ctx.ctx)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.free_seqs = list(range(n_seq - 1, -1, -1))
        self.n_vocab = llm.n_vocab()
        self._free_batch = llama_cpp.llama_batch_free    # for close() at interpreter exit
        llm._stack.callback(self.close)   # freed before the model, however the Llama goes

    def take_seq(self) -> int:
        return self.free_seqs.pop()

    def drop(self, seq: int, start: int = 0) -> None:
        """Forget positions start.. of a sequence (all of it: the id is free again)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.ctx.memory, seq, start, -1)
        if start == 0:
            self.free_seqs.append(seq)

    def copy(self, src: int, dst: int, upto: int) -> None:
        """Make `dst` the first `upto` positions of `src`. Across streams llama.cpp copies a whole
        stream (cell for cell, at the next decode), so the tail is dropped after."""
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self.ctx.memory, src, dst, -1, -1)
        llama_cpp.llama_memory_seq_rm(self.ctx.memory, dst, upto, -1)

    def decode(self, chunks: list[tuple[int, int, Sequence[int], bool]]) -> None:
        """Feed (seq, first position, tokens, want logits of the last one) in one batch."""
        import llama_cpp

        b, n = self.batch, 0
        for seq, pos, tokens, want in chunks:
            for k, t in enumerate(tokens):
                b.token[n] = t
                b.pos[n] = pos + k
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq
                b.logits[n] = 0
                n += 1
            if want:
                b.logits[n - 1] = 1
        b.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc}) with {n} tokens in {len(chunks)} sequences")

    def logits(self, i: int) -> np.ndarray:
        """The logits of batch position i (a view into llama.cpp's buffer until the next decode)."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.ctx.ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def close(self) -> None:
        if self.batch is not None:
            self._free_batch(self.batch)
            self.batch = None
            self.ctx.close()


class BatchLoop:
    """One `generate` call on the engine: admits requests, steps all branches, emits traces."""

    def __init__(self, engine, requests: list[Request],
                 on_trace: Callable[[int, Trace], None] | None,
                 on_step: Callable[[int, Forcer], None] | None,
                 incoming: Callable[[int], Sequence[Request]] | None):
        self.engine = engine
        self.waiting = deque(enumerate(requests))
        self.traces: list[Trace | None] = [None] * len(requests)
        self.joined = len(requests)
        self.on_trace, self.on_step, self.incoming = on_trace, on_step, incoming
        self.branches: list[Branch] = []
        self.rows = 0
        self._prepared: dict[int, tuple] = {}

    # --- admission ---------------------------------------------------------------------------

    def _prep(self, index: int, request: Request):
        if index not in self._prepared:
            prompt, ids, forcer = self.engine.prepare(request)
            self._prepared[index] = (prompt, ids, forcer, self.engine.reach(len(ids), forcer))
        return self._prepared[index]

    def _admit(self) -> None:
        eng = self.engine
        free = eng.batch_size - self.rows
        if self.incoming and free > len(self.waiting):
            for r in self.incoming(free - len(self.waiting)):
                self.waiting.append((self.joined, r.resolve()))
                self.joined += 1
        if not self.branches and self.waiting:
            # Idle: streams as long as the longest sequence of what waits may grow.
            eng.ensure_pool(max(self._prep(i, r)[3] for i, r in self.waiting))
        while self.waiting and self.rows < eng.batch_size:
            index, request = self.waiting[0]
            prompt, ids, forcer, reach = self._prep(index, request)
            if reach > eng.pool.cells:
                break                      # a longer stream: wait until the pool is idle
            if not eng.pool.free_seqs:
                eng.forget_cache()
            self.waiting.popleft()
            group = [self._row(index, request)]
            if eng.branching and request.budget.sampling.greedy:
                group += self._same_prompt(ids)
            self._start(ids, group)

    def _same_prompt(self, ids: list[int]) -> list[Row]:
        """Waiting greedy requests with the same prompt ids: they join the same branch."""
        eng, out = self.engine, []
        for item in list(self.waiting):
            if self.rows >= eng.batch_size:
                break
            index, request = item
            if not request.budget.sampling.greedy:
                continue
            _, other, _, reach = self._prep(index, request)
            if other == ids and reach <= eng.pool.cells:
                self.waiting.remove(item)
                out.append(self._row(index, request))
        return out

    def _row(self, index: int, request: Request) -> Row:
        prompt, ids, forcer, reach = self._prepared.pop(index)
        rng = None if request.budget.sampling.greedy else np.random.default_rng(seed_bits(request.seed))
        self.rows += 1
        return Row(index, request, prompt, ids, forcer, time.perf_counter(), rng, reach)

    def _start(self, ids: list[int], rows: list[Row]) -> None:
        """A branch for a new prompt: on the cached last sequence where it shares a prefix with
        it (its stream, kept), else on a copy of a live branch that shares at least
        `COPY_PREFIX` tokens, else fresh. At least the prompt's last token is fed here."""
        eng = self.engine
        pool = eng.pool

        def shared(b: Branch) -> int:
            n, limit = 0, min(b.fed, len(ids) - 1)
            while n < limit and b.tokens[n] == ids[n]:
                n += 1
            return n

        cached = eng.cached
        if cached is not None and shared(cached) > 0:
            n = shared(cached)
            eng.cached = None
            pool.drop(cached.seq, n)
            self.branches.append(Branch(cached.seq, list(ids), n, rows))
            return
        best, src = max(((shared(b), b) for b in self.branches), default=(0, None),
                        key=lambda x: x[0])
        seq = pool.take_seq()
        if best >= COPY_PREFIX:
            pool.copy(src.seq, seq, best)
        else:
            best = 0
        self.branches.append(Branch(seq, list(ids), best, rows))

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> list[Trace]:
        while True:
            self._admit()
            if not self.branches:
                if self.waiting:
                    raise RuntimeError("a request does not fit the KV pool")   # reach ≤ context
                break
            fed = self._feed()
            for branch, i in fed:
                self._advance(branch, i)
            self.branches = [b for b in self.branches if b.rows]
        return self.traces  # type: ignore[return-value]

    def _feed(self) -> list[tuple[Branch, int]]:
        """One llama_decode over every branch with tokens to feed: decoding branches first, then
        prompt chunks in what is left of the batch. Returns branches with fresh logits and their
        batch positions."""
        pool = self.engine.pool
        room, chunks, ready = pool.n_batch, [], []
        for b in sorted((b for b in self.branches if b.pending), key=lambda b: b.pending):
            take = min(b.pending, room)
            if take <= 0:
                break
            whole = take == b.pending
            chunks.append((b.seq, b.fed, b.tokens[b.fed: b.fed + take], whole))
            if whole:
                ready.append((b, pool.n_batch - room + take - 1))
            b.fed += take
            room -= take
        pool.decode(chunks)
        self.engine.tokens_fed += pool.n_batch - room
        return ready

    def _advance(self, branch: Branch, at: int) -> None:
        """Each row of the branch takes the proposal and emits its tokens; rows that emit other
        tokens than their companions fork off onto branches of their own."""
        eng = self.engine
        logits = eng.pool.logits(at)
        limit = min(eng.context_length, eng.pool.cells)
        proposals: dict[tuple, int] = {}   # greedy rows of a branch share their proposal
        paths: dict[tuple, list[Row]] = {}
        for row in branch.rows:
            f, sampling = row.forcer, row.request.budget.sampling
            proposal = None
            if not f.due():
                if row.rng is None:
                    key = (f.banned(), sampling.presence_penalty)
                    if key not in proposals:
                        proposals[key] = eng.propose(logits, sampling, None, f)
                    proposal = proposals[key]
                else:
                    proposal = eng.propose(logits, sampling, row.rng, f)
            token = f.step(proposal)
            back = f.take_rewind()
            chunk = [] if token is None else [token]
            while f.due() and not f.done:      # forced tokens go in as one chunk
                t = f.step(None)
                if t is not None:
                    chunk.append(t)
            if self.on_step:
                self.on_step(row.index, f)
            if not f.done and branch.fed - back + len(chunk) >= limit:
                f.stop("length")
            if f.done or not chunk:
                if not f.done:
                    f.stop("length")
                self._finish(row)
                continue
            paths.setdefault((back, tuple(chunk)), []).append(row)
        groups = list(paths.items())
        if not groups:
            branch.rows = []
            self._retire(branch)
            return
        base = branch.fed
        for (back, chunk), rows in groups[1:]:       # forks copy the branch before it changes
            if not eng.pool.free_seqs:
                eng.forget_cache()
            seq = eng.pool.take_seq()
            eng.pool.copy(branch.seq, seq, base - back)
            self.branches.append(Branch(seq, branch.tokens[: base - back] + list(chunk),
                                        base - back, rows))
        (back, chunk), rows = groups[0]
        if back:
            eng.pool.drop(branch.seq, base - back)
        branch.tokens = branch.tokens[: base - back] + list(chunk)
        branch.fed = base - back
        branch.rows = rows

    def _retire(self, branch: Branch) -> None:
        """Keep the last finished sequence in the cache, as a server's slot does: the next
        prompt starts from the prefix it shares with it (the system prompt)."""
        eng = self.engine
        if eng.cached is not None:
            eng.pool.drop(eng.cached.seq)
        branch.tokens = branch.tokens[: branch.fed]
        eng.cached = branch

    def _finish(self, row: Row) -> None:
        tr = self.engine.trace(row.request, row.prompt, row.prompt_ids, row.forcer, row.started)
        if row.index < len(self.traces):
            self.traces[row.index] = tr
        self.rows -= 1
        if self.on_trace:
            self.on_trace(row.index, tr)
