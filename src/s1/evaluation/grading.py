"""Grading: is a model's answer to a benchmark item correct, and why.

1. The caller passes the answer segment (see `split_answer`); the short answer is extracted from
   it (`extract.py`).
2. It is verified by the item's answer type:
   - a number with a unit ("10\\text{ cm}^2", "10 weeks"), gold or answer, counts as its number;
   - integer golds (of any type): compared as integers when the answer is one ("023" = 23); a
     short plain-text answer line or sentence by the one number it states ("16 eggs * 4 = 64
     eggs"); anything else, boxes and LaTeX above all (`2^9`, `\\frac{3}{5}`), as mathematics;
   - `math`: exact text, then math-verify on the extracted answer only, wrapped in `$...$`,
     gold first (the call is not symmetric), then a formatting-free text comparison;
   - `choice`: the letter extractor against the gold letter.
3. An optional LLM judge gets a second look at answers the rules call wrong.

math-verify runs in killable worker processes under a hard deadline (`verifier.py`); a worker
that cannot start stops grading with `GraderUnavailable`, never a quiet fallback to text
comparison. Majority voting groups answers by the same verifier (`cluster_answers`).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable

from s1.errors import UserError
from s1.evaluation.benchmarks import Item
from s1.evaluation.extract import (as_integer, canonical_math, extract_choice, locate_answer,
                                   plain_number, split_answer, strip_unit)
from s1.evaluation.verifier import (MAX_ANSWER_CHARS, GraderUnavailable, VerifierPool, _get_pool,
                                    _math_env, cluster_answers, shutdown_verifiers, verify_math)

if TYPE_CHECKING:
    from s1.evaluation.judge import Judge

__all__ = ["Grade", "GraderUnavailable", "grade", "grade_many", "split_answer", "verify_math",
           "cluster_answers", "shutdown_verifiers"]


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# grading


def _grade_math(item: Item, extracted: str, source: str, timeout: float,
                pool: VerifierPool) -> Grade:
    # A number with a unit on either side ("10\\text{ cm}^2", "10 weeks") is compared (and
    # reported) by its number.
    gold, answer = strip_unit(item.answer), strip_unit(extracted)
    gold_int, pred_int = as_integer(gold), as_integer(answer)
    if gold_int is not None and pred_int is not None:
        ok = gold_int == pred_int
        return Grade(ok, answer, "integer match" if ok else "integer mismatch")
    if gold_int is not None and source != "box":
        # A plain-text answer line often shows its working ("16 eggs * 4 = 64 eggs"): read the
        # one number it states. Never a box or LaTeX: `\\frac{3}{5}` is not 5, `2^9` is 512;
        # those are evaluated as mathematics below.
        token = plain_number(answer)
        value = as_integer(re.sub(r"\.0+$", "", token)) if token is not None else None
        if token is not None:
            ok = value == gold_int
            return Grade(ok, token, "answer line number match" if ok
                         else "answer line number mismatch")
    if "".join(gold.split()) == "".join(answer.split()):
        return Grade(True, answer, "exact match")
    if len(answer) > MAX_ANSWER_CHARS:
        return Grade(False, answer[:200],
                     f"answer too long to verify ({len(answer)} characters)")
    verdict = pool.verify(_math_env(gold), _math_env(answer), timeout)
    if verdict == "equal":
        return Grade(True, answer, "math-verify equal")
    if verdict == "timeout":
        return Grade(False, answer, f"timeout (verification over {timeout:g}s)")
    same_text = canonical_math(gold) == canonical_math(answer)
    if verdict == "not equal":
        # math-verify can miss a match only formatting separates (text answers, odd units).
        return Grade(same_text, answer,
                     "normalized text match" if same_text else "math-verify not equal")
    return Grade(same_text, answer,
                 f"{verdict}; normalized text {'match' if same_text else 'mismatch'}")


def _grade_rules(answer_text: str, item: Item, timeout: float, pool: VerifierPool) -> Grade:
    if item.answer_type == "choice":
        letter = extract_choice(answer_text)
        if letter is None:
            return Grade(False, None, "no answer found")
        ok = letter == item.answer.strip().upper()
        return Grade(ok, letter, "letter match" if ok else "letter mismatch")
    extracted, source = locate_answer(answer_text)
    if extracted is None:
        return Grade(False, None, "no answer found")
    if item.answer_type in ("integer", "math"):
        return _grade_math(item, extracted, source, timeout, pool)
    raise UserError(f"item {item.id} has unknown answer type {item.answer_type!r}")


def _grade_one(answer_text: str, item: Item, judge: "Judge | None", timeout: float,
               pool: VerifierPool) -> Grade:
    if not isinstance(answer_text, str):
        raise UserError(f"the answer to {item.id} must be text, not {type(answer_text).__name__}")
    if timeout <= 0:
        raise UserError(f"the grading timeout must be positive, not {timeout}")
    result = _grade_rules(answer_text, item, timeout, pool)
    # The judge can only help where the rules may have missed an equivalence: not for two
    # different plain integers, a wrong letter, or an answer too long to be one.
    if (judge is None or result.correct or result.extracted is None
            or item.answer_type == "choice"
            or result.reason in ("integer mismatch", "answer line number mismatch")
            or result.reason.startswith("answer too long")):
        return result
    verdict = judge.equivalent(item.answer, result.extracted, question=item.question)
    if verdict is None:
        return Grade(False, result.extracted, f"{result.reason}; judge gave no verdict")
    return Grade(verdict, result.extracted,
                 f"{result.reason}; judge {'equal' if verdict else 'not equal'}")


def grade(answer_text: str, item: Item, judge: "Judge | None" = None,
          timeout: float = 5.0) -> Grade:
    """Grade one answer segment (the text after the end of thinking) against an item.

    `timeout` bounds each math-verify call in seconds. The judge, when given, is asked only
    about answers the rules call wrong, and never about letters or two different integers.
    """
    return _grade_one(answer_text, item, judge, timeout, _get_pool(1))


def grade_many(pairs: Iterable[tuple[str, Item]], judge: "Judge | None" = None,
               timeout: float = 5.0, workers: int | None = None) -> list[Grade]:
    """Grade (answer segment, item) pairs in parallel worker processes; results keep the order."""
    pairs = list(pairs)
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    pool = _get_pool(workers)
    if workers == 1 or len(pairs) <= 1:
        return [_grade_one(a, it, judge, timeout, pool) for a, it in pairs]
    # Threads only wait on pipes here; the verification itself runs in the pool's processes.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s1-grade") as ex:
        return list(ex.map(lambda p: _grade_one(p[0], p[1], judge, timeout, pool), pairs))
