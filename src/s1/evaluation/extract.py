"""Answer extraction: from a model's text to the short answer that gets verified.

Only the answer segment is read (after the end of thinking). Its final answer is found by a few
named patterns, tried in this order (simple-evals reads its `ANSWER_PATTERN` the same way):

1. the last `\\boxed{}` (or `\\fbox{}`), together with the boxes just before it when only
   separators stand between them (`\\boxed{1}, \\boxed{2}`, "... and \\boxed{(6, 2)}"): one
   answer written in several boxes. A box that prose separates from the last one is an
   abandoned attempt;
2. Minerva's sentence (`MINERVA_ANSWER`, "Final Answer: The final answer is X. I hope it is
   correct.", lm-eval's minerva_math format), which also wins over a box written before it;
3. the last `Answer:` line (`ANSWER_LINE`);
4. the last "the answer is $X$" / "Answer \\(X\\)" (`ANSWER_MATH`), else "the answer is X"
   (`ANSWER_IS`) up to the end of its line.

Every function here is a linear scan or a regex with bounded repeats, so an adversarial text (a
megabyte, braces nested ten thousand deep) costs milliseconds; nothing is evaluated.
"""

from __future__ import annotations

import re

# Shared with training, so they live in s1.text; imported here for the extraction below.
from s1.text import END_DELIMITERS, find_box, last_boxed, split_answer  # noqa: F401

#: "Final Answer: The final answer is X. I hope it is correct." (Minerva, lm-eval minerva_math)
MINERVA_ANSWER = re.compile(
    r"final\s+answer\s+is(?P<answer>[^\n]{1,300}?)I hope it is correct",
    re.IGNORECASE)
#: `Answer:` (simple-evals' ANSWER_PATTERN anchor); what follows is read up to the end of the line
ANSWER_LINE = re.compile(r"answer\s*:", re.IGNORECASE)
#: "the answer is $X$", "Answer \\( X \\)", "answer: \\[ X \\]": a math environment after "answer"
ANSWER_MATH = re.compile(
    r"\banswer\b(?:\s*is\b)?[\s:]{0,20}(?P<answer>\$\$[^$]{1,2000}\$\$|\$(?:[^$\\]|\\.){1,2000}\$"
    r"|\\\((?:(?!\\\)).){1,2000}\\\)|\\\[(?:(?!\\\]).){1,2000}\\\])",
    re.IGNORECASE | re.DOTALL)
#: "the answer is X": the rest of the line
ANSWER_IS = re.compile(r"\banswer\s+is\b[ \t:]*(?P<answer>[^\n]{1,300})", re.IGNORECASE)

MAX_SHORT_ANSWER = 2000
# Minerva's closing remark, or a chat template's next turn (`<|im_start|>user`) after the answer.
_TAIL = re.compile(r"I hope it is correct|<\|[a-z_]{1,20}\|>", re.IGNORECASE)
_MATH_DELIMITERS = re.compile(r"(?:\$\$|\$|\\\(|\\\[)(.*?)(?:\$\$|\$|\\\)|\\\])", re.DOTALL)


def _clean(answer: str) -> str:
    """Strip the wrapping a model puts around a short answer: bold, `$`, `\\(...\\)`, quotes, a
    final period, Minerva's closing "I hope it is correct"."""
    short = len(answer) < MAX_SHORT_ANSWER   # the regexes below only ever see a short text
    tail = _TAIL.search(answer) if short else None
    answer = (answer[:tail.start()] if tail else answer).strip()
    for _ in range(4):  # bounded: each round peels one layer ("**$x$.**")
        previous = answer
        answer = answer.strip(" \t\r\n*\"“”")
        m = _MATH_DELIMITERS.fullmatch(answer) if short else None
        if m and "$" not in m.group(1):
            answer = m.group(1).strip()
        elif not short and len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$":
            answer = answer.strip("$").strip()
        answer = answer.rstrip(" \t\r\n.。")
        if answer == previous:
            break
    return answer


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    found = None
    for found in pattern.finditer(text):
        pass
    return found


#: A statement pattern is tried at the last few occurrences of "answer" only: each try reads a
#: bounded stretch, so a text that repeats "answer \\(" a hundred thousand times stays linear.
MAX_ANSWER_TRIES = 16


def _answer_words(text: str) -> list[int]:
    """Where the last few words "answer" start (any case), last first: found from the end, so
    a long text costs one lower-casing and a scan of its tail."""
    lower, starts, end = text.lower(), [], len(text)
    while len(starts) < MAX_ANSWER_TRIES:
        i = lower.rfind("answer", 0, end)
        if i < 0:
            break
        end = i
        if not (i > 0 and lower[i - 1].isalnum()) and not lower[i + 6:i + 7].isalnum():
            starts.append(i)
    return starts


def _last_statement(pattern: re.Pattern, text: str, starts: list[int],
                    skip: int = 0) -> re.Match | None:
    """The last match of `pattern` that starts `skip` characters before one of `starts`."""
    for start in starts:
        found = pattern.match(text, max(0, start - skip))
        if found is not None:
            return found
    return None


_STATEMENT = re.compile(r"^[^=]{1,80}?\s(?:is|are|equals)\s+(?P<answer>\S.*)$")


def answer_line(text: str) -> str | None:
    """What follows the last `Answer:` (case-insensitive, as simple-evals' ANSWER_PATTERN), up to
    the end of its line, or the next non-empty line when `Answer:` ends its own line. A line that
    names what it answers ("The largest $n$ is 34") gives what follows its first "is"."""
    last = _last(ANSWER_LINE, text)
    if last is None:
        return None
    line = _clean(text[last.end():].lstrip().split("\n", 1)[0])
    m = _STATEMENT.match(line)
    if m and len(line.split()) <= 24:
        line = _clean(m.group("answer"))
    return line or None


def extract_answer(text: str) -> str | None:
    """The short answer of an answer segment (see the module's order), or None."""
    return locate_answer(text)[0]


#: At most this many boxes are read as one answer, each at most this far from the next.
MAX_JOINED_BOXES = 64
MAX_BOX_GAP = 120
_GAP_MARKUP = re.compile(r"\\(?:text|mbox|textnormal|mathrm|textbf)\{([^{}]*)\}"
                         r"|\\[()\[\]]|\\q?quad\b|\\[,;:! ]|\$|&|\\\\")
_GAP_ASSIGNMENT = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?\s*=\s*$")  # "x = ", "y_2 = " before a box
_JOINERS = {"and", "or", ",", ";"}


def _joins(gap: str) -> bool:
    """Whether the text between two boxes only separates two parts of one answer: spacing, math
    delimiters, `,`, `and`, `\\text{ and }`, "x =", or a few words ending in "and"/"or"."""
    if len(gap) > MAX_BOX_GAP:
        return False
    rest = _GAP_MARKUP.sub(lambda m: f" {m.group(1) or ''} ", gap)
    rest = _GAP_ASSIGNMENT.sub("", rest.strip())
    rest = re.sub(r"\(\w\)", " ", rest)                # "for part (a) and"
    if re.search(r"[\d.=]", rest):
        return False                                   # a number or a sentence between: not one answer
    words = re.findall(r"[A-Za-z]+|[,;]", rest)
    if not words:
        return True
    return words[-1].lower() in _JOINERS and sum(w.isalpha() for w in words) <= 4


def final_boxes(text: str) -> tuple[str, int] | None:
    """The last box's content, joined with the boxes right before it that hold other parts of the
    same answer ("1, 2" from `\\boxed{1}, \\boxed{2}`), and where the last box ends; None when
    there is no box, or the last is empty or unterminated."""
    found = find_box(text)
    if found is None or not found[2]:
        return None
    first, end, content = found
    parts = [content]
    while len(parts) < MAX_JOINED_BOXES:
        before = find_box(text, before=first)
        if before is None or before[2] is None or not before[2] or before[1] > first:
            break
        if not _joins(text[before[1]:first]):
            break
        parts.append(before[2])
        first = before[0]
    return ", ".join(reversed(parts)), end


def locate_answer(text: str) -> tuple[str | None, str]:
    """The short answer and where it came from: "box", "minerva" (Minerva's final-answer
    sentence), "line" (an `Answer:` line), "statement" ("the answer is ...") or "none"."""
    boxed = final_boxes(text)
    starts = _answer_words(text)
    minerva = _last_statement(MINERVA_ANSWER, text, starts, skip=len("final "))
    if minerva is not None and (boxed is None or minerva.start() >= boxed[1]):
        answer = _clean(minerva.group("answer"))
        if answer:
            return answer, "minerva"
    if boxed is not None:
        return boxed[0], "box"
    line = answer_line(text)
    if line is not None:
        return line, "line"
    for pattern in (ANSWER_MATH, ANSWER_IS):
        found = _last_statement(pattern, text, starts)
        if found is not None:
            answer = _clean(found.group("answer"))
            if answer:
                return answer, "statement"
    return None, "none"


# ---------------------------------------------------------------------------------------------
# integers and canonical forms

_INT = re.compile(r"[-+]?\d+")
MAX_INTEGER_DIGITS = 1000
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+")


def as_integer(answer: str | None) -> int | None:
    """The integer an answer states plainly ("023", "1,000", "$42$", "\\text{42}", "\\$1,000"),
    else None. "32, 349" is a list of two numbers, not 32349."""
    if answer is None:
        return None
    s = answer.strip()
    m = re.fullmatch(r"\\(?:text|textbf|mathrm|mathbf)\{(.*)\}", s)
    if m:
        s = m.group(1)
    s = re.sub(r"(?<=\d)\\,(?=\d{3}(?!\d))", "", s)   # "1\\,000": a thin-space separator
    s = re.sub(r",\\!\s*", ",", s)                     # "11,\\! 111": MATH's separator, then a space
    s = strip_currency(s).replace("\\!", "").replace("{,}", ",").replace("$", "")
    if re.search(r",\s", s):
        return None                                   # "32, 349": a list, not a separator
    s = re.sub(r"\.$", "", s.replace(" ", ""))
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    # No answer has a thousand digits; int() of a huge digit string is slow (and refused past
    # Python's 4300-digit limit), so such a "number" is left to the verifier's own caps.
    if len(s) > MAX_INTEGER_DIGITS or not _INT.fullmatch(s):
        return None
    return int(s)


_CURRENCY = re.compile(r"\\\$|\\text\{\s*\}|\\euro\b|[€£¥]")


def strip_currency(answer: str) -> str:
    """Drop currency marks: escaped dollar signs (`\\$36`, MATH500's money golds), €, £, ¥."""
    return _CURRENCY.sub("", answer.replace("\\text{\\$}", ""))


_UNIT = re.compile(
    r"(?P<number>[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+))\s*"
    r"(?:\\(?:text|mbox|textnormal|mathrm)\{\s*(?P<unit>[A-Za-z][A-Za-z .]{0,30})\}"
    r"|\s(?P<words>[A-Za-z]{2,20}(?:\s[A-Za-z]{2,20}){0,2})|(?P<word>[A-Za-z]{4,20}))"
    r"\s*(?:\^\s*\{?[23]\}?)?")
#: Words after a number that are mathematics, not a unit ("10 pi").
_NOT_UNITS = {"pi", "and", "or", "times", "sqrt", "cdot", "mod", "pmod", "i", "e"}


def strip_unit(answer: str) -> str:
    """The number of an answer that is a number and a unit ("10\\text{ cm}^2", "10 weeks",
    "125 miles": 10, 10, 125); any other answer unchanged. A unit never hides a wrong number, and
    graders compare the numbers (hendrycks/math and MARIO_EVAL drop units the same way)."""
    m = _UNIT.fullmatch(answer.strip()) if len(answer) < 200 else None
    if m is None:
        return answer
    unit = (m.group("unit") or m.group("words") or m.group("word")).strip().lower()
    if not unit or set(unit.split()) & _NOT_UNITS:
        return answer
    return m.group("number")


# ---------------------------------------------------------------------------------------------
# the one number a plain-text answer line states

#: A plain answer line is short; anything longer is prose or a cut-off derivation.
MAX_PLAIN_LINE = 120
_LATEX_MARK = re.compile(r"[\\{}^_$]")
_REMARK = re.compile(r"\([^()]*\)")        # "(since 6*7)", "(6*7)", "(per day)"
_BECAUSE = re.compile(r"\b(?:because|since|given|which)\b|;", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]+")
_NEGATION = re.compile(r"\b(?:not|never)\b|n't\b", re.IGNORECASE)
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
    if _NEGATION.search(before) or _NOT_UNITS & {w.lower() for w in _WORD.findall(after)}:
        return None   # "not 12", "10 pi": the number alone is not what the line states
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
    extracted = strip_unit(extracted)
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
