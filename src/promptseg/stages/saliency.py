"""Where CLIP looks: class-activation maps of a prompt on an image, for any CLIP the registry
loads.

Methods (:data:`CAM_METHODS`):

- ``"gradcam"``: Grad-CAM (Selvaraju et al. 2017) on CLIP's score of the query: the
  activations of the target layer weighted by the spatial mean of their gradients, ReLU,
  min-max.
- ``"gscorecam"``: gScoreCAM (Chen et al. 2022, anguyen8/gScoreCAM; the medical paper's
  second pipeline, ``papers/lvlm-medical-sam-clip.txt`` Sec. III-C, after MedCLIP-SAM): the
  ``top_k`` channels with the largest mean gradient each mask the input (upsampled,
  min-max normalised, multiplied into the normalised image); CLIP's raw scaled logit of each
  masked image is the channel's score; the weights are a softmax over all channels, those not
  kept scoring 0; map = ReLU(weighted sum of activations), min-max.
- ``"clip-es"``: CLIP-ES (Lin et al. 2023) as CLIP as RNN uses it (``papers/clip-as-rnn.txt``,
  appendix B, Eq. 7-8; ViT CLIPs only): the image feature is the mean of the patch tokens
  (not the class token) through ``ln_post`` and the projection; each query's score is its
  softmax probability among the queries and the background queries
  (:mod:`promptseg.stages.background_queries`); Grad-CAM on that score, then the class-aware
  attention affinity: the attention of the last 8 layers (mean over heads, class token
  removed), Sinkhorn-normalised, symmetrised and squared, restricted to the boxes of the CAM
  above ``lambda`` times its maximum, propagates the CAM.

Target layers: ``visual.layer4[-1]`` for ResNet CLIPs (gScoreCAM's choice); for ViT CLIPs
(OpenCLIP and transformers) the input LayerNorm ``ln_1`` of the last block, as CLIP as RNN
does. The official gScoreCAM hooks ViTs after the last attention, where only the class
token feeds the output: patch gradients there are exactly zero and every map is blank.

The image is resized to the CLIP's input square as a whole (not centre-cropped, so the map
covers every pixel) and normalised as the CLIP's own preprocessing does; maps come back at
the image's size. The target score is CLIP's raw scaled logit ``logit_scale * cos(image,
text)`` (no softmax over the queries, as gScoreCAM). All queries share one forward pass to
the target layer; the layers after it run once per query in one batch, so Q maps cost about
one forward and one short backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, WeightsError
from promptseg.prompts import normalize_prompts

__all__ = [
    "CAM_METHODS",
    "ActivationsAndGradients",
    "clip_es",
    "clip_input",
    "grad_cam",
    "gscore_cam",
    "saliency_maps",
    "target_layer",
]

CAM_METHODS = ("gradcam", "gscorecam", "clip-es")

#: gScoreCAM's channels kept (anguyen8/gScoreCAM ``topk=300``; the medical paper, Sec. II-B:
#: "the top 10 % of high-gradient channels" of RN50's 2048) and masked images per forward
GSCORECAM_TOP_K = 300
GSCORECAM_BATCH = 64


# ---------------------------------------------------------------------- the CLIP's insides
@dataclass(frozen=True)
class TargetLayer:
    """The layer a CAM reads, and how its output becomes ``(B, C, h, w)`` maps.

    Attributes:
        module: the hooked ``torch.nn.Module``.
        kind: ``"conv"`` (output ``(B, C, h, w)``) or ``"tokens"`` (``(B, L, D)``, or
            ``(L, B, D)`` when ``batch_first`` is False; the class token first).
        batch_first: for ``"tokens"``.
    """

    module: torch.nn.Module
    kind: str
    batch_first: bool = True

    def to_maps(self, output: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` from the layer's output (a ViT's patch tokens as a grid)."""
        if self.kind == "conv":
            return output
        tokens = output if self.batch_first else output.transpose(0, 1)
        patches = tokens[:, 1:]  # the class token first
        side = int(round(patches.shape[1] ** 0.5))
        if side * side != patches.shape[1]:
            raise WeightsError(f"{patches.shape[1]} patch tokens do not form a square grid")
        return patches.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)


def target_layer(clip) -> TargetLayer:
    """The CAM target layer of a :class:`~promptseg.models.clip.ClipScorer`.

    Raises:
        WeightsError: an image tower that is neither a ResNet (``layer4``) nor a ViT with
            pre-norm blocks (OpenCLIP ``transformer.resblocks``, transformers
            ``vision_model.encoder.layers``), e.g. a timm backbone.
    """
    model = clip.model
    if clip.family == "hf_clip":
        layers = model.vision_model.encoder.layers
        return TargetLayer(layers[-1].layer_norm1, "tokens", True)
    visual = model.visual
    if hasattr(visual, "layer4"):
        return TargetLayer(visual.layer4[-1], "conv")
    transformer = getattr(visual, "transformer", None)
    if transformer is not None and hasattr(transformer, "resblocks"):
        return TargetLayer(transformer.resblocks[-1].ln_1, "tokens",
                           bool(getattr(transformer, "batch_first", True)))
    raise WeightsError(
        f"no CAM target layer in {clip.model_id!r} ({type(visual).__name__}): saliency maps "
        "need a ResNet (visual.layer4) or a ViT CLIP"
    )


def clip_input(clip, image: np.ndarray, side: int | None = None) -> torch.Tensor:
    """``(1, 3, S, S)`` float32: the whole image resized (bicubic) to ``side`` (default: the
    CLIP's input side) and normalised with the CLIP's mean and std, on its device."""
    from PIL import Image

    s = _check_side(clip, side)
    resized = np.asarray(Image.fromarray(image).resize((s, s), Image.BICUBIC), np.float32)
    pixels = torch.from_numpy(resized / 255.0).permute(2, 0, 1)
    mean = torch.tensor(clip.image_mean or (0.5, 0.5, 0.5)).view(3, 1, 1)
    std = torch.tensor(clip.image_std or (0.5, 0.5, 0.5)).view(3, 1, 1)
    return ((pixels - mean) / std)[None].to(clip.device)


def _check_side(clip, side: int | None) -> int:
    """The CAM input side: the CLIP's own, or ``side`` (a multiple of the patch or of 32)."""
    if side is None:
        return int(clip.image_size)
    step = _side_step(clip)
    if not isinstance(side, (int, np.integer)) or side < step or side % step:
        raise ConfigError(f"CAM input size must be a positive multiple of {step} for "
                          f"{clip.model_id!r}, got {side!r}")
    return int(side)


def _side_step(clip) -> int:
    if clip.family == "hf_clip":
        return int(clip.model.config.vision_config.patch_size)
    visual = clip.model.visual
    if hasattr(visual, "attnpool"):
        return 32
    return int(visual.patch_size[0]) if hasattr(visual, "patch_size") else 1


def _image_logits(clip, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``(B, Q)`` raw scaled logits of ``(B, 3, S, S)`` pixels against ``(Q, D)`` unit texts.

    At a side other than the CLIP's own, the position embeddings are interpolated (bicubic,
    the class token kept): transformers' ``interpolate_pos_encoding``; for OpenCLIP the ViT's
    ``positional_embedding`` or the ResNet's attention-pool embedding, swapped in for the call.
    """
    pixels = pixels.to(clip.dtype)
    side = int(pixels.shape[-1])
    if side == clip.image_size:
        features = clip._backend.image_features(pixels)
    elif clip.family == "hf_clip":
        features = clip.model.get_image_features(
            pixel_values=pixels, interpolate_pos_encoding=True).pooler_output
    else:
        with _open_clip_positions(clip, side):
            features = clip._backend.image_features(pixels)
    return clip.logit_scale * F.normalize(features.float(), dim=-1) @ text.T


@contextmanager
def _open_clip_positions(clip, side: int):
    """OpenCLIP's position embedding resized for ``side``-pixel inputs, for one call."""
    visual = clip.model.visual
    owner = visual.attnpool if hasattr(visual, "attnpool") else visual
    original = owner.positional_embedding
    grid = side // (32 if hasattr(visual, "attnpool") else int(visual.patch_size[0]))
    old = int(round((original.shape[0] - 1) ** 0.5))
    cls_pos, patch_pos = original[:1], original[1:]
    patch_pos = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos.float(), size=(grid, grid), mode="bicubic",
                              align_corners=False).to(original.dtype)
    resized = torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
    saved_grid = getattr(visual, "grid_size", None)
    owner.positional_embedding = torch.nn.Parameter(resized, requires_grad=False)
    if saved_grid is not None:
        visual.grid_size = (grid, grid)
    try:
        yield
    finally:
        owner.positional_embedding = original
        if saved_grid is not None:
            visual.grid_size = saved_grid


class ActivationsAndGradients:
    """One forward to the target layer, the rest of the image tower once per query.

    The layer's output is replaced by ``Q`` copies of itself, a leaf that needs gradients;
    the layers after it run on the batch of copies and copy ``q`` is scored against query
    ``q``, so one backward gives every query's gradients. Parameters stay frozen.

    Attributes (after :meth:`run`):
        activations: ``(C, h, w)`` float32, the target layer's maps.
        gradients: ``(Q, C, h, w)`` float32, d logit_q / d activations.
        logits: ``(Q,)`` the raw scaled logit of the image for each query.
    """

    def __init__(self, clip, layer: TargetLayer | None = None):
        self.clip = clip
        self.layer = layer or target_layer(clip)

    def run(self, pixels: torch.Tensor, text: torch.Tensor) -> ActivationsAndGradients:
        q = text.shape[0]
        store: dict[str, torch.Tensor] = {}
        batch_dim = 0 if self.layer.kind == "conv" or self.layer.batch_first else 1

        def hook(module, inputs, output):
            repeats = [1] * output.ndim
            repeats[batch_dim] = q
            leaf = output.detach().repeat(*repeats).requires_grad_(True)
            store["leaf"] = leaf
            return leaf

        handle = self.layer.module.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                logits = _image_logits(self.clip, pixels, text)  # (Q, Q): copy b, query q
                own = logits.diagonal()
                (grad,) = torch.autograd.grad(own.sum(), store["leaf"])
        finally:
            handle.remove()
        maps = self.layer.to_maps(store["leaf"].detach()).float()
        self.activations = maps[0]
        self.gradients = self.layer.to_maps(grad).float()
        self.logits = own.detach().float()
        return self


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    """Per map: minus its minimum, over ``1e-7 +`` its maximum (pytorch-grad-cam's
    ``scale_cam_image``): in [0, 1], an all-equal map all 0."""
    flat = maps.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.view_as(maps)


def _to_size(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(Q, h, w)`` maps in [0, 1] -> ``(Q, H, W)`` float32 (bilinear, OpenCV's
    ``INTER_LINEAR``, as pytorch-grad-cam), clipped to [0, 1]."""
    import cv2

    h, w = size
    out = np.empty((maps.shape[0], h, w), np.float32)
    for q, m in enumerate(maps.cpu().numpy().astype(np.float32)):
        out[q] = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)


def _prepare(clip, image, queries) -> tuple[np.ndarray, tuple[str, ...], torch.Tensor]:
    from promptseg.image import check_rgb_image

    image = check_rgb_image(image, "saliency image")
    queries = normalize_prompts(queries)
    return image, queries, clip.encode_text(list(queries)).to(clip.device)


# ---------------------------------------------------------------------- the methods
def grad_cam(clip, image: np.ndarray, queries: Sequence[str] | str,
             size: tuple[int, int] | None = None, input_size: int | None = None) -> np.ndarray:
    """Grad-CAM of each query: ``(Q, H, W)`` float32 in [0, 1], equal to pytorch-grad-cam's
    ``GradCAM`` on the same layer and score.

    Args:
        clip: a :class:`~promptseg.models.clip.ClipScorer` (ResNet or ViT).
        image: ``(H, W, 3) uint8`` RGB.
        queries: Q texts.
        size: ``(H', W')`` of the maps (default: the image's).
        input_size: the side the image is resized to for CLIP (default: the CLIP's own);
            larger gives finer maps (a ViT/16 at 448 px: a 28 x 28 grid), the position
            embeddings interpolated. A multiple of the patch size (32 for ResNets).
    """
    image, queries, text = _prepare(clip, image, queries)
    found = ActivationsAndGradients(clip).run(clip_input(clip, image, input_size), text)
    weights = found.gradients.mean(dim=(2, 3))  # (Q, C)
    cams = torch.relu(torch.einsum("qc,chw->qhw", weights, found.activations))
    return _finish(cams, size or image.shape[:2])


def _finish(cams: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Min-max, resize, min-max again: the order of pytorch-grad-cam and of the official
    gScoreCAM (``normalize2D``, ``resize2D``, then ``aggregate_multi_layers``), so each map
    peaks at 1 after the resize."""
    return _min_max(torch.from_numpy(_to_size(_min_max(cams), size))).numpy()


def gscore_cam(clip, image: np.ndarray, queries: Sequence[str] | str,
               top_k: int = GSCORECAM_TOP_K, batch_size: int = GSCORECAM_BATCH,
               size: tuple[int, int] | None = None,
               input_size: int | None = None, precision: str = "fp32") -> np.ndarray:
    """gScoreCAM of each query: ``(Q, H, W)`` float32 in [0, 1].

    The official code builds the masked image of every channel (2048 for RN50, 1.2 GB) and
    then keeps ``top_k``; this builds and scores only the kept ones, and a channel kept by
    several queries is masked and encoded once, scored against each of them.

    Args:
        clip, image, queries, size, input_size: as :func:`grad_cam`.
        top_k: channels kept per query (all when the layer has fewer).
        batch_size: masked images per CLIP forward.
        precision: ``"fp32"``, or ``"bf16"``: the masked images are scored under bfloat16
            autocast (about 3x faster on CPUs with bf16 units, the weights moving a little:
            ``benchmarks/cam_speed.py`` reports the largest map difference).
    """
    if top_k < 1 or batch_size < 1:
        raise ConfigError(f"top_k and batch_size must be >= 1, got {top_k}, {batch_size}")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    image, queries, text = _prepare(clip, image, queries)
    pixels = clip_input(clip, image, input_size)
    found = ActivationsAndGradients(clip).run(pixels, text)
    acts = found.activations  # (C, h, w)
    c = acts.shape[0]
    k = min(int(top_k), c)
    ranked = found.gradients.mean(dim=(2, 3)).topk(k, dim=1).indices  # (Q, k)
    channels = torch.unique(ranked)  # every channel some query keeps, each encoded once
    scores = torch.empty(len(channels), len(queries))
    side = pixels.shape[-1]
    # ResNets convolve faster on channels-last tensors (oneDNN); the values are the same
    layout = (torch.channels_last if target_layer(clip).kind == "conv"
              else torch.contiguous_format)
    autocast = torch.autocast(pixels.device.type, dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        for start in range(0, len(channels), int(batch_size)):
            chunk = channels[start:start + int(batch_size)]
            masks = F.interpolate(acts[chunk][:, None], size=(side, side), mode="bilinear",
                                  align_corners=True)[:, 0]
            masks = _channel_min_max(masks)
            batch = (pixels * masks[:, None]).contiguous(memory_format=layout)
            scores[start:start + len(chunk)] = _image_logits(clip, batch, text).float().cpu()
    position = {int(ch): i for i, ch in enumerate(channels.tolist())}
    cams = []
    for q in range(len(queries)):
        full = torch.zeros(c)  # channels not kept score 0 and stay in the softmax
        kept = ranked[q].cpu()
        full[kept] = scores[[position[int(ch)] for ch in kept.tolist()], q]
        weights = torch.softmax(full, dim=0).to(acts.device)
        cams.append(torch.relu(torch.einsum("c,chw->hw", weights, acts)))
    return _finish(torch.stack(cams), size or image.shape[:2])


def _channel_min_max(masks: torch.Tensor) -> torch.Tensor:
    """Each ``(S, S)`` mask to [0, 1] by its own min and max, ``(m - min) / (max - min +
    1e-6)`` as the official code (a constant mask becomes 0)."""
    flat = masks.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    return ((flat - low) / (span + 1e-6)).view_as(masks)


def saliency_maps(clip, image: np.ndarray, queries: Sequence[str] | str,
                  method: str = "gscorecam", size: tuple[int, int] | None = None,
                  **options) -> np.ndarray:
    """``(Q, H, W)`` float32 maps in [0, 1] of ``queries`` on ``image`` by ``method``.

    ``options`` go to the method: ``input_size`` for all, ``top_k`` and ``batch_size`` for
    ``"gscorecam"``, ``background``, ``lam``, ``affinity_layers`` and ``refine`` for
    ``"clip-es"``.
    """
    if method == "gradcam":
        extra = sorted(set(options) - {"input_size"})
        if extra:
            raise ConfigError(f"gradcam takes no options {extra}")
        return grad_cam(clip, image, queries, size=size, **options)
    if method == "gscorecam":
        return gscore_cam(clip, image, queries, size=size, **options)
    if method == "clip-es":
        return clip_es(clip, image, queries, size=size, **options)
    raise ConfigError(f"unknown CAM method {method!r}; choose {', '.join(CAM_METHODS)}")



# ---------------------------------------------------------------------- CLIP-ES
#: CLIP-ES's box threshold (lambda: the CAM above lambda * max gives the affinity boxes;
#: CaR's VOC and Context configs, Sec. 4 "Implementation details") and affinity layers
CLIP_ES_LAMBDA = 0.4
CLIP_ES_AFFINITY_LAYERS = 8  # [CaR] appendix B: "the last 8 layers of Vision Transformer"
_SINKHORN_PAIRS = 3  # CLIP-ES: column then row normalisation, three times


def _vit_blocks(clip) -> list[tuple[torch.nn.Module, Any]]:
    """Per ViT block: its ``ln_1`` module and ``attention(x) -> (heads, L, L)`` probabilities
    from that LayerNorm's output (batch 1), recomputed from the block's own projections."""
    if clip.family == "hf_clip":
        blocks = []
        for layer in clip.model.vision_model.encoder.layers:
            attn = layer.self_attn

            def probs(x, attn=attn):
                n, h = x.shape[1], attn.num_heads
                q = attn.q_proj(x).view(1, n, h, -1).transpose(1, 2)
                k = attn.k_proj(x).view(1, n, h, -1).transpose(1, 2)
                return torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)[0]

            blocks.append((layer.layer_norm1, probs))
        return blocks
    visual = clip.model.visual
    transformer = getattr(visual, "transformer", None)
    if transformer is None or not hasattr(transformer, "resblocks"):
        raise ConfigError(f"CLIP-ES needs a ViT CLIP; {clip.model_id!r} is "
                          f"{type(visual).__name__} (use gradcam or gscorecam)")
    batch_first = bool(getattr(transformer, "batch_first", True))
    blocks = []
    for block in transformer.resblocks:
        attn = block.attn
        if not isinstance(attn, torch.nn.MultiheadAttention):
            raise ConfigError(f"CLIP-ES: {clip.model_id!r} has {type(attn).__name__} "
                              "attention; only torch MultiheadAttention blocks are read")

        def probs(x, attn=attn):
            x = x if batch_first else x.transpose(0, 1)
            d, h = attn.embed_dim, attn.num_heads
            w, b = attn.in_proj_weight, attn.in_proj_bias
            q = F.linear(x, w[:d], None if b is None else b[:d])
            k = F.linear(x, w[d:2 * d], None if b is None else b[d:2 * d])
            n = x.shape[1]
            q = q.view(1, n, h, -1).transpose(1, 2)
            k = k.view(1, n, h, -1).transpose(1, 2)
            scale = q.shape[-1] ** -0.5
            return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)[0]

        blocks.append((block.ln_1, probs))
    return blocks


def _patch_mean_features(clip, pixels: torch.Tensor) -> torch.Tensor:
    """``(B, D)``: the image tower with the mean of its patch tokens in place of the class
    token, before ``ln_post`` (or ``post_layernorm``) and the projection (CLIP-ES)."""
    pixels = pixels.to(clip.dtype)
    side = int(pixels.shape[-1])
    if clip.family == "hf_clip":
        vm = clip.model.vision_model
        hidden = vm.embeddings(pixels, interpolate_pos_encoding=side != clip.image_size)
        tokens = vm.encoder(inputs_embeds=vm.pre_layrnorm(hidden)).last_hidden_state
        return clip.model.visual_projection(vm.post_layernorm(tokens[:, 1:].mean(dim=1)))
    visual = clip.model.visual
    with _open_clip_positions(clip, side) if side != clip.image_size else _nothing():
        tokens = visual.transformer(visual._embeds(pixels))
    if not getattr(visual.transformer, "batch_first", True):
        tokens = tokens.transpose(0, 1)
    pooled = visual.ln_post(tokens[:, 1:].mean(dim=1))
    return pooled @ visual.proj if visual.proj is not None else pooled


@contextmanager
def _nothing():
    yield


def sinkhorn_affinity(attention: torch.Tensor, pairs: int = _SINKHORN_PAIRS) -> torch.Tensor:
    """CLIP-ES's affinity from an ``(N, N)`` attention matrix ([CaR] Eq. 7): ``pairs``
    rounds of column- then row-normalisation (Sinkhorn), symmetrised ``(D + D^T) / 2``,
    then squared once (``A @ A``: two steps of propagation)."""
    d = attention.float()
    for _ in range(pairs):
        d = d / d.sum(dim=0, keepdim=True).clamp_min(1e-12)
        d = d / d.sum(dim=1, keepdim=True).clamp_min(1e-12)
    a = (d + d.T) / 2
    return a @ a


def cam_boxes_mask(cam: np.ndarray, lam: float) -> np.ndarray:
    """``(h, w)`` bool: the boxes of every contour of ``cam`` (in [0, 1]) above ``lam`` times
    its maximum (CLIP-ES ``scoremap2bbox`` with ``multi_contour_eval``, on 256 levels; as
    there, a box's right and bottom edges stop one short of the map's last column and row).
    No contour: an empty mask."""
    import cv2

    levels = (np.clip(cam, 0, 1) * 255).astype(np.uint8)
    _, binary = cv2.threshold(levels, int(lam * levels.max()), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    h, w = cam.shape
    mask = np.zeros((h, w), bool)
    for contour in contours:
        x, y, bw, bh = cv2.boundingRect(contour)
        mask[y:min(y + bh, h - 1), x:min(x + bw, w - 1)] = True
    return mask


def clip_es(clip, image: np.ndarray, queries: Sequence[str] | str,
            background: str | Sequence[str] | None = "car", lam: float = CLIP_ES_LAMBDA,
            affinity_layers: int = CLIP_ES_AFFINITY_LAYERS, refine: bool = True,
            size: tuple[int, int] | None = None,
            input_size: int | None = None) -> np.ndarray:
    """CLIP-ES maps of each query, as CaR uses them: ``(Q, H, W)`` float32 in [0, 1].

    Args:
        clip: a ViT :class:`~promptseg.models.clip.ClipScorer` (OpenCLIP or transformers).
        image, queries, size, input_size: as :func:`grad_cam`; CaR runs CLIP-ES well above
            the CLIP's own side (a larger ``input_size``).
        background: background queries in the softmax, a set name or texts
            (:func:`~promptseg.stages.background_queries.background_queries`); queries the
            user asked for are never background. A query whose CAM comes out all zero is
            recomputed without them (as the official code does).
        lam: the affinity boxes' threshold, a fraction of the CAM's maximum.
        affinity_layers: how many of the last layers' attention make the affinity.
        refine: apply the class-aware affinity (False: the CAM alone).
    """
    from promptseg.stages.background_queries import background_queries

    if not 0 <= lam < 1 or affinity_layers < 1:
        raise ConfigError(f"lam must be in [0, 1) and affinity_layers >= 1, got {lam}, "
                          f"{affinity_layers}")
    blocks = _vit_blocks(clip)
    image, queries, text = _prepare(clip, image, queries)
    extra = background_queries(background, exclude=queries)
    background_text = (clip.encode_text(list(extra)).to(clip.device) if extra
                       else text[:0])
    pixels = clip_input(clip, image, input_size)
    layer = TargetLayer(blocks[-1][0], "tokens",
                        clip.family == "hf_clip"
                        or bool(getattr(clip.model.visual.transformer, "batch_first", True)))
    # the LayerNorm outputs of the affinity layers, seen before the CAM hook replaces the
    # last one by its per-query copies (hooks run in the order they were registered)
    captured: list[torch.Tensor] = []
    hooks = [module.register_forward_hook(lambda m, i, out: captured.append(out.detach()))
             for module, _ in blocks[-affinity_layers:]]
    try:
        cams = _softmax_cams(clip, layer, pixels, text, background_text)
    finally:
        for handle in hooks:
            handle.remove()
    dead = [q for q in range(len(queries)) if not cams[q].max() > 0]
    if dead and len(background_text):
        cams[dead] = _softmax_cams(clip, layer, pixels, text, text[:0], only=dead)
    cams = _min_max(cams)
    if refine:
        with torch.inference_mode():
            ln_outputs = captured[:len(blocks[-affinity_layers:])]
            probs = [probs_fn(x) for x, (_, probs_fn) in zip(
                ln_outputs, blocks[-affinity_layers:], strict=True)]
            attention = torch.stack([p.mean(dim=0)[1:, 1:] for p in probs]).mean(dim=0)
            affinity = sinkhorn_affinity(attention)
            h, w = cams.shape[1:]
            refined = []
            for cam in cams:
                box = torch.from_numpy(cam_boxes_mask(cam.cpu().numpy(), lam)).reshape(1, -1)
                refined.append(((affinity * box.to(affinity)) @ cam.reshape(-1, 1).float())
                               .reshape(h, w))
            cams = torch.stack(refined)
    return _finish(cams, size or image.shape[:2])


def _softmax_cams(clip, layer: TargetLayer, pixels: torch.Tensor, text: torch.Tensor,
                  background_text: torch.Tensor, only: list[int] | None = None) -> torch.Tensor:
    """``(Q, h, w)`` Grad-CAMs of each query's softmax probability among queries +
    background queries, the image feature pooled from the patch tokens (CLIP-ES)."""
    chosen = list(range(text.shape[0])) if only is None else only
    everything = torch.cat([text, background_text])
    store: dict[str, torch.Tensor] = {}
    batch_dim = 0 if layer.batch_first else 1
    n = len(chosen)

    def hook(module, inputs, output):
        repeats = [1] * output.ndim
        repeats[batch_dim] = n
        leaf = output.detach().repeat(*repeats).requires_grad_(True)
        store["leaf"] = leaf
        return leaf

    handle = layer.module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            features = F.normalize(_patch_mean_features(clip, pixels).float(), dim=-1)
            probs = torch.softmax(clip.logit_scale * features @ everything.T, dim=-1)
            own = probs[torch.arange(n), torch.as_tensor(chosen)]
            (grad,) = torch.autograd.grad(own.sum(), store["leaf"])
    finally:
        handle.remove()
    acts = layer.to_maps(store["leaf"].detach()[:1] if batch_dim == 0
                         else store["leaf"].detach()[:, :1]).float()[0]
    grads = layer.to_maps(grad).float()
    weights = grads.mean(dim=(2, 3))
    return torch.relu(torch.einsum("qc,chw->qhw", weights, acts))
