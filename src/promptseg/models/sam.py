"""Promptable segmentation with the SAM family: SAM, SAM-HQ and SAM 2 through transformers.

Papers and reference code:

- SAM: Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643.
  Reference: https://github.com/facebookresearch/segment-anything (PyPI ``segment-anything==1.0``).
- SAM-HQ: Ke et al., "Segment Anything in High Quality", NeurIPS 2023, arXiv:2306.01567.
  Reference: https://github.com/SysCV/sam-hq
- SAM 2: Ravi et al., "SAM 2: Segment Anything in Images and Videos", arXiv:2408.00714.
  Reference: https://github.com/facebookresearch/sam2

The networks are transformers' ``SamModel``, ``SamHQModel`` and ``Sam2Model``; the pre- and
post-processing around them follow the official predictors step by step rather than the
transformers processors:

- SAM / SAM-HQ (``SamPredictor``): the longest image side is resized to the encoder size with
  PIL's bilinear filter (``ResizeLongestSide.apply_image``), pixels are normalised with the pixel
  mean and std, and the image is zero-padded bottom-right to a square. Prompt coordinates are
  scaled by ``new / old`` per axis (``ResizeLongestSide.apply_coords``). Low-resolution mask
  logits are upsampled to the padded square, cropped to the resized image, and upsampled to the
  original size, bilinearly with ``align_corners=False`` (``Sam.postprocess_masks``).
- SAM 2 (``SAM2ImagePredictor``): the image is scaled to [0, 1], resized to the square encoder
  size (bilinear, antialiased), normalised; coordinates are scaled by ``size / (W, H)``; low-res
  logits are upsampled straight to the original size and then clamped to [-32, 32].

Deviations: SAM-HQ follows transformers' ``SamHQModel`` output convention (with
``multimask_output=True`` it returns the three SAM masks, sorted by predicted IoU, each plus the
HQ mask), not the official repository's single best mask.

Conventions: images are ``(H, W, 3) uint8`` RGB numpy arrays; coordinates are x, y pixels of the
original image; boxes are xyxy; sizes are (H, W). The image embedding is returned as an
immutable value (:class:`ImageEmbedding`): the segmenter holds no per-image state, so one loaded
model serves many threads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from promptseg.errors import InputError, WeightsError
from promptseg.image import check_rgb_image
from promptseg.models._device import resolve_dtype

logger = logging.getLogger(__name__)

__all__ = ["ImageEmbedding", "PredictedMasks", "SamPrompts", "SamSegmenter", "SAM_FAMILIES"]

# config.json ``model_type`` -> (family, transformers model class name)
_MODEL_TYPES: dict[str, tuple[str, str]] = {
    "sam": ("sam", "SamModel"),
    "sam_hq": ("sam_hq", "SamHQModel"),
    "sam2": ("sam2", "Sam2Model"),
    "sam2_video": ("sam2", "Sam2Model"),
}
SAM_FAMILIES = ("sam", "sam_hq", "sam2")

# [SAM-repo] modeling/sam.py pixel_mean / pixel_std (ImageNet statistics in 0..255 units)
_DEFAULT_IMAGE_MEAN = (0.485, 0.456, 0.406)
_DEFAULT_IMAGE_STD = (0.229, 0.224, 0.225)
_DEFAULT_RESCALE = 1.0 / 255.0
# [SAM2-repo] sam2/sam2_image_predictor.py: low-res logits are clamped before being returned
_SAM2_LOW_RES_CLAMP = 32.0


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The image encoder's output for one image, computed once and prompted many times.

    Attributes:
        image_embeddings: ``(1, C, h, w)`` tensor in the model dtype, on the model device
            (``C = 256``, ``h = w = 64`` for the released 1024-pixel models).
        intermediate_embeddings: SAM-HQ only: the ViT outputs of the global-attention blocks,
            each ``(1, h, w, D)``; empty for the other families.
        high_res_features: SAM 2 only: the two higher-resolution feature maps of the decoder,
            ``(1, C/8, 4h, 4w)`` and ``(1, C/4, 2h, 2w)``; empty for the other families.
        original_size: (H, W) of the image that was embedded.
        input_size: (h, w) of the image after resizing, before padding (SAM 2: the square
            encoder size).
        model_id: id of the model that computed it; :meth:`SamSegmenter.predict` refuses an
            embedding of another model.
        family: ``"sam"``, ``"sam_hq"`` or ``"sam2"``.
    """

    image_embeddings: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    model_id: str
    family: str
    intermediate_embeddings: tuple[torch.Tensor, ...] = ()
    high_res_features: tuple[torch.Tensor, ...] = ()


@dataclass(frozen=True, eq=False)
class PredictedMasks:
    """Masks predicted for a batch of B prompts, K masks per prompt.

    Attributes:
        logits: ``(B, K, H, W)`` float32 mask logits at the original image size (H, W); a pixel
            is in the mask where its logit is > 0.
        iou_scores: ``(B, K)`` float32, the model's own estimate of each mask's IoU.
        low_res_logits: ``(B, K, L, L)`` float32 logits at the decoder resolution
            (``L = 256`` for 1024-pixel models); they can be fed back as ``mask_inputs``.

    All tensors live on the segmenter's device. K is 3 with ``multimask_output=True``, else 1.
    """

    logits: torch.Tensor
    iou_scores: torch.Tensor
    low_res_logits: torch.Tensor

    @property
    def masks(self) -> torch.Tensor:
        """``(B, K, H, W)`` bool: ``logits > 0``."""
        return self.logits > 0.0

    def __len__(self) -> int:
        return int(self.logits.shape[0])


@dataclass(frozen=True, eq=False)
class SamPrompts:
    """A checked batch of B prompts for one image, from :meth:`SamSegmenter.check_prompts`.

    Row b of every array given is prompt b; a prompt kind not given is ``None``.

    Attributes:
        point_coords: ``(B, P, 2)`` x, y in original-image pixels, or ``None``.
        point_labels: ``(B, P)`` int64, 1 foreground, 0 background, -1 ignored; ``None``
            exactly when ``point_coords`` is.
        boxes: ``(B, 4)`` xyxy in original-image pixels, or ``None``.
        mask_inputs: ``(B, 1, L, L)`` logits at the decoder resolution, or ``None``.
        batch_size: B (1 when no prompt is given).
    """

    point_coords: np.ndarray | None
    point_labels: np.ndarray | None
    boxes: np.ndarray | None
    mask_inputs: np.ndarray | None
    batch_size: int


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"could not read {path}: {exc}") from exc


def _preprocessing_from_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixel mean and std in 0..255 units, from a saved (image) processor config if any."""
    settings: dict[str, Any] = {}
    proc = folder / "processor_config.json"
    pre = folder / "preprocessor_config.json"
    if proc.is_file():
        settings = _read_json(proc).get("image_processor", {}) or {}
    if not settings and pre.is_file():
        settings = _read_json(pre)
    mean = np.asarray(settings.get("image_mean", _DEFAULT_IMAGE_MEAN), dtype=np.float64)
    std = np.asarray(settings.get("image_std", _DEFAULT_IMAGE_STD), dtype=np.float64)
    rescale = float(settings.get("rescale_factor", _DEFAULT_RESCALE))
    if not settings.get("do_rescale", True):
        rescale = 1.0
    if not settings.get("do_normalize", True):
        mean, std = np.zeros(3), np.ones(3)
    return mean / rescale, std / rescale


def _as_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be an array of numbers, got {type(value).__name__}") from exc


class SamSegmenter:
    """A frozen SAM-family model: embed an image once, then predict masks from prompts.

    Build it with :meth:`from_pretrained`. The object is read-only after construction:
    :meth:`embed` and :meth:`predict` keep no state, so one instance may serve many threads.

    Attributes:
        family: ``"sam"``, ``"sam_hq"`` or ``"sam2"``.
        model_id: the id embeddings are tagged with (the folder path unless given).
        image_size: side of the square encoder input, e.g. 1024.
        device: torch device of the weights.
        dtype: torch dtype of the weights (float32, float16 or bfloat16); outputs are float32.
        model: the underlying transformers model (eval mode, no gradients).

    Example (needs a model folder, so it is not run as a doctest)::

        seg = SamSegmenter.from_pretrained("path/to/sam-vit-base")
        emb = seg.embed(image)  # once per image
        out = seg.predict(emb, point_coords=[[[120, 80]]], point_labels=[[1]])
        out.masks.shape  # torch.Size([1, 3, H, W])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        family: str,
        model_id: str,
        image_size: int,
        pixel_mean: np.ndarray,
        pixel_std: np.ndarray,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        if family not in SAM_FAMILIES:
            raise WeightsError(f"unknown SAM family {family!r}; expected one of {SAM_FAMILIES}")
        self.model = model
        self.family = family
        self.model_id = model_id
        self.image_size = int(image_size)
        self.device = device
        self.dtype = dtype
        self._pixel_mean = torch.as_tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1)
        self._pixel_std = torch.as_tensor(pixel_std, dtype=torch.float32).view(3, 1, 1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        device: torch.device | str = torch.device("cpu"),
        dtype: torch.dtype | str = torch.float32,
        *,
        model_id: str | None = None,
    ) -> SamSegmenter:
        """Load a SAM, SAM-HQ or SAM 2 model saved with transformers' ``save_pretrained``.

        Args:
            folder: local folder holding ``config.json`` and the weights (and optionally the
                processor config, whose ``image_mean`` / ``image_std`` are used).
            device: where to put the weights.
            dtype: ``torch.float32``, ``torch.float16`` or ``torch.bfloat16`` (or the strings
                ``"fp32"``, ``"fp16"``, ``"bf16"``).
            model_id: id to tag embeddings with; defaults to the folder path.

        Raises:
            WeightsError: the folder is missing, has no config, holds another model family
                (the message names the ``model_type`` found) or its weights do not load.
        """
        import transformers

        folder = Path(folder)
        if not folder.is_dir():
            raise WeightsError(
                f"SAM weights folder {str(folder)!r} does not exist; give a folder written by "
                "save_pretrained, or convert an official checkpoint with "
                "promptseg.convert.sam_checkpoint.convert_sam_checkpoint"
            )
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise WeightsError(
                f"{str(folder)!r} has no config.json, so it is not a transformers model folder; "
                "convert an official SAM .pth with promptseg.convert.sam_checkpoint"
            )
        model_type = _read_json(config_path).get("model_type")
        if model_type not in _MODEL_TYPES:
            raise WeightsError(
                f"{str(folder)!r} holds a model of type {model_type!r}, not a SAM-family model "
                f"(expected model_type one of {sorted(_MODEL_TYPES)})"
            )
        dtype = resolve_dtype(dtype)
        device = torch.device(device)
        family, class_name = _MODEL_TYPES[model_type]
        model_cls = getattr(transformers, class_name)
        try:
            kwargs: dict[str, Any] = {}
            if model_type == "sam2_video":
                # the hub's SAM 2.1 folders hold the video model; its image parts are Sam2Model
                video = transformers.Sam2VideoConfig.from_pretrained(folder)
                kwargs["config"] = transformers.Sam2Config(
                    vision_config=video.vision_config,
                    prompt_encoder_config=video.prompt_encoder_config,
                    mask_decoder_config=video.mask_decoder_config,
                )
            model = model_cls.from_pretrained(folder, dtype=dtype, **kwargs)
        except (ImportError, MemoryError):
            raise
        except Exception as exc:  # safetensors, torch and transformers raise many types
            raise WeightsError(
                f"could not load {class_name} (model_type {model_type!r}) from {str(folder)!r}: "
                f"{exc}"
            ) from exc
        model = model.to(device).eval()
        model.requires_grad_(False)
        image_size = int(model.config.prompt_encoder_config.image_size)
        mean, std = _preprocessing_from_folder(folder)
        return cls(
            model=model,
            family=family,
            model_id=model_id if model_id is not None else str(folder),
            image_size=image_size,
            pixel_mean=mean,
            pixel_std=std,
            device=device,
            dtype=dtype,
        )

    # ------------------------------------------------------------------ geometry
    @property
    def low_res_size(self) -> int:
        """Side L of the decoder's low-resolution logits and of ``mask_inputs`` (256 at 1024)."""
        cfg = self.model.config.prompt_encoder_config
        return 4 * (int(cfg.image_size) // int(cfg.patch_size))

    def input_size_for(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) an image of ``original_size`` (H, W) is resized to before padding.

        SAM / SAM-HQ: longest side = ``image_size``, rounded half up as in
        ``ResizeLongestSide.get_preprocess_shape``. SAM 2: the square ``image_size``.
        """
        if self.family == "sam2":
            return (self.image_size, self.image_size)
        old_h, old_w = original_size
        scale = self.image_size * 1.0 / max(old_h, old_w)
        return (int(old_h * scale + 0.5), int(old_w * scale + 0.5))

    def _preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(1, 3, S, S) pixel tensor in the model dtype on the device, and the resized (h, w)."""
        h, w = self.input_size_for(image.shape[:2])
        if self.family == "sam2":
            # [SAM2-repo] utils/transforms.py: ToTensor, Resize((S, S)) (antialiased), Normalize
            x = torch.from_numpy(image).to(self.device).permute(2, 0, 1).float() / 255.0
            x = F.interpolate(
                x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True
            )[0]
            mean = self._pixel_mean.to(self.device) / 255.0
            std = self._pixel_std.to(self.device) / 255.0
            x = (x - mean) / std
        else:
            # [SAM-repo] utils/transforms.py apply_image: PIL bilinear resize of the uint8 image
            from PIL import Image

            resized = np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))
            x = torch.from_numpy(resized).to(self.device)
            x = x.permute(2, 0, 1).float()
            # [SAM-repo] modeling/sam.py preprocess: normalise, then pad bottom-right with zeros
            x = (x - self._pixel_mean.to(self.device)) / self._pixel_std.to(self.device)
            x = F.pad(x, (0, self.image_size - w, 0, self.image_size - h))
        return x[None].to(self.dtype), (h, w)

    # ------------------------------------------------------------------ embedding
    def embed(self, image: np.ndarray) -> ImageEmbedding:
        """Run the image encoder once.

        Args:
            image: ``(H, W, 3) uint8`` RGB.

        Returns:
            An :class:`ImageEmbedding` to pass to :meth:`predict` any number of times.
        """
        image = check_rgb_image(image)
        with torch.inference_mode():
            pixels, input_size = self._preprocess(image)
            interm: tuple[torch.Tensor, ...] = ()
            high_res: tuple[torch.Tensor, ...] = ()
            if self.family == "sam":
                emb = self.model.get_image_embeddings(pixels)
            elif self.family == "sam_hq":
                emb, inter_list = self.model.get_image_embeddings(pixels)
                interm = tuple(inter_list)
            else:
                feats = self.model.get_image_embeddings(pixels)
                emb, high_res = feats[-1], tuple(feats[:-1])
        return ImageEmbedding(
            image_embeddings=emb,
            original_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=(int(input_size[0]), int(input_size[1])),
            model_id=self.model_id,
            family=self.family,
            intermediate_embeddings=interm,
            high_res_features=high_res,
        )

    # ------------------------------------------------------------------ prompts
    def _scale_xy(self, xy: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Map (..., 2) x, y pixels of the original image to the encoder-input frame (float64)."""
        old_h, old_w = original_size
        new_h, new_w = self.input_size_for(original_size)
        out = xy.astype(np.float64, copy=True)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def _check_embedding(self, embedding: Any) -> None:
        """Raise InputError unless ``embedding`` is this segmenter's, on its device and dtype."""
        if not isinstance(embedding, ImageEmbedding):
            raise InputError(
                f"embedding must be an ImageEmbedding from SamSegmenter.embed, got "
                f"{type(embedding).__name__}"
            )
        if embedding.model_id != self.model_id or embedding.family != self.family:
            raise InputError(
                f"embedding was computed by {embedding.model_id!r} ({embedding.family}), "
                f"not by this segmenter {self.model_id!r} ({self.family}); embed the image again"
            )
        emb_tensor = embedding.image_embeddings
        if emb_tensor.dtype != self.dtype or emb_tensor.device != self.device:
            raise InputError(
                f"embedding is {emb_tensor.dtype} on {emb_tensor.device}, this segmenter runs "
                f"{self.dtype} on {self.device}; embed the image with this segmenter"
            )

    def check_prompts(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        boxes: Any = None,
        mask_inputs: Any = None,
    ) -> SamPrompts:
        """Check B prompts (arguments as :meth:`predict`) for :meth:`decode`.

        Raises:
            InputError: wrong shapes or values, or batch sizes that differ.
        """
        coords = labels = box = masks = None
        sizes: dict[str, int] = {}
        if point_coords is not None:
            coords = _as_array(point_coords, "point_coords")
            if coords.ndim == 2:
                coords = coords[None]
            if coords.ndim != 3 or coords.shape[-1] != 2 or coords.shape[1] < 1:
                raise InputError(
                    "point_coords must be (B, P, 2) x, y pixels (or (P, 2) for one prompt), "
                    f"got shape {coords.shape}"
                )
            if not np.issubdtype(coords.dtype, np.number) or not np.all(np.isfinite(coords)):
                raise InputError("point_coords must be finite numbers")
            if point_labels is None:
                labels = np.ones(coords.shape[:2], dtype=np.int64)
            else:
                labels = _as_array(point_labels, "point_labels")
                if labels.ndim == 1:
                    labels = labels[None]
                if labels.shape != coords.shape[:2]:
                    raise InputError(
                        f"point_labels must be (B, P) = {coords.shape[:2]} to match point_coords, "
                        f"got shape {labels.shape}"
                    )
                if not np.all(np.isin(labels, (-1, 0, 1))):
                    raise InputError(
                        "point_labels must hold 1 (foreground), 0 (background) or -1 (ignore), "
                        f"got values {sorted(set(np.unique(labels).tolist()))}"
                    )
                labels = labels.astype(np.int64)
            sizes["point_coords"] = coords.shape[0]
        elif point_labels is not None:
            raise InputError("point_labels were given without point_coords")
        if boxes is not None:
            box = _as_array(boxes, "boxes")
            if box.ndim == 1:
                box = box[None]
            if box.ndim != 2 or box.shape[1] != 4:
                raise InputError(
                    f"boxes must be (B, 4) xyxy pixels (or (4,) for one box), got shape {box.shape}"
                )
            if not np.issubdtype(box.dtype, np.number) or not np.all(np.isfinite(box)):
                raise InputError("boxes must be finite numbers")
            if np.any(box[:, 2] < box[:, 0]) or np.any(box[:, 3] < box[:, 1]):
                raise InputError("boxes must be xyxy with x1 >= x0 and y1 >= y0")
            sizes["boxes"] = box.shape[0]
        if mask_inputs is not None:
            masks = _as_array(mask_inputs, "mask_inputs")
            size = self.low_res_size
            if masks.ndim == 3:
                masks = masks[None]
            if masks.ndim != 4 or masks.shape[1:] != (1, size, size):
                raise InputError(
                    f"mask_inputs must be (B, 1, {size}, {size}) logits (low_res_logits of an "
                    f"earlier prediction), got shape {masks.shape}"
                )
            sizes["mask_inputs"] = masks.shape[0]
        if len(set(sizes.values())) > 1:
            raise InputError(f"prompt batch sizes differ: {sizes}; give one row per prompt")
        batch = next(iter(sizes.values())) if sizes else 1
        if batch < 1:
            raise InputError(f"empty prompt batch: {sizes}")
        return SamPrompts(coords, labels, box, masks, batch)

    def predict(
        self,
        embedding: ImageEmbedding,
        point_coords: Any = None,
        point_labels: Any = None,
        boxes: Any = None,
        mask_inputs: Any = None,
        multimask_output: bool = True,
        *,
        hq_token_only: bool = False,
    ) -> PredictedMasks:
        """Predict masks for B prompts on one embedded image.

        Each prompt (row b) may combine points, a box and a mask; rows are independent.

        Args:
            embedding: from :meth:`embed` of this segmenter.
            point_coords: ``(B, P, 2)`` x, y pixels in the original image (``(P, 2)``: B = 1).
            point_labels: ``(B, P)`` ints, 1 foreground, 0 background, -1 ignored; default 1.
            boxes: ``(B, 4)`` xyxy pixels in the original image (``(4,)``: B = 1).
            mask_inputs: ``(B, 1, L, L)`` logits, e.g. ``low_res_logits[:, k:k+1]`` of an
                earlier call (L = :attr:`low_res_size`).
            multimask_output: three masks per prompt (True) or one (False).
            hq_token_only: SAM-HQ only: return the HQ mask alone instead of SAM + HQ.

        Returns:
            :class:`PredictedMasks` with float32 tensors on :attr:`device`.

        Raises:
            InputError: wrong shapes, batch sizes that differ, or an embedding of another model.
        """
        self._check_embedding(embedding)
        prompts = self.check_prompts(point_coords, point_labels, boxes, mask_inputs)
        low_res, iou = self.decode(
            embedding, prompts, multimask_output, hq_token_only=hq_token_only
        )
        with torch.inference_mode():
            logits = self.upscale(low_res, embedding)
            if self.family == "sam2":
                low_res = low_res.clamp(-_SAM2_LOW_RES_CLAMP, _SAM2_LOW_RES_CLAMP)
        return PredictedMasks(logits=logits, iou_scores=iou, low_res_logits=low_res)

    def decode(
        self,
        embedding: ImageEmbedding,
        prompts: SamPrompts,
        multimask_output: bool = True,
        *,
        hq_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder half of :meth:`predict`: low-resolution logits and predicted IoU.

        Takes the prompts checked by :meth:`check_prompts`; the other arguments are those of
        :meth:`predict`. Returns ``(B, K, L, L)`` float32 logits (not clamped, even for SAM 2)
        and ``(B, K)`` float32 scores. Callers that drop masks by score (automatic mask
        generation) upscale only the kept ones with :meth:`upscale`.
        """
        self._check_embedding(embedding)
        coords, labels = prompts.point_coords, prompts.point_labels
        box, masks, batch = prompts.boxes, prompts.mask_inputs, prompts.batch_size
        original_size = embedding.original_size
        dev = self.device
        # float64 coordinates as the reference generator passes them (MPS has no float64)
        xy_dtype = torch.float32 if dev.type == "mps" else torch.float64
        with torch.inference_mode():
            pts_t = lab_t = box_t = mask_t = None
            if coords is not None:
                scaled = self._scale_xy(coords, original_size)
                pts_t = torch.from_numpy(scaled).to(device=dev, dtype=xy_dtype)
                lab_t = torch.from_numpy(labels).to(dev)
            if box is not None:
                scaled = self._scale_xy(box.reshape(-1, 2, 2), original_size).reshape(-1, 4)
                box_t = torch.from_numpy(scaled).to(device=dev, dtype=xy_dtype)
            if masks is not None:
                mask_t = torch.as_tensor(masks, dtype=self.dtype, device=dev)
            low_res, iou = self._decode(
                embedding, pts_t, lab_t, box_t, mask_t, batch, multimask_output, hq_token_only
            )
            return low_res.float(), iou.float()

    def upscale(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        """``(B, K, L, L)`` logits of :meth:`decode` -> ``(B, K, H, W)`` at the original size."""
        if low_res.numel() == 0:  # interpolate refuses empty batches
            return low_res.new_zeros((*low_res.shape[:2], *embedding.original_size))
        with torch.inference_mode():
            return self._upscale(low_res, embedding.input_size, embedding.original_size)

    def _decode(
        self,
        emb: ImageEmbedding,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
        batch: int,
        multimask_output: bool,
        hq_token_only: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run prompt encoder + mask decoder; returns (B, K, L, L) logits and (B, K) scores.

        Without mask inputs the prompts ride on transformers' "point batch" axis of a single
        image, so per-image work (SAM-HQ's feature fusion) runs once. With mask inputs each
        prompt becomes its own image-batch row, because transformers adds the dense embedding
        before expanding the point batch.
        """
        per_row = masks is not None
        if per_row:
            # (B, 1, ...) prompts against B views of the same embedding
            def grow(t: torch.Tensor) -> torch.Tensor:
                return t.expand(batch, *t.shape[1:])

            kwargs: dict[str, Any] = {"image_embeddings": grow(emb.image_embeddings)}
            if points is not None:
                kwargs["input_points"] = points[:, None]
                kwargs["input_labels"] = labels[:, None]
            if boxes is not None:
                kwargs["input_boxes"] = boxes[:, None]
            kwargs["input_masks"] = masks
            interm = [grow(t) for t in emb.intermediate_embeddings]
            high_res = [grow(t) for t in emb.high_res_features]
        else:
            kwargs = {"image_embeddings": emb.image_embeddings}
            if points is not None:
                kwargs["input_points"] = points[None]
                kwargs["input_labels"] = labels[None]
            if boxes is not None:
                kwargs["input_boxes"] = boxes[None]
            interm = list(emb.intermediate_embeddings)
            high_res = list(emb.high_res_features)
        if self.family == "sam_hq":
            kwargs["intermediate_embeddings"] = interm
            kwargs["hq_token_only"] = hq_token_only
        elif self.family == "sam2":
            kwargs["image_embeddings"] = [*high_res, kwargs["image_embeddings"]]
        out = self.model(multimask_output=multimask_output, **kwargs)
        pred, iou = out.pred_masks, out.iou_scores
        if per_row:
            return pred[:, 0], iou[:, 0]
        return pred[0], iou[0]

    def _upscale(
        self,
        low_res: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """Low-res logits (B, K, L, L) -> (B, K, H, W) at the original size, as the references."""
        if self.family == "sam2":
            # [SAM2-repo] utils/transforms.py postprocess_masks (no hole filling by default)
            return F.interpolate(low_res, original_size, mode="bilinear", align_corners=False)
        # [SAM-repo] modeling/sam.py postprocess_masks: pad size, crop, original size
        size = (self.image_size, self.image_size)
        x = F.interpolate(low_res, size, mode="bilinear", align_corners=False)
        x = x[..., : input_size[0], : input_size[1]]
        return F.interpolate(x, original_size, mode="bilinear", align_corners=False)

    def __repr__(self) -> str:
        return (
            f"SamSegmenter(family={self.family!r}, model_id={self.model_id!r}, "
            f"image_size={self.image_size}, device={self.device}, dtype={self.dtype})"
        )
