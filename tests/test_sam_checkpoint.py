"""Tests of promptseg.convert.sam_checkpoint (official SAM .pth -> transformers SamModel)."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures_sam import build_official_tiny_sam

from promptseg.convert.sam_checkpoint import (
    convert_sam_checkpoint,
    infer_sam_architecture,
    official_to_hf_key,
)
from promptseg.errors import InputError, WeightsError

pytest.importorskip("segment_anything")


@pytest.fixture(scope="module")
def official_state():
    return build_official_tiny_sam(seed=5).state_dict()


def _save(state, path):
    torch.save(state, path)
    return path


def test_converted_folder_records_architecture_and_provenance(tiny_official_sam):
    folder = tiny_official_sam.converted_dir
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "sam"
    assert config["mask_decoder_config"]["layer_norm_eps"] == 1e-5
    vision = config["vision_config"]
    assert (vision["hidden_size"], vision["num_hidden_layers"], vision["num_attention_heads"]) == (
        48,
        2,
        2,
    )
    assert vision["global_attn_indexes"] == [1] and vision["window_size"] == 4
    assert vision["image_size"] == 128
    processor = json.loads((folder / "processor_config.json").read_text())["image_processor"]
    assert processor["size"] == {"longest_edge": 128}
    assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406])
    provenance = json.loads((folder / "promptseg_conversion.json").read_text())
    assert provenance["source"] == "sam_tiny.pth" and len(provenance["sha256"]) == 64
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".converted")]


def test_every_weight_is_carried_over(tiny_official_sam):
    from transformers import SamModel

    model = SamModel.from_pretrained(tiny_official_sam.converted_dir)
    hf = model.state_dict()
    for key, value in tiny_official_sam.model.state_dict().items():
        if key in ("pixel_mean", "pixel_std"):
            continue
        torch.testing.assert_close(hf[official_to_hf_key(key)], value, rtol=0, atol=0)
    torch.testing.assert_close(
        hf["prompt_encoder.shared_embedding.positional_embedding"],
        hf["shared_image_embedding.positional_embedding"],
    )


def test_wrapped_and_prefixed_checkpoints_convert(official_state, tmp_path):
    wrapped = {"model": {f"module.{k}": v for k, v in official_state.items()}}
    out = convert_sam_checkpoint(
        _save(wrapped, tmp_path / "w.pth"), tmp_path / "out", decoder_num_heads=2
    )
    assert (out / "model.safetensors").is_file()


def test_released_architectures_are_recognised():
    shapes = {"vit_b": (768, 12, 12, [2, 5, 8, 11])}
    cross_q = "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"
    for name, (dim, depth, heads, global_idx) in shapes.items():
        grid, head_dim = 64, dim // heads
        state = {
            "image_encoder.patch_embed.proj.weight": torch.empty(dim, 3, 16, 16),
            "image_encoder.pos_embed": torch.empty(1, grid, grid, dim),
            "image_encoder.neck.0.weight": torch.empty(256, dim, 1, 1),
            "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": torch.empty(2, 128),
            "prompt_encoder.no_mask_embed.weight": torch.empty(1, 256),
            "prompt_encoder.mask_downscaling.3.weight": torch.empty(16, 4, 2, 2),
            "mask_decoder.iou_token.weight": torch.empty(1, 256),
            "mask_decoder.mask_tokens.weight": torch.empty(4, 256),
            "mask_decoder.transformer.layers.0.mlp.lin1.weight": torch.empty(2048, 256),
            "mask_decoder.transformer.layers.1.mlp.lin1.weight": torch.empty(2048, 256),
            cross_q: torch.empty(128, 256),
            "mask_decoder.iou_prediction_head.layers.0.weight": torch.empty(256, 256),
            "mask_decoder.iou_prediction_head.layers.1.weight": torch.empty(256, 256),
            "mask_decoder.iou_prediction_head.layers.2.weight": torch.empty(4, 256),
        }
        for i in range(4):
            state[f"prompt_encoder.point_embeddings.{i}.weight"] = torch.empty(1, 256)
        for i in range(3):
            state[f"mask_decoder.output_hypernetworks_mlps.0.layers.{i}.weight"] = torch.empty(1)
        for i in range(depth):
            length = 2 * grid - 1 if i in global_idx else 27
            state[f"image_encoder.blocks.{i}.attn.rel_pos_h"] = torch.empty(length, head_dim)
            state[f"image_encoder.blocks.{i}.attn.qkv.bias"] = torch.empty(3 * dim)
            state[f"image_encoder.blocks.{i}.mlp.lin1.weight"] = torch.empty(4 * dim, dim)
        arch = infer_sam_architecture(state, model_type=name)
        vision = arch["vision"]
        assert (vision["hidden_size"], vision["num_hidden_layers"]) == (dim, depth)
        assert (
            vision["num_attention_heads"] == heads and vision["global_attn_indexes"] == global_idx
        )
        assert vision["window_size"] == 14 and vision["image_size"] == 1024
        assert arch["decoder"]["attention_downsample_rate"] == 2
        assert arch["decoder"]["layer_norm_eps"] == 1e-5
        with pytest.raises(WeightsError, match="vit_l"):
            infer_sam_architecture(state, model_type="vit_l")


def test_unused_key_is_reported(official_state, tmp_path):
    state = dict(official_state, **{"mask_decoder.extra_head.weight": torch.zeros(3)})
    with pytest.raises(WeightsError, match="extra_head"):
        convert_sam_checkpoint(
            _save(state, tmp_path / "x.pth"), tmp_path / "out", decoder_num_heads=2
        )
    assert not (tmp_path / "out").exists()


def test_missing_key_is_reported(official_state, tmp_path):
    state = {k: v for k, v in official_state.items() if "norm_final_attn.bias" not in k}
    with pytest.raises(WeightsError, match="layer_norm_final_attn.bias"):
        convert_sam_checkpoint(
            _save(state, tmp_path / "x.pth"), tmp_path / "out", decoder_num_heads=2
        )


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1)}, "SAM 2"),
        ({"mask_decoder.hf_token.weight": torch.zeros(1)}, "SAM-HQ"),
        ({"layer.weight": torch.zeros(1)}, "not an official Segment Anything"),
    ],
)
def test_other_formats_are_refused(state, message, tmp_path):
    with pytest.raises(WeightsError, match=message):
        convert_sam_checkpoint(_save(state, tmp_path / "x.pth"), tmp_path / "out")


def test_bad_files_and_targets(official_state, tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        convert_sam_checkpoint(tmp_path / "missing.pth", tmp_path / "out")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="could not read"):
        convert_sam_checkpoint(tmp_path / "junk.pth", tmp_path / "out")
    checkpoint = _save(official_state, tmp_path / "ok.pth")
    target = tmp_path / "exists"
    target.mkdir()
    with pytest.raises(InputError, match="overwrite=True"):
        convert_sam_checkpoint(checkpoint, target)
    with pytest.raises(InputError, match="model_type"):
        convert_sam_checkpoint(checkpoint, tmp_path / "out2", model_type="vit_x")
    convert_sam_checkpoint(checkpoint, target, decoder_num_heads=2, overwrite=True)
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
