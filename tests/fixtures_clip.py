"""Tiny CLIP models with random weights, saved to folders the way real checkpoints are.

- ``clip_tokenizer_dir``: the real OpenAI CLIP BPE tokenizer (49408 tokens), built offline from
  the merges file open_clip ships (``bpe_simple_vocab_16e6.txt.gz``); ids equal
  ``open_clip.get_tokenizer("ViT-B-16")``.
- ``tiny_hf_clip_dir``: a transformers ``CLIPModel`` (2 layers, width 32, 32 px input, patch 8)
  saved with ``save_pretrained`` beside a ``CLIPProcessor`` and that tokenizer.
- ``tiny_open_clip_dir``: an OpenCLIP ``CLIP`` (2 layers, width 32, 48 px input, patch 16)
  saved as ``open_clip_config.json`` + ``open_clip_model.safetensors``.

Random weights prove loading, shapes and numerics, never quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptseg.models.clip_tokenizer import build_clip_tokenizer  # noqa: F401 (re-export)

__all__ = [
    "TINY_HF_CLIP",
    "TINY_OPEN_CLIP",
    "build_clip_tokenizer",
    "clip_tokenizer_dir",
    "tiny_hf_clip_dir",
    "tiny_open_clip_dir",
    "tiny_open_clip_rn_dir",
    "TINY_OPEN_CLIP_RN",
]

# transformers CLIPConfig keywords (configs are keyword-only and keep misspelt keys silently).
TINY_HF_CLIP = {
    "projection_dim": 16,
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
    },
    "vision_config": {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    },
}

# open_clip model_cfg (the format of open_clip/model_configs/*.json).
TINY_OPEN_CLIP = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 48, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
# a ModifiedResNet image tower (layers as a list): layer4 gives 256 channels on a 4x4 grid
TINY_OPEN_CLIP_RN = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 128, "layers": [1, 1, 1, 1], "width": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
_OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]  # open_clip.constants OPENAI_DATASET_MEAN
_OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory) -> Path:
    """Folder with the real CLIP tokenizer (``tokenizer.json``, ``tokenizer_config.json``)."""
    folder = tmp_path_factory.mktemp("clip_tokenizer")
    build_clip_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_hf_clip_dir(tmp_path_factory, clip_tokenizer_dir) -> Path:
    """A tiny transformers CLIP folder: config.json, model.safetensors, processor, tokenizer."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    folder = tmp_path_factory.mktemp("tiny_hf_clip")
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(**TINY_HF_CLIP)).eval()
    side = TINY_HF_CLIP["vision_config"]["image_size"]
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
        tokenizer=CLIPTokenizer.from_pretrained(clip_tokenizer_dir),
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tmp_path_factory) -> Path:
    """A tiny OpenCLIP folder: open_clip_config.json + open_clip_model.safetensors."""
    return _save_open_clip(tmp_path_factory.mktemp("tiny_open_clip"), TINY_OPEN_CLIP)


@pytest.fixture(scope="session")
def tiny_open_clip_rn_dir(tmp_path_factory) -> Path:
    """A tiny OpenCLIP ResNet CLIP (ModifiedResNet, attention pooling), as RN50 is built."""
    return _save_open_clip(tmp_path_factory.mktemp("tiny_open_clip_rn"), TINY_OPEN_CLIP_RN)


def _save_open_clip(folder: Path, model_cfg: dict) -> Path:
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = CLIP(**model_cfg)
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "mean": _OPENAI_MEAN,
            "std": _OPENAI_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return folder
