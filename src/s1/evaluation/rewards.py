"""Reward models: one interface for every way a solution (or each step of it) is scored.

The contract the verifier-guided methods (best-of-N with a reward model, weighted majority, beam
search, REBASE) program against. A candidate is the thinking so far, already split into steps
(the search splits at its step delimiter; each reward model joins steps in its own convention).

- a process reward model (`process = True`) gives one score per step;
- an outcome reward model (`process = False`) gives one score for the whole candidate, returned
  as a one-element list;
- `aggregate` turns a candidate's step scores into one number (min, last, product or mean).

Each model counts what it spent (`tokens`, `flops`) so compare-compute can set the search's cost
beside budget forcing's. `load_reward_model(spec)` reads a spec:

    programmatic              the miniature world's exact step checker (`s1.miniature.steps`)
    prm:<hub id or path>      a process reward model through transformers; its convention is read
                              from the model: Qwen2.5-Math-PRM (a step classifier, `<extra_0>`
                              after each step) or Math-Shepherd (a causal LM, the tag "ки" after
                              each step, P("+") against "-"); `prm-qwen:` / `prm-shepherd:` force one
    orm:<hub id or path>      a sequence classifier: its logit (1 label) or P(label 1) (2 labels)
    served:<url>[#model]      a reward model behind vLLM's pooling API (POST <url>/pooling)
    module:function           a function (question, steps) -> a float or one float per step;
                              or one taking no arguments that makes a RewardModel (a subclass)
"""

from __future__ import annotations

import importlib
import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from s1.errors import UserError

AGGREGATIONS = ("min", "last", "prod", "mean")
TRANSFORMERS_KINDS = ("prm", "prm-qwen", "prm-shepherd", "orm")
QWEN_STEP = "<extra_0>"                  # Qwen2.5-Math-PRM: the mark after each step
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
SHEPHERD_TAG, SHEPHERD_GOOD, SHEPHERD_BAD = "ки", "+", "-"   # Math-Shepherd's step tag and labels


class RewardModel(ABC):
    """Scores candidates. Subclasses set `name` (the spec it was loaded from) and `process`."""

    name: str = ""
    process: bool = True       # True: one score per step (PRM); False: one per candidate (ORM)

    def __init__(self) -> None:
        self.tokens = 0        # tokens the model read so far
        self.flops = 0.0       # FLOPs spent so far (0 for a model that runs no network)

    @abstractmethod
    def score(self, question: str, candidates: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each candidate (its steps so far, in order), its scores, higher is better: one
        per step for a PRM, a one-element list for an ORM."""

    def close(self) -> None:
        """Free what the model holds."""

    def check(self, question: str) -> None:
        """Refuse, before anything is generated, a question this model cannot read."""


def aggregate(scores: Sequence[float], how: str = "min") -> float:
    """One number from a candidate's step scores: "min" (the weakest step, the usual PRM rule),
    "last" (the last step's), "prod" (their product) or "mean"."""
    if how not in AGGREGATIONS:
        raise UserError(f"unknown aggregation {how!r}; use one of {', '.join(AGGREGATIONS)}")
    if not scores:
        raise UserError("a candidate without scored steps cannot be aggregated")
    if how == "min":
        return float(min(scores))
    if how == "last":
        return float(scores[-1])
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))


def read_delimiter(text: str) -> str:
    """A step delimiter as typed in a shell ('\\n' arrives as backslash-n): the usual escapes read."""
    return str(text).replace("\\n", "\n").replace("\\t", "\t")


def split_steps(text: str, delimiter: str = "\n\n") -> list[str]:
    """A solution's steps: the text split at the delimiter, blank pieces dropped."""
    if not delimiter:
        raise UserError("the step delimiter cannot be empty")
    return [piece for piece in text.split(delimiter) if piece.strip()]


def score_solution(model: RewardModel, question: str, text: str, how: str = "min",
                   delimiter: str = "\n\n") -> tuple[float | None, dict]:
    """One solution read by a reward model: (its aggregated score, {"steps": the step scores,
    "tokens" and "flops": what reading it cost}). A solution without steps scores None."""
    steps = split_steps(text, delimiter)
    tokens, flops = model.tokens, model.flops
    scores = model.score(question, [steps])[0] if steps else []
    return (aggregate(scores, how) if scores else None,
            {"steps": scores, "tokens": model.tokens - tokens, "flops": model.flops - flops})


# ---------------------------------------------------------------------------------------------
# the miniature world's checker and user functions


class ProgrammaticPRM(RewardModel):
    """The miniature world's exact checker: 1.0 for a right step, 0.0 for a wrong one. It runs no
    network (0 FLOPs); `tokens` counts the characters it read, which are the tiny model's tokens."""

    name = "programmatic"

    def check(self, question: str) -> None:
        from s1.miniature.steps import check_steps

        check_steps(question, [])     # a question not of the miniature world is refused

    def score(self, question, candidates):
        from s1.miniature.steps import check_steps

        self.tokens += sum(len(question) + sum(map(len, steps)) for steps in candidates)
        return [check_steps(question, steps) for steps in candidates]


class FunctionRewardModel(RewardModel):
    """`module:function`: a user function (question, steps) -> a float (an outcome score) or one
    float per step (a process score)."""

    def __init__(self, spec: str, fn: Callable[[str, list[str]], Any]) -> None:
        super().__init__()
        self.name, self.fn = spec, fn

    def score(self, question, candidates):
        out = []
        for steps in candidates:
            value = self.fn(question, list(steps))
            scores = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
            if not scores:
                raise UserError(f"reward function {self.name} returned no score")
            out.append(scores)
        return out


def load_function(spec: str) -> Callable | None:
    """The function a `module:function` spec names, or None when the spec is not of that form
    (a module that does not import, or a name it lacks, is one clear error)."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name or "/" in spec:
        return None
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot load scorer {spec!r} ({type(e).__name__}: {e})") from None
    if not callable(fn):
        raise UserError(f"scorer {spec!r} is not callable")
    return fn


def _positional(fn: Callable) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def is_reward_spec(spec: str) -> bool:
    """Whether a best-of-N `--scorer` names a reward model (scoring the thinking's steps) rather
    than a whole-sample scorer (oracle, shortest, a function of (item, trace, grade))."""
    kind = spec.partition(":")[0]
    if spec == "programmatic" or kind in TRANSFORMERS_KINDS or kind == "served":
        return True
    fn = load_function(spec)
    return fn is not None and _positional(fn) in (0, 2)   # a factory of a RewardModel, or (question, steps)


# ---------------------------------------------------------------------------------------------
# transformers models


def _model_ref(kind: str, path: str):
    """The ModelRef of a reward model's hub id or path, checked without the network."""
    from s1.generation.models import resolve_model

    if not path:
        raise UserError(f"give the reward model after {kind}: (a hub id or a directory)")
    ref = resolve_model(path)
    if ref.is_gguf:
        raise UserError(f"{kind}:{path} is a GGUF file; a reward model loads through "
                        "transformers from a directory or hub id")
    return ref


def _served_target(spec: str, target: str) -> tuple[str, str]:
    """(base URL, model name or "") of `served:<url>[#model]`; the pooling API is at the root."""
    url, _, model = target.partition("#")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"served reward model {spec!r}: give served:http(s)://host:port[#model]")
    url = url.rstrip("/")
    return (url[:-3] if url.endswith("/v1") else url), model


def check_questions(spec: str, questions: Sequence[str]) -> None:
    """What can be checked before any model loads: the programmatic PRM reads only the miniature
    world's questions."""
    if spec == "programmatic" and questions:
        ProgrammaticPRM().check(questions[0])


def check_reward_spec(spec: str) -> None:
    """A reward-model spec checked before anything is generated, without loading a model."""
    kind, _, rest = spec.partition(":")
    if kind in TRANSFORMERS_KINDS:
        _model_ref(kind, rest)
    elif kind == "served":
        _served_target(spec, rest)
    elif spec != "programmatic" and not is_reward_spec(spec):
        raise UserError(f"unknown reward model {spec!r}; use programmatic, prm:MODEL, "
                        "prm-qwen:MODEL, prm-shepherd:MODEL, orm:MODEL, served:URL[#model] or "
                        "module:function(question, steps)")


def _chat(tokenizer, messages: list[dict], question: str, answer: str) -> str:
    messages = messages + [{"role": "user", "content": question},
                           {"role": "assistant", "content": answer}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    return f"{question}\n{answer}"


def qwen_text(tokenizer, question: str, steps: Sequence[str]) -> str:
    """Qwen2.5-Math-PRM's input (its model card): the system prompt, the question, and the steps
    as the assistant's turn, each followed by <extra_0>, in the chat template."""
    return _chat(tokenizer, [{"role": "system", "content": QWEN_SYSTEM}], question,
                 "".join(s.strip() + QWEN_STEP for s in steps))


def _qwen_prm_class():
    """Qwen2.5-Math-PRM's architecture (Qwen2ForProcessRewardModel): a Qwen2 body and a two-layer
    head giving two logits per token. The model ships it as remote code; it is written here (as
    vLLM does) so no downloaded code runs."""
    import torch
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, Qwen2PreTrainedModel

    class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.model = Qwen2Model(config)
            self.score = torch.nn.Sequential(
                torch.nn.Linear(config.hidden_size, config.hidden_size), torch.nn.ReLU(),
                torch.nn.Linear(config.hidden_size, 2))
            self.post_init()

        def forward(self, input_ids, attention_mask=None):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            return (self.score(hidden),)

    return Qwen2ForProcessRewardModel


class TransformersRewardModel(RewardModel):
    """A reward model run in-process through transformers, one sequence per forward (no padding,
    so every position is exactly the sequence's own). FLOPs: `estimate_flops` of each sequence
    read (a prompt of its length, nothing generated)."""

    def __init__(self, spec: str, kind: str, path: str, device: str | None = None) -> None:
        super().__init__()
        import torch
        from transformers import AutoConfig

        from s1.generation.models import check_hub, from_pretrained, load_tokenizer

        self.name = spec
        ref = _model_ref(kind, path)
        check_hub(ref)
        self.tokenizer = load_tokenizer(ref)
        config = from_pretrained(AutoConfig.from_pretrained, ref)
        archs = tuple(getattr(config, "architectures", None) or ())
        self.convention = {"prm-qwen": "qwen", "prm-shepherd": "shepherd",
                           "orm": "orm"}.get(kind) or self._detect(spec, archs)
        self.process = self.convention != "orm"
        load = self._loader(archs)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = from_pretrained(load, ref).to(self.device).eval()
        self.shape = {"n_params": float(self.model.num_parameters()),
                      "n_layers": getattr(config, "num_hidden_layers", None),
                      "d_model": getattr(config, "hidden_size", None)}
        self._ids()

    def _detect(self, spec: str, archs: tuple[str, ...]) -> str:
        if QWEN_STEP in self.tokenizer.get_vocab() and not any(
                a.endswith("ForCausalLM") for a in archs):
            return "qwen"
        if any(a.endswith("ForCausalLM") for a in archs):
            return "shepherd"
        raise UserError(f"cannot tell which convention {spec} follows (architectures "
                        f"{', '.join(archs) or 'unknown'}); name it: prm-qwen:… or prm-shepherd:…")

    def _loader(self, archs: tuple[str, ...]):
        import transformers

        if self.convention == "orm":
            return transformers.AutoModelForSequenceClassification.from_pretrained
        if self.convention == "shepherd":
            return transformers.AutoModelForCausalLM.from_pretrained
        if "Qwen2ForProcessRewardModel" in archs:
            return _qwen_prm_class().from_pretrained
        return transformers.AutoModelForTokenClassification.from_pretrained

    def _single_id(self, text: str) -> int:
        """The id of a mark that must be one token (Math-Shepherd's card: the last id of it)."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids or (text == QWEN_STEP and len(ids) != 1):
            raise UserError(f"the tokenizer of {self.name} has no {text!r} token, which the "
                            f"{self.convention} convention needs")
        return ids[-1]

    def _ids(self) -> None:
        if self.convention == "qwen":
            self.mark = self._single_id(QWEN_STEP)
        elif self.convention == "shepherd":
            self.mark = self._single_id(SHEPHERD_TAG)
            self.labels = [self._single_id(SHEPHERD_GOOD), self._single_id(SHEPHERD_BAD)]

    def text(self, question: str, steps: Sequence[str]) -> str:
        """The input in the model's convention (its model card's)."""
        if self.convention == "shepherd":
            return f"{question} " + "\n".join(f"{s.strip()} {SHEPHERD_TAG}" for s in steps)
        if self.convention == "qwen":
            return qwen_text(self.tokenizer, question, steps)
        return _chat(self.tokenizer, [], question, "\n\n".join(s.strip() for s in steps))

    def score(self, question, candidates):
        import torch

        from s1.evaluation.metrics import estimate_flops

        out = []
        for steps in candidates:
            ids = self.tokenizer.encode(self.text(question, steps), return_tensors="pt")
            n = ids.shape[1]
            with torch.inference_mode():
                logits = self.model(ids.to(self.device))[0][0].float()
            self.tokens += n
            self.flops += estimate_flops(self.shape["n_params"], n, 0, self.shape["n_layers"],
                                         self.shape["d_model"])
            out.append(self._read(logits, ids[0], len(steps)))
        return out

    def _read(self, logits, ids, n_steps: int) -> list[float]:
        if self.convention == "orm":
            row = logits.reshape(-1)
            return [float(row[0]) if row.numel() == 1 else float(row.softmax(-1)[1])]
        at = (ids == self.mark).nonzero().flatten().to(logits.device)
        if len(at) != n_steps:
            raise UserError(f"{self.name} found {len(at)} step marks for {n_steps} steps (a step "
                            "that contains the mark itself?)")
        if self.convention == "qwen":
            return logits[at].softmax(-1)[:, 1].tolist()
        return logits[at][:, self.labels].softmax(-1)[:, 0].tolist()

    def close(self) -> None:
        self.model = None


# ---------------------------------------------------------------------------------------------
# served: vLLM's pooling API


class ServedRewardModel(RewardModel):
    """A reward model served by vLLM (`vllm serve Qwen/Qwen2.5-Math-PRM-7B`), asked through its
    pooling API: POST <url>/pooling {"model", "messages": [system, user: question, assistant: the
    steps, each followed by <extra_0>], "add_generation_prompt": false}. vLLM applies the chat
    template and answers {"data": [{"data": ...}], "usage": {"prompt_tokens": ...}}, where the
    data is, for a process reward model (STEP pooling), one [P(bad), P(good)] pair per step, and
    for a reward model pooling every token (ALL), one value per token: the last one is the
    sequence's reward. FLOPs are not known from here (the server does not tell its model's size):
    `tokens` counts what the server read."""

    def __init__(self, spec: str, target: str, timeout: float = 300.0) -> None:
        super().__init__()
        self.name, self.timeout = spec, timeout
        self.url, self.model = _served_target(spec, target)

    def _post(self, path: str, body: dict) -> dict:
        import httpx

        try:
            r = httpx.post(f"{self.url}{path}", json=body, timeout=self.timeout)
        except httpx.TransportError as e:
            raise UserError(f"cannot reach the reward model at {self.url} "
                            f"({type(e).__name__})") from None
        if r.status_code != 200:
            try:
                why = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                why = r.text[:200]
            raise UserError(f"the reward model at {self.url} answered {r.status_code}: {why}")
        return r.json()

    def score(self, question, candidates):
        if not self.model:
            self.model = self._served_model()
        out = []
        for steps in candidates:
            answer = "".join(s.strip() + QWEN_STEP for s in steps)
            body = {"model": self.model, "add_generation_prompt": False,
                    "messages": [{"role": "system", "content": QWEN_SYSTEM},
                                 {"role": "user", "content": question},
                                 {"role": "assistant", "content": answer}]}
            reply = self._post("/pooling", body)
            self.tokens += int((reply.get("usage") or {}).get("prompt_tokens") or 0)
            out.append(self._read(reply["data"][0]["data"], len(steps)))
        return out

    def _served_model(self) -> str:
        import httpx

        try:
            models = httpx.get(f"{self.url}/v1/models", timeout=self.timeout).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as e:
            raise UserError(f"cannot list the models at {self.url} ({type(e).__name__}); give "
                            f"served:{self.url}#MODEL") from None
        return models[0]["id"]

    def _read(self, data, n_steps: int) -> list[float]:
        if data and all(isinstance(row, list) for row in data):
            if all(len(row) == 2 for row in data):      # STEP pooling: [P(bad), P(good)] per step
                self.process = True
                if len(data) != n_steps:
                    raise UserError(f"the reward model at {self.url} scored {len(data)} steps of "
                                    f"{n_steps}; is it a process reward model (<extra_0> marks)?")
                return [float(row[1]) for row in data]
            data = data[-1]                              # ALL pooling: the last token's value
        if not data:
            raise UserError(f"the reward model at {self.url} returned no score")
        self.process = False
        return [float(data[-1] if len(data) == 1 else data[1])]


# ---------------------------------------------------------------------------------------------
# the loader


def load_reward_model(spec: str, device: str | None = None) -> RewardModel:
    """The reward model a spec names (see the module docstring)."""
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if spec == "programmatic":
        return ProgrammaticPRM()
    if kind in TRANSFORMERS_KINDS:
        return TransformersRewardModel(spec, kind, rest, device=device)
    if kind == "served":
        return ServedRewardModel(spec, rest)
    check_reward_spec(spec)
    fn = load_function(spec)
    if _positional(fn) == 0:   # a factory: a RewardModel subclass or a function making one
        model = fn()
        if not isinstance(model, RewardModel):
            raise UserError(f"{spec} takes no arguments, so it must make a RewardModel, not "
                            f"{type(model).__name__}")
        return model
    return FunctionRewardModel(spec, fn)
