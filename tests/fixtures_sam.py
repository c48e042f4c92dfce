"""Tiny SAM-family fixtures: random seeded weights saved to temp folders and loaded back.

- ``tiny_sam_dir``, ``tiny_sam_hq_dir``, ``tiny_sam2_dir``: transformers models built from tiny
  configs, saved with ``save_pretrained`` plus their processor.
- ``tiny_official_sam``: an official ``segment_anything.modeling.Sam`` with a tiny ViT, saved
  as a ``.pth`` state dict and converted by ``promptseg.convert.sam_checkpoint``; parity tests
  run the official predictor / generator and ours on the same weights.

Random weights prove plumbing and numerics, never quality (DESIGN.md, "Models without a hub").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

__all__ = ["tiny_sam_dir", "tiny_sam_hq_dir", "tiny_sam2_dir", "tiny_official_sam"]

TINY_IMAGE_SIZE = 128  # encoder input side of every tiny model
TINY_DIM = 32  # prompt / decoder width


def randomize_(module: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    """Overwrite every parameter and float buffer with seeded values, in place.

    Matrices and embeddings get N(0, std); norm weights 1 + N(0, std/2); biases N(0, std);
    the random-Fourier position matrices N(0, 1) as in SAM's ``PositionEmbeddingRandom``.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            if "gaussian_matrix" in name or "positional_embedding" in name:
                values = torch.randn(tensor.shape, generator=gen)
            elif tensor.ndim == 1 and name.endswith("weight"):
                values = 1.0 + torch.randn(tensor.shape, generator=gen) * (std / 2)
            else:
                values = torch.randn(tensor.shape, generator=gen) * std
            tensor.copy_(values.to(tensor.dtype))
    return module


def build_official_tiny_sam(seed: int = 0, std: float = 0.1, logit_scale: float = 300.0):
    """An official ``segment_anything`` Sam with a 2-block ViT at 128 px (8x8 tokens).

    Weights are seeded random, with three edits so that masks are object-sized blobs that follow
    image colours (plain random weights give masks textured at the 4-pixel scale of the
    decoder's transposed convolutions, whose boxes all span the whole image):

    - each transposed convolution of the decoder's upscaling uses the same weights at its four
      kernel positions (nearest-neighbour-like upsampling);
    - the absolute position embedding is zero, so features depend on the image content;
    - the hypernetworks' last layers are multiplied by ``logit_scale`` so logits are far from 0
      and the stability score (offset 1.0) is meaningful.
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = TINY_IMAGE_SIZE // 16
    encoder = ImageEncoderViT(
        img_size=TINY_IMAGE_SIZE,
        patch_size=16,
        embed_dim=48,
        depth=2,
        num_heads=2,
        mlp_ratio=4,
        out_chans=TINY_DIM,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=4,
        global_attn_indexes=(1,),
    )
    prompt = PromptEncoder(
        embed_dim=TINY_DIM,
        image_embedding_size=(grid, grid),
        input_image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=TINY_DIM, mlp_dim=64, num_heads=2),
        transformer_dim=TINY_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=32,
    )
    sam = Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)
    randomize_(sam, seed, std)
    with torch.no_grad():
        # pixel_mean / pixel_std are buffers: give them back their official values
        sam.pixel_mean.copy_(torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1))
        sam.pixel_std.copy_(torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1))
        for index in (0, 3):
            weight = sam.mask_decoder.output_upscaling[index].weight
            weight.copy_(weight[:, :, :1, :1].expand_as(weight).clone())
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(logit_scale)
            mlp.layers[-1].bias.mul_(logit_scale)
        sam.image_encoder.pos_embed.zero_()
    return sam.eval()


@dataclass(frozen=True)
class OfficialTinySam:
    """An official tiny Sam, its ``.pth`` file and the folder our converter wrote."""

    model: torch.nn.Module
    checkpoint: Path
    converted_dir: Path


def build_tiny_sam_config():
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    return SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=48,
            output_channels=TINY_DIM,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=TINY_IMAGE_SIZE,
            patch_size=16,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=TINY_DIM // 2,
            mlp_dim=192,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=TINY_DIM,
            image_size=TINY_IMAGE_SIZE,
            patch_size=16,
            mask_input_channels=16,
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=TINY_DIM,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
            layer_norm_eps=1e-5,
        ),
    )


def build_tiny_sam_hq_config():
    from transformers import (
        SamHQConfig,
        SamHQMaskDecoderConfig,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
    )

    return SamHQConfig(
        vision_config=SamHQVisionConfig(
            hidden_size=48,
            output_channels=TINY_DIM,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=TINY_IMAGE_SIZE,
            patch_size=16,
            window_size=4,
            global_attn_indexes=[1],
            num_pos_feats=TINY_DIM // 2,
            mlp_dim=192,
        ),
        prompt_encoder_config=SamHQPromptEncoderConfig(
            hidden_size=TINY_DIM,
            image_size=TINY_IMAGE_SIZE,
            patch_size=16,
            mask_input_channels=16,
        ),
        mask_decoder_config=SamHQMaskDecoderConfig(
            hidden_size=TINY_DIM,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
            vit_dim=48,
            layer_norm_eps=1e-5,
        ),
    )


def build_tiny_sam2_config():
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[TINY_IMAGE_SIZE, TINY_IMAGE_SIZE],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 2],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    grid = TINY_IMAGE_SIZE // 4
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[grid, grid], [grid // 2, grid // 2], [grid // 4, grid // 4]],
        fpn_hidden_size=TINY_DIM,
    )
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(
            hidden_size=TINY_DIM,
            image_size=TINY_IMAGE_SIZE,
            patch_size=16,
            mask_input_channels=16,
        ),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=TINY_DIM,
            mlp_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            iou_head_hidden_dim=32,
        ),
    )


def _save_hf(model, processor, folder: Path) -> Path:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _sam_processor(processor_cls, image_processor_cls):
    low = 4 * (TINY_IMAGE_SIZE // 16)
    return processor_cls(
        image_processor=image_processor_cls(
            size={"longest_edge": TINY_IMAGE_SIZE},
            pad_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
            mask_size={"longest_edge": low},
            mask_pad_size={"height": low, "width": low},
        )
    )


@pytest.fixture(scope="session")
def tiny_sam_dir(tmp_path_factory) -> Path:
    """Folder with a tiny transformers ``SamModel`` (seeded random weights) and its processor."""
    from transformers import SamImageProcessor, SamModel, SamProcessor

    torch.manual_seed(0)
    model = randomize_(SamModel(build_tiny_sam_config()), seed=1).eval()
    folder = tmp_path_factory.mktemp("tiny_sam")
    return _save_hf(model, _sam_processor(SamProcessor, SamImageProcessor), folder)


@pytest.fixture(scope="session")
def tiny_sam_hq_dir(tmp_path_factory) -> Path:
    """Folder with a tiny transformers ``SamHQModel`` and its processor."""
    from transformers import SamHQModel, SamHQProcessor, SamImageProcessor

    torch.manual_seed(0)
    model = randomize_(SamHQModel(build_tiny_sam_hq_config()), seed=2).eval()
    folder = tmp_path_factory.mktemp("tiny_sam_hq")
    return _save_hf(model, _sam_processor(SamHQProcessor, SamImageProcessor), folder)


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    """Folder with a tiny transformers ``Sam2Model`` (Hiera backbone at 128 px)."""
    from transformers import Sam2ImageProcessor, Sam2Model, Sam2Processor

    torch.manual_seed(0)
    model = randomize_(Sam2Model(build_tiny_sam2_config()), seed=3).eval()
    processor = Sam2Processor(
        image_processor=Sam2ImageProcessor(
            size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
            mask_size={"height": 4 * (TINY_IMAGE_SIZE // 16), "width": 4 * (TINY_IMAGE_SIZE // 16)},
        ),
        target_size=TINY_IMAGE_SIZE,
    )
    folder = tmp_path_factory.mktemp("tiny_sam2")
    return _save_hf(model, processor, folder)


@pytest.fixture(scope="session")
def tiny_official_sam(tmp_path_factory) -> OfficialTinySam:
    """Official tiny Sam (segment_anything), its .pth and our conversion of it."""
    pytest.importorskip("segment_anything")
    from promptseg.convert.sam_checkpoint import convert_sam_checkpoint

    model = build_official_tiny_sam(seed=0)
    root = tmp_path_factory.mktemp("official_sam")
    checkpoint = root / "sam_tiny.pth"
    torch.save(model.state_dict(), checkpoint)
    converted = convert_sam_checkpoint(checkpoint, root / "converted", decoder_num_heads=2)
    return OfficialTinySam(model=model, checkpoint=checkpoint, converted_dir=converted)


def shapes_image(
    height: int = 192, width: int = 256, seed: int = 1, n_shapes: int = 10
) -> np.ndarray:
    """An RGB uint8 scene with strong structure: dark background, solid discs and rectangles.

    Shapes get seeded random colours, centres and sizes (5-16 % of the short side), with
    +-5 grey-level noise on top.
    """
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (30, 30, 35)
    yy, xx = np.mgrid[:height, :width]
    for k in range(n_shapes):
        colour = rng.integers(60, 256, 3)
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        radius = rng.uniform(0.05, 0.16) * min(height, width)
        if k % 2:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        else:
            inside = (np.abs(yy - cy) < radius) & (np.abs(xx - cx) < radius * rng.uniform(0.6, 1.6))
        image[inside] = colour
    noise = rng.integers(-5, 6, size=image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
