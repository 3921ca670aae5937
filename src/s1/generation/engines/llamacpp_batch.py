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

#: llama.cpp's CPU flash attention takes each query on its own (the same floats whatever the batch)
#: except for 64 or more new tokens of one sequence in a ubatch (tiled) and for one token of one
#: sequence alone in a ubatch over more than 256 cached cells (the cells split among threads).
#: Chunks are fed in pieces of at most CHUNK tokens; a sequence decoding alone at LONE or more
#: tokens gets a throwaway partner.
CHUNK = 63
LONE = 192

#: A new sequence copies a live branch's stream when they share at least this many tokens: the
#: copy moves the whole stream, a few tokens are cheaper to evaluate again.
COPY_PREFIX = 16


def pieces(n: int) -> list[int]:
    """n ≥ 2 tokens in as few pieces of 2..CHUNK tokens as can be, near-equal."""
    k = -(-n // CHUNK)
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


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
    source: tuple["Branch", int] | None = None   # copy (branch, n) when that one has fed n

    @property
    def pending(self) -> int:
        return len(self.tokens) - self.fed

    def shared(self, ids: Sequence[int]) -> int:
        """How many leading tokens `ids` has in common with this sequence (fed or not)."""
        n, limit = 0, min(len(self.tokens), len(ids))
        while n < limit and self.tokens[n] == ids[n]:
            n += 1
        return n


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
        self.limit = n_seq            # how many sequences the current call may hold
        self.n_vocab = llm.n_vocab()
        self._free_batch = llama_cpp.llama_batch_free    # for close() at interpreter exit
        llm._stack.callback(self.close)   # freed before the model, however the Llama goes

    def available(self) -> bool:
        return len(self.free_seqs) > self.n_seq - self.limit

    def take_seq(self) -> int:
        """The lowest free id: the sequences in flight stay close together (see BatchLoop._feed)."""
        seq = min(self.free_seqs)
        self.free_seqs.remove(seq)
        return seq

    def next_pos(self, seq: int) -> int:
        import llama_cpp

        return llama_cpp.llama_memory_seq_pos_max(self.ctx.memory, seq) + 1

    def trim(self, seq: int, start: int) -> None:
        """Forget positions start.. of a sequence (its id stays taken, or free, as it was)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.ctx.memory, seq, start, -1)

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
    """One `generate` call on the engine: admits requests, steps all branches, emits traces.

    `batch_size` bounds the sequences decoded together (branches, not requests: the rows of a
    sweep on one branch cost one). New prompts join while fewer branches are live; a fork takes a
    spare stream if there is one, else its rows wait (`parked`) and start again from a copy of
    the longest live prefix as soon as a stream is free."""

    def __init__(self, engine, requests: list[Request],
                 on_trace: Callable[[int, Trace], None] | None,
                 on_step: Callable[[int, Forcer], None] | None,
                 incoming: Callable[[int], Sequence[Request]] | None):
        self.engine = engine
        self.waiting = deque(enumerate(requests))
        self.parked: deque[tuple[list[int], list[Row]]] = deque()
        self.traces: list[Trace | None] = [None] * len(requests)
        self.joined = len(requests)
        self.on_trace, self.on_step, self.incoming = on_trace, on_step, incoming
        self.branches: list[Branch] = []
        self._prepared: dict[int, tuple] = {}
        self._same: dict[tuple, list[int]] = {}   # greedy prompts → their waiting indices
        self._taken: set[int] = set()             # joined a branch ahead of their turn

    # --- admission ---------------------------------------------------------------------------

    def _prep(self, index: int, request: Request):
        """The prepared request; None when it cannot start (its error trace is out, and it has
        left the queue)."""
        if index in self._taken:
            return None
        if index not in self._prepared:
            prepared, failed = self.engine.prepare_or_fail(request)
            if failed is not None:
                self._taken.add(index)
                self._emit(index, failed)
                return None
            prompt, ids, forcer = prepared
            self._prepared[index] = (prompt, ids, forcer, self.engine.reach(len(ids), forcer),
                                     request)
            if request.budget.sampling.greedy:
                self._same.setdefault(tuple(ids), []).append(index)
        return self._prepared[index]

    def _next(self):
        """The first waiting request that has not joined a branch yet (None: none waits)."""
        while self.waiting and self.waiting[0][0] in self._taken:
            self._taken.discard(self.waiting.popleft()[0])
        return self.waiting[0] if self.waiting else None

    def _admit(self) -> None:
        eng = self.engine
        free = eng.batch_size - len(self.branches) - len(self.parked)
        queued = len(self.waiting) - len(self._taken)
        if self.incoming and free > queued:
            for r in self.incoming(free - queued):
                self.waiting.append((self.joined, r.resolve()))
                self.joined += 1
        if not self.branches and not self.parked and self._next():
            # Idle: streams as long as the longest sequence of what waits may grow, and spare
            # streams for forks where requests share a prompt.
            prepared = [p for p in (self._prep(i, r) for i, r in list(self.waiting)) if p]
            if not prepared:
                return
            prompts = [tuple(p[1]) for p in prepared]
            # a search's branches are continued at the next step: keep a whole step of them, and
            # size the pool alike at every step (siblings share prompts), so it lasts
            search = any(p[2].prefix_tokens or p[2].step_end for p in prepared)
            forks = search or (eng.branching and len(set(prompts)) < len(prompts))
            eng.ensure_pool(max(p[3] for p in prepared), spare=eng.batch_size if forks else 0,
                            keep=eng.batch_size if search else 1)
        pool = eng.pool
        while self.parked and self._stream():
            tokens, rows = self.parked.popleft()
            self._start(tokens, rows)
        rows = min(eng.batch_size, pool.limit - 1)     # as many as the KV budget holds
        while (self._next() and not self.parked and len(self.branches) < rows
               and self._stream()):
            index, request = self.waiting[0]
            prepared = self._prep(index, request)
            if prepared is None:
                continue
            prompt, ids, forcer, reach, _ = prepared
            if reach > pool.cells:
                break                      # a longer stream: wait until the pool is idle
            self.waiting.popleft()
            group = [self._row(index)]
            if eng.branching and request.budget.sampling.greedy:
                group += self._same_prompt(ids)
            self._start(ids, group)

    def _stream(self) -> bool:
        """Whether a stream is free (kept sequences are given up, oldest first, if need be)."""
        while not self.engine.pool.available() and self.engine.kept:
            self.engine.forget_cache(all=False)
        return self.engine.pool.available()

    def _same_prompt(self, ids: list[int]) -> list[Row]:
        """Waiting greedy requests with the same prompt ids (prepared so far: at idle, all that
        wait): they join the same branch."""
        out = []
        for index in self._same.pop(tuple(ids), []):
            if index not in self._prepared or index in self._taken:
                continue                   # already on a branch
            if self._prepared[index][3] <= self.engine.pool.cells:
                self._taken.add(index)
                out.append(self._row(index))
        return out

    def _row(self, index: int) -> Row:
        prompt, ids, forcer, reach, request = self._prepared.pop(index)
        rng = None if request.budget.sampling.greedy else np.random.default_rng(seed_bits(request.seed))
        return Row(index, request, prompt, ids, forcer, time.perf_counter(), rng, reach)

    def _start(self, ids: list[int], rows: list[Row]) -> None:
        """A branch for the token sequence `ids` (a prompt, or a parked fork's whole sequence):
        on the stream of the kept sequence that shares the longest prefix (a server slot's
        prompt cache; a search branch's parent), else on a copy of the live branch that shares
        the longest one (at least `COPY_PREFIX` tokens; once it has fed them), else fresh. At
        least the last token of `ids` is fed here, for its logits."""
        eng, pool = self.engine, self.engine.pool
        last = len(ids) - 1
        n, cached = max(((min(b.shared(ids), b.fed, last), b) for b in eng.kept),
                        default=(0, None), key=lambda x: x[0])
        if n > 0:
            eng.kept.remove(cached)
            pool.drop(cached.seq, n)
            self.branches.append(Branch(cached.seq, list(ids), n, rows))
            return
        seq = pool.take_seq()
        best, src = max(((min(b.shared(ids), last), b) for b in self.branches),
                        default=(0, None), key=lambda x: x[0])
        branch = Branch(seq, list(ids), 0, rows)
        if best >= COPY_PREFIX:
            branch.source = (src, best)
            self._copy_when_ready(branch)
        self.branches.append(branch)

    def _copy_when_ready(self, branch: Branch) -> bool:
        """Copy the source's prefix once the source has fed it; False while it has not."""
        src, n = branch.source
        if src.fed < n:
            return False
        self.engine.pool.copy(src.seq, branch.seq, n)
        branch.fed, branch.source = n, None
        return True

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> list[Trace]:
        while True:
            self._admit()
            if not self.branches:
                if self._next() or self.parked:
                    raise RuntimeError("a request does not fit the KV pool")   # reach ≤ context
                break
            for branch, logits in self._feed():
                self._advance(branch, logits)
            self.branches = [b for b in self.branches if b.rows]
        return self.traces  # type: ignore[return-value]

    def _feed(self) -> list[tuple[Branch, np.ndarray]]:
        """Feed every branch its pending tokens; return the branches that fed all they had, with
        the logits of their last token.

        Decodes are shaped so that llama.cpp's flash attention gives each row the same floats
        whatever else is in flight: a branch with several tokens (a prompt, forced tokens) feeds
        them in decodes of its own, in pieces of 2 to `CHUNK` tokens; the branches with one token
        go in one decode, in order of sequence id with no gap (llama.cpp cuts a batch into
        ubatches at gaps), padded with a throwaway token where a sequence would be alone over a
        long context. The throwaway tokens are removed again."""
        eng, pool = self.engine, self.engine.pool
        # Copies first: `fed` counts only what earlier decodes have put in the cache.
        waiting = {id(b) for b in self.branches
                   if b.source is not None and not self._copy_when_ready(b)}
        live = [b for b in self.branches if b.pending and id(b) not in waiting]
        ready: list[tuple[Branch, np.ndarray]] = []
        for b in live:
            if b.pending > 1:
                for size in pieces(b.pending):
                    pool.decode([(b.seq, b.fed, b.tokens[b.fed: b.fed + size], True)])
                    b.fed += size
                    eng.tokens_fed += size
                ready.append((b, pool.logits(size - 1).copy()))
        ones = sorted((b for b in live if b.pending == 1), key=lambda b: b.seq)
        if ones:
            seqs = [b.seq for b in ones]
            pads = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
            if len(ones) == 1 and ones[0].fed >= LONE:
                pads = [seqs[0] + 1 if seqs[0] + 1 < pool.n_seq else seqs[0] - 1]
            chunks = [(b.seq, b.fed, b.tokens[b.fed:], True) for b in ones]
            chunks += [(seq, pool.next_pos(seq), [0], False) for seq in pads]
            chunks.sort(key=lambda c: c[0])
            pool.decode(chunks)
            for seq, pos, _, want in chunks:
                if not want:
                    pool.trim(seq, pos)      # the throwaway token
            at = {c[0]: i for i, c in enumerate(chunks)}
            for b in ones:
                b.fed += 1
                ready.append((b, pool.logits(at[b.seq])))
            eng.tokens_fed += len(ones)
        for b in self.branches:       # before a source can finish and its stream be reused
            if b.source is not None:
                self._copy_when_ready(b)
        return ready

    def _advance(self, branch: Branch, logits: np.ndarray) -> None:
        """Each row of the branch takes the proposal and emits its tokens; rows that emit other
        tokens than their companions fork off onto branches of their own."""
        eng = self.engine
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
            tokens = branch.tokens[: base - back] + list(chunk)
            if self._stream():
                seq = eng.pool.take_seq()
                eng.pool.copy(branch.seq, seq, base - back)
                self.branches.append(Branch(seq, tokens, base - back, rows))
            else:
                self.parked.append((tokens, rows))
                eng.parked_forks += 1
        (back, chunk), rows = groups[0]
        if back:
            eng.pool.drop(branch.seq, base - back)
        branch.tokens = branch.tokens[: base - back] + list(chunk)
        branch.fed = base - back
        branch.rows = rows

    def _retire(self, branch: Branch) -> None:
        """Keep finished sequences in the cache, as a server's slot does: a next prompt starts
        from the prefix it shares with one (the system prompt; a search branch's thinking). As
        many are kept as the pool was sized for; the oldest goes first."""
        eng = self.engine
        while eng.kept and len(eng.kept) >= eng.keep:
            eng.forget_cache(all=False)
        branch.tokens = branch.tokens[: branch.fed]
        eng.kept.append(branch)

    def _finish(self, row: Row) -> None:
        self._emit(row.index, self.engine.trace(row.request, row.prompt, row.prompt_ids,
                                                row.forcer, row.started))

    def _emit(self, index: int, tr: Trace) -> None:
        if index < len(self.traces):
            self.traces[index] = tr
        if self.on_trace:
            self.on_trace(index, tr)
