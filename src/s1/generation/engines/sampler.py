"""Temperature / top-k / top-p sampling of a batch of rows in a few tensor operations on the
logits' own device.

Each row brings its own uniform draw (from its own seeded generator), so what a row samples
depends on its seed and its logits only, never on which other rows share the batch. A row is
drawn by inverting its cumulative distribution at that uniform. Nucleus rows are looked for among
the `CANDIDATES` likeliest tokens first (one `topk`, no full-vocabulary sort); only a row whose
nucleus reaches further looks 8 times further, then at the whole (sorted) vocabulary. Semantics as vLLM: top-k first, then
top-p on the renormalised top-k distribution, keeping every token whose preceding mass is below
top-p; min-p then keeps, of those, the tokens at least min_p times as likely as the likeliest.
"""

from __future__ import annotations

import torch

CANDIDATES = 256


def sample_rows(logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor,
                top_k: torch.Tensor, uniform: torch.Tensor,
                min_p: torch.Tensor | None = None) -> torch.Tensor:
    """One token id per row. `logits` [n, V] (banned ids already at −inf); the others [n], on
    the same device (top_k 0 = off, top_p 1 = off, min_p 0 = off, temperature > 0, uniform in
    [0, 1))."""
    z = logits.float() / temperature[:, None]
    if min_p is None:
        min_p = torch.zeros_like(top_p)
    out = torch.empty(len(z), dtype=torch.long, device=z.device)
    cut = (top_p < 1) | (top_k > 0) | (min_p > 0)
    if (~cut).any():
        # Plain temperature: the whole vocabulary in its own order, no sort needed.
        plain = z[~cut]
        c = torch.softmax(plain, dim=-1).cumsum(-1)
        out[~cut] = _invert(c, uniform[~cut])
    if cut.any():
        out[cut] = _truncated(z[cut], top_p[cut], top_k[cut], uniform[cut], min_p[cut])
    return out


def _truncated(z, top_p, top_k, uniform, min_p):
    vocab = z.shape[-1]
    out = torch.empty(len(z), dtype=torch.long, device=z.device)
    todo = torch.arange(len(z), device=z.device)
    width = max(CANDIDATES, int(top_k.max()))
    while len(todo):
        w = min(width, vocab)
        zz, pp, kk, mp = z[todo], top_p[todo], top_k[todo], min_p[todo]
        vals, idx = zz.sort(dim=-1, descending=True) if w == vocab else zz.topk(w, dim=-1)
        pos = torch.arange(w, device=z.device)
        vals = vals.masked_fill((kk[:, None] > 0) & (pos >= kk[:, None]), float("-inf"))
        # Normalise over the whole vocabulary, or over the top k when the row has one.
        norm = torch.where(kk > 0, vals.logsumexp(-1), zz.logsumexp(-1))
        p = (vals - norm[:, None]).exp()
        cum = p.cumsum(-1)
        floor = mp[:, None] * p[:, :1]          # min-p: relative to the likeliest token
        done = ((kk > 0) | (cum[:, -1] >= pp) | (w == vocab)
                | ((mp > 0) & (p[:, -1] < floor[:, 0])))   # the floor is crossed in the window
        if bool(done.any()):
            p, cum = p[done], cum[done]
            p = p * ((cum - p) < pp[done, None]) * (p >= floor[done])
            pick = _invert(p.cumsum(-1), uniform[todo[done]])
            out[todo[done]] = idx[done].gather(1, pick[:, None]).squeeze(1)
        todo = todo[~done]       # a wider nucleus: look further (8x, then everything)
        width *= 8
    return out


def _invert(cdf: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The first index whose cumulative mass exceeds uniform × total (zero-mass entries never)."""
    target = (uniform.to(cdf.dtype) * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp(max=cdf.shape[-1] - 1)
