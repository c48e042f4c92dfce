"""Check an install with no network: tiny random models, one synthetic image, every output.

Builds a tiny CLIP (transformers, with the real CLIP tokenizer built offline) and a tiny SAM
from configs with random weights, saves them as ordinary model folders, and runs the ``slip``
pipeline through the public API and the CLI. Random weights prove the plumbing, not quality:
the masks are arbitrary.

    python examples/offline_smoke.py [OUT_DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch
from PIL import Image
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    SamConfig,
    SamModel,
    SamProcessor,
)
from transformers.models.sam import SamImageProcessor

import promptseg
from promptseg.models.clip_tokenizer import build_clip_tokenizer


def tiny_clip(folder: Path) -> Path:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=build_clip_tokenizer()).save_pretrained(folder)
    return folder


def tiny_sam(folder: Path) -> Path:
    torch.manual_seed(0)
    config = SamConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 128, "patch_size": 16,
                       "output_channels": 32, "global_attn_indexes": [1], "window_size": 4,
                       "mlp_dim": 64, "num_pos_feats": 16},
        prompt_encoder_config={"hidden_size": 32, "image_size": 128, "patch_size": 16,
                               "image_embedding_size": 8, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    )
    SamModel(config).save_pretrained(folder)
    SamProcessor(image_processor=SamImageProcessor(longest_edge=128)).save_pretrained(folder)
    return folder


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clip_dir = tiny_clip(out / "tiny-clip")
    sam_dir = tiny_sam(out / "tiny-sam")
    image = np.full((96, 128, 3), 40, np.uint8)
    image[10:50, 20:60] = (220, 40, 40)
    Image.fromarray(image).save(out / "scene.png")

    # Python API
    seg = promptseg.segment(out / "scene.png", ["a red square", "a blue circle"],
                            clip=str(clip_dir), sam=str(sam_dir), device="cpu",
                            points_per_side=4, pred_iou_thresh=0.0,
                            stability_score_thresh=0.0)
    print(f"python: {len(seg)} masks {seg.masks.shape}, scores {np.round(seg.scores, 3)}")
    seg.save_overlay(image, out / "overlay.png")

    # CLI
    cmd = [sys.executable, "-m", "promptseg.cli", "segment", str(out / "scene.png"),
           "-p", "a red square", "--clip", str(clip_dir), "--sam", str(sam_dir),
           "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
           "--device", "cpu", "--out", str(out / "cli"), "--quiet"]
    subprocess.run(cmd, check=True)
    print(f"cli: wrote {sorted(p.name for p in (out / 'cli' / 'scene').iterdir())}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("smoke-out"))
