"""Convert an official Segment Anything checkpoint (.pth) into a transformers ``SamModel`` folder.

Source format: the ``state_dict`` of ``segment_anything.modeling.Sam`` as released by Kirillov
et al., "Segment Anything" (arXiv:2304.02643, https://github.com/facebookresearch/segment-anything):
``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``, and fine-tunes that
keep the architecture, such as MedSAM (Ma et al., "Segment Anything in Medical Images",
Nature Communications 2024, https://github.com/bowang-lab/MedSAM).

transformers 5 ships no converter for these files; the key map below is our own. The
architecture is read from tensor shapes (embedding width, depth, heads from the relative position
tables, global-attention blocks, window size, image size from the absolute position embedding),
so tiny and non-standard variants convert too. Two numbers cannot be read from shapes: the
number of attention heads of the mask decoder's two-way transformer (8 in every released model)
and the pixel normalisation (not stored in the state dict); both are keyword arguments.

The official mask decoder's ``nn.LayerNorm`` layers use eps 1e-5 while transformers' default is
1e-6; the converted config sets ``mask_decoder_config.layer_norm_eps = 1e-5`` so outputs match.

Preprocessing note: MedSAM's own inference script min-max normalises images to [0, 1] and skips
``Sam.preprocess``; pass ``pixel_mean=(0, 0, 0), pixel_std=(255, 255, 255)`` to reproduce that
for images already min-max scaled to 0..255.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from promptseg.errors import InputError, WeightsError

__all__ = ["convert_sam_checkpoint", "infer_sam_architecture", "official_to_hf_key"]

# [SAM-repo] build_sam.py: the three released image encoders
_OFFICIAL_ENCODERS: dict[str, dict[str, Any]] = {
    "vit_b": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "global_attn_indexes": [2, 5, 8, 11],
    },
    "vit_l": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "global_attn_indexes": [5, 11, 17, 23],
    },
    "vit_h": {
        "hidden_size": 1280,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "global_attn_indexes": [7, 15, 23, 31],
    },
}
_MODEL_TYPE_ALIASES = {
    "default": "vit_h",
    "medsam": "vit_b",
    "sam_vit_b": "vit_b",
    "sam_vit_l": "vit_l",
    "sam_vit_h": "vit_h",
}
# [SAM-repo] build_sam.py: TwoWayTransformer(num_heads=8), window_size=14, pixel mean / std
_DECODER_HEADS = 8
_WINDOW_SIZE = 14
_PIXEL_MEAN = (123.675, 116.28, 103.53)
_PIXEL_STD = (58.395, 57.12, 57.375)
# [SAM-repo] modeling/transformer.py: nn.LayerNorm default eps
_DECODER_LAYER_NORM_EPS = 1e-5

# Fixed renames, official -> transformers, applied after the prefix rules below.
_EXACT = {
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (
        "shared_image_embedding.positional_embedding"
    ),
    "image_encoder.pos_embed": "vision_encoder.pos_embed",
    "image_encoder.patch_embed.proj.weight": "vision_encoder.patch_embed.projection.weight",
    "image_encoder.patch_embed.proj.bias": "vision_encoder.patch_embed.projection.bias",
    "prompt_encoder.not_a_point_embed.weight": "prompt_encoder.not_a_point_embed.weight",
    "prompt_encoder.no_mask_embed.weight": "prompt_encoder.no_mask_embed.weight",
    "mask_decoder.iou_token.weight": "mask_decoder.iou_token.weight",
    "mask_decoder.mask_tokens.weight": "mask_decoder.mask_tokens.weight",
}
_NECK = {"0": "conv1", "1": "layer_norm1", "2": "conv2", "3": "layer_norm2"}
_MASK_DOWNSCALING = {
    "0": "conv1",
    "1": "layer_norm1",
    "3": "conv2",
    "4": "layer_norm2",
    "6": "conv3",
}
_UPSCALING = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}
_BLOCK_NORMS = {"norm1": "layer_norm1", "norm2": "layer_norm2"}
_TWO_WAY_NORMS = {
    "norm1": "layer_norm1",
    "norm2": "layer_norm2",
    "norm3": "layer_norm3",
    "norm4": "layer_norm4",
}


def _mlp_layer_name(index: int, depth: int) -> str:
    """Official ``MLP.layers.i`` -> transformers ``SamFeedForward`` (proj_in, layers, proj_out)."""
    if index == 0:
        return "proj_in"
    if index == depth - 1:
        return "proj_out"
    return f"layers.{index - 1}"


# Renames one captured group of a key rule: ``(text, iou_head_depth, hypernet_depth)`` -> the
# transformers name part, or None when this rule does not rename the key.
_GroupRename = Callable[[str, int, int], "str | None"]


def _lookup(table: dict[str, str]) -> _GroupRename:
    """Rename a group through ``table``; a group not in it means the rule does not apply."""
    return lambda text, iou_head_depth, hypernet_depth: table.get(text)


def _iou_head_layer(text: str, iou_head_depth: int, hypernet_depth: int) -> str:
    return _mlp_layer_name(int(text), iou_head_depth)


def _hypernet_layer(text: str, iou_head_depth: int, hypernet_depth: int) -> str:
    return _mlp_layer_name(int(text), hypernet_depth)


# Prefix rules, official -> transformers, tried in order after _EXACT: a key that fully matches
# ``pattern`` becomes ``template.format(match, group 1, group 2, ...)``, after each group
# numbered in ``renames`` has been renamed.
_KEY_RULES: tuple[tuple[re.Pattern[str], str, dict[int, _GroupRename]], ...] = tuple(
    (re.compile(pattern), template, renames)
    for pattern, template, renames in (
        (
            r"image_encoder\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)",
            "vision_encoder.layers.{1}.{2}.{3}",
            {2: _lookup(_BLOCK_NORMS)},
        ),
        (
            r"image_encoder\.blocks\.(\d+)\.(attn\.(?:qkv|proj)\.(?:weight|bias)"
            r"|attn\.rel_pos_[hw]|mlp\.lin[12]\.(?:weight|bias))",
            "vision_encoder.layers.{1}.{2}",
            {},
        ),
        (
            r"image_encoder\.neck\.(\d)\.(weight|bias)",
            "vision_encoder.neck.{1}.{2}",
            {1: _lookup(_NECK)},
        ),
        (
            r"prompt_encoder\.point_embeddings\.(\d+)\.weight",
            "prompt_encoder.point_embed.{1}.weight",
            {},
        ),
        (
            r"prompt_encoder\.mask_downscaling\.(\d)\.(weight|bias)",
            "prompt_encoder.mask_embed.{1}.{2}",
            {1: _lookup(_MASK_DOWNSCALING)},
        ),
        (
            r"mask_decoder\.transformer\.layers\.(\d+)\.((?:self_attn|cross_attn_token_to_image"
            r"|cross_attn_image_to_token)\.(?:q|k|v|out)_proj\.(?:weight|bias)"
            r"|mlp\.lin[12]\.(?:weight|bias))",
            "mask_decoder.transformer.layers.{1}.{2}",
            {},
        ),
        (
            r"mask_decoder\.transformer\.layers\.(\d+)\.(norm[1-4])\.(weight|bias)",
            "mask_decoder.transformer.layers.{1}.{2}.{3}",
            {2: _lookup(_TWO_WAY_NORMS)},
        ),
        (
            r"mask_decoder\.transformer\.final_attn_token_to_image\.((?:q|k|v|out)_proj\."
            r"(?:weight|bias))",
            "mask_decoder.transformer.final_attn_token_to_image.{1}",
            {},
        ),
        (
            r"mask_decoder\.transformer\.norm_final_attn\.(weight|bias)",
            "mask_decoder.transformer.layer_norm_final_attn.{1}",
            {},
        ),
        (
            r"mask_decoder\.output_upscaling\.(\d)\.(weight|bias)",
            "mask_decoder.{1}.{2}",
            {1: _lookup(_UPSCALING)},
        ),
        (
            r"mask_decoder\.output_hypernetworks_mlps\.(\d+)\.layers\.(\d+)\.(weight|bias)",
            "mask_decoder.output_hypernetworks_mlps.{1}.{2}.{3}",
            {2: _hypernet_layer},
        ),
        (
            r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.(weight|bias)",
            "mask_decoder.iou_prediction_head.{1}.{2}",
            {1: _iou_head_layer},
        ),
    )
)


def official_to_hf_key(key: str, iou_head_depth: int = 3, hypernet_depth: int = 3) -> str | None:
    """Name of an official ``Sam`` state-dict key in transformers' ``SamModel``, or None.

    ``iou_head_depth`` and ``hypernet_depth`` are the layer counts of the mask decoder's IoU head
    and hypernetwork MLPs, whose first and last layers transformers names apart.
    """
    if key in _EXACT:
        return _EXACT[key]
    for pattern, template, renames in _KEY_RULES:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        parts: list[str | None] = [m[0], *m.groups()]
        for index, rename in renames.items():
            parts[index] = rename(m[index], iou_head_depth, hypernet_depth)
        if None not in parts:
            return template.format(*parts)
    return None


def _load_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    if not checkpoint.is_file():
        raise WeightsError(f"checkpoint {str(checkpoint)!r} does not exist")
    try:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or non-tensor pickle
        raise WeightsError(
            f"could not read {str(checkpoint)!r} as a PyTorch state dict (weights_only=True): {exc}"
        ) from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{str(checkpoint)!r} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _indices(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m[1]) for k in state if (m := rx.match(k))})


def infer_sam_architecture(
    state: dict[str, torch.Tensor], model_type: str | None = None
) -> dict[str, dict[str, Any]]:
    """Read the SAM architecture from an official state dict's tensor shapes.

    Args:
        state: official ``Sam`` state dict.
        model_type: optional ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (or ``"medsam"``): the
            inferred encoder must agree with the released one, and it fills the window size
            and heads if the checkpoint has no relative position tables.

    Returns:
        keyword dicts for ``SamVisionConfig``, ``SamPromptEncoderConfig`` and
        ``SamMaskDecoderConfig`` (keys ``vision``, ``prompt``, ``decoder``).
    """
    if (
        "image_encoder.patch_embed.proj.weight" not in state
        or "mask_decoder.iou_token.weight" not in state
    ):
        if any(k.startswith("image_encoder.trunk.") for k in state):
            found = "a SAM 2 checkpoint"
        elif "mask_decoder.hf_token.weight" in state:
            found = "a SAM-HQ checkpoint"
        else:
            found = f"keys such as {sorted(state)[:5]}"
        raise WeightsError(
            f"not an official Segment Anything (v1) checkpoint: found {found}; this converter "
            "handles segment_anything Sam state dicts (SAM ViT-B/L/H, MedSAM)"
        )
    if model_type is not None:
        model_type = _MODEL_TYPE_ALIASES.get(model_type, model_type)
        if model_type not in _OFFICIAL_ENCODERS:
            raise InputError(
                f"model_type must be one of {sorted(_OFFICIAL_ENCODERS)} (or "
                f"{sorted(_MODEL_TYPE_ALIASES)}), got {model_type!r}"
            )
    patch_w = state["image_encoder.patch_embed.proj.weight"]
    hidden, channels, patch = int(patch_w.shape[0]), int(patch_w.shape[1]), int(patch_w.shape[-1])
    pos = state.get("image_encoder.pos_embed")
    use_abs_pos = pos is not None
    grid = int(pos.shape[1]) if use_abs_pos else 1024 // patch
    image_size = grid * patch
    blocks = _indices(state, r"image_encoder\.blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise WeightsError(f"image encoder blocks are not numbered 0..n-1: {blocks}")
    depth = len(blocks)
    mlp_dim = int(state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0])
    qkv_bias = "image_encoder.blocks.0.attn.qkv.bias" in state
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in state
    known = _OFFICIAL_ENCODERS.get(model_type or "", None)
    if use_rel_pos:
        head_dim = int(state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
        heads = hidden // head_dim
        lengths = [int(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0]) for i in blocks]
        global_len = 2 * grid - 1
        global_idx = [i for i, n in enumerate(lengths) if n == global_len]
        windows = {(n + 1) // 2 for n in lengths if n != global_len}
        if len(windows) > 1:
            raise WeightsError(f"blocks use several window sizes {sorted(windows)}")
        window = windows.pop() if windows else 0
        if window == 0 and known is not None:
            window = _WINDOW_SIZE
    elif known is not None:
        heads, window = known["num_attention_heads"], _WINDOW_SIZE
        global_idx = list(known["global_attn_indexes"])
    else:
        raise WeightsError(
            "the checkpoint has no relative position tables, so heads and window size cannot be "
            "read from it; pass model_type='vit_b', 'vit_l' or 'vit_h'"
        )
    if known is not None:
        found = {
            "hidden_size": hidden,
            "num_hidden_layers": depth,
            "num_attention_heads": heads,
            "global_attn_indexes": global_idx,
        }
        if found != known:
            raise WeightsError(
                f"model_type {model_type!r} expects an encoder {known}, the checkpoint has {found}"
            )
    out_channels = int(state["image_encoder.neck.0.weight"].shape[0])
    vision = {
        "hidden_size": hidden,
        "output_channels": out_channels,
        "num_hidden_layers": depth,
        "num_attention_heads": heads,
        "num_channels": channels,
        "image_size": image_size,
        "patch_size": patch,
        "qkv_bias": qkv_bias,
        "mlp_dim": mlp_dim,
        "mlp_ratio": mlp_dim / hidden,
        "use_abs_pos": use_abs_pos,
        "use_rel_pos": use_rel_pos,
        "window_size": window,
        "global_attn_indexes": global_idx,
        "num_pos_feats": int(
            state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape[1]
        ),
        "layer_norm_eps": 1e-6,  # [SAM-repo] build_sam.py: partial(LayerNorm, eps=1e-6)
    }
    prompt_dim = int(state["prompt_encoder.no_mask_embed.weight"].shape[1])
    prompt = {
        "hidden_size": prompt_dim,
        "image_size": image_size,
        "patch_size": patch,
        "mask_input_channels": int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        "num_point_embeddings": len(_indices(state, r"prompt_encoder\.point_embeddings\.(\d+)\.")),
        "layer_norm_eps": 1e-6,  # [SAM-repo] modeling/common.py LayerNorm2d
    }
    dim = int(state["mask_decoder.iou_token.weight"].shape[1])
    two_way = _indices(state, r"mask_decoder\.transformer\.layers\.(\d+)\.")
    internal = int(
        state["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
    )
    iou_layers = _indices(state, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.")
    hyper_layers = _indices(state, r"mask_decoder\.output_hypernetworks_mlps\.0\.layers\.(\d+)\.")
    if len(hyper_layers) != 3:
        raise WeightsError(
            f"hypernetwork MLPs have {len(hyper_layers)} layers; transformers' SamModel needs 3"
        )
    decoder = {
        "hidden_size": dim,
        "num_hidden_layers": len(two_way),
        "mlp_dim": int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        "attention_downsample_rate": dim // internal,
        "num_multimask_outputs": int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
        "iou_head_depth": len(iou_layers),
        "iou_head_hidden_dim": int(
            state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]
        ),
        "layer_norm_eps": _DECODER_LAYER_NORM_EPS,
    }
    if not (out_channels == prompt_dim == dim):
        raise WeightsError(
            f"neck ({out_channels}), prompt encoder ({prompt_dim}) and mask decoder ({dim}) "
            "widths differ; transformers' SamModel needs them equal"
        )
    return {"vision": vision, "prompt": prompt, "decoder": decoder}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_sam_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    model_type: str | None = None,
    *,
    decoder_num_heads: int = _DECODER_HEADS,
    pixel_mean: tuple[float, float, float] = _PIXEL_MEAN,
    pixel_std: tuple[float, float, float] = _PIXEL_STD,
    overwrite: bool = False,
) -> Path:
    """Convert an official SAM ``.pth`` state dict into a transformers ``SamModel`` folder.

    The folder holds ``config.json``, ``model.safetensors``, a ``SamProcessor`` config whose
    resizing, normalisation and padding match the official ``SamPredictor``, and
    ``promptseg_conversion.json`` (source file name, sha256, inferred architecture). It is
    written to a temporary folder beside ``out_dir`` and renamed into place, so a crash never
    leaves a half-written model.

    Args:
        checkpoint: path to the official ``.pth`` (SAM ViT-B/L/H, MedSAM, or a variant).
        out_dir: folder to create.
        model_type: optional ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or ``"medsam"`` to check the
            inferred architecture against.
        decoder_num_heads: heads of the decoder's two-way transformer (not stored in shapes).
        pixel_mean: per-channel mean in 0..255 units (official default: ImageNet).
        pixel_std: per-channel std in 0..255 units.
        overwrite: replace ``out_dir`` if it exists.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        WeightsError: unreadable file, not a SAM v1 state dict, keys left unused, or
            parameters left unfilled (the message lists them).
        InputError: ``out_dir`` exists and ``overwrite`` is False, or a bad ``model_type``.
    """
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{str(out_dir)!r} already exists; pass overwrite=True to replace it")
    state = _load_state_dict(checkpoint)
    arch = infer_sam_architecture(state, model_type)
    arch["decoder"]["num_attention_heads"] = int(decoder_num_heads)
    config = SamConfig(
        vision_config=SamVisionConfig(**arch["vision"]),
        prompt_encoder_config=SamPromptEncoderConfig(**arch["prompt"]),
        mask_decoder_config=SamMaskDecoderConfig(**arch["decoder"]),
    )
    iou_depth = arch["decoder"]["iou_head_depth"]

    # Map every official key; collect what does not map.
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, tensor in state.items():
        new = official_to_hf_key(key, iou_head_depth=iou_depth)
        if new is None:
            unused.append(key)
        else:
            converted[new] = tensor
    pe = converted.get("shared_image_embedding.positional_embedding")
    if pe is not None:  # transformers keeps a tied copy inside the prompt encoder
        converted["prompt_encoder.shared_embedding.positional_embedding"] = pe

    with torch.device("meta"):
        model = SamModel(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(converted)
        if tuple(converted[k].shape) != tuple(expected[k].shape)
    )
    if unused or missing or unexpected or wrong_shape:
        parts = []
        if unused:
            parts.append(f"checkpoint keys with no transformers name: {unused}")
        if unexpected:
            parts.append(f"mapped names the model does not have: {unexpected}")
        if missing:
            parts.append(f"model parameters left unfilled: {missing}")
        if wrong_shape:
            parts.append(f"shape mismatches: {wrong_shape}")
        raise WeightsError(f"cannot convert {str(checkpoint)!r} to SamModel: " + "; ".join(parts))
    model.load_state_dict(
        {k: v.to(torch.float32).contiguous() for k, v in converted.items()},
        strict=True,
        assign=True,
    )
    model.eval()

    image_size = arch["vision"]["image_size"]
    low_res = 4 * (image_size // arch["vision"]["patch_size"])
    processor = SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": image_size},
            pad_size={"height": image_size, "width": image_size},
            mask_size={"longest_edge": low_res},
            mask_pad_size={"height": low_res, "width": low_res},
            image_mean=[m / 255.0 for m in pixel_mean],
            image_std=[s / 255.0 for s in pixel_std],
        )
    )
    provenance = {
        "source": checkpoint.name,
        "sha256": _sha256(checkpoint),
        "format": "segment_anything.modeling.Sam state_dict",
        "model_type": model_type,
        "architecture": arch,
        "pixel_mean": list(pixel_mean),
        "pixel_std": list(pixel_std),
        "converter": "promptseg.convert.sam_checkpoint",
    }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        with open(tmp / "promptseg_conversion.json", "w", encoding="utf-8") as fh:
            json.dump(provenance, fh, indent=2)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "model")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
