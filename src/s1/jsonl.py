"""Result files that survive a kill: JSON lines appended and fsynced one by one, JSON files
written whole through a rename. A killed run tears at most the line being written; readers drop
that line, so a re-run resumes with nothing lost and nothing duplicated."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from s1.errors import UserError


def write_json_atomic(path: Path, data: Any) -> None:
    """Write through a temporary file and rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def json_lines(text: str, path: str | Path, hint: str = "") -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of JSONL text; a line that is not JSON is a
    UserError naming the file and line (and `hint`, what to do about it)."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg}){hint}") from None


def read_jsonl(path: Path, repair: bool = False, key: str | None = None,
               damaged: str = "move it away and run again") -> list[dict]:
    """Objects of a JSONL result file in order. A torn last line (a kill mid-write) is dropped,
    and cut off the file when `repair`; a bad line elsewhere, or one without `key`, is a
    UserError naming its line number."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):   # the last write never finished its newline
        if repair:
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        data = data[:end]
    out = []
    for n, rec in json_lines(data.decode("utf-8", "replace"), path, f"; {damaged}"):
        if not isinstance(rec, dict) or (key is not None and key not in rec):
            raise UserError(f"{path}:{n}: not a result record (no {key!r}); {damaged}")
        out.append(rec)
    return out


class JsonlAppender:
    """Appends one object per line; each line is flushed and fsynced before the next."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = None

    def append(self, record: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_jsonl_atomic(path: Path, records: list[dict]) -> None:
    """Rewrite a whole JSONL file through a temporary file and a rename (regrading, imports):
    a kill leaves the old file or the new one, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
