"""camsam: CLIP says where the prompt is, SAM draws it.

Paper: the medical LVLM paper's second pipeline (``papers/lvlm-medical-sam-clip.txt``,
Sec. III-C, Fig. 5, after MedCLIP-SAM): it does not trust "segment everything". A gScoreCAM
map of the prompt on the image (:mod:`promptseg.stages.saliency`) is refined by a dense CRF
on the image (:func:`promptseg.stages.crf.saliency_crf`), turned into a box
(:mod:`promptseg.stages.map_prompts`), and a SAM-family segmenter (SAM, SAM-HQ, SAM 2,
MedSAM) segments from it. On chest X-rays this roughly doubled the base pipeline's mIoU
(Tables V, VIII).

Steps, once per image (:meth:`CamSamPipeline.prepare`): the SAM image embedding. Per prompt
set (:meth:`CamSamPipeline.segment`): one saliency map per prompt (all prompts share one
forward pass), optional Gaussian smoothing, the CRF, a threshold, the box of the largest
region, one SAM decoder call for every prompt's box. A prompt whose map holds nothing above
the threshold gets no mask. The result's ``heatmaps`` are the saliency maps.

Beyond the paper: peak points inside the region as extra positive points (``points``), the
map as SAM's mask prompt (``mask_input``), every region above an area share in the box
(``box="all"``: two lungs), Grad-CAM or CLIP-ES as the map (``cam="gradcam"``,
``"clip-es"``; ViT CLIPs suit them better, [LVLM] Sec. V-B), and a larger CAM input
(``cam_input_size``) for finer maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promptseg.errors import ConfigError
from promptseg.image import DEFAULT_MAX_PIXELS
from promptseg.pipelines.base import Pipeline, Timer, config_to_dict, image_key
from promptseg.prompts import MAX_PROMPTS, normalize_prompts
from promptseg.stages.saliency import CAM_METHODS, GSCORECAM_BATCH, GSCORECAM_TOP_K

__all__ = ["CamSamConfig", "CamSamPipeline", "PreparedCamImage"]


@dataclass(frozen=True)
class CamSamConfig:
    """Configuration of the ``camsam`` pipeline; defaults follow the papers where they say.

    Maps are in [0, 1] (min-max normalised CAMs; after the CRF, the foreground probability);
    ``threshold`` is in the same unit.
    """

    # [LVLM] Sec. V-B, Tables VII-IX: ResNet CLIPs suit gScoreCAM best (CNN channels); RN50
    # on OpenAI's data is the paper's reference model (Fig. 6)
    clip: str = "open_clip:RN50/openai"
    sam: str = "facebook/sam-vit-base"  # [LVLM] Sec. IV-A3 uses SAM 2 and MedSAM; any SAM
    cam: str = "gscorecam"  # [LVLM] Sec. III-C, Fig. 5
    top_k: int = GSCORECAM_TOP_K  # gScoreCAM: channels kept ([LVLM] Sec. II-B, top 10 %)
    cam_batch_size: int = GSCORECAM_BATCH  # gScoreCAM: masked images per forward
    cam_precision: str = "fp32"  # ours: "bf16" scores gScoreCAM's masked images in bfloat16
    # ours: the side CLIP sees the image at for the map (None: the CLIP's own, as gScoreCAM);
    # larger gives finer maps, position embeddings interpolated (CaR runs its CAM at 448+)
    cam_input_size: int | None = None
    # CLIP-ES only: the background queries of its softmax (CaR's 23 by default; a set name
    # from promptseg.stages.background_queries, or texts)
    background_queries: str | tuple[str, ...] = "car"
    # ours: Gaussian smoothing of the map, pixels (0: none); [LVLM] Sec. VI: results are
    # "highly sensitive to the Gaussian filter settings" and were not tuned there
    sigma: float = 0.0
    crf: bool = True  # MedCLIP-SAM: CRF refinement before the box ([LVLM] Fig. 5)
    crf_iterations: int = 1  # MedCLIP-SAM: one mean-field step
    # the map's foreground: above this (0.5 after the CRF is its own decision), or "otsu"
    threshold: float | str = 0.5
    box: str = "largest"  # MedCLIP-SAM: the largest region; "all": every region >= share
    min_area_share: float = 0.25  # ours: for box="all", of the largest region's area
    points: int = 0  # ours: the k highest peaks inside the region as positive points
    mask_input: bool = False  # ours: the map also as SAM's low-resolution mask prompt
    multimask_output: bool = False  # a box is unambiguous enough for one mask (MedSAM's use)
    max_prompts: int = MAX_PROMPTS
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    use_model_settings: bool = True

    def __post_init__(self):
        if isinstance(self.background_queries, list):
            object.__setattr__(self, "background_queries", tuple(self.background_queries))
        if self.cam not in CAM_METHODS:
            raise ConfigError(f"cam must be one of {', '.join(CAM_METHODS)}, got {self.cam!r}")
        if self.box not in ("largest", "all"):
            raise ConfigError(f"box must be 'largest' or 'all', got {self.box!r}")
        if isinstance(self.threshold, str):
            if self.threshold != "otsu":
                raise ConfigError(f"threshold must be a number in [0, 1) or 'otsu', got "
                                  f"{self.threshold!r}")
        elif not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold must be in [0, 1) or 'otsu', got {self.threshold}")
        for name, low in (("top_k", 1), ("cam_batch_size", 1), ("crf_iterations", 1),
                          ("points", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.cam_precision not in ("fp32", "bf16"):
            raise ConfigError(f"cam_precision must be 'fp32' or 'bf16', got "
                              f"{self.cam_precision!r}")
        if self.sigma < 0:
            raise ConfigError(f"sigma must be >= 0 pixels, got {self.sigma}")
        if not 0 < self.min_area_share <= 1:
            raise ConfigError(f"min_area_share must be in (0, 1], got {self.min_area_share}")


@dataclass(frozen=True)
class PreparedCamImage:
    """What ``camsam`` computes from an image alone: the pixels and SAM's embedding."""

    image: np.ndarray
    embedding: object
    timings: dict


class CamSamPipeline(Pipeline):
    """Saliency map -> CRF -> box -> SAM (the medical paper's gScoreCAM pipeline).

    Example:
        >>> import promptseg
        >>> pipe = promptseg.load_pipeline("camsam")  # doctest: +SKIP
        >>> seg = pipe("chest.png", ["lungs"])  # doctest: +SKIP
        >>> seg.heatmaps.shape  # doctest: +SKIP
        (1, 1024, 1024)
    """

    name = "camsam"
    config_class = CamSamConfig
    model_fields = ("sam", "clip")

    def __init__(self, config: CamSamConfig | None = None, device="auto", dtype="fp32",
                 **overrides):
        super().__init__(config, **overrides)
        from promptseg.models.registry import load_clip, load_sam

        self.sam = load_sam(self.config.sam, device=device, dtype=dtype)
        self.clip = load_clip(self.config.clip, device=device, dtype=dtype)

    def prepare(self, image, config: CamSamConfig | None = None,
                **overrides) -> PreparedCamImage:
        """Load the image and compute SAM's embedding (shared through ``stage_cache``)."""
        from promptseg.image import load_image

        config = self.resolve_config(config, **overrides)
        image = load_image(image, max_pixels=config.max_pixels)
        timer = Timer()
        with timer("sam_encoder"):
            embedding = self.sam_embedding(image)
        return PreparedCamImage(image=image, embedding=embedding, timings=timer.seconds)

    def sam_embedding(self, image: np.ndarray):
        """SAM's embedding of ``image``, reused from ``stage_cache`` when another pipeline
        of a grid with the same SAM computed it."""
        key = ("sam.embed", self.sam.model_id, str(self.sam.device), image_key(image))
        if self.stage_cache is not None and key in self.stage_cache:
            return self.stage_cache[key]
        embedding = self.sam.embed(image)
        if self.stage_cache is not None:
            self.stage_cache[key] = embedding
        return embedding

    def segment(self, prepared: PreparedCamImage, prompts, config: CamSamConfig | None = None,
                **overrides):
        """Map, refine, box and segment every prompt; returns a Segmentation."""
        from promptseg.result import Segmentation
        from promptseg.stages.crf import MEDCLIP_SAM_CRF, CrfConfig, saliency_crf
        from promptseg.stages.map_prompts import (
            binarize,
            mask_prompt,
            peak_points,
            region_box,
            smooth,
        )
        from promptseg.stages.saliency import saliency_maps

        config = self.resolve_config(config, **overrides)
        prompts = normalize_prompts(prompts, config.max_prompts)
        image = prepared.image
        timer = Timer()
        with timer("saliency"):
            options: dict = {}
            if config.cam == "gscorecam":
                options = {"top_k": config.top_k, "batch_size": config.cam_batch_size,
                           "precision": config.cam_precision}
            elif config.cam == "clip-es":
                options = {"background": config.background_queries}
            options["input_size"] = config.cam_input_size
            maps = saliency_maps(self.clip, image, prompts, method=config.cam, **options)
        with timer("refine"):
            refined = np.stack([smooth(m, config.sigma) for m in maps])
            if config.crf:
                crf = CrfConfig(**{**MEDCLIP_SAM_CRF.__dict__,
                                   "iterations": config.crf_iterations})
                refined = saliency_crf(image, refined, crf)
        boxes, points, masks_in, asked = [], [], [], []
        with timer("prompts"):
            for q, m in enumerate(refined):
                region = binarize(m, config.threshold)
                box = region_box(region, config.box, config.min_area_share)
                if box is None:
                    continue  # nothing above the threshold: no mask for this prompt
                asked.append(q)
                boxes.append(box)
                if config.points:
                    points.append(peak_points(m, config.points, mask=region))
                if config.mask_input:
                    masks_in.append(mask_prompt(m, self.sam.low_res_size))
        found, scores, query, used = [], [], [], []
        with timer("sam_decoder"):
            if asked:
                coords, labels = _pad_points(points) if config.points else (None, None)
                predicted = self.sam.predict(
                    prepared.embedding, point_coords=coords, point_labels=labels,
                    boxes=np.stack(boxes), mask_inputs=np.stack(masks_in) if masks_in else None,
                    multimask_output=config.multimask_output,
                )
                best = predicted.iou_scores.argmax(dim=1)
                for row, q in enumerate(asked):
                    k = int(best[row])
                    mask = predicted.masks[row, k].cpu().numpy()
                    if mask.any():
                        found.append(mask)
                        scores.append(float(predicted.iou_scores[row, k]))
                        query.append(q)
                        used.append(boxes[row])
        timings = {**prepared.timings, **timer.seconds}
        timings["total"] = float(sum(timings.values()))
        meta = {
            "pipeline": self.name,
            "models": {"clip": self.clip.model_id, "sam": self.sam.model_id},
            "config": config_to_dict(config),
            "model_settings": self.model_settings,
            "timings": timings,
        }
        if not found:
            return Segmentation.empty(prompts, image.shape[:2], heatmaps=maps, meta=meta)
        return Segmentation.from_masks(
            np.stack(found), scores=np.asarray(scores, np.float32), query_index=query,
            prompts=prompts, heatmaps=maps,
            extras={"prompt_boxes": np.stack(used).astype(np.float32)}, meta=meta,
        )


def _pad_points(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt ``(P_b, 2)`` points -> ``(B, P, 2)`` and labels ``(B, P)`` (-1: padding,
    which SAM ignores); a prompt without a peak gets one ignored point."""
    width = max(1, max(len(p) for p in points))
    coords = np.zeros((len(points), width, 2), np.float32)
    labels = np.full((len(points), width), -1, np.int64)
    for b, p in enumerate(points):
        coords[b, :len(p)] = p
        labels[b, :len(p)] = 1
    return coords, labels
