"""Training data: load (question, trace, attempt) records, tokenize them with the loss mask, and
report what the block size cuts off.

Sources: a hub id (simplescaling/s1K, simplescaling/s1K-1.1, online only), a local file or
directory (jsonl / json / parquet / csv, or a `save_to_disk` folder), or `math-pool`, the MATH
problems shipped with the package (solutions as traces, the last `\\boxed{}` as the attempt) so
the CPU path trains with no network.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from s1 import hub
from s1.errors import UserError
from s1.text import last_boxed
from s1.generation.formats import ThinkingFormat
from s1.training.format import FormattedExample, format_example

MATH_POOL = "math-pool"
SYNTHETIC = "synthetic"   # the miniature world (s1.miniature), generated from data.seed
SYNTHETIC_DEFAULT_SIZE = 2000

# Column names tried in order when the recipe does not name them: s1K first, then s1K-1.1's
# (whose r1 columns a recipe must ask for by name, since s1K-1.1 also carries the Gemini ones).
QUESTION_FIELDS = ("question", "problem", "prompt")
TRACE_FIELDS = ("thinking_trajectories", "deepseek_thinking_trajectory", "trace", "thinking",
                "solution")
ATTEMPT_FIELDS = ("attempt", "deepseek_attempt", "answer")


@dataclass(frozen=True)
class Record:
    question: str
    trace: str
    attempt: str


def _text(value) -> str:
    # s1K stores the trace as a list of strings; the paper joins them with newlines.
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _pick(columns, wanted: str | None, candidates: tuple[str, ...], what: str, source: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise UserError(f"{source} has no {what} column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise UserError(f"{source} has no {what} column (tried {', '.join(candidates)}; "
                    f"columns: {', '.join(columns)}); name it with data.{what}_field=COLUMN")


def math_pool_path() -> Path:
    return Path(str(resources.files("s1") / "data" / "pool" / "math_12k_train.jsonl"))


def load_math_pool(max_chars: int | None = None) -> list[Record]:
    """MATH training problems as s1 records; problems without a boxed answer are skipped."""
    records = []
    with open(math_pool_path(), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            attempt = last_boxed(row["solution"])
            if not attempt:
                continue
            rec = Record(row["problem"], row["solution"], attempt)
            if max_chars is None or len(rec.question) + len(rec.trace) <= max_chars:
                records.append(rec)
    return records


def _data_file(folder: Path) -> Path | None:
    for name in ("data.parquet", "data.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_table(source: str, split: str):
    """A datasets.Dataset from a local file/folder or a hub id, with a clear error offline."""
    import datasets

    path = Path(source).expanduser()
    try:
        if path.is_dir() and (path / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(
                path.suffix)
            if kind is None:
                raise UserError(f"cannot read {source}: give a .jsonl, .json, .parquet or .csv file")
            loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
        elif path.is_dir() and _data_file(path):
            # A curation step's folder (data.parquet beside its report): read the data file only.
            return _load_table(str(_data_file(path)), split)
        elif path.is_dir():
            loaded = datasets.load_dataset(str(path), split=split)
        elif source.count("/") == 1 and not source.startswith((".", "/", "~")):
            hub.unreachable()   # offline: read from the local cache, or fail at once (no retries)
            loaded = datasets.load_dataset(source, split=split)
        else:
            raise UserError(f"training data not found: {source} (give a .jsonl/.parquet file, a "
                            f"folder such as `s1 curate`'s output, a hub id like "
                            f"simplescaling/s1K, or {MATH_POOL!r})")
    except UserError:
        raise
    except Exception as err:  # datasets raises many types for offline / missing / bad split
        raise UserError(f"cannot load training data {source!r} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160]}); download it while online "
                        f"(`huggingface-cli download --repo-type dataset {source}`), give a local "
                        f"file, or train on the shipped {MATH_POOL!r}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"{source} has no split {split!r} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    return loaded


def load_synthetic(size: int | None, seed: int, world=None) -> list[Record]:
    """`size` problems of the miniature world with the teacher's traces; never a benchmark one."""
    from s1.miniature.world import benchmark_questions, generate

    rows = generate(size or SYNTHETIC_DEFAULT_SIZE, seed, world, exclude=benchmark_questions())
    return [Record(r["question"], r["trace"], r["answer"]) for r in rows]


def load_records(source: str, split: str = "train", question_field: str | None = None,
                 trace_field: str | None = None, attempt_field: str | None = None,
                 max_chars: int | None = None) -> list[Record]:
    if source == MATH_POOL:
        return load_math_pool(max_chars)
    table = _load_table(source, split)
    cols = table.column_names
    q = _pick(cols, question_field, QUESTION_FIELDS, "question", source)
    t = _pick(cols, trace_field, TRACE_FIELDS, "trace", source)
    a = _pick(cols, attempt_field, ATTEMPT_FIELDS, "attempt", source)
    records = []
    for row in table:
        rec = Record(_text(row[q]), _text(row[t]), _text(row[a]))
        if max_chars is None or len(rec.question) + len(rec.trace) <= max_chars:
            records.append(rec)
    if not records:
        raise UserError(f"{source} gave no training examples")
    return records


def hold_out(records: list[Record], size: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, held-out): a seeded share (size < 1) or count of the records, kept out of training."""
    n = round(len(records) * size) if size < 1 else int(size)
    if size and not 1 <= n < len(records):
        raise UserError(f"data.eval_size {size:g} holds out {n} of {len(records)} examples; "
                        "keep at least one for each side")
    if not n:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n])
    return ([r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held])


def select(records: list[Record], max_examples: int | None, seed: int) -> list[Record]:
    """A seeded subset, so a smoke recipe sees the same examples on every machine."""
    if max_examples is None or max_examples >= len(records):
        return records
    return random.Random(seed).sample(records, max_examples)


# --- tokenization with the loss mask ----------------------------------------------------------

IGNORE = -100  # the label torch's cross-entropy skips


def tokenize(example: FormattedExample, tokenizer) -> tuple[list[int], list[int]]:
    """input_ids and labels: labels are -100 on every token that starts inside the prompt.

    The mask comes from character offsets, not token ids: the embedded model's pad token is its
    end-of-turn token, which must be trained, and delimiters like `<|im_start|>` occur in both
    the prompt and the completion.
    """
    enc = tokenizer(example.text, add_special_tokens=False, return_offsets_mapping=True)
    boundary = len(example.prompt)
    ids = enc["input_ids"]
    labels = [tok if start >= boundary else IGNORE
              for tok, (start, _end) in zip(ids, enc["offset_mapping"])]
    return ids, labels


@dataclass
class TruncationReport:
    """What the block size did to the training set (the paper lost 20 AIME points to this)."""

    block_size: int
    examples: int = 0
    truncated: int = 0            # examples cut at block_size
    dropped: int = 0              # examples whose trained part was cut away entirely
    trained_tokens: int = 0       # completion tokens kept
    trained_tokens_cut: int = 0   # completion tokens lost to truncation
    longest: int = 0              # longest example, in tokens, before truncation
    lengths: list[int] = field(default_factory=list, repr=False)

    @property
    def share_truncated(self) -> float:
        return self.truncated / self.examples if self.examples else 0.0

    def summary(self) -> str:
        if not self.truncated:
            return (f"block size {self.block_size}: no example truncated "
                    f"({self.examples} examples, longest {self.longest} tokens)")
        lost = self.trained_tokens_cut / max(1, self.trained_tokens + self.trained_tokens_cut)
        return (f"block size {self.block_size} TRUNCATES {self.truncated} of {self.examples} "
                f"examples ({self.share_truncated:.0%}), cutting {lost:.1%} of the trained tokens "
                f"(longest {self.longest} tokens; {self.dropped} dropped with nothing left to "
                f"train). The paper's 4096-token ablation cut 74% of s1K and lost 20 AIME points: "
                f"raise data.block_size unless this is a smoke run")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("lengths")
        d["share_truncated"] = self.share_truncated
        return d


def build_dataset(records: list[Record], tokenizer, fmt: ThinkingFormat, block_size: int):
    """Tokenized, masked, truncated datasets.Dataset (input_ids, labels) and its report."""
    import datasets

    report = TruncationReport(block_size)
    rows: dict[str, list] = {"input_ids": [], "labels": []}
    for rec in records:
        ids, labels = tokenize(format_example(rec.question, rec.trace, rec.attempt, tokenizer, fmt),
                               tokenizer)
        trained = sum(lab != IGNORE for lab in labels)
        report.examples += 1
        report.longest = max(report.longest, len(ids))
        report.lengths.append(len(ids))
        if len(ids) > block_size:
            report.truncated += 1
            ids, labels = ids[:block_size], labels[:block_size]
        kept = sum(lab != IGNORE for lab in labels)
        report.trained_tokens += kept
        report.trained_tokens_cut += trained - kept
        if kept == 0:
            report.dropped += 1
            continue
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
    if not rows["input_ids"]:
        raise UserError(f"block size {block_size} leaves no example with a trained token; "
                        "raise data.block_size")
    return datasets.Dataset.from_dict(rows), report
