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
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import ConfigError, WeightsError
from promptseg.prompts import normalize_prompts

__all__ = [
    "CAM_METHODS",
    "ActivationsAndGradients",
    "clip_input",
    "grad_cam",
    "gscore_cam",
    "saliency_maps",
    "target_layer",
]

CAM_METHODS = ("gradcam", "gscorecam")

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


def clip_input(clip, image: np.ndarray) -> torch.Tensor:
    """``(1, 3, S, S)`` float32: the whole image resized (bicubic) to the CLIP's input side
    ``S`` and normalised with its mean and std, on the CLIP's device."""
    from PIL import Image

    s = clip.image_size
    resized = np.asarray(Image.fromarray(image).resize((s, s), Image.BICUBIC), np.float32)
    pixels = torch.from_numpy(resized / 255.0).permute(2, 0, 1)
    mean = torch.tensor(clip.image_mean or (0.5, 0.5, 0.5)).view(3, 1, 1)
    std = torch.tensor(clip.image_std or (0.5, 0.5, 0.5)).view(3, 1, 1)
    return ((pixels - mean) / std)[None].to(clip.device)


def _image_logits(clip, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``(B, Q)`` raw scaled logits of ``(B, 3, S, S)`` pixels against ``(Q, D)`` unit texts."""
    features = clip._backend.image_features(pixels.to(clip.dtype))
    return clip.logit_scale * F.normalize(features.float(), dim=-1) @ text.T


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
             size: tuple[int, int] | None = None) -> np.ndarray:
    """Grad-CAM of each query: ``(Q, H, W)`` float32 in [0, 1], equal to pytorch-grad-cam's
    ``GradCAM`` on the same layer and score.

    Args:
        clip: a :class:`~promptseg.models.clip.ClipScorer` (ResNet or ViT).
        image: ``(H, W, 3) uint8`` RGB.
        queries: Q texts.
        size: ``(H', W')`` of the maps (default: the image's).
    """
    image, queries, text = _prepare(clip, image, queries)
    found = ActivationsAndGradients(clip).run(clip_input(clip, image), text)
    weights = found.gradients.mean(dim=(2, 3))  # (Q, C)
    cams = torch.relu(torch.einsum("qc,chw->qhw", weights, found.activations))
    # min-max, resize, min-max again: pytorch-grad-cam's order, so each map peaks at 1
    resized = _to_size(_min_max(cams), size or image.shape[:2])
    return _min_max(torch.from_numpy(resized)).numpy()


def gscore_cam(clip, image: np.ndarray, queries: Sequence[str] | str,
               top_k: int = GSCORECAM_TOP_K, batch_size: int = GSCORECAM_BATCH,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """gScoreCAM of each query: ``(Q, H, W)`` float32 in [0, 1].

    The official code builds the masked image of every channel (2048 for RN50, 1.2 GB) and
    then keeps ``top_k``; this builds and scores only the kept ones, and a channel kept by
    several queries is masked and encoded once, scored against each of them.

    Args:
        clip, image, queries, size: as :func:`grad_cam`.
        top_k: channels kept per query (all when the layer has fewer).
        batch_size: masked images per CLIP forward.
    """
    if top_k < 1 or batch_size < 1:
        raise ConfigError(f"top_k and batch_size must be >= 1, got {top_k}, {batch_size}")
    image, queries, text = _prepare(clip, image, queries)
    pixels = clip_input(clip, image)
    found = ActivationsAndGradients(clip).run(pixels, text)
    acts = found.activations  # (C, h, w)
    c = acts.shape[0]
    k = min(int(top_k), c)
    ranked = found.gradients.mean(dim=(2, 3)).topk(k, dim=1).indices  # (Q, k)
    channels = torch.unique(ranked)  # every channel some query keeps, each encoded once
    scores = torch.empty(len(channels), len(queries))
    side = pixels.shape[-1]
    with torch.inference_mode():
        for start in range(0, len(channels), int(batch_size)):
            chunk = channels[start:start + int(batch_size)]
            masks = F.interpolate(acts[chunk][:, None], size=(side, side), mode="bilinear",
                                  align_corners=True)[:, 0]
            masks = _channel_min_max(masks)
            scores[start:start + len(chunk)] = _image_logits(
                clip, pixels * masks[:, None], text).cpu()
    position = {int(ch): i for i, ch in enumerate(channels.tolist())}
    cams = []
    for q in range(len(queries)):
        full = torch.zeros(c)  # channels not kept score 0 and stay in the softmax
        kept = ranked[q].cpu()
        full[kept] = scores[[position[int(ch)] for ch in kept.tolist()], q]
        weights = torch.softmax(full, dim=0).to(acts.device)
        cams.append(torch.relu(torch.einsum("c,chw->hw", weights, acts)))
    return _to_size(_min_max(torch.stack(cams)), size or image.shape[:2])


def _channel_min_max(masks: torch.Tensor) -> torch.Tensor:
    """Each ``(S, S)`` mask to [0, 1] by its own min and max; a constant one becomes 0."""
    flat = masks.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    flat = torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return flat.view_as(masks)


def saliency_maps(clip, image: np.ndarray, queries: Sequence[str] | str,
                  method: str = "gscorecam", size: tuple[int, int] | None = None,
                  **options) -> np.ndarray:
    """``(Q, H, W)`` float32 maps in [0, 1] of ``queries`` on ``image`` by ``method``.

    ``options`` go to the method (``top_k``, ``batch_size`` for ``"gscorecam"``).
    """
    if method == "gradcam":
        if options:
            raise ConfigError(f"gradcam takes no options, got {sorted(options)}")
        return grad_cam(clip, image, queries, size=size)
    if method == "gscorecam":
        return gscore_cam(clip, image, queries, size=size, **options)
    raise ConfigError(f"unknown CAM method {method!r}; choose {', '.join(CAM_METHODS)}")

