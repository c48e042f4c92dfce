"""Dense CRF refinement of soft maps on the image they describe, through ``pydensecrf2``.

A fully connected CRF (Krähenbühl & Koltun 2011) sharpens a coarse map along the image's
edges: a Gaussian kernel on position smooths it, a bilateral kernel on position and colour
keeps similar-looking neighbours together. Two forms of the papers:

- :func:`saliency_crf`: one saliency map against its complement (MedCLIP-SAM, the medical
  paper's gScoreCAM pipeline, ``papers/lvlm-medical-sam-clip.txt`` Sec. III-C): unary
  energies ``-log(s + eps) / (tau * sigmoid(s))`` (foreground) and
  ``-log(1 - s + eps) / (tau * sigmoid(1 - s))`` (background), ``tau = 1.05``; Gaussian
  ``sxy 3, compat 3``; bilateral ``sxy 60, srgb 5, compat 5``; one mean-field iteration.
  MedCLIP-SAM feeds the CRF a colour-mapped overlay of the map instead of the image (a
  bug); here the bilateral term reads the real image.
- :func:`multilabel_crf`: K class probabilities, background included (CLIP as RNN,
  ``papers/clip-as-rnn.txt`` Sec. 3.4 and its official configs): unary
  ``-log(clip(p, 1e-5))``; Gaussian ``sxy 1, compat 3``; bilateral ``sxy 67, srgb 3,
  compat 4``; 10 iterations.

Install: ``pip install 'promptseg[crf]'`` (pydensecrf2 builds from source; it needs a C++
compiler).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promptseg.errors import InputError, require

__all__ = ["CrfConfig", "CAR_CRF", "MEDCLIP_SAM_CRF", "dense_crf", "multilabel_crf",
           "saliency_crf"]


@dataclass(frozen=True)
class CrfConfig:
    """Kernel parameters and iterations of a dense CRF (pydensecrf's names).

    Attributes:
        iterations: mean-field steps.
        gaussian_sxy, gaussian_compat: the position-only kernel (pixels, weight).
        bilateral_sxy, bilateral_srgb, bilateral_compat: the position + colour kernel
            (pixels, colour levels 0..255, weight).
    """

    iterations: int = 10
    gaussian_sxy: float = 1.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 67.0
    bilateral_srgb: float = 3.0
    bilateral_compat: float = 4.0

    def __post_init__(self):
        if self.iterations < 1:
            raise InputError(f"CRF iterations must be >= 1, got {self.iterations}")
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if not getattr(self, name) > 0:
                raise InputError(f"CRF {name} must be > 0, got {getattr(self, name)}")


#: CLIP as RNN's CRF (official configs: iter 10, pos_xy_std 1, pos_w 3, bi_xy_std 67,
#: bi_rgb_std 3, bi_w 4)
CAR_CRF = CrfConfig()
#: MedCLIP-SAM's CRF (Gaussian sxy 3 compat 3, bilateral sxy 60 srgb 5 compat 5, 1 step)
MEDCLIP_SAM_CRF = CrfConfig(iterations=1, gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=60,
                            bilateral_srgb=5, bilateral_compat=5)
#: MedCLIP-SAM's unary temperature and log offset
MEDCLIP_SAM_TAU = 1.05
_EPS = 1e-8


def _check(image: np.ndarray, maps: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    from promptseg.image import check_rgb_image

    image = check_rgb_image(image, "CRF image")
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[1:] != image.shape[:2]:
        raise InputError(f"{what} must be (K, H, W) = (K, {image.shape[0]}, "
                         f"{image.shape[1]}) for this image, got shape {maps.shape}")
    if not np.all(np.isfinite(maps)):
        raise InputError(f"{what} must be finite")
    return image, maps


def dense_crf(image: np.ndarray, unary: np.ndarray, config: CrfConfig = CAR_CRF) -> np.ndarray:
    """Mean-field inference of a dense CRF: ``(K, H, W)`` label probabilities.

    Args:
        image: ``(H, W, 3) uint8`` RGB, read by the bilateral kernel.
        unary: ``(K, H, W)`` energies (negative log-probabilities) per label.
        config: kernels and iterations.
    """
    dcrf = require("pydensecrf.densecrf", "crf")
    image, unary = _check(image, unary, "CRF unary energies")
    k, h, w = unary.shape
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(k, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=config.gaussian_sxy, compat=config.gaussian_compat)
    crf.addPairwiseBilateral(sxy=config.bilateral_sxy, srgb=config.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image), compat=config.bilateral_compat)
    return np.asarray(crf.inference(int(config.iterations)), np.float32).reshape(k, h, w)


def multilabel_crf(image: np.ndarray, probs: np.ndarray,
                   config: CrfConfig = CAR_CRF) -> np.ndarray:
    """CaR's form: ``(K, H, W)`` probabilities in, refined ``(K, H, W)`` probabilities out
    (label ``argmax`` per pixel is the segmentation). Unary ``-log(clip(p, 1e-5))``."""
    image, probs = _check(image, probs, "class probabilities")
    return dense_crf(image, -np.log(np.clip(probs, 1e-5, None)), config)


def saliency_crf(image: np.ndarray, saliency: np.ndarray, config: CrfConfig = MEDCLIP_SAM_CRF,
                 tau: float = MEDCLIP_SAM_TAU) -> np.ndarray:
    """MedCLIP-SAM's form: an ``(H, W)`` saliency map in [0, 1] (or ``(Q, H, W)``, each
    refined alone) -> the refined foreground probability, same shape (``> 0.5``: the CRF's
    foreground)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    single = saliency.ndim == 2
    maps = saliency[None] if single else saliency
    if maps.ndim != 3:
        raise InputError(f"saliency must be (H, W) or (Q, H, W), got shape {saliency.shape}")
    image, maps = _check(image, maps, "saliency maps")
    if maps.size and (maps.min() < 0 or maps.max() > 1):
        raise InputError("saliency maps must lie in [0, 1]")
    if not tau > 0:
        raise InputError(f"tau must be > 0, got {tau}")
    out = np.empty_like(maps)
    for q, s in enumerate(maps):
        fg = -np.log(s + _EPS) / (tau * _sigmoid(s))
        bg = -np.log(1 - s + _EPS) / (tau * _sigmoid(1 - s))
        out[q] = dense_crf(image, np.stack([bg, fg]), config)[1]
    return out[0] if single else out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
