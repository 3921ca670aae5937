"""What a completions server serves: its model entry, the tokenizer that model uses, and a
one-time check that our tokenizer and the server's agree.

Token ids only mean something with the tokenizer the server uses, so the remote engine never
guesses: `--tokenizer` (hub id, directory or .gguf) wins; else the model the user named; else
what `/v1/models` says (vLLM's `root` is the model path or hub id, llama-cpp-python's `id` the
GGUF path). The embedded SmolLM2 tokenizer is used only for the embedded GGUF.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from s1.errors import UserError
from s1.generation.engines.dialects import first_line
from s1.generation.models import EMBEDDED, EMBEDDED_FILE

SAMPLE = "Hello, world! 12 + 7 = 19.\nWait, is ü or 日本 fine? "


def pick_entry(entries: list[dict], model: str | None, base_url: str) -> dict:
    """The /v1/models entry to use: the one named `model`, else the first. A model given as a
    file (a .gguf, the embedded one) is served under a name of the server's choosing."""
    if not entries:
        raise UserError(f"the server at {base_url} lists no models on /v1/models")
    if model is None or model == EMBEDDED or model.endswith(".gguf"):
        return entries[0]
    for e in entries:
        if model in (e.get("id"), e.get("root")):
            return e
    names = ", ".join(str(e.get("id")) for e in entries)
    raise UserError(f"the server at {base_url} does not serve {model!r} (it serves {names})")


def tokenizer_source(model: str | None, entry: dict) -> str:
    """Where the served model's tokenizer comes from (see the module docstring)."""
    if model is not None:
        return model
    for name in (entry.get("root"), entry.get("id")):
        if not isinstance(name, str) or not name:
            continue
        if name == EMBEDDED or Path(name).name == EMBEDDED_FILE:
            return EMBEDDED
        p = Path(name).expanduser()
        if p.is_file() and name.endswith(".gguf") or p.is_dir() and (p / "config.json").is_file():
            return name
        if name.count("/") == 1 and not name.startswith((".", "/")) and not name.endswith(".gguf"):
            return name                  # a hub id (loaded from the cache or the hub)
    raise UserError(f"cannot tell which tokenizer the served model {entry.get('id')!r} uses; "
                    "give it with --tokenizer (a hub id, a model directory or a .gguf file)")


def load_tokenizer(source: str):
    """Our Tokenizer for a source: a .gguf (or the embedded model) → llama.cpp's own tokenizer
    of that file (what a llama.cpp server of it uses); a hub id or directory → transformers'."""
    from s1.generation.models import resolve_model

    ref = resolve_model(source)
    if ref.is_gguf:
        from s1.generation.engines.llamacpp import LlamaTokenizer, load_vocab
        return LlamaTokenizer(load_vocab(str(ref.gguf_path)))
    from s1.generation.engines.base import HFTokenizer
    from s1.generation.models import load_tokenizer as load_hf
    return HFTokenizer(load_hf(ref))


def vocab_size(tokenizer) -> int | None:
    """How many ids the tokenizer can decode (a model may sample beyond: its embedding is padded)."""
    llm = getattr(tokenizer, "llm", None)
    if llm is not None:
        return int(llm.n_vocab())
    tok = getattr(tokenizer, "tok", None)
    return len(tok) if tok is not None else None


def padded_vocab(source: str, tokenizer) -> range:
    """Ids the model can sample but the tokenizer cannot decode (Qwen2.5: 151665..152063), from
    the model's config when it is at hand; empty when unknown."""
    n = vocab_size(tokenizer)
    if n is None or getattr(tokenizer, "llm", None) is not None:
        return range(0)
    try:
        from transformers import AutoConfig

        from s1.generation.models import resolve_model
        ref = resolve_model(source)
        size = getattr(AutoConfig.from_pretrained(ref.path, **ref.pretrained_kwargs()), "vocab_size", None)
    except Exception:              # no config at hand: ids are still masked as they appear
        return range(0)
    return range(n, size) if isinstance(size, int) and 0 < size - n <= 4096 else range(0)


def check_tokenizer(base_url: str, model: str, tokenizer, headers: dict, timeout: float,
                    text: str) -> bool | None:
    """Ask the server to tokenize `text` (vLLM `/tokenize`, llama-cpp-python `/extras/tokenize`)
    and compare with ours. True = same ids, None = the server cannot tell; a mismatch is a
    UserError, since every id sent would mean something else there."""
    ours = tokenizer.encode(text)
    for path, body, key in (("/tokenize", {"model": model, "prompt": text, "add_special_tokens": False}, "tokens"),
                            ("/extras/tokenize", {"model": model, "input": text}, "tokens")):
        try:
            r = httpx.post(base_url + path, json=body, headers=headers, timeout=min(timeout, 30.0))
        except httpx.TransportError:
            return None
        if r.status_code in (404, 405):
            continue
        if r.status_code >= 400:
            return None
        try:
            theirs = list(r.json()[key])
        except (ValueError, KeyError, TypeError):
            return None
        if len(theirs) == len(ours) + 1 and theirs[1:] == ours:
            theirs = theirs[1:]          # llama-cpp-python adds the BOS the model asks for
        if theirs != ours:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                      min(len(ours), len(theirs)))
            raise UserError(f"the tokenizer does not match the server's ({base_url}{path} gives "
                            f"other ids from token {at} of a sample on): give the served model's "
                            "tokenizer with --tokenizer")
        return True
    return None


def context_length(base_url: str, entry: dict, headers: dict, timeout: float, dialect: str,
                   tokenizer) -> int | None:
    """The context the server runs with, as it tells it: vLLM's `max_model_len` on /v1/models,
    llama.cpp's `n_ctx` on /props, and for llama-cpp-python (which tells neither) the window its
    refusal of a longer prompt names. None when the server cannot tell."""
    if entry.get("max_model_len"):
        return int(entry["max_model_len"])
    try:
        r = httpx.get(f"{base_url}/props", headers=headers, timeout=min(timeout, 10.0))
        props = r.json() if r.status_code == 200 else {}
    except (httpx.TransportError, ValueError):
        props = {}
    if isinstance(props, dict):
        n = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        if isinstance(n, int) and n > 0:
            return n
    if dialect == "llama-cpp-python":
        return _refused_window(base_url, entry.get("id"), headers, timeout, tokenizer)
    return None


def _refused_window(base_url: str, model, headers: dict, timeout: float, tokenizer) -> int | None:
    """llama-cpp-python refuses a prompt of n_ctx tokens or more before evaluating anything, and
    names its n_ctx: ask with one token more than the model was trained on (a server set to more
    than that would evaluate it: then the trained context is what we use)."""
    trained = getattr(tokenizer, "context_length", None)
    if not trained:
        return None
    prompt = " hello" * (trained + 1)          # at least one token per word
    try:
        r = httpx.post(f"{base_url}/v1/completions", headers=headers, timeout=min(timeout, 60.0),
                       json={"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0})
    except httpx.TransportError:
        return None
    found = re.search(r"(?:maximum context length is|context window of) (\d+)", r.text)
    return int(found.group(1)) if r.status_code >= 400 and found else None


def models(base_url: str, headers: dict, timeout: float, retries: int, backoff: float,
           key_hint: str = "--api-key or $S1_SERVER_API_KEY") -> dict:
    """GET /v1/models with retries on transport errors and 5xx; every failure one clear line."""
    import time

    url = f"{base_url}/v1/models"
    r = None
    for attempt in range(retries + 1):
        try:
            r = httpx.get(url, timeout=min(timeout, 10.0), headers=headers)
        except httpx.TransportError as err:
            if attempt == retries:
                raise UserError(f"cannot reach the server at {base_url} "
                                f"({type(err).__name__}: {err})") from None
        else:
            if r.status_code < 500 and r.status_code not in (408, 429):
                break
            if attempt == retries:
                raise UserError(f"the server at {base_url} keeps failing "
                                f"(HTTP {r.status_code} on /v1/models)")
        time.sleep(backoff * 2 ** attempt)
    if r.status_code in (401, 403):
        raise UserError(f"the server at {base_url} refused the API key (HTTP {r.status_code}); "
                        f"give it with {key_hint}")
    if r.status_code >= 400:
        raise UserError(f"the server at {base_url} refused /v1/models "
                        f"(HTTP {r.status_code}): {first_line(r.text)}")
    try:
        return r.json()
    except ValueError:
        raise UserError(f"{base_url} is not an OpenAI-compatible server "
                        "(/v1/models is not JSON)") from None
