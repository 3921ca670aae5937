"""The batched device sampler against the definition of temperature / top-k / top-p sampling."""

import torch

from s1.generation.engines.sampler import sample_rows


def reference(logits, temperature, top_p, top_k, u):
    """One row the slow, obvious way: sort, cut, renormalise, invert the CDF at u (a row with
    no cut keeps the vocabulary's own order, as the sampler does: no sort needed)."""
    z = logits.double() / temperature
    cut = top_p < 1 or top_k
    order = z.argsort(descending=True) if cut else torch.arange(len(z))
    p = torch.softmax(z[order], -1)
    if top_k:
        p[top_k:] = 0
        p /= p.sum()
    p = p * ((p.cumsum(0) - p) < top_p)
    c = p.cumsum(0)
    return int(order[int(torch.searchsorted(c, u * c[-1], right=True).clamp(max=len(c) - 1))])


def batch(n, fill, dtype=torch.float32):
    return torch.full((n,), fill, dtype=dtype)


def test_frequencies_follow_the_truncated_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    n = 40_000
    u = torch.rand(n, generator=torch.Generator().manual_seed(0))
    p = torch.softmax(logits[0], -1)
    cases = [(1.0, 0, p), (1.0, 2, torch.softmax(logits[0, :2], -1)),
             (0.8, 0, torch.cat([p[:3] / p[:3].sum(), torch.zeros(2)]))]   # 0.563+0.207 < 0.8
    for top_p, top_k, want in cases:
        got = sample_rows(logits.expand(n, 5), batch(n, 1.0), batch(n, top_p),
                          batch(n, top_k, torch.long), u)
        freq = torch.bincount(got, minlength=5).float() / n
        assert torch.allclose(freq, torch.cat([want, torch.zeros(5 - len(want))]), atol=0.01)


def test_every_row_matches_the_reference_and_ignores_its_neighbours():
    g = torch.Generator().manual_seed(1)
    vocab = 3000
    # Peaked rows (nucleus among the first candidates) and flat ones (a nucleus of thousands,
    # wider than the 256 candidates: the sampler must look further, and still agree).
    logits = torch.cat([torch.randn(6, vocab, generator=g) * 12,
                        torch.randn(6, vocab, generator=g) * 0.5])
    temp = torch.tensor([1.0, 0.7, 1.3, 1.0, 0.5, 1.0] * 2)
    top_p = torch.tensor([0.95, 0.9, 1.0, 0.5, 1.0, 0.99] * 2)
    top_k = torch.tensor([0, 0, 0, 40, 5, 0] * 2)
    u = torch.rand(12, generator=g)
    got = sample_rows(logits, temp, top_p, top_k, u).tolist()
    want = [reference(logits[i], temp[i], top_p[i], int(top_k[i]), u[i]) for i in range(12)]
    assert got == want
    alone = [int(sample_rows(logits[i:i + 1], temp[i:i + 1], top_p[i:i + 1], top_k[i:i + 1],
                             u[i:i + 1])) for i in range(12)]
    assert alone == got


def test_banned_ids_are_never_drawn():
    logits = torch.zeros(64, 10)
    logits[:, 3] = float("-inf")
    u = torch.linspace(0, 0.999, 64)
    for top_p in (1.0, 0.9):
        got = sample_rows(logits, batch(64, 1.0), batch(64, top_p), batch(64, 0, torch.long), u)
        assert 3 not in got.tolist() and len(set(got.tolist())) > 5
