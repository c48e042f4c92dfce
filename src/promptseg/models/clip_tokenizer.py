"""The OpenAI CLIP tokenizer built offline from the BPE merges that open_clip ships.

Useful wherever a hub download is impossible (air-gapped machines, CI, tests, benchmarks with
random weights): the ids are those of ``open_clip.get_tokenizer("ViT-B-16")`` and of
``openai/clip-vit-base-patch16``'s tokenizer.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from promptseg.errors import require

__all__ = ["build_clip_tokenizer"]


FULL_MERGES = 49152 - 256 - 2  # merges in OpenAI CLIP's vocabulary of 49408 tokens
BASE_TOKENS = 2 * 256 + 2  # byte characters, the same with </w>, and the two special tokens


def build_clip_tokenizer(num_merges: int | None = None):
    """The OpenAI CLIP tokenizer as a transformers ``CLIPTokenizer``, with no download.

    Vocabulary, in id order: the 256 byte-level unicode characters, the same with ``</w>``,
    one token per BPE merge (lines 1 to 49152 - 256 - 2 of open_clip's merges file), then
    ``<|startoftext|>`` and ``<|endoftext|>``: 49408 tokens.

    Args:
        num_merges: keep only the first (most frequent) merges, for small models trained from
            scratch: the vocabulary has ``num_merges + 514`` tokens and any text still
            tokenizes (rarer words split into more pieces). ``None``: all 48894 merges.
    """
    if num_merges is None:
        num_merges = FULL_MERGES
    if not 0 <= num_merges <= FULL_MERGES:
        from promptseg.errors import ConfigError

        raise ConfigError(f"num_merges must be in [0, {FULL_MERGES}], got {num_merges}")
    open_clip = require("open_clip", "openclip")
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : num_merges + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges)
