"""promptseg.models.clip: both CLIP libraries load from folders and match their own outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, InputError, UnknownModelError, WeightsError
from promptseg.models.clip import ClipScorer

TEXTS = ["a photo of a cat", "The man in the RED jacket!", "lungs", "something to sit on, 123"]


def _images(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 50), (64, 31), (32, 32), (17, 90), (100, 60), (48, 48)]
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def hf_clip(tiny_hf_clip_dir):
    return ClipScorer.from_pretrained(tiny_hf_clip_dir)


@pytest.fixture(scope="module")
def oc_clip(tiny_open_clip_dir):
    return ClipScorer.from_pretrained(str(tiny_open_clip_dir))


@pytest.fixture(params=["hf", "oc"])
def clip(request, hf_clip, oc_clip):
    return hf_clip if request.param == "hf" else oc_clip


def test_tokenizer_ids_equal_open_clip(clip_tokenizer_dir):
    import open_clip
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_dir)
    reference = open_clip.get_tokenizer("ViT-B-16")
    assert len(tokenizer) == 49408
    for text in TEXTS:
        ids = tokenizer(text)["input_ids"]
        expected = reference([text])[0]
        assert ids == expected[: len(ids)].tolist()
        assert expected[len(ids) :].eq(0).all()  # open_clip pads with 0 after <|endoftext|>


def test_attributes(hf_clip, oc_clip, tiny_hf_clip_dir, tiny_open_clip_dir):
    assert hf_clip.family == "hf_clip" and oc_clip.family == "open_clip"
    assert (hf_clip.image_size, hf_clip.embed_dim) == (32, 16)
    assert (oc_clip.image_size, oc_clip.embed_dim) == (48, 24)
    assert hf_clip.model_id == str(tiny_hf_clip_dir)
    assert oc_clip.model_id == str(tiny_open_clip_dir)
    for clip in (hf_clip, oc_clip):
        assert clip.device == torch.device("cpu") and clip.dtype == torch.float32
        assert clip.context_length == 77
        assert isinstance(clip.logit_scale, float)
        assert clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)  # CLIP's initial value
        assert len(clip.image_mean) == 3 and len(clip.image_std) == 3
        assert not clip.model.training


def test_shapes_and_norms(clip):
    text = clip.encode_text(TEXTS)
    images = clip.encode_images(_images(3))
    assert text.shape == (4, clip.embed_dim) and images.shape == (3, clip.embed_dim)
    for emb in (text, images):
        assert emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(emb)))
    assert clip.preprocess(_images(2)).shape == (2, 3, clip.image_size, clip.image_size)
    assert clip.encode_images([]).shape == (0, clip.embed_dim)


def test_hf_parity_with_direct_calls(hf_clip, tiny_hf_clip_dir):
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(tiny_hf_clip_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(tiny_hf_clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_clip_dir)
    images = _images(4)
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        image_ref = model.get_image_features(pixel_values=pixels).pooler_output
        tokens = tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt")
        text_ref = model.get_text_features(**tokens).pooler_output
    torch.testing.assert_close(hf_clip.preprocess(images), pixels)
    torch.testing.assert_close(hf_clip.encode_images(images), F.normalize(image_ref, dim=-1))
    torch.testing.assert_close(
        hf_clip.encode_text(TEXTS), F.normalize(text_ref, dim=-1), atol=1e-5, rtol=1e-5
    )
    logit_scale = float(model.logit_scale.detach().exp())
    assert hf_clip.logit_scale == pytest.approx(logit_scale)


def test_open_clip_parity_with_direct_calls(oc_clip, tiny_open_clip_dir):
    import open_clip
    from PIL import Image

    name = f"local-dir:{tiny_open_clip_dir}"
    model, _, transform = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    images = _images(4)
    with torch.no_grad():
        pixels = torch.stack([transform(Image.fromarray(im)) for im in images])
        image_ref = model.encode_image(pixels, normalize=True)
        text_ref = model.encode_text(tokenizer(TEXTS), normalize=True)
    torch.testing.assert_close(oc_clip.preprocess(images), pixels)
    torch.testing.assert_close(oc_clip.encode_images(images), image_ref)
    torch.testing.assert_close(oc_clip.encode_text(TEXTS), text_ref)
    assert oc_clip.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))


def test_batching_does_not_change_results(clip):
    images = _images(6)
    one = clip.encode_images(images, batch_size=1)
    all_ = clip.encode_images(images, batch_size=32)
    torch.testing.assert_close(one, all_, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        clip.encode_text(TEXTS, batch_size=1), clip.encode_text(TEXTS), atol=1e-5, rtol=1e-5
    )
    same_size = _images(12)[0::6]  # two (40, 50, 3) images
    torch.testing.assert_close(
        clip.encode_images(np.stack(same_size)),  # one (B, H, W, 3) array
        clip.encode_images(same_size),
        atol=1e-5,
        rtol=1e-5,
    )


def test_preprocessed_tensor_input(clip):
    images = _images(3)
    torch.testing.assert_close(
        clip.encode_images(clip.preprocess(images), batch_size=2), clip.encode_images(images)
    )


@pytest.mark.parametrize(
    "texts, match",
    [
        ([], "empty"),
        (["a cat", "  "], "text 1 is empty or blank"),
        (["a cat", ""], "text 1"),
        ("a cat", "list of strings"),
        (["a cat", 3], "text 1 must be a string"),
    ],
)
def test_bad_texts(hf_clip, texts, match):
    with pytest.raises(InputError, match=match):
        hf_clip.encode_text(texts)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((10, 10, 3), np.uint8), "wrap it in a list"),
        ([np.zeros((10, 10), np.uint8)], r"image 0 must be \(H, W, 3\) uint8"),
        ([np.zeros((10, 10, 3), np.float32)], "dtype float32"),
        ([np.zeros((10, 10, 4), np.uint8)], "image 0"),
        ([np.zeros((0, 10, 3), np.uint8)], "empty"),
        ("picture.png", "list of"),
        (torch.zeros(1, 3, 8, 8), r"\(B, 3, 48, 48\)"),
        (torch.zeros(1, 3, 48, 48, dtype=torch.uint8), "must be float"),
    ],
)
def test_bad_images(oc_clip, images, match):
    with pytest.raises(InputError, match=match):
        oc_clip.encode_images(images)


def test_bad_options(hf_clip, tiny_hf_clip_dir):
    with pytest.raises(ConfigError, match="batch_size"):
        hf_clip.encode_images(_images(1), batch_size=0)
    with pytest.raises(ConfigError, match="dtype"):
        ClipScorer.from_pretrained(tiny_hf_clip_dir, dtype="int8")
    with pytest.raises(ConfigError, match="device"):
        ClipScorer.from_pretrained(tiny_hf_clip_dir, device="gpu:zero")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            ClipScorer.from_pretrained(tiny_hf_clip_dir, device="cuda")


@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp16"])
def test_low_precision(tiny_hf_clip_dir, tiny_open_clip_dir, hf_clip, oc_clip, dtype):
    images = _images(2)
    for folder, ref in ((tiny_hf_clip_dir, hf_clip), (tiny_open_clip_dir, oc_clip)):
        clip = ClipScorer.from_pretrained(folder, dtype=dtype)
        assert clip.dtype in (torch.bfloat16, torch.float16)
        assert next(clip.model.parameters()).dtype == clip.dtype
        emb = clip.encode_images(images)
        assert emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
        torch.testing.assert_close(emb, ref.encode_images(images), atol=5e-2, rtol=0)
        text = clip.encode_text(TEXTS[:2])
        torch.testing.assert_close(text, ref.encode_text(TEXTS[:2]), atol=5e-2, rtol=0)


def test_open_clip_prefix_forms(tiny_open_clip_dir, oc_clip):
    images = _images(2)
    for source in (f"open_clip:{tiny_open_clip_dir}", f"local-dir:{tiny_open_clip_dir}"):
        clip = ClipScorer.from_pretrained(source)
        assert clip.family == "open_clip" and clip.model_id == source
        torch.testing.assert_close(clip.encode_images(images), oc_clip.encode_images(images))


def test_wrong_family_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sam"}))
    with pytest.raises(WeightsError, match=r"holds a 'sam' model") as info:
        ClipScorer.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_folder_without_any_config(tmp_path):
    with pytest.raises(WeightsError, match="not a CLIP model folder"):
        ClipScorer.from_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="open_clip_config.json"):
        ClipScorer.from_pretrained(f"open_clip:{tmp_path}")


def test_missing_source(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UnknownModelError, match="not a local folder"):
        ClipScorer.from_pretrained(missing)
    with pytest.raises(UnknownModelError, match="not a local folder"):
        ClipScorer.from_pretrained(f"open_clip:{missing}")


def test_open_clip_folder_without_weights(tmp_path, tiny_open_clip_dir):
    shutil.copy(tiny_open_clip_dir / "open_clip_config.json", tmp_path)
    with pytest.raises(WeightsError, match="no weights file"):
        ClipScorer.from_pretrained(tmp_path)


def test_hf_folder_without_tokenizer(tmp_path, tiny_hf_clip_dir):
    for name in ("config.json", "model.safetensors", "processor_config.json"):
        shutil.copy(tiny_hf_clip_dir / name, tmp_path)
    with pytest.raises(WeightsError, match="no tokenizer files: it needs tokenizer.json"):
        ClipScorer.from_pretrained(tmp_path)


def _char_vocab_folder(folder, tiny_hf_clip_dir, letters):
    """A tiny CLIP whose tokenizer is a character-level BPE (no merges) over ``letters``."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_hf_clip_dir / name, folder)
    tokens = [c for c in letters] + [c + "</w>" for c in letters]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    side = 32
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
        tokenizer=tokenizer)
    out = folder / "model"
    out.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.move(folder / name, out / name)
    processor.save_pretrained(out)
    return out, len(tokens)


def test_small_character_vocabulary_is_accepted(tmp_path, tiny_hf_clip_dir):
    import string

    letters = string.ascii_letters + string.digits + string.punctuation  # 94 -> 190 tokens
    folder, size = _char_vocab_folder(tmp_path, tiny_hf_clip_dir, letters)
    assert size == 190
    scorer = ClipScorer.from_pretrained(folder, device="cpu")
    tokenizer = scorer._backend.tokenizer
    red, blue = (tokenizer(t)["input_ids"] for t in ("a red box", "a blue box"))
    assert red != blue and len(red) == len("a red box") - 2 + 2  # letters + start/end
    assert scorer.encode_text(["a red box"]).shape == (1, scorer.embed_dim)


def test_vocabulary_that_cannot_tell_words_apart_is_refused(tmp_path, tiny_hf_clip_dir):
    folder, _ = _char_vocab_folder(tmp_path, tiny_hf_clip_dir, "xyz")  # no letter of "cat"
    with pytest.raises(WeightsError, match="cannot tell words apart"):
        ClipScorer.from_pretrained(folder, device="cpu")


@pytest.mark.parametrize(
    "source, match",
    [
        ("open_clip:NoSuchNet/openai", "not an OpenCLIP architecture"),
        ("open_clip:ViT-B-61/openai", "Did you mean ViT-B-16"),
        ("open_clip:RN50", "no pretrained tag given; available: open_clip:RN50/openai"),
        ("open_clip:RN50/nosuchtag", "'nosuchtag' is not a pretrained tag of RN50"),
    ],
)
def test_open_clip_spec_errors(source, match):
    with pytest.raises(UnknownModelError, match=match):
        ClipScorer.from_pretrained(source)


@pytest.mark.parametrize(
    "source, arch, tag, quick_gelu",
    [
        ("open_clip:RN50/openai", "RN50", "openai", True),
        ("open_clip:ViT-B/16/openai", "ViT-B-16", "openai", True),
        ("open_clip:ViT-B-16/laion400m_e32", "ViT-B-16", "laion400m_e32", False),
    ],
)
def test_open_clip_tag_download_failure(monkeypatch, source, arch, tag, quick_gelu):
    import open_clip

    calls = []

    def offline(name, pretrained=None, **kwargs):
        calls.append((name, pretrained, kwargs))
        raise RuntimeError(f"Failed to download weights for tag '{pretrained}'")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    with pytest.raises(UnknownModelError) as info:
        ClipScorer.from_pretrained(source)
    message = str(info.value)
    assert f"open_clip:{arch}/{tag}" in message
    assert "could not be loaded or downloaded" in message
    assert "open_clip_config.json" in message and "open_clip_model.safetensors" in message
    # QuickGELU follows the tag (open_clip#771)
    assert calls == [(arch, tag, {"force_quick_gelu": quick_gelu})]


def test_folder_with_both_formats(tmp_path, tiny_hf_clip_dir, tiny_open_clip_dir):
    for folder in (tiny_hf_clip_dir, tiny_open_clip_dir):
        for path in folder.iterdir():
            shutil.copy(path, tmp_path)
    assert ClipScorer.from_pretrained(tmp_path).family == "hf_clip"
    assert ClipScorer.from_pretrained(f"open_clip:{tmp_path}").family == "open_clip"
