"""Benchmarks: every evaluation set in one shape, whatever file or hub id it came from.

Shipped with the package (see `s1/data/MANIFEST.md`): `aime24` (the s1 "nofigures" set),
`math500`, `gsm8k`, and `tiny`, the miniature world's held-out problems (`s1.miniature`). Loaded on demand: `aime25` (hub id or local file) and `gpqa-diamond` (hub id
or a local CSV/JSONL in the `Idavidrein/gpqa` columns). Any other JSONL works with
`question_field` / `answer_field` / `answer_type`.

GPQA's authors keep it out of training corpora on purpose, so nothing here prints or logs a
question: `Item`'s repr leaves the question out and bad-record messages name only line numbers.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from s1 import hub
from s1.errors import UserError

log = logging.getLogger("s1.evaluation")

ANSWER_TYPES = ("integer", "math", "choice")
CHOICE_LETTERS = "ABCD"
GPQA_PROMPT = "{Question}\n\nA) {c1}\nB) {c2}\nC) {c3}\nD) {c4}"
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                "Incorrect Answer 3")


@dataclass(frozen=True)
class Item:
    """One question. `answer` is the gold answer as text; `answer_type` picks the grader."""

    id: str
    question: str = field(repr=False)  # never in a repr: GPQA questions must not leak into logs
    answer: str
    answer_type: str
    meta: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Benchmark:
    """A named, ordered list of items, with the records that were skipped while loading."""

    name: str
    items: list[Item]
    source: str = ""
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, {len(self.items)} items, source={self.source!r})"


class _BadRecord(ValueError):
    """A record that cannot become an Item; the message says why, without quoting it."""


# ---------------------------------------------------------------------------------------------
# reading records


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, record or None, error) for every non-blank line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, None, f"not valid JSON ({e.msg})"
                continue
            if not isinstance(record, dict):
                yield lineno, None, "not a JSON object"
                continue
            yield lineno, record, ""


def _read_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    if not path.is_file():
        raise UserError(f"benchmark file {path} does not exist")
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, row, ""
    else:
        yield from _read_jsonl(path)


def _build(name: str, records: Iterable[tuple[int, dict | None, str]],
           make: Callable[[int, dict], Item], strict: bool, source: str) -> Benchmark:
    items: list[Item] = []
    skipped: list[tuple[int, str]] = []
    seen: set[str] = set()
    for lineno, record, error in records:
        try:
            if record is None:
                raise _BadRecord(error)
            item = make(lineno, record)
            if item.id in seen:
                raise _BadRecord(f"duplicate id {item.id!r}")
        except _BadRecord as e:
            if strict:
                raise UserError(f"{source}: record {lineno} is unusable: {e}") from None
            log.warning("%s: skipping record %d: %s", source, lineno, e)
            skipped.append((lineno, str(e)))
            continue
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UserError(f"{source} holds no usable records"
                        + (f" ({len(skipped)} skipped; first: record {skipped[0][0]}: "
                           f"{skipped[0][1]})" if skipped else ""))
    return Benchmark(name, items, source, skipped)


def _text(record: dict, key: str) -> str:
    """A required non-empty field, as text (numbers are accepted: answers are often ints)."""
    if key not in record or record[key] is None:
        raise _BadRecord(f"missing field {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _BadRecord(f"field {key!r} is a {type(value).__name__}, not text")
    text = str(value).strip()
    if not text:
        raise _BadRecord(f"field {key!r} is empty")
    return text


def _pick_field(record: dict, given: str | None, candidates: tuple[str, ...]) -> str:
    if given:
        return given
    for key in candidates:
        if key in record:
            return key
    return candidates[0]


def _check_answer_type(answer_type: str) -> str:
    if answer_type not in ANSWER_TYPES:
        raise UserError(f"unknown answer type {answer_type!r}; choose one of "
                        f"{', '.join(ANSWER_TYPES)}")
    return answer_type


# ---------------------------------------------------------------------------------------------
# item makers, one per format


def _int_answer(text: str) -> str:
    """An integer gold answer in canonical form; thousands separators are dropped (GSM8K)."""
    cleaned = text.replace(",", "").replace("$", "").strip()
    if not re.fullmatch(r"[-+]?\d{1,1000}", cleaned):
        raise _BadRecord("answer is not an integer")
    return str(int(cleaned))


def _aime24_item(lineno: int, r: dict) -> Item:
    # The shipped answers keep AIME's leading zeros ("025"); grading compares integers anyway,
    # and the text is kept as published.
    answer = _text(r, "answer")
    _int_answer(answer)
    return Item(f"aime24-{_text(r, 'id')}", _text(r, "problem"), answer, "integer",
                {"url": r.get("url", "")})


def _math500_item(lineno: int, r: dict) -> Item:
    return Item(_text(r, "unique_id"), _text(r, "problem"), _text(r, "answer"), "math",
                {"level": r.get("level"), "subject": r.get("subject")})


def _gsm8k_item(lineno: int, r: dict) -> Item:
    solution = _text(r, "answer")
    if "####" not in solution:
        raise _BadRecord("answer has no '####' final-answer line")
    final = solution.rsplit("####", 1)[1].strip()
    return Item(f"gsm8k-{lineno}", _text(r, "question"), _int_answer(final), "integer")


def _generic_maker(question_field: str | None, answer_field: str | None, answer_type: str,
                   prefix: str) -> Callable[[int, dict], Item]:
    def make(lineno: int, r: dict) -> Item:
        q = _pick_field(r, question_field, ("question", "problem", "Question", "Problem"))
        a = _pick_field(r, answer_field, ("answer", "Answer", "solution"))
        answer = _text(r, a)
        if answer_type == "integer":
            _int_answer(answer)
        if answer_type == "choice" and answer.upper() not in CHOICE_LETTERS:
            raise _BadRecord(f"choice answer must be one of {CHOICE_LETTERS}")
        rid = r.get("id", r.get("unique_id"))
        item_id = f"{prefix}-{rid}" if rid not in (None, "") else f"{prefix}-{lineno}"
        meta = {k: v for k, v in r.items() if k not in (q, a) and isinstance(v, (str, int, float))}
        return Item(item_id, _text(r, q), answer.upper() if answer_type == "choice" else answer,
                    answer_type, meta)
    return make


def _gpqa_maker(seed: int) -> Callable[[int, dict], Item]:
    # One generator walks the records in order, as the s1 harness shuffles them one after
    # another from a single seeded `random`: the letter mapping depends on the order.
    rng = random.Random(seed)

    def make(lineno: int, r: dict) -> Item:
        missing = [c for c in GPQA_COLUMNS if c not in r]
        if missing:
            raise _BadRecord(f"missing GPQA column(s) {', '.join(map(repr, missing))}")
        question = _text(r, "Question")
        correct = _text(r, "Correct Answer")
        wrong = [_text(r, f"Incorrect Answer {i}") for i in (1, 2, 3)]
        choices = wrong + [correct]
        rng.shuffle(choices)
        gold = CHOICE_LETTERS[choices.index(correct)]
        prompt = GPQA_PROMPT.format(Question=question, c1=choices[0], c2=choices[1],
                                    c3=choices[2], c4=choices[3])
        rid = r.get("Record ID") or f"line{lineno}"
        meta = {k: r[k] for k in ("Subdomain", "High-level domain") if r.get(k)}
        return Item(f"gpqa-{rid}", prompt, gold, "choice", meta)
    return make


# ---------------------------------------------------------------------------------------------
# the hub, only when the user is online and asked for it


def _hub_records(name: str, hub_id: str, config: str | None,
                 splits: tuple[str, ...]) -> Iterator[tuple[int, dict | None, str]]:
    hint = f"give a local copy with --benchmark-file {name}=FILE"
    offline = hub.unreachable()
    if offline:
        raise UserError(f"{name} is not shipped and the hub is offline ({offline}); {hint}")
    try:
        import datasets
    except ImportError:
        raise UserError(f"{name} needs the `datasets` package to load {hub_id}; install it or "
                        f"{hint}") from None
    try:
        loaded = datasets.load_dataset(hub_id, config) if config else datasets.load_dataset(hub_id)
    except Exception as e:  # network, auth (GPQA is gated), missing dataset: all user-fixable
        raise UserError(f"could not load {name} from the hub id {hub_id} "
                        f"({type(e).__name__}); log in (GPQA is gated) or {hint}") from None
    split = next((s for s in splits if s in loaded), next(iter(loaded)))
    for i, record in enumerate(loaded[split], 1):
        yield i, dict(record), ""


# ---------------------------------------------------------------------------------------------
# subsets and the public entry point


def _parse_subset(subset: str | dict | None) -> dict[str, set[str]]:
    """`"level=5"`, `"subject=Algebra,level=4|5"` or a dict -> {key: allowed values as text}."""
    if subset is None or subset == "" or subset == {}:
        return {}
    if isinstance(subset, dict):
        pairs = subset.items()
    else:
        pairs = []
        for part in str(subset).split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise UserError(f"subset {subset!r} must look like key=value[,key=value] "
                                "(e.g. level=5 or subject=Algebra)")
            pairs.append((key.strip(), value.strip()))
    wanted: dict[str, set[str]] = {}
    for key, value in pairs:
        values = value if isinstance(value, (list, tuple, set)) else str(value).split("|")
        wanted.setdefault(key, set()).update(str(v).strip().lower() for v in values)
    return wanted


def _apply_subset(bench: Benchmark, subset: str | dict | None) -> Benchmark:
    wanted = _parse_subset(subset)
    if not wanted:
        return bench
    keys = sorted({k for item in bench for k in item.meta})
    for key in wanted:
        if key not in keys:
            raise UserError(f"{bench.name} has no field {key!r} to select a subset on; it has: "
                            f"{', '.join(keys) or 'none'}")
    kept = [item for item in bench
            if all(str(item.meta.get(k)).strip().lower() in v for k, v in wanted.items())]
    if not kept:
        raise UserError(f"subset {subset!r} selects no question of {bench.name}")
    return Benchmark(bench.name, kept, bench.source, bench.skipped)


def shipped_benchmark(filename: str) -> Path:
    return Path(str(resources.files("s1") / "data" / "benchmarks" / filename))




def _tiny_item(lineno: int, r: dict) -> Item:
    return Item(_text(r, "id"), _text(r, "question"), _int_answer(_text(r, "answer")), "integer",
                {"domain": r.get("domain"), "msc": r.get("msc"),
                 "difficulty": r.get("difficulty")})


BENCHMARKS = ("aime24", "math500", "gsm8k", "tiny", "aime25", "gpqa-diamond")
_ALIASES = {"aime24_nofigures": "aime24", "openai_math": "math500", "math-500": "math500",
            "aime25_nofigures": "aime25", "gpqa": "gpqa-diamond", "gpqa_diamond": "gpqa-diamond",
            "gpqa_diamond_openai": "gpqa-diamond"}


def load_benchmark(name: str, limit: int | None = None, subset: str | dict | None = None,
                   seed: int = 0, path: str | Path | None = None,
                   question_field: str | None = None, answer_field: str | None = None,
                   answer_type: str | None = None, strict: bool = False) -> Benchmark:
    """Load a benchmark by name (`aime24`, `math500`, `gsm8k`, `aime25`, `gpqa-diamond`) or a
    JSONL path.

    `path` gives a local file for a named benchmark (required offline for aime25 / gpqa-diamond).
    `subset` keeps items whose metadata match (`"level=5"`, `"subject=Algebra"`), then `limit`
    keeps the first N. `seed` fixes GPQA's choice order. A bad record is logged with its line
    number and skipped (listed in `Benchmark.skipped`), or raises UserError when `strict`.
    """
    if limit is not None and limit < 1:
        raise UserError(f"limit must be a positive number of questions, not {limit}")
    if answer_type is not None:
        _check_answer_type(answer_type)
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    file = Path(path) if path is not None else None

    if key == "aime24":
        src = file or shipped_benchmark("aime24_nofigures.jsonl")
        bench = _build("aime24", _read_records(src), _aime24_item, strict, str(src))
    elif key == "math500":
        src = file or shipped_benchmark("math500.jsonl")
        bench = _build("math500", _read_records(src), _math500_item, strict, str(src))
    elif key == "gsm8k":
        src = file or shipped_benchmark("gsm8k_test.jsonl")
        bench = _build("gsm8k", _read_records(src), _gsm8k_item, strict, str(src))
    elif key == "tiny":
        src = file or shipped_benchmark("tiny.jsonl")
        bench = _build("tiny", _read_records(src), _tiny_item, strict, str(src))
    elif key == "aime25":
        make = _generic_maker(question_field, answer_field, answer_type or "integer", "aime25")
        if file:
            bench = _build("aime25", _read_records(file), make, strict, str(file))
        else:
            records = _hub_records("aime25", "TIGER-Lab/AIME25", None, ("train", "test"))
            bench = _build("aime25", records, make, strict, "hub:TIGER-Lab/AIME25")
    elif key == "gpqa-diamond":
        make = _gpqa_maker(seed)
        if file:
            bench = _build("gpqa-diamond", _read_records(file), make, strict, str(file))
        else:
            records = _hub_records("gpqa-diamond", "Idavidrein/gpqa", "gpqa_diamond", ("train",))
            bench = _build("gpqa-diamond", records, make, strict, "hub:Idavidrein/gpqa")
    else:
        file = file or Path(name)
        if not file.is_file():
            raise UserError(f"unknown benchmark {name!r}: use one of {', '.join(BENCHMARKS)} "
                            "or the path of a JSONL file")
        make = _generic_maker(question_field, answer_field, answer_type or "math", file.stem)
        bench = _build(file.stem, _read_records(file), make, strict, str(file))

    bench = _apply_subset(bench, subset)
    if limit is not None:
        bench = Benchmark(bench.name, bench.items[:limit], bench.source, bench.skipped)
    return bench
