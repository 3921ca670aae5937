"""An optional LLM judge of answer equivalence, through any OpenAI-compatible chat endpoint.

The s1 paper graded non-integer answers with gpt-4o-mini (temperature 0.5) deciding whether the
model's answer matches the reference. Here the judge is a second opinion only: `grade()` asks it
about answers the rule-based check calls wrong, so it can rescue "0.5 m" vs "\\frac12", never
overturn a match. Its temperature is a setting (0 by default: the paper's 0.5 adds noise).
"""

from __future__ import annotations

import logging
import os
import re

import httpx

from s1.errors import UserError

log = logging.getLogger("s1.evaluation")

JUDGE_INSTRUCTIONS = """\
You check answers to math problems. You are given a reference answer and a student's final \
answer. Decide whether they are the same answer: mathematically equal values or expressions, \
the same set or interval, or the same choice, even when written differently (fractions vs \
decimals, reordered terms, equivalent radicals, with or without units or "x ="). They are NOT the \
same when they differ in value, when the student's answer is incomplete or gives several \
candidates, or when it only restates the problem. Do not solve the problem yourself and do not \
judge the reasoning: compare the two answers only.

Reply with one word: YES if they are the same answer, NO otherwise."""

_USER_TEMPLATE = "{question}Reference answer: {gold}\nStudent's final answer: {answer}"


class Judge:
    """Asks an OpenAI-compatible `/chat/completions` endpoint whether two answers are equal."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 temperature: float = 0.0, max_tokens: int = 16, timeout: float = 60.0,
                 retries: int = 2, include_question: bool = False) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"judge URL {base_url!r} must start with http:// or https://")
        if not 0.0 <= temperature <= 2.0:
            raise UserError(f"judge temperature must be between 0 and 2, not {temperature}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.retries = retries
        # Off by default: the question adds tokens and GPQA questions must not leave the machine
        # unless the user chooses so.
        self.include_question = include_question
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self.calls = 0
        self.last_error: str | None = None

    def messages(self, gold: str, answer: str, question: str | None = None) -> list[dict]:
        q = f"Problem: {question}\n" if (question and self.include_question) else ""
        return [{"role": "system", "content": JUDGE_INSTRUCTIONS},
                {"role": "user", "content": _USER_TEMPLATE.format(question=q, gold=gold,
                                                                  answer=answer)}]

    def equivalent(self, gold: str, answer: str, question: str | None = None) -> bool | None:
        """True / False as the judge says; None when it cannot be reached or replies off-format."""
        body = {"model": self.model, "messages": self.messages(gold, answer, question),
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        for attempt in range(self.retries + 1):
            self.calls += 1
            try:
                response = self._client.post(self.url, json=body)
                response.raise_for_status()
                text = response.json()["choices"][0]["message"]["content"] or ""
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("judge request failed (attempt %d): %s", attempt + 1, self.last_error)
                continue
            return parse_verdict(text)
        return None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_verdict(text: str) -> bool | None:
    """YES / NO as the first word of a reply (reasoning models may think first: we skip a
    `<think>` block)."""
    text = re.sub(r"(?s)<think>.*?</think>", "", text)
    m = re.search(r"[A-Za-z]+", text)
    if not m:
        return None
    word = m.group(0).lower()
    if word == "yes":
        return True
    if word == "no":
        return False
    return None
