"""CLIP saliency maps: Grad-CAM equal to pytorch-grad-cam (`grad-cam` on PyPI) on the same
tiny models, gScoreCAM equal to a plain masked-forward computation written here, ViT maps
that are not blank, and the checks around them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, InputError
from promptseg.models import load_clip
from promptseg.stages.saliency import (
    ActivationsAndGradients,
    clip_input,
    grad_cam,
    gscore_cam,
    saliency_maps,
    target_layer,
)

QUERIES = ["a red square", "a blue circle", "grass"]


@pytest.fixture(scope="module")
def clips(tiny_hf_clip_dir, tiny_open_clip_dir, tiny_open_clip_rn_dir):
    return {
        "hf-vit": load_clip(str(tiny_hf_clip_dir)),
        "open_clip-vit": load_clip(str(tiny_open_clip_dir)),
        "open_clip-rn": load_clip(str(tiny_open_clip_rn_dir)),
    }


def _image(side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    image[side // 4: side // 2, side // 4: side // 2] = (230, 20, 20)
    return image


def _reference_grad_cam(clip, image, queries):
    """pytorch-grad-cam's GradCAM on the same layer, input and score."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    text = clip.encode_text(queries)
    layer = target_layer(clip)

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = clip.model

        def forward(self, pixels):
            features = F.normalize(clip._backend.image_features(pixels).float(), dim=-1)
            return clip.logit_scale * features @ text.T

    def reshape(output):
        return layer.to_maps(output)

    pixels = clip_input(clip, image).requires_grad_(True)  # so the hooked layer has a graph
    maps = []
    with GradCAM(Logits(), [layer.module],
                 reshape_transform=None if layer.kind == "conv" else reshape) as cam:
        for q in range(len(queries)):
            maps.append(cam(pixels, targets=[ClassifierOutputTarget(q)])[0])
    return np.stack(maps)


@pytest.mark.parametrize("name", ["hf-vit", "open_clip-vit", "open_clip-rn"])
def test_grad_cam_equals_pytorch_grad_cam(clips, name):
    clip = clips[name]
    image = _image(clip.image_size)  # at the input side: the resize is the identity
    ours = grad_cam(clip, image, QUERIES)
    reference = _reference_grad_cam(clip, image, QUERIES)
    assert ours.shape == reference.shape == (3, clip.image_size, clip.image_size)
    np.testing.assert_allclose(ours, reference, atol=2e-5)


@pytest.mark.parametrize("name", ["hf-vit", "open_clip-vit"])
def test_vit_maps_are_not_blank(clips, name):
    """The official ViT hook (after the last attention) gives all-zero patch gradients; at
    ln_1 of the last block they flow."""
    clip = clips[name]
    found = ActivationsAndGradients(clip).run(clip_input(clip, _image(40)),
                                              clip.encode_text(QUERIES))
    assert found.gradients.abs().amax(dim=(1, 2, 3)).min() > 0
    maps = grad_cam(clip, _image(40), QUERIES)
    assert (maps.reshape(3, -1).max(axis=1) > 0.99).all()  # min-max: each peaks at 1


def test_batched_queries_equal_one_by_one(clips):
    clip = clips["open_clip-rn"]
    image = _image(100, seed=3)
    batched = grad_cam(clip, image, QUERIES)
    single = np.concatenate([grad_cam(clip, image, [q]) for q in QUERIES])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    g_batched = gscore_cam(clip, image, QUERIES, top_k=40)
    g_single = np.concatenate([gscore_cam(clip, image, [q], top_k=40) for q in QUERIES])
    np.testing.assert_allclose(g_batched, g_single, atol=1e-5)


def _reference_gscore_cam(clip, image, query, top_k):
    """gScoreCAM written out plainly: one masked image per kept channel, one at a time."""
    pixels = clip_input(clip, image)
    text = clip.encode_text([query])
    acts, grads = {}, {}
    layer = target_layer(clip)

    def hook(module, inputs, output):
        output.retain_grad()
        acts["a"] = output
        return None

    pixels_grad = pixels.clone().requires_grad_(True)
    handle = layer.module.register_forward_hook(hook)
    with torch.enable_grad():
        feats = F.normalize(clip._backend.image_features(pixels_grad).float(), dim=-1)
        score = (clip.logit_scale * feats @ text.T)[0, 0]
        score.backward()
    handle.remove()
    a = layer.to_maps(acts["a"]).detach()[0]  # (C, h, w)
    grads = layer.to_maps(acts["a"].grad)[0]
    order = grads.mean(dim=(1, 2)).argsort(descending=True)[:top_k]
    weights = torch.zeros(a.shape[0])
    side = pixels.shape[-1]
    with torch.no_grad():
        for ch in order.tolist():
            up = F.interpolate(a[ch][None, None], size=(side, side), mode="bilinear",
                               align_corners=True)[0, 0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            feats = F.normalize(clip._backend.image_features(pixels * mask).float(), dim=-1)
            weights[ch] = (clip.logit_scale * feats @ text.T)[0, 0]
    weights = torch.softmax(weights, dim=0)
    cam = torch.relu((weights[:, None, None] * a).sum(0)).numpy()
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    import cv2

    return cv2.resize(cam, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("name,top_k", [("open_clip-rn", 50), ("open_clip-rn", 1000),
                                        ("hf-vit", 10)])
def test_gscore_cam_equals_masked_forwards(clips, name, top_k):
    clip = clips[name]
    image = _image(90, seed=1)
    ours = gscore_cam(clip, image, ["a red square"], top_k=top_k, batch_size=7)
    reference = _reference_gscore_cam(clip, image, "a red square", top_k)
    assert ours.shape == (1, 90, 90)
    np.testing.assert_allclose(ours[0], np.clip(reference, 0, 1), atol=1e-4)


def test_maps_at_image_size_in_unit_range(clips):
    clip = clips["hf-vit"]
    image = _image(50)[:, :37]  # not square: the whole image is resized, maps come back
    for method in ("gradcam", "gscorecam"):
        maps = saliency_maps(clip, image, QUERIES[:2], method=method)
        assert maps.shape == (2, 50, 37) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1
    assert saliency_maps(clip, image, "grass", size=(10, 20)).shape == (1, 10, 20)


def test_bad_input_is_one_clear_error(clips):
    clip = clips["hf-vit"]
    with pytest.raises(ConfigError, match="unknown CAM method 'hilacam'"):
        saliency_maps(clip, _image(32), ["x"], method="hilacam")
    with pytest.raises(ConfigError, match="top_k and batch_size must be >= 1"):
        gscore_cam(clip, _image(32), ["x"], top_k=0)
    with pytest.raises(InputError, match="saliency image"):
        grad_cam(clip, np.zeros((4, 4)), ["x"])
    with pytest.raises(InputError):
        grad_cam(clip, _image(32), [])
