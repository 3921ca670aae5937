"""Text utilities every stage shares: the answer segment of a model's output and the last
`\\boxed{}` in it (evaluation grades with them; training reads gold answers with them).

Linear scans only, so an adversarial text (a megabyte, braces nested ten thousand deep) costs
milliseconds; nothing is evaluated.
"""

from __future__ import annotations

import re
from typing import Iterable

#: End-of-thinking delimiters of the built-in thinking formats (s1, think-tags).
END_DELIMITERS = ("<|im_start|>answer", "</think>")

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def split_answer(text: str, end_delimiters: Iterable[str] = END_DELIMITERS) -> str:
    """The text after the last end-of-thinking delimiter; the whole text when there is none.

    Only the answer segment is graded: a trace that tried `\\boxed{5}` while thinking and answered
    `\\boxed{7}` must be read as 7 (math-verify would merge both into a set).
    """
    best_end = -1
    for delim in end_delimiters:
        if not delim:
            continue
        i = text.rfind(delim)
        if i >= 0:
            best_end = max(best_end, i + len(delim))
    if best_end < 0:
        return text
    return text[best_end:].lstrip("\n")


def matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, or -1; escaped `\\{`/`\\}` do not count."""
    depth = 0
    i, n = open_at, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # skip the escaped character, whatever it is
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (nested braces allowed), or None.

    `\\boxed 5` (a box without braces) gives `5`. An unterminated last box gives None rather than
    an earlier box: an earlier box is an abandoned attempt, not the answer.
    """
    found = find_box(text)
    return found[2] if found is not None else None


def find_box(text: str, before: int | None = None) -> tuple[int, int, str | None] | None:
    """The last box command that starts before `before` (default: anywhere): its start, the end
    of the box (after its closing brace) and its content (None when unterminated)."""
    limit = len(text) if before is None else before
    start = -1
    command = ""
    for cmd in _BOX_COMMANDS:
        i = text.rfind(cmd, 0, limit)
        # `\boxed` must not be the prefix of a longer command name (`\boxedx`).
        while i >= 0 and text[i + len(cmd):i + len(cmd) + 1].isalpha():
            i = text.rfind(cmd, 0, i)
        if i > start:
            start, command = i, cmd
    if start < 0:
        return None
    j = start + len(command)
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        close = matching_brace(text, j)
        if close < 0:
            return start, len(text), None
        return start, close + 1, text[j + 1:close].strip()
    if j > start + len(command):  # "\boxed 5": up to the next space or closing `$`
        m = re.match(r"[^\s$]+", text[j:])
        if m:
            return start, j + m.end(), m.group(0)
    return start, j, None
