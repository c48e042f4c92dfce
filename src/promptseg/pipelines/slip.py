"""SLIP: SAM segments everything, CLIP picks the segment a prompt names.

Papers:
    - SLIP: SAM+CLIP for zero-shot object segmentation (``papers/slip-sam-clip.txt``):
      SAM automatic masks -> "post-processing annotation filters" that separate intersecting
      segments -> CLIP similarity between each segment and the prompt -> the most similar wins.
    - "Base pipeline" of the medical LVLM paper (``papers/lvlm-medical-sam-clip.txt``, Fig. 1,
      Sec. III-A): SAM "segment everything", CLIP scores every masked image against the text,
      the best mask is selected; Sec. V-A asks whether a tight crop beats the mostly-black
      masked image (``visual_prompt="black+crop"`` here).

Steps, once per image (:meth:`SlipPipeline.prepare`): SAM image embedding; automatic mask
generation with the parameters of ``segment_anything.SamAutomaticMaskGenerator``; the overlap
filter (:mod:`promptseg.stages.overlap`); every candidate rendered with the visual prompt and
encoded by CLIP in batches. Then per prompt set (:meth:`SlipPipeline.segment`): text
embeddings, scores, selection. However many prompts, SAM and CLIP's image tower run once.

Beyond the papers: several instances per prompt (``output="all"``), an empty answer when no
segment clears ``threshold`` (the prompt names nothing in the image), background prompts, and
"name every segment" (``output="label"``: each proposal gets its best prompt or is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from promptseg.errors import ConfigError
from promptseg.image import DEFAULT_MAX_PIXELS
from promptseg.pipelines.base import Pipeline, Timer, config_to_dict, image_key
from promptseg.prompts import MAX_PROMPTS, normalize_prompts
from promptseg.result import masks_to_boxes
from promptseg.stages.overlap import OverlapFilterConfig, separate_overlaps, shared_pixels
from promptseg.stages.proposals import MaskGenerationConfig, generate_masks
from promptseg.stages.scoring import (
    SCORE_MODES,
    check_score_mode,
    encode_candidates,
    score_prompts,
)

__all__ = ["SlipConfig", "SlipPipeline", "PreparedImage", "OUTPUT_MODES"]

OUTPUT_MODES = ("best", "all", "label")


@dataclass(frozen=True)
class SlipConfig:
    """Configuration of the ``slip`` pipeline; defaults follow the papers where they say.

    Scores are cosine similarities in [-1, 1] (``score_mode="cosine"``) or CLIP's softmax
    probability over prompts + background prompts (``"softmax"``); ``threshold`` is in the
    same unit.
    """

    clip: str = "openai/clip-vit-base-patch16"  # [LVLM] Sec. IV-A3, Table IV "OA-ViT-B"
    sam: str = "facebook/sam-vit-base"  # [LVLM] Sec. IV-A3 uses SAM; ViT-B is SAM's smallest
    mask_generation: MaskGenerationConfig = field(default_factory=MaskGenerationConfig)
    overlap_filter: bool = True  # [SLIP] Sec. "Model Architecture": post-processing filters
    overlap: OverlapFilterConfig = field(default_factory=OverlapFilterConfig)
    # [SLIP] Fig. 2, [LVLM] Sec. V-A: the segment on black. "crop:0.2" scored far better in
    # benchmarks/visual_prompt_ablation.py (0.994 against 0.180 selection accuracy, README)
    visual_prompt: str = "black"
    crop_margin: float | None = None  # ours: context around a crop (fraction of the box); or crop:M
    score_mode: str = "cosine"  # [SLIP] "similarity matrix", [LVLM] Sec. III-A: similarity
    background_prompts: tuple[str, ...] = ()  # ours: prompts that mean "none of these"
    output: str = "best"  # [SLIP] the single most similar segment; "all" / "label" are ours
    threshold: float | None = None  # ours: below it a prompt gets no mask (None: always one)
    instance_containment: float = 0.8  # ours: "all"/"label" drop masks this nested in a better one
    clip_batch_size: int = 32  # ours: CLIP images per forward pass
    max_prompts: int = MAX_PROMPTS
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # ours: refuse larger images before decoding
    progress: bool = False  # show a progress bar over mask-generation batches
    # ours: apply the settings the model folders recommend (promptseg_settings.json, e.g.
    # the zoo SAM's filters); options the user gives win
    use_model_settings: bool = True

    def __post_init__(self):
        if self.score_mode not in SCORE_MODES:
            raise ConfigError(
                f"score_mode must be one of {', '.join(SCORE_MODES)}, got {self.score_mode!r}"
            )
        if self.output not in OUTPUT_MODES:
            raise ConfigError(
                f"output must be one of {', '.join(OUTPUT_MODES)}, got {self.output!r}"
            )
        if self.crop_margin is not None and self.crop_margin < 0:
            raise ConfigError(f"crop_margin must be >= 0, got {self.crop_margin}")
        if self.clip_batch_size < 1:
            raise ConfigError(f"clip_batch_size must be >= 1, got {self.clip_batch_size}")
        if not 0 < self.instance_containment <= 1:
            raise ConfigError(
                f"instance_containment must be in (0, 1], got {self.instance_containment}"
            )
        if isinstance(self.background_prompts, str):
            object.__setattr__(self, "background_prompts", (self.background_prompts,))
        object.__setattr__(self, "background_prompts", tuple(self.background_prompts))
        if self.background_prompts:
            normalize_prompts(self.background_prompts)
        if self.output == "all" and self.threshold is None and not self.background_prompts:
            raise ConfigError(
                "output='all' needs a threshold or background prompts to decide which "
                "segments answer a prompt"
            )
        from promptseg.stages.visual_prompts import parse_visual_prompt

        parse_visual_prompt(self.visual_prompt, self.crop_margin)


@dataclass(frozen=True)
class PreparedImage:
    """Everything ``slip`` computes from an image alone, reused for every prompt set.

    Attributes:
        image: ``(H, W, 3) uint8``.
        masks: ``(N, H, W) bool`` candidates after the overlap filter.
        predicted_iou, stability_score: ``(N,)`` SAM's scores of each candidate's proposal.
        proposal_index: ``(N,)`` index of each candidate in the automatic masks.
        num_proposals: how many masks automatic mask generation returned.
        features: ``(N, D)`` CLIP image embeddings of the rendered candidates.
        timings: seconds per stage.
    """

    image: np.ndarray
    masks: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    proposal_index: np.ndarray
    num_proposals: int
    features: torch.Tensor
    timings: dict


class SlipPipeline(Pipeline):
    """SAM everything + overlap filter + CLIP selection (SLIP; medical LVLM base pipeline).

    Example:
        >>> import promptseg
        >>> pipe = promptseg.load_pipeline(  # doctest: +SKIP
        ...     "slip", clip="openai/clip-vit-base-patch16", sam="facebook/sam-vit-base")
        >>> seg = pipe("scene.png", ["the red star", "circles"])  # doctest: +SKIP
    """

    name = "slip"
    config_class = SlipConfig
    model_fields = ("sam", "clip")
    # a semantic benchmark asks for every class at once: each segment is named by its best
    # class (or none), rather than each class taking its best segment
    task_options = {"semantic": {"output": "label"}}

    def __init__(self, config: SlipConfig | None = None, device="auto", dtype="fp32", **overrides):
        super().__init__(config, **overrides)
        from promptseg.models.registry import load_clip, load_sam

        self.sam = load_sam(self.config.sam, device=device, dtype=dtype)
        self.clip = load_clip(self.config.clip, device=device, dtype=dtype)

    def check_request(self, prompts: tuple[str, ...], config: SlipConfig) -> None:
        check_score_mode(config.score_mode, len(prompts) + len(config.background_prompts))

    def prepare(self, image, config: SlipConfig | None = None, **overrides) -> PreparedImage:
        """Embed, propose, filter and CLIP-encode the candidates of one image.

        Options that shape this work (mask generation, overlap filter, visual prompt) are
        read here; ``overrides`` are config fields for this call.
        """
        from promptseg.image import load_image

        config = self.resolve_config(config, **overrides)
        image = load_image(image, max_pixels=config.max_pixels)
        timer = Timer()
        proposals, masks, index = self.propose(image, config, timer)
        # 4. every candidate shown to CLIP with the visual prompt, in batches
        with timer("clip_image"):
            features = encode_candidates(
                self.clip, image, masks, config.visual_prompt, config.crop_margin,
                config.clip_batch_size,
            )
        return PreparedImage(
            image=image,
            masks=masks,
            predicted_iou=np.asarray(proposals.predicted_iou, np.float32)[index],
            stability_score=np.asarray(proposals.stability_score, np.float32)[index],
            proposal_index=index,
            num_proposals=int(proposals.masks.shape[0]),
            features=features,
            timings=timer.seconds,
        )

    def propose(self, image: np.ndarray, config: SlipConfig, timer: Timer | None = None):
        """Steps 1-3 of :meth:`prepare`, SAM's part: embedding, automatic masks, overlap
        filter. Returns ``(proposals, masks (N, H, W) bool, index (N,) into proposals)``.

        They depend on the image, the SAM and the mask-generation and overlap settings only,
        so when the caller shares a dict as ``self.stage_cache`` (``promptseg eval`` does,
        across the pipelines of a grid) another pipeline with another CLIP or visual prompt
        reuses them instead of running SAM again.
        """
        timer = timer or Timer()
        key = None
        if self.stage_cache is not None:
            key = ("slip.propose", self.sam.model_id, str(self.sam.device), image_key(image),
                   repr(config.mask_generation), config.overlap_filter, repr(config.overlap))
            if key in self.stage_cache:
                with timer("proposals_reused"):
                    return self.stage_cache[key]
        # 1. SAM image embedding, computed once and reused by crop layer 0 of generation
        with timer("sam_encoder"):
            embedding = self.sam.embed(image)
        # 2. segment everything (the official generator's algorithm and parameters)
        with timer("mask_generation"):
            proposals = generate_masks(
                self.sam, image, config.mask_generation, embedding=embedding,
                progress=config.progress,
            )
        masks = proposals.masks
        index = np.arange(masks.shape[0], dtype=np.int64)
        # 3. SLIP's overlap filter: merge duplicates, make partial overlaps disjoint
        with timer("overlap_filter"):
            if config.overlap_filter and masks.shape[0] > 0:
                quality = proposals.predicted_iou * proposals.stability_score
                filtered = separate_overlaps(masks, quality, config.overlap)
                masks, index = filtered.masks, filtered.index
        if key is not None:
            self.stage_cache[key] = (proposals, masks, index)
        return proposals, masks, index

    def segment(
        self, prepared: PreparedImage, prompts, config: SlipConfig | None = None, **overrides
    ):
        """Select the segments that answer ``prompts``; returns a Segmentation.

        Selection options (``output``, ``threshold``, ``score_mode``, ``background_prompts``)
        can be overridden per call; options of :meth:`prepare` have no effect here.
        """
        from promptseg.result import Segmentation

        config = self.resolve_config(config, **overrides)
        prompts = normalize_prompts(prompts, config.max_prompts)
        self.check_request(prompts, config)
        timer = Timer()
        # 5. text embeddings of the prompts, then the background prompts
        with timer("clip_text"):
            texts = list(prompts) + list(config.background_prompts)
            text_features = self.clip.encode_text(texts)
        # 6. scores of every candidate against every prompt, and the selection
        with timer("selection"):
            scored = score_prompts(
                prepared.features, text_features, len(prompts), config.score_mode,
                self.clip.logit_scale,
            )
            chosen, query = _select(prepared.masks, scored, len(prompts), config)
        masks = prepared.masks[chosen]
        timings = {**prepared.timings, **timer.seconds}
        timings["total"] = float(sum(timings.values()))
        return Segmentation.from_masks(
            masks,
            scores=scored.scores[chosen, query] if len(chosen) else np.zeros(0, np.float32),
            query_index=query,
            prompts=prompts,
            extras={
                "predicted_iou": prepared.predicted_iou[chosen],
                "stability_score": prepared.stability_score[chosen],
                "clip_scores": scored.scores[chosen],
                "proposal_index": prepared.proposal_index[chosen],
            },
            meta={
                "pipeline": self.name,
                "models": {"clip": self.clip.model_id, "sam": self.sam.model_id},
                "config": config_to_dict(config),
                "model_settings": self.model_settings,
                "num_proposals": prepared.num_proposals,
                "num_candidates": int(prepared.masks.shape[0]),
                "timings": timings,
            },
        )


def _select(masks: np.ndarray, scored, num_prompts: int, config: SlipConfig):
    """Indices of the chosen candidates and the prompt each answers, by ``config.output``."""
    scores, n = scored.scores, scored.scores.shape[0]
    chosen: list[int] = []
    query: list[int] = []
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    has_background = len(config.background_prompts) > 0
    if config.output == "best":
        for q in range(num_prompts):
            c = int(scores[:, q].argmax())
            if config.threshold is None or scores[c, q] >= config.threshold:
                chosen.append(c)
                query.append(q)
    else:
        for q in range(num_prompts):
            if config.output == "all":
                ok = np.ones(n, dtype=bool)
                if config.threshold is not None:
                    ok &= scores[:, q] >= config.threshold
                if has_background:
                    # closer to this prompt than to every background prompt (softmax keeps
                    # the order of the cosines, so one test serves both score modes)
                    ok &= scored.cosine[:, q] > scored.cosine[:, num_prompts:].max(axis=1)
            else:  # "label": each candidate goes to its best prompt, or to the background
                ok = scored.best == q
                if config.threshold is not None:
                    ok &= scores[:, q] >= config.threshold
            picked = _drop_nested(masks, np.flatnonzero(ok), scores[:, q],
                                  config.instance_containment)
            chosen.extend(picked)
            query.extend([q] * len(picked))
    return np.asarray(chosen, np.int64), np.asarray(query, np.int64)


def _drop_nested(masks, candidates, scores, containment: float) -> list[int]:
    """Best-first; drop a candidate ``containment`` nested in an already kept one (either way)."""
    order = sorted(candidates.tolist(), key=lambda i: -scores[i])
    boxes = masks_to_boxes(masks[order]).astype(np.int64) if order else None
    areas = masks[order].reshape(len(order), -1).sum(axis=1) if order else None
    kept: list[int] = []  # positions in `order`
    for a in range(len(order)):
        nested = False
        for b in kept:
            inter = shared_pixels(masks[order[a]], masks[order[b]], boxes[a], boxes[b])
            if inter and inter / max(1, min(areas[a], areas[b])) >= containment:
                nested = True
                break
        if not nested:
            kept.append(a)
    return [order[a] for a in kept]
