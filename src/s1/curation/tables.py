"""Tables on disk: reading a step's input, writing its Parquet, columns as lists.

Everything goes through Arrow: a `datasets.Dataset` in memory (nothing is written to the HF
cache), Parquet written by pyarrow, columns fetched as Arrow arrays.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from s1.errors import UserError

STEP_FILE = "step.json"
DATA_FILE = "data.parquet"


def column(data, name: str) -> list:
    """A column as a Python list. Through Arrow: `data[name]` in datasets 5 is a lazy column
    that formats row by row (7x slower on the pool)."""
    return data.with_format("arrow")[name].to_pylist()


def write_parquet(data, path: Path) -> None:
    import pyarrow.parquet as pq

    # pyarrow directly: datasets' to_parquet re-batches and costs 3x more
    pq.write_table(data.with_format("arrow")[:], str(path))


def file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "file:" + h.hexdigest()[:16]


def read_table(path: str | Path):
    """A Dataset from parquet / jsonl / json, kept in memory (nothing written to the HF cache)."""
    import datasets
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return datasets.Dataset(pq.read_table(path))
        if path.suffix in (".jsonl", ".json"):
            from s1.jsonl import read_jsonl

            rows = read_jsonl(path, damaged="fix the file")
            if not rows:
                raise UserError(f"{path} holds no rows")
            return datasets.Dataset.from_list(rows)
    except UserError:
        raise
    except Exception as err:   # pyarrow's many ways of saying "this is not a table"
        raise UserError(f"cannot read {path} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160] if str(err) else ''})") from None
    raise UserError(f"cannot read {path}: give a step directory, a .parquet or a .jsonl file")


def load_input(path: str | Path):
    """(Dataset, fingerprint) of a step directory or a data file."""
    p = Path(path)
    if p.is_dir():
        record = p / STEP_FILE
        if not record.exists() or not (p / DATA_FILE).exists():
            raise UserError(f"{p} is not a finished curation step directory (no {STEP_FILE}); "
                            "give a step's --out directory, a .parquet or a .jsonl file")
        from s1.curation.steps import output_fingerprint

        return read_table(p / DATA_FILE), output_fingerprint(json.loads(record.read_text()))
    if not p.is_file():
        raise UserError(f"input not found: {path}")
    return read_table(p), file_fingerprint(p)
