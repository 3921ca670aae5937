"""Answer extraction: from a model's text to the short answer that gets verified.

The order is the s1 harness's: keep only the answer segment (after the end of thinking), take
the last `\\boxed{}` (or `\\fbox{}`), else the last `Answer:`. Every function here is a linear
scan or a simple regex, so an adversarial text (a megabyte, braces nested ten thousand deep)
costs milliseconds; nothing is evaluated.
"""

from __future__ import annotations

import re

# Shared with training, so they live in s1.text; imported here for the extraction below.
from s1.text import END_DELIMITERS, last_boxed, split_answer  # noqa: F401

_ANSWER_ANCHOR = re.compile(r"answer\s*:", re.IGNORECASE)


def _clean(answer: str) -> str:
    """Strip the wrapping a model puts around a short answer: bold, `$`, a final period."""
    answer = answer.strip()
    for _ in range(4):  # bounded: each round peels one layer ("**$x$.**")
        previous = answer
        answer = answer.strip(" \t\r\n*")
        if len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$":
            answer = answer.strip("$").strip()
        answer = answer.rstrip(" \t\r\n.。")
        if answer == previous:
            break
    return answer


def answer_line(text: str) -> str | None:
    """What follows the last `Answer:` (case-insensitive, as simple-evals' ANSWER_PATTERN), up to
    the end of its line, or the next non-empty line when `Answer:` ends its own line."""
    last = None
    for last in _ANSWER_ANCHOR.finditer(text):
        pass
    if last is None:
        return None
    first_line = text[last.end():].lstrip().split("\n", 1)[0]
    return _clean(first_line) or None


def extract_answer(text: str) -> str | None:
    """The short answer of an answer segment: last box, else last `Answer:`, else None."""
    return locate_answer(text)[0]


def locate_answer(text: str) -> tuple[str | None, str]:
    """The short answer and where it came from: "box", "line" (an `Answer:` line) or "none"."""
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip(), "box"
    line = answer_line(text)
    return (line, "line") if line is not None else (None, "none")


# ---------------------------------------------------------------------------------------------
# integers and canonical forms

_INT = re.compile(r"[-+]?\d+")
MAX_INTEGER_DIGITS = 1000
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+")


def as_integer(answer: str | None) -> int | None:
    """The integer an answer states plainly ("023", "1,000", "$42$", "\\text{42}"), else None."""
    if answer is None:
        return None
    s = answer.strip()
    m = re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\{(.*)\}", s)
    if m:
        s = m.group(1)
    s = re.sub(r"(?<=\d)\\,(?=\d{3}(?!\d))", "", s)   # "1\\,000": a thin-space separator
    s = strip_currency(s).replace("\\!", "").replace("{,}", ",").replace("$", "").replace(" ", "")
    s = re.sub(r"\.$", "", s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    # No answer has a thousand digits; int() of a huge digit string is slow (and refused past
    # Python's 4300-digit limit), so such a "number" is left to the verifier's own caps.
    if len(s) > MAX_INTEGER_DIGITS or not _INT.fullmatch(s):
        return None
    return int(s)


def strip_currency(answer: str) -> str:
    """Drop escaped dollar signs (`\\$36`, MATH500's money golds): a currency mark, not math."""
    return answer.replace("\\$", "")


# ---------------------------------------------------------------------------------------------
# the one number a plain-text answer line states

#: A plain answer line is short; anything longer is prose or a cut-off derivation.
MAX_PLAIN_LINE = 120
_LATEX_MARK = re.compile(r"[\\{}^_$]")
_REMARK = re.compile(r"\([^()]*\)")        # "(since 6*7)", "(6*7)", "(per day)"
_BECAUSE = re.compile(r"\b(?:because|since|given|which)\b|;", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]+")
_SETUP = re.compile(r"\W*(?:let|suppose|assume|consider|denote|first|to|we|if|define)\b",
                    re.IGNORECASE)


def plain_number(line: str) -> str | None:
    """The single number a short plain-text answer line states, or None.

    GSM8K-style lines show their working ("16 eggs * 4 = 64 eggs", "2 + 62 = 64", "$18 a day",
    "42 (since 6*7)"): the number after the last `=`, with remarks and reasons dropped, and at
    most a few words of unit or phrasing around it. Anything else is not read by its digits:
    LaTeX (left to math-verify), two numbers ("204 or 5": a hedge), a number inside a word
    ("8-digit"), a long line, or the start of a derivation the answer cap cut off ("Let x be
    the number of 8 digit numbers").
    """
    s = line.strip()
    if not s or len(s) > MAX_PLAIN_LINE:
        return None
    s = re.sub(r"\\?\$(?=\d)", "", s)   # "$18", "\\$18": money, not a math environment
    if _LATEX_MARK.search(s):
        return None
    s = _REMARK.sub(" ", s)
    tail = _BECAUSE.split(s.rsplit("=", 1)[-1], 1)[0]
    numbers = list(_NUMBER.finditer(tail))
    if len(numbers) != 1:
        return None
    m = numbers[0]
    token = m.group(0).rstrip(",")
    before, after = tail[:m.start()], tail[m.start() + len(token):]
    if re.match(r"[-\w]", after) or re.search(r"\w-?$", before):
        return None   # part of a word or an identifier: "8-digit", "x2", "v-1"
    if len(_WORD.findall(before)) > 8 or len(_WORD.findall(after)) > 3:
        return None
    if _SETUP.match(s):
        return None   # the start of a derivation cut off by the answer cap, not a statement
    return token


_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox)\{([^{}]*)\}")


def canonical_math(answer: str) -> str:
    """A formatting-free form of a LaTeX answer, for exact comparison and majority voting.

    Only presentation is removed (spacing, `\\dfrac`, `\\left`, degree signs, text wrappers); the
    mathematics is untouched, so two different answers never collapse into one.
    """
    s = strip_currency(answer.strip()).strip("$")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = _WRAPPERS.sub(r"\1", s)
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\.$", "", s)
    return s


def canonical_answer(extracted: str | None, answer_type: str) -> str | None:
    """The key majority voting groups by: integers by value, letters upper-cased, LaTeX by its
    formatting-free form."""
    if extracted is None:
        return None
    if answer_type == "choice":
        return extract_choice(extracted)
    value = as_integer(extracted)
    if value is not None:
        return str(value)
    return canonical_math(extracted) or None


# ---------------------------------------------------------------------------------------------
# multiple choice

# The letter patterns run on a flattened copy of the text (each whitespace run becomes one space
# or one newline, markdown asterisks are dropped), so no two quantifiers compete for a long run
# of the same character: matching stays linear even on a megabyte of spaces.
# A letter may also be followed by its justification ("The answer is C because ..."); only
# connectives are allowed, so "the answer is a bit unclear" never reads as option A.
_LETTER_AFTER = (r"(?:\s?$|\s?[).:,;$}\]]|\s[-–—(]"
                 r"|\s(?:because|since|as|given|due|which|for|from|with)\b)")
_ANCHORED_LETTER = re.compile(
    r"answer\s?(?:is\s?)?:?\s?(?:option\s|choice\s)?[(\[]?\s?\$?\s?"
    r"(?:\\(?:text|textbf|mathrm|mathbf)\{)?\s?([A-Da-d])(?=" + _LETTER_AFTER + ")",
    re.IGNORECASE | re.MULTILINE)
_PHRASED_LETTER = re.compile(
    r"(?:correct|best|right)\s(?:answer|option|choice)\sis\s?:?\s?(?:option\s)?[(\[]?\s?"
    r"([A-D])(?=" + _LETTER_AFTER + r")|\b(?:[Oo]ption|[Cc]hoice)\s\(?([A-D])\)?\sis\scorrect",
    re.MULTILINE)
_LONE_LETTER = re.compile(r"\s?[(\[]?\s?([A-Da-d])\s?[)\].:]?\s?")
_PAREN_LETTER = re.compile(r"\(([A-D])\)")


def _flatten(text: str) -> str:
    return re.sub(r"\s+", lambda m: "\n" if "\n" in m.group(0) else " ", text.replace("*", ""))


def _letter_in(fragment: str) -> str | None:
    """A fragment that is nothing but a letter: `B`, `(B)`, `\\text{B}`, `B)`, `b.`."""
    s = _flatten(fragment).strip()
    if len(s) > 200:  # a letter answer is short; a long box is not one
        return None
    m = re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\{(.*)\}", s)
    if m:
        s = m.group(1)
    m = _LONE_LETTER.fullmatch(s)
    if m:
        return m.group(1).upper()
    # "(B) 3.2 eV" / "B) 3.2 eV": the letter of a choice quoted in full
    m = re.match(r"\s?\(?([A-D])\)\s", s)
    return m.group(1) if m else None


def extract_choice(text: str) -> str | None:
    """The option letter (A-D) a multiple-choice answer picks, or None.

    Tried in order: the last box; the last `Answer: X` (with `(X)`, `**`, `$`, `\\text{X}`
    around it); phrases like "the correct answer is (X)"; an answer that is only a letter; the
    last `(X)`. A letter counts only when nothing but punctuation or a separator follows it, so
    the article in "A careful analysis" is never read as option A.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        letter = _letter_in(boxed)
        if letter:
            return letter
    flat = _flatten(text)
    found = None
    for found in _ANCHORED_LETTER.finditer(flat):
        pass
    if found is not None:
        return found.group(1).upper()
    for found in _PHRASED_LETTER.finditer(flat):
        pass
    if found is not None:
        return (found.group(1) or found.group(2)).upper()
    letter = _letter_in(_clean(flat)) if len(flat) < 64 else None
    if letter:
        return letter
    for found in _PAREN_LETTER.finditer(flat):
        pass
    return found.group(1) if found is not None else None
