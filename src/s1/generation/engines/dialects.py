"""How token ids cross the wire to a completions server: one class per server family.

- `IdsDialect` (vLLM's completions API): the prompt goes as token ids, each streamed chunk
  carries its new ids (`return_token_ids`, vLLM >= 0.10.2), the server stops on
  `stop_token_ids` itself and `min_tokens` holds those stops (and EOS) back, exactly the
  harness's way of forbidding an end right after "Wait".
- `LlamaCppPythonDialect` (`python -m llama_cpp.server`): prompts and replies are text only and
  special tokens stream as "". Prompts are the exact decode of our ids (counted when they do not
  re-tokenize to the same ids); the server streams one chunk per token (only the bytes of an
  unfinished UTF-8 character are grouped), so the ids are read back from the chunks' bytes. It
  cannot stop on an id: a segment runs on and is cut client-side where the Forcer says.

llama.cpp's native server (`llama-server`) and SGLang are not tested here; SGLang's and
llama-server's completions APIs differ from both (no streamed token ids), so they are not
claimed.
"""

from __future__ import annotations

import json
from typing import Sequence

from s1.errors import UserError
from s1.generation.budget import Sampling

DIALECTS = ("auto", "ids", "llama-cpp-python")


class Chunk:
    """What one streamed event says: new ids, and how the segment ended (on its last event)."""

    __slots__ = ("ids", "finish", "stop_reason", "guessed")

    def __init__(self, ids: list[int], finish: str | None = None, stop_reason=None,
                 guessed: bool = False):
        self.ids, self.finish, self.stop_reason = ids, finish, stop_reason
        self.guessed = guessed    # the ids were split out of several tokens' bytes


class IdsDialect:
    name = "ids"
    stops_on_ids = True       # the server ends a segment on stop_token_ids itself

    def body(self, model: str, seq: Sequence[int], max_tokens: int, sampling: Sampling,
             seed: int, stop_ids: Sequence[int], min_tokens: int, bias: dict[int, float]) -> dict:
        # Every sampling field explicit: vLLM fills unset ones from the model's generation
        # config (Qwen2.5: top_k=20, repetition_penalty=1.05), which is not what was asked.
        body = {"model": model, "prompt": list(seq), "max_tokens": max_tokens, "stream": True,
                "temperature": sampling.temperature, "top_p": sampling.top_p,
                "top_k": sampling.top_k or -1, "min_p": sampling.min_p, "seed": seed,
                "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                "stop_token_ids": list(stop_ids), "return_token_ids": True,
                "skip_special_tokens": False, "spaces_between_special_tokens": False,
                "include_stop_str_in_output": True}
        if min_tokens:
            body["min_tokens"] = min_tokens
        if bias:
            body["logit_bias"] = {str(t): b for t, b in sorted(bias.items())}
        return body

    def parse(self, event: dict, base_url: str) -> Chunk | None:
        choices = event.get("choices") or []
        if not choices:
            return None                         # a usage-only event
        choice = choices[0]
        ids = choice.get("token_ids")
        if ids is None and (choice.get("text") or choice.get("finish_reason") is None):
            raise UserError(f"the server at {base_url} returns no token ids; it needs "
                            "`return_token_ids` (vLLM >= 0.10.2), or use --dialect "
                            "llama-cpp-python for llama-cpp-python's server")
        return Chunk(list(ids or []), choice.get("finish_reason"), choice.get("stop_reason"))


class LlamaCppPythonDialect:
    name = "llama-cpp-python"
    stops_on_ids = False

    def __init__(self, tokenizer, trigger: int):
        llm = getattr(tokenizer, "llm", None)
        if llm is None:
            raise UserError("a llama-cpp-python server needs the GGUF's own tokenizer: give the "
                            ".gguf file as --tokenizer")
        self.tokenizer = tokenizer
        table: dict[bytes, int] = {}
        for i in range(llm.n_vocab()):
            table.setdefault(llm.detokenize([i], special=False), i)
        # Special tokens all stream as "": the one that can occur mid-stream is the end of
        # thinking (EOS never streams, the server stops on it).
        if trigger is not None and llm.detokenize([trigger], special=False) == b"":
            table[b""] = trigger
        else:
            table.pop(b"", None)
        self.pieces = table

    def text(self, seq: Sequence[int]) -> tuple[str, bool]:
        """The prompt text and whether it re-tokenizes to exactly these ids."""
        text = self.tokenizer.decode(seq)
        return text, self.tokenizer.encode(text) == list(seq)

    def body(self, model: str, prompt: str, max_tokens: int, sampling: Sampling, seed: int,
             bias: dict[int, float]) -> dict:
        # Neutral top_k/min_p/penalties: greedy is the argmax, sampling plain temperature +
        # top-p (+ top-k), as in the in-process engines.
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                "temperature": sampling.temperature, "top_p": sampling.top_p,
                "top_k": sampling.top_k, "min_p": 0.0, "seed": seed, "repeat_penalty": 1.0,
                "typical_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
        if bias:
            body["logit_bias"] = {str(t): b for t, b in sorted(bias.items())}
        return body

    def parse(self, event: dict, base_url: str) -> Chunk | None:
        choice = (event.get("choices") or [{}])[0]
        finish = choice.get("finish_reason")
        if finish is not None:
            return Chunk([], finish)            # the closing event carries no token
        raw = choice.get("text", "").encode("utf-8")
        if raw in self.pieces:
            return Chunk([self.pieces[raw]])
        ids = _split(raw, self.pieces) or self.tokenizer.encode(raw.decode("utf-8", "replace"))
        return Chunk(ids, guessed=True)


def _split(raw: bytes, pieces: dict[bytes, int]) -> list[int] | None:
    """The fewest tokens whose bytes make up raw (an unfinished UTF-8 character streamed as one)."""
    best: list[list[int] | None] = [None] * (len(raw) + 1)
    best[0] = []
    for i in range(len(raw)):
        if best[i] is None:
            continue
        for j in range(i + 1, len(raw) + 1):
            t = pieces.get(raw[i:j])
            if t is not None and raw[i:j] and (best[j] is None or len(best[i]) + 1 < len(best[j])):
                best[j] = best[i] + [t]
    return best[-1]


async def sse(response):
    """The JSON events of a server-sent-events body, up to `[DONE]`."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield json.loads(data)


def first_line(text: str) -> str:
    """The message of an OpenAI-style error body (or its first line)."""
    try:
        err = json.loads(text)
        err = err.get("error", err) if isinstance(err, dict) else err
        text = err.get("message", text) if isinstance(err, dict) else str(err)
    except ValueError:
        pass
    return (str(text).strip().splitlines() or [""])[0][:300]
