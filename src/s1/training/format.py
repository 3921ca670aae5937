"""Turn a (question, trace, attempt) record into the text the model is trained on.

The paper's tokenization step (s1's data/tokenization.py): the model's own chat template, the bare question as
the user turn, and as the assistant turn

    <|im_start|>think\\n{trace}\\n<|im_start|>answer\\nAnswer: {attempt}

for the s1 format (`<think>\\n{trace}\\n</think>\\n\\n{attempt}` for think-tags). The text is split
into the prompt (never trained) and the completion (trained, end-of-turn token included), so the
loss mask follows from string offsets instead of from guessing token ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from s1.errors import UserError
from s1.generation.formats import ThinkingFormat

# What separates the end-of-thinking delimiter from the answer. s1 puts a newline after
# `<|im_start|>answer` (s1's data/tokenization.py); R1-style models put a blank line after `</think>`.
_ANSWER_SEPARATOR = {"s1": "\n", "think-tags": "\n\n"}

# A string no real answer contains, used to find where the template puts the assistant content.
_SENTINEL = "\u2063S1-ASSISTANT-CONTENT\u2063"


@dataclass(frozen=True)
class FormattedExample:
    prompt: str       # chat-templated user turn + assistant header: masked from the loss
    completion: str   # thinking, answer and the end-of-turn marker: the only trained text

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def assistant_text(trace: str, attempt: str, fmt: ThinkingFormat) -> str:
    """The assistant turn: start + trace + end + answer, `Answer: ` added as the paper does.

    s1's tokenization prefixes the attempt as it is and strips afterwards, so an attempt that
    starts with whitespace keeps it after `Answer:` (`"Answer:  \\frac12"`), exactly as trained.
    """
    answer = (attempt if "Answer:" in attempt else "Answer: " + attempt).strip()
    start = fmt.start if fmt.start.endswith("\n") else fmt.start + "\n"
    sep = _ANSWER_SEPARATOR.get(fmt.name, "\n")
    return start + trace.strip() + "\n" + fmt.end + sep + answer


def _template_parts(tokenizer) -> tuple[str, str]:
    """(text before the assistant content, text after it) for a one-question chat.

    Rendering the prompt with add_generation_prompt and the end-of-turn from a sentinel message,
    instead of rendering the whole conversation, keeps templates that rewrite past assistant turns
    (R1 distills drop everything before `</think>`) from eating the trace.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("the model's tokenizer has no chat template; s1 training needs a chat model "
                        "(e.g. Qwen/Qwen2.5-32B-Instruct or the embedded smollm2-135m)")
    user = [{"role": "user", "content": "{question}"}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": _SENTINEL}],
                                         tokenize=False)
    at = full.find(_SENTINEL)
    if at < 0 or "{question}" not in prompt:
        raise UserError("the model's chat template does not render a plain user/assistant "
                        "conversation, so the training text cannot be built")
    return prompt, full[at + len(_SENTINEL):]


def format_example(question: str, trace: str, attempt: str, tokenizer,
                   fmt: ThinkingFormat) -> FormattedExample:
    """One training example in the model's chat template and the given thinking format."""
    prompt_template, end_of_turn = _template_parts(tokenizer)
    # str.replace, not str.format: questions are full of LaTeX braces.
    prompt = prompt_template.replace("{question}", question, 1)
    completion = assistant_text(trace, attempt, fmt)
    if prompt.endswith(fmt.start):
        # Templates that already open the thinking block in the generation prompt (newer R1
        # distills add `<think>\n`) must not get it twice.
        completion = completion.removeprefix(fmt.start).removeprefix("\n")
    return FormattedExample(prompt, completion + end_of_turn)
