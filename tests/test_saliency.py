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
            mask = (up - up.min()) / (up.max() - up.min() + 1e-6)
            feats = F.normalize(clip._backend.image_features(pixels * mask).float(), dim=-1)
            weights[ch] = (clip.logit_scale * feats @ text.T)[0, 0]
    weights = torch.softmax(weights, dim=0)
    cam = torch.relu((weights[:, None, None] * a).sum(0)).numpy()
    import cv2

    def normalize(m):
        m = m - m.min()
        return m / (1e-7 + m.max())

    size = (image.shape[1], image.shape[0])
    return normalize(cv2.resize(normalize(cam), size, interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("name,top_k", [("open_clip-rn", 50), ("open_clip-rn", 1000),
                                        ("hf-vit", 10)])
def test_gscore_cam_equals_masked_forwards(clips, name, top_k):
    clip = clips[name]
    image = _image(90, seed=1)
    ours = gscore_cam(clip, image, ["a red square"], top_k=top_k, batch_size=7)
    reference = _reference_gscore_cam(clip, image, "a red square", top_k)
    assert ours.shape == (1, 90, 90)
    np.testing.assert_allclose(ours[0], reference, atol=1e-4)


def test_gscore_cam_bf16_scoring_stays_close(clips):
    clip = clips["open_clip-rn"]
    image = _image(90, seed=1)
    exact = gscore_cam(clip, image, ["a red square"], top_k=50)
    fast = gscore_cam(clip, image, ["a red square"], top_k=50, precision="bf16")
    assert fast.shape == exact.shape and np.abs(fast - exact).max() < 0.2
    with pytest.raises(ConfigError, match="precision must be 'fp32' or 'bf16'"):
        gscore_cam(clip, image, ["x"], precision="fp16")


def test_maps_at_image_size_in_unit_range(clips):
    clip = clips["hf-vit"]
    image = _image(50)[:, :37]  # not square: the whole image is resized, maps come back
    for method in ("gradcam", "gscorecam"):
        maps = saliency_maps(clip, image, QUERIES[:2], method=method)
        assert maps.shape == (2, 50, 37) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1
    assert saliency_maps(clip, image, "grass", size=(10, 20)).shape == (1, 10, 20)


@pytest.mark.parametrize("name,side", [("hf-vit", 64), ("open_clip-vit", 96),
                                       ("open_clip-rn", 256)])
def test_larger_input_gives_a_finer_grid(clips, name, side):
    """Position embeddings interpolated: twice the side, twice the grid; the CLIP's own
    side through the same path gives the default maps."""
    clip = clips[name]
    image = _image(120, seed=2)
    layer = target_layer(clip)
    text = clip.encode_text(QUERIES[:1])
    small = ActivationsAndGradients(clip, layer).run(clip_input(clip, image), text)
    large = ActivationsAndGradients(clip, layer).run(clip_input(clip, image, side), text)
    assert large.activations.shape[-1] == 2 * small.activations.shape[-1]
    assert large.gradients.abs().sum() > 0
    np.testing.assert_array_equal(grad_cam(clip, image, QUERIES, input_size=clip.image_size),
                                  grad_cam(clip, image, QUERIES))
    maps = gscore_cam(clip, image, QUERIES[:1], top_k=5, input_size=side)
    assert maps.shape == (1, 120, 120) and maps.max() <= 1
    # the model is left as it was
    assert clip._backend.image_features(clip_input(clip, image)).shape[0] == 1


def test_bad_input_is_one_clear_error(clips):
    clip = clips["hf-vit"]
    with pytest.raises(ConfigError, match="unknown CAM method 'hilacam'"):
        saliency_maps(clip, _image(32), ["x"], method="hilacam")
    with pytest.raises(ConfigError, match="top_k and batch_size must be >= 1"):
        gscore_cam(clip, _image(32), ["x"], top_k=0)
    with pytest.raises(ConfigError, match="positive multiple of 8"):
        grad_cam(clip, _image(32), ["x"], input_size=50)
    with pytest.raises(InputError, match="saliency image"):
        grad_cam(clip, np.zeros((4, 4)), ["x"])
    with pytest.raises(InputError):
        grad_cam(clip, _image(32), [])


# ---------------------------------------------------------------------- CLIP-ES
def test_background_query_sets():
    from promptseg.stages.background_queries import BACKGROUND_QUERIES, background_queries

    assert len(BACKGROUND_QUERIES["car"]) == 23 and BACKGROUND_QUERIES["car"][-1] == "bridge"
    both = background_queries("terrestrial+man-made")
    assert both[0] == "ground" and "building" in both and len(both) == len(set(both))
    assert "sky" not in background_queries("car", exclude=["Sky"])
    assert background_queries(["wall", "wall", "floor"]) == ("wall", "floor")
    assert background_queries(None) == background_queries("none") == ()
    with pytest.raises(ConfigError, match="unknown background query set 'stuff'"):
        background_queries("stuff")


def test_sinkhorn_affinity_and_boxes():
    from promptseg.stages.saliency import cam_boxes_mask, sinkhorn_affinity

    # a doubly stochastic symmetric matrix stays itself: the affinity is its square
    d = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [0.0, 0.25, 0.75]])
    torch.testing.assert_close(sinkhorn_affinity(d), d @ d)
    a = sinkhorn_affinity(torch.rand(6, 6) + 0.1)
    torch.testing.assert_close(a, a.T)
    cam = np.zeros((8, 10), np.float32)
    cam[1:3, 2:5] = 1.0
    cam[6:8, 7:10] = 0.5  # touches the last row and column
    cam[5, 0] = 0.2  # under lambda * max
    mask = cam_boxes_mask(cam, 0.4)
    expected = np.zeros((8, 10), bool)
    expected[1:3, 2:5] = True
    expected[6:7, 7:9] = True  # CLIP-ES clips boxes one short of the last row and column
    np.testing.assert_array_equal(mask, expected)
    assert not cam_boxes_mask(np.zeros((4, 4), np.float32), 0.4).any()


def test_patch_mean_pooling_and_attention_match_transformers(clips):
    """The two things CLIP-ES reads off the tower, against transformers' own outputs."""
    from promptseg.stages.saliency import _patch_mean_features, _vit_blocks

    clip = clips["hf-vit"]
    pixels = clip_input(clip, _image(32))
    vm = clip.model.vision_model
    clip.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = vm(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
            pooled = vm.post_layernorm(out.last_hidden_state[:, 1:].mean(dim=1))
            torch.testing.assert_close(_patch_mean_features(clip, pixels),
                                       clip.model.visual_projection(pooled))
            blocks = _vit_blocks(clip)
            assert [ln for ln, _ in blocks] == [la.layer_norm1 for la in vm.encoder.layers]
            # hidden_states[i] is the input of layer i; its attention from our projections
            for (ln, probs), x, attn in zip(blocks, out.hidden_states, out.attentions,
                                            strict=False):
                torch.testing.assert_close(probs(ln(x)), attn[0], atol=1e-5, rtol=1e-4)
    finally:
        clip.model.set_attn_implementation("sdpa")
    # OpenCLIP: against torch's own MultiheadAttention weights
    clip = clips["open_clip-vit"]
    x = torch.randn(1, 10, clip.model.visual.transformer.width)
    for block, (ln, probs) in zip(clip.model.visual.transformer.resblocks, _vit_blocks(clip),
                                  strict=True):
        y = ln(x)
        _, weights = block.attn(y, y, y, need_weights=True, average_attn_weights=False)
        torch.testing.assert_close(probs(y), weights[0], atol=1e-6, rtol=1e-5)


def _reference_softmax_cam(clip, image, queries, background):
    """CLIP-ES's CAM without the affinity, one query at a time with retain_grad."""
    from promptseg.stages.saliency import _patch_mean_features

    layer = target_layer(clip)
    texts = clip.encode_text(queries + background)
    pixels = clip_input(clip, image)
    cams = []
    store = {}

    def hook(module, inputs, output):
        output.retain_grad()
        store["a"] = output

    for q in range(len(queries)):
        handle = layer.module.register_forward_hook(hook)
        with torch.enable_grad():
            feats = F.normalize(_patch_mean_features(clip, pixels.clone().requires_grad_(True))
                                .float(), dim=-1)
            torch.softmax(clip.logit_scale * feats @ texts.T, dim=-1)[0, q].backward()
        handle.remove()
        acts = layer.to_maps(store["a"]).detach()[0]
        weights = layer.to_maps(store["a"].grad)[0].mean(dim=(1, 2))
        cams.append(torch.relu((weights[:, None, None] * acts).sum(0)))
    return torch.stack(cams)


@pytest.mark.parametrize("name", ["hf-vit", "open_clip-vit"])
def test_clip_es_cam_equals_per_query_backward(clips, name):
    from promptseg.stages.saliency import _finish, clip_es

    clip = clips[name]
    image = _image(clip.image_size, seed=4)
    background = ["ground", "sky", "wall"]
    ours = clip_es(clip, image, QUERIES[:2], background=background, refine=False)
    reference = _reference_softmax_cam(clip, image, QUERIES[:2], background)
    np.testing.assert_allclose(ours, _finish(reference, image.shape[:2]), atol=1e-5)
    refined = clip_es(clip, image, QUERIES[:2], background="car")
    assert refined.shape == (2, clip.image_size, clip.image_size)
    assert refined.min() >= 0 and (refined.reshape(2, -1).max(axis=1) > 0.99).all()
    assert not np.allclose(refined, ours)  # the affinity changed the maps
    assert saliency_maps(clip, image, QUERIES[:1], method="clip-es", lam=0.5).shape[0] == 1


def test_clip_es_needs_a_vit(clips):
    from promptseg.stages.saliency import clip_es

    with pytest.raises(ConfigError, match="CLIP-ES needs a ViT CLIP"):
        clip_es(clips["open_clip-rn"], _image(64), ["x"])
    with pytest.raises(ConfigError, match="lam must be in"):
        clip_es(clips["hf-vit"], _image(32), ["x"], lam=1.5)
