import pytest
import torch

from promptseg.errors import ConfigError, UnknownModelError, WeightsError
from promptseg.models import registry
from promptseg.models.clip import ClipScorer


@pytest.fixture(autouse=True)
def _fresh_cache():
    registry.clear_cache()
    yield
    registry.clear_cache()


def test_load_clip_from_folders_is_cached(tiny_hf_clip_dir, tiny_open_clip_dir):
    hf = registry.load_clip(str(tiny_hf_clip_dir), device="cpu")
    assert isinstance(hf, ClipScorer) and hf.family == "hf_clip"
    assert registry.load_clip(str(tiny_hf_clip_dir), device="cpu") is hf
    oc = registry.load_clip(str(tiny_open_clip_dir), device="cpu")
    assert oc.family == "open_clip"
    assert registry.load_clip(f"open_clip:{tiny_open_clip_dir}", device="cpu").family == "open_clip"


def test_load_sam_families(tiny_sam_dir, tiny_sam_hq_dir, tiny_sam2_dir):
    for folder, family in ((tiny_sam_dir, "sam"), (tiny_sam_hq_dir, "sam_hq"),
                           (tiny_sam2_dir, "sam2")):
        assert registry.load_sam(str(folder), device="cpu").family == family


def test_wrong_family_folder(tiny_hf_clip_dir, tiny_sam_dir):
    with pytest.raises(WeightsError, match="SAM-family"):
        registry.load_sam(str(tiny_hf_clip_dir), device="cpu")
    with pytest.raises(WeightsError, match="CLIP"):
        registry.load_clip(str(tiny_sam_dir), device="cpu")


def test_folder_that_is_no_model(tmp_path):
    with pytest.raises(WeightsError, match="not a model folder"):
        registry.load_sam(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(WeightsError, match="'bert'"):
        registry.load_clip(str(tmp_path))


def test_unknown_hub_id_offline_names_id_and_remedy(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError) as info:
        registry.load_sam("facebook/sam-vit-nonexistent")
    message = str(info.value)
    assert "facebook/sam-vit-nonexistent" in message
    assert "HF_HOME" in message and "local folder" in message


def test_unknown_name_suggests():
    with pytest.raises(UnknownModelError, match="Did you mean 'facebook/sam-vit-base'"):
        registry.load_sam("facebook-sam-vit-base")


def test_official_checkpoint_is_converted_once(tiny_official_sam, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSEG_CACHE", str(tmp_path / "cache"))
    sam = registry.load_sam(str(tiny_official_sam.checkpoint), device="cpu")
    assert sam.family == "sam"
    converted = list((tmp_path / "cache" / "converted").iterdir())
    assert len(converted) == 1 and (converted[0] / "config.json").is_file()


def test_list_models_and_availability():
    ids = [m.id for m in registry.list_models("clip")]
    assert "openai/clip-vit-base-patch16" in ids and "open_clip:RN50/openai" in ids
    assert {m.family for m in registry.list_models("sam")} == {"sam"}
    assert not registry.is_available_locally("facebook/sam-vit-nonexistent")
    with pytest.raises(ConfigError):
        registry.list_models("dino")


@pytest.mark.parametrize("name, expected", [("fp16", torch.float16), ("bf16", torch.bfloat16),
                                            (None, torch.float32)])
def test_resolve_dtype(name, expected):
    assert registry.resolve_dtype(name) == expected


def test_bad_device_and_dtype():
    with pytest.raises(ConfigError, match="dtype"):
        registry.resolve_dtype("int8")
    with pytest.raises(ConfigError, match="device"):
        registry.resolve_device("tpu")
    assert registry.resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_sam2_video_checkpoint_loads_as_sam2(tmp_path):
    """facebook/sam2.1-hiera-* on the hub are saved as `sam2_video` models."""
    from fixtures_sam import build_tiny_sam2_config
    from transformers import Sam2VideoConfig, Sam2VideoModel

    image_config = build_tiny_sam2_config()
    config = Sam2VideoConfig(vision_config=image_config.vision_config,
                             prompt_encoder_config=image_config.prompt_encoder_config,
                             mask_decoder_config=image_config.mask_decoder_config)
    torch.manual_seed(0)
    Sam2VideoModel(config).save_pretrained(tmp_path)
    assert registry.detect_family(tmp_path) == ("sam", "sam2")
    assert registry.load_sam(str(tmp_path), device="cpu").family == "sam2"


def _fake_hub_cache(root, repo_id, source_dir):
    """Lay ``source_dir`` out as the hub cache does: models--org--name/{refs,snapshots}."""
    import shutil

    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(source_dir, repo / "snapshots" / ("0" * 40))
    return root


def test_hub_id_loads_from_the_local_cache(tmp_path, monkeypatch, tiny_hf_clip_dir):
    from huggingface_hub import constants

    cache = _fake_hub_cache(tmp_path / "hub", "acme/tiny-clip", tiny_hf_clip_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = registry.load_clip("acme/tiny-clip", device="cpu")
    assert clip.model_id == "acme/tiny-clip" and clip.family == "hf_clip"
    assert registry.is_available_locally("acme/tiny-clip")


def test_cached_hub_repo_without_weights_is_reported(tmp_path, monkeypatch, tiny_hf_clip_dir):
    import shutil

    from huggingface_hub import constants

    partial = tmp_path / "partial"
    shutil.copytree(tiny_hf_clip_dir, partial)
    for f in partial.glob("*.safetensors"):
        f.unlink()
    cache = _fake_hub_cache(tmp_path / "hub", "acme/tiny-clip", partial)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError, match="acme/tiny-clip"):
        registry.load_clip("acme/tiny-clip", device="cpu")
