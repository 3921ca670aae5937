"""A fake vLLM server on loopback, backed by the embedded GGUF (llama.cpp in-process).

It follows vLLM's documented OpenAI-compatible completions API (vllm/entrypoints/openai/
completion/protocol.py and serving.py, /tokenize, /v1/models) as far as the remote engine uses
it: token-id prompts, `return_token_ids` (streamed as per-chunk deltas, `prompt_token_ids` in the
first chunk), `stop_token_ids` (the stop id stays in `token_ids`, `stop_reason` names it),
`min_tokens` (holds back EOS and the stop ids), `logit_bias` (clamped to ±100), `ignore_eos`,
`finish_reason` "stop"/"length", vLLM's 400/404 errors (over the context, out-of-vocabulary ids,
unknown model) and unset sampling fields filled from the model's generation config (like
Qwen2.5's top_k=20), which is why clients must send them explicitly.

With a `reward` function it is also a process reward model behind vLLM's pooling API
(`POST /pooling`, as vllm/entrypoints/pooling/pooling/protocol.py): a chat request whose assistant
turn has `<extra_0>` after each step is answered as vLLM's Qwen2ForProcessRewardModel (STEP
pooling) answers it, one [P(bad), P(good)] pair per step, the probabilities `reward(question,
steps)` gives.

For tests it records every request body, counts streams the client closed early, can answer
the next completions with given error statuses, and can pretend the model has a padded
embedding whose extra id wins at a given step (`oov_at`), as vLLM does at T=1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

GENERATION_CONFIG = {"top_k": 20, "repetition_penalty": 1.0}   # what vLLM fills unset fields with
PADDING = 64                                                   # padded embedding beyond the vocab


class FakeVLLM:
    def __init__(self, gguf: str, served_name: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
                 root: str | None = None, n_ctx: int = 2048, tokenizer_shift: int = 0,
                 reward=None):
        import llama_cpp

        from s1.generation.engines.llamacpp import load_llama

        self.llm = load_llama(gguf, n_ctx=n_ctx)     # the in-process engine's settings
        self.n_vocab = self.llm.n_vocab()
        vocab = self.llm._model.vocab
        self.eos = {i for i in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)}
        self.served_name, self.root, self.n_ctx = served_name, root or gguf, n_ctx
        self.tokenizer_shift = tokenizer_shift    # a server whose tokenizer differs from ours
        self.reward = reward                      # (question, steps) -> P(good) per step
        self.bodies: list[dict] = []
        self.aborted = 0
        self.completed = 0
        self.fail_next: list[int] = []            # statuses for the next completions
        self.oov_at: int | None = None
        self.errors: list[str] = []               # what uvicorn logged at ERROR
        self._lock = asyncio.Lock()               # one request at a time on the model
        self._model = threading.Lock()            # a cancelled request's thread may still run
        self.app = self._build()

    # --- the model -----------------------------------------------------------------------------

    def _eval_prompt(self, ids: list[int]) -> None:
        from s1.generation.engines.llamacpp import reuse_prefix

        self.llm.eval(reuse_prefix(self.llm, ids))   # a prefix-cache hit, as vLLM's

    def _logits(self) -> np.ndarray:
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        z = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        return np.concatenate([z, np.full(PADDING, -1e9)])   # the padded rows never win...

    def _sample(self, p: dict, step: int, rng) -> int:
        z = self._logits()
        if self.oov_at is not None and step == self.oov_at:
            z[self.n_vocab + 3] = z.max() + 1.0               # ...except where a test says so
        for t, b in p["logit_bias"].items():
            z[t] += b
        if step < p["min_tokens"]:
            for t in self.eos | set(p["stop_token_ids"]):
                z[t] = -np.inf
        if p["temperature"] < 1e-5:
            return int(z.argmax())
        z = z / p["temperature"]
        if p["top_k"] > 0:
            z[z < np.partition(z, -p["top_k"])[-p["top_k"]]] = -np.inf
        prob = np.exp(z - z.max())
        prob /= prob.sum()
        if p["min_p"] > 0:
            prob[prob < p["min_p"] * prob.max()] = 0
        if p["top_p"] < 1:
            order = np.argsort(-prob)
            sp = prob[order]
            sp[np.cumsum(sp) - sp >= p["top_p"]] = 0
            prob = np.zeros_like(prob)
            prob[order] = sp
        prob /= prob.sum()
        return int(rng.choice(len(prob), p=prob))

    def _piece(self, t: int, skip_special: bool) -> str:
        if t >= self.n_vocab:
            return ""
        return self.llm.detokenize([t], special=not skip_special).decode("utf-8", "replace")

    # --- the API -------------------------------------------------------------------------------

    def _build(self):
        app = FastAPI()

        def error(status: int, message: str, kind: str = "BadRequestError") -> JSONResponse:
            return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                           "code": status}}, status_code=status)

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": [{
                "id": self.served_name, "object": "model", "created": int(time.time()),
                "owned_by": "vllm", "root": self.root, "parent": None,
                "max_model_len": self.n_ctx, "permission": []}]}

        @app.post("/tokenize")
        async def tokenize(request: Request):
            body = await request.json()
            ids = self.llm.tokenize(body["prompt"].encode(), add_bos=body.get("add_special_tokens", True),
                                    special=True)
            ids = [t + self.tokenizer_shift for t in ids]
            return {"count": len(ids), "max_model_len": self.n_ctx, "tokens": ids, "token_strs": None}

        @app.post("/v1/completions")
        async def completions(request: Request):
            body = await request.json()
            self.bodies.append(body)
            if self.fail_next:
                status = self.fail_next.pop(0)
                resp = error(status, "the server is busy" if status == 429 else f"failure {status}")
                if status == 429:
                    resp.headers["Retry-After"] = "0"
                return resp
            if body.get("model") not in (None, self.served_name):
                return error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                prompt = self.llm.tokenize(prompt.encode(), add_bos=False, special=True)
            bad = [t for t in prompt if not 0 <= t < self.n_vocab]
            if bad:
                return error(400, f"Token id {bad[0]} is out of vocabulary")
            max_tokens = body.get("max_tokens") or 16
            if len(prompt) + max_tokens > self.n_ctx:
                return error(400, f"This model's maximum context length is {self.n_ctx} tokens. "
                                  f"However, you requested {len(prompt) + max_tokens} tokens "
                                  f"({len(prompt)} in the messages, {max_tokens} in the completion). "
                                  "Please reduce the length of the messages or completion.")
            bias = {}
            for k, v in (body.get("logit_bias") or {}).items():
                if not 0 <= int(k) < self.n_vocab + PADDING:
                    return error(400, f"token_id(s) [{k}] in logit_bias contain out-of-vocab token ids")
                bias[int(k)] = max(-100.0, min(100.0, float(v)))
            top_k = body.get("top_k")
            p = {"temperature": 1.0 if body.get("temperature") is None else body["temperature"],
                 "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
                 "top_k": GENERATION_CONFIG["top_k"] if top_k is None else top_k,
                 "min_p": body.get("min_p") or 0.0, "logit_bias": bias,
                 "min_tokens": body.get("min_tokens", 0),
                 "stop_token_ids": body.get("stop_token_ids") or []}
            p["top_k"] = 0 if p["top_k"] in (-1, 0) else p["top_k"]
            self.effective = p
            rng = np.random.default_rng(body.get("seed"))
            gen = self._generate(prompt, max_tokens, p, rng, body)
            if body.get("stream"):
                return StreamingResponse(self._sse(gen, body), media_type="text/event-stream")
            ids, text, finish, stop_reason = [], "", None, None
            async for t, piece, finish, stop_reason in gen:
                ids.append(t)
                text += piece
            return {"id": "cmpl-fake", "object": "text_completion", "created": int(time.time()),
                    "model": self.served_name,
                    "choices": [{"index": 0, "text": text, "finish_reason": finish,
                                 "stop_reason": stop_reason,
                                 "token_ids": ids if body.get("return_token_ids") else None,
                                 "prompt_token_ids": prompt if body.get("return_token_ids") else None}],
                    "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(ids),
                              "total_tokens": len(prompt) + len(ids)}}

        @app.post("/pooling")
        async def pooling(request: Request):
            body = await request.json()
            self.bodies.append(body)
            if self.reward is None:
                return error(400, "The model does not support the Pooling API")
            if body.get("model") != self.served_name:
                return error(404, f"The model `{body.get('model')}` does not exist.",
                             "NotFoundError")
            turns = {m["role"]: m["content"] for m in body.get("messages") or []}
            if "user" not in turns or "assistant" not in turns:
                return error(400, "give messages with a user and an assistant turn")
            text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n"   # the chat template
                           for role, content in turns.items())
            steps = turns["assistant"].split("<extra_0>")[:-1]
            probs = self.reward(turns["user"], steps)
            tokens = len(self.llm.tokenize(text.encode(), add_bos=False, special=True))
            return {"id": "pool-fake", "object": "list", "created": int(time.time()),
                    "model": self.served_name,
                    "data": [{"index": 0, "object": "pooling",
                              "data": [[1.0 - p, p] for p in probs]}],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                              "completion_tokens": 0}}

        return app

    async def _generate(self, prompt: list[int], max_tokens: int, p: dict, rng, body: dict):
        """Yields (token, text piece, finish_reason, stop_reason) per generated token."""
        skip = body.get("skip_special_tokens", True)
        async with self._lock:
            await self._run(self._eval_prompt, prompt)
            for step in range(max_tokens):
                t = await self._run(self._sample, p, step, rng)
                finish = stop_reason = None
                if t in p["stop_token_ids"]:
                    finish, stop_reason = "stop", t
                elif t in self.eos and not body.get("ignore_eos"):
                    finish = "stop"
                elif step == max_tokens - 1:
                    finish = "length"
                piece = "" if t in self.eos and skip else self._piece(t, skip)
                yield t, piece, finish, stop_reason
                if finish:
                    return
                if t >= self.n_vocab:            # vLLM would fail on the next step's embedding
                    return
                await self._run(self.llm.eval, [t])

    async def _run(self, fn, *args):
        def locked():
            with self._model:
                return fn(*args)
        return await asyncio.to_thread(locked)

    async def _sse(self, gen, body: dict):
        ids_wanted = bool(body.get("return_token_ids"))
        first = True
        done = False
        try:
            async for t, piece, finish, stop_reason in gen:
                choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish,
                          "stop_reason": stop_reason, "token_ids": [t] if ids_wanted else None}
                if first and ids_wanted:
                    choice["prompt_token_ids"] = body["prompt"] if isinstance(body["prompt"], list) else None
                first = False
                yield f"data: {json.dumps({'id': 'cmpl-fake', 'object': 'text_completion', 'created': int(time.time()), 'model': self.served_name, 'choices': [choice]})}\n\n"
            yield "data: [DONE]\n\n"
            done = True
        finally:
            if done:
                self.completed += 1
            else:
                self.aborted += 1
            await gen.aclose()

    # --- running it ----------------------------------------------------------------------------

    def start(self) -> str:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        outer = self

        class Catch(logging.Handler):
            def emit(self, record):
                outer.errors.append(record.getMessage())

        logging.getLogger("uvicorn.error").addHandler(Catch(level=logging.ERROR))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake vLLM server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.llm.close()
