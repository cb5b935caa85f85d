"""Measuring a prompt against the token budget: exactly with the model's tokenizer, or by estimate.

A remote model (an OpenAI-compatible endpoint) has no tokenizer here; its prompt is measured by
characters, erring towards longer, which at worst drops one more old turn than needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

# English runs ~4 characters per token in common tokenizers, other scripts fewer: 3.5 keeps the
# estimate above the true count for most text.
CHARS_PER_TOKEN = 3.5
# Role markers and separators a chat template adds around each message, and the reply cue.
MESSAGE_OVERHEAD_TOKENS = 5
REPLY_CUE_TOKENS = 3
# Control tokens of the common chat templates (ChatML, Llama, Mistral, Gemma): a remote server
# renders the template to text, so a typed one could pose as a turn boundary there too.
_CONTROL_TOKEN = re.compile(
    r"<\|[^<>|\s]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>", re.IGNORECASE
)


class PromptMeasure(Protocol):
    def clean(self, text: str) -> str:
        """`text` without control-token strings a person may have typed."""
        ...

    def count(self, messages: Sequence[dict[str, str]]) -> int:
        """Tokens of `messages` as the model reads them, reply cue included."""
        ...

    def length(self, text: str) -> int:
        """Tokens of `text` alone."""
        ...

    def tail(self, text: str, tokens: int) -> str:
        """About the last `tokens` tokens of `text`."""
        ...


def measure_for(tokenizer: Any) -> PromptMeasure:
    return TokenizerMeasure(tokenizer) if tokenizer is not None else EstimatedMeasure()


class TokenizerMeasure:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._specials = _special_token_strings(tokenizer)

    def clean(self, text: str) -> str:
        # Removing one occurrence can join two halves into a new one; repeat until stable.
        while any(token in text for token in self._specials):
            for token in self._specials:
                text = text.replace(token, "")
        return text

    def count(self, messages: Sequence[dict[str, str]]) -> int:
        return len(render_prompt_ids(messages, self._tokenizer))

    def length(self, text: str) -> int:
        return len(self._ids(text))

    def tail(self, text: str, tokens: int) -> str:
        ids = self._ids(text)
        cut: str = self._tokenizer.decode(ids[-tokens:], skip_special_tokens=True)
        # A cut inside a multi-byte character leaves a replacement character at the start.
        return cut.lstrip("\ufffd")

    def _ids(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids


class EstimatedMeasure:
    def clean(self, text: str) -> str:
        while True:
            cleaned = _CONTROL_TOKEN.sub("", text)
            if cleaned == text:
                return text
            text = cleaned

    def count(self, messages: Sequence[dict[str, str]]) -> int:
        body = sum(self.length(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        return body + REPLY_CUE_TOKENS

    def length(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def tail(self, text: str, tokens: int) -> str:
        return text[-int(tokens * CHARS_PER_TOKEN) :] if tokens > 0 else ""


def strip_special_tokens(text: str, tokenizer: Any) -> str:
    """Remove control-token strings (`<|im_start|>`...) that a person typed.

    The chat template is rendered to text and tokenised as a whole, so a typed `<|im_end|>` would
    otherwise become a real turn boundary and let a message pose as the system prompt.
    """
    return measure_for(tokenizer).clean(text)


def render_prompt_ids(messages: Sequence[dict[str, str]], tokenizer: Any) -> list[int]:
    """Token ids of `messages` in the model's chat template, ending with the cue for the reply."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    # The template already holds every special token; letting the tokenizer add a BOS again
    # would shift the prompt away from what the model was trained on.
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def _special_token_strings(tokenizer: Any) -> tuple[str, ...]:
    tokens = set(getattr(tokenizer, "all_special_tokens", ()))
    for added in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(added, "special", False):
            tokens.add(str(added))
    return tuple(sorted((t for t in tokens if t), key=len, reverse=True))
