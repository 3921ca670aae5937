"""EngineOptions: which model, served how, in which thinking format — one validated object that
every command loading an engine shares (`s1 generate`, `s1 eval`, `s1 serve`, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from s1.errors import UserError
from s1.generation.engines import ENGINES, Engine, load_engine
from s1.generation.formats import ThinkingFormat, resolve_format


@dataclass(frozen=True)
class EngineOptions:
    """How to load an engine.

    model: HF id, local directory or .gguf file (None: the embedded SmolLM2-135M-Instruct)
    server: base URL of an OpenAI-compatible completions server (selects the remote engine)
    engine: auto, transformers, llama.cpp or remote
    format: thinking format, s1 or think-tags (None: the model's own, else s1)
    think_start / think_end: custom thinking delimiters (override the format's)
    final_answer: the suffix forced after the end delimiter when thinking is cut (the format's
        by default, "\nFinal Answer:" for s1; "" for none; a typed "\n" is a newline)
    context_length: the context "auto" thinking fills (None: min(the model's, 32768))
    device: cpu, cuda or cuda:N for the transformers engine (None: cuda if present)
    threads: CPU threads of the in-process engines (None: one per core)
    batch_size: rows decoded together (the in-process engines)
    tokenizer: the served model's tokenizer for the remote engine: hub id, directory or .gguf
        (None: --model, else what the server's /v1/models names)
    concurrency: sequences in flight on the server (remote engine; None: 1 for llama-cpp-python's
        server, which serves one at a time, else 8)
    api_key: Bearer key of the server (remote engine; None: $S1_SERVER_API_KEY); never written
        to manifests
    timeout: seconds the remote engine waits for the server's next byte before retrying
    dialect: how token ids cross the wire: auto, ids (vLLM) or llama-cpp-python
    """

    model: str | None = None
    server: str | None = None
    engine: str = "auto"
    format: str | None = None
    think_start: str | None = None
    think_end: str | None = None
    final_answer: str | None = None
    context_length: int | None = None
    device: str | None = None
    threads: int | None = None
    batch_size: int = 16
    tokenizer: str | None = None
    concurrency: int | None = None
    api_key: str | None = None
    timeout: float = 600.0
    dialect: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UserError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be at least 1 ({self.threads})")
        if self.context_length is not None and self.context_length < 1:
            raise UserError(f"--context-length must be a positive number of tokens ({self.context_length})")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if self.engine == "remote" and not self.server:
            raise UserError("the remote engine needs --server URL")
        if self.concurrency is not None and self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1 ({self.concurrency})")
        if not self.timeout > 0:
            raise UserError(f"--timeout must be a positive number of seconds ({self.timeout})")
        from s1.generation.engines.dialects import DIALECTS
        if self.dialect not in DIALECTS:
            raise UserError(f"unknown --dialect {self.dialect!r}; choose one of {', '.join(DIALECTS)}")

    @property
    def label(self) -> str:
        """How runs name the model."""
        return self.model or (f"{self.server} (served)" if self.server else "smollm2-135m")

    def thinking_format(self) -> ThinkingFormat | None:
        """The format the user chose; None leaves it to the model (see `format_for_model`)."""
        if not (self.format or self.think_start or self.think_end or self.final_answer is not None):
            return None
        suffix = None if self.final_answer is None else self.final_answer.replace("\\n", "\n")
        return resolve_format(self.model, self.format, self.think_start, self.think_end, suffix)

    def loading_note(self) -> str:
        """What a command says before `load()`: on a cold start, importing torch alone takes
        up to a minute, and a silent terminal reads as a hang."""
        how = "" if self.engine == "auto" else f" on the {self.engine} engine"
        return (f"loading {self.label}{how} (torch and the model start in 10-60 s; "
                "progress follows)")

    def load(self) -> Engine:
        return load_engine(self.model, self.server, self.engine, fmt=self.thinking_format(),
                           batch_size=self.batch_size, device=self.device, threads=self.threads,
                           context_length=self.context_length,
                           tokenizer=self.tokenizer, concurrency=self.concurrency,
                           api_key=self.api_key, timeout=self.timeout, dialect=self.dialect)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["api_key"]:
            d["api_key"] = "***"     # a secret: never on disk
        return d
