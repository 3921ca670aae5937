"""A model from scratch: a character tokenizer that keeps digits apart, and a small Llama.

For the miniature world (`s1.miniature`): a few-million-parameter Llama trains on a CPU in
minutes, where fine-tuning the embedded 135M model would take hours. One character is one token,
so "128" is three tokens and a thinking budget counts characters. The chat template is ChatML,
as Qwen2.5's and SmolLM2's, so the s1 format (`<|im_start|>think` ... `<|im_start|>answer`) works
unchanged; `<|im_start|>` and `<|im_end|>` are single special tokens.

The output is an ordinary transformers directory (config.json, safetensors, tokenizer.json):
`s1 generate`, `s1 eval` and `s1 serve` load it like any other model.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from s1.errors import UserError

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Printable ASCII and the newline; anything else becomes <|endoftext|> (the unknown token).
CHARACTERS = tuple(ch for ch in string.printable if ch not in "\t\r\x0b\x0c")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def char_tokenizer():
    """The character-level tokenizer, as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARACTERS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=SPECIALS[0]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token=SPECIALS[0],
                                  pad_token=SPECIALS[0], bos_token=None, eos_token=SPECIALS[2],
                                  additional_special_tokens=list(SPECIALS[1:]))
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = 1 << 16
    return tok


@dataclass
class ScratchConfig:
    """The shape of a Llama trained from random weights (`model.scratch` in a recipe)."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 512   # the context: prompt, thinking and answer in characters

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"model.scratch.{name} must be a positive integer, not {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(f"model.scratch.hidden_size ({self.hidden_size}) must be a multiple "
                            f"of num_attention_heads ({self.num_attention_heads})")


def scratch_model(config: ScratchConfig, tokenizer, seed: int, head: str = "lm"):
    """A randomly initialised Llama of this shape (weights from `seed`): a LlamaForCausalLM, or
    with head "steps" a LlamaForTokenClassification of two labels (a process reward model)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForTokenClassification

    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **({"num_labels": 2} if head == "steps" else {}))
    torch.manual_seed(seed)
    if not torch.cuda.is_available():
        torch.set_flush_denormal(True)
    return LlamaForTokenClassification(llama) if head == "steps" else LlamaForCausalLM(llama)
