"""CLIP scoring of candidate masks against text prompts.

Each candidate mask is shown to CLIP as a visually prompted image (the segment on black in SLIP
and the medical LVLM base pipeline, Fig. 1 of ``papers/lvlm-medical-sam-clip.txt``; a tight crop
as its Sec. V-A "next steps" proposes; see :mod:`promptseg.stages.visual_prompts`), encoded in
batches, and compared with the prompts' text embeddings by cosine similarity.

The candidate embeddings do not depend on the prompts: a pipeline computes them once per image
and scores any number of prompts against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from promptseg.errors import ConfigError, InputError

__all__ = [
    "SCORE_MODES",
    "check_score_mode",
    "encode_candidates",
    "cosine_scores",
    "prompt_probabilities",
    "PromptScores",
    "score_prompts",
]

SCORE_MODES = ("cosine", "softmax")


def encode_candidates(
    clip,
    image: np.ndarray,
    masks: np.ndarray,
    visual_prompt: str = "black",
    margin: float | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """CLIP image embeddings of each candidate mask, rendered with a visual prompt.

    Args:
        clip: a :class:`promptseg.models.clip.ClipScorer`.
        image: ``(H, W, 3) uint8`` RGB.
        masks: ``(N, H, W) bool`` candidates.
        visual_prompt: a spec of :func:`promptseg.stages.visual_prompts.apply_visual_prompt`,
            e.g. ``"black"`` (the papers) or ``"black+crop"``.
        margin: context margin of a crop, as a fraction of the box size (None: the spec's
            ``crop:M`` value, else 0).
        batch_size: images per CLIP forward pass.

    Returns:
        ``(N, D) float32`` L2-normalised embeddings (``(0, D)`` when N = 0).
    """
    from promptseg.stages.visual_prompts import render_candidates

    if masks.shape[0] == 0:
        return torch.zeros((0, clip.embed_dim), dtype=torch.float32)
    # render one batch at a time: without a crop each rendering is a full-size image copy
    # (200 candidates on a 4K image would hold 5 GB at once)
    features = []
    for start in range(0, masks.shape[0], batch_size):
        crops = render_candidates(image, masks[start : start + batch_size], visual_prompt,
                                  margin=margin)
        features.append(clip.encode_images(crops, batch_size=batch_size))
    return torch.cat(features)


def cosine_scores(image_features: torch.Tensor, text_features: torch.Tensor) -> np.ndarray:
    """Cosine similarity of L2-normalised features: ``(N, D) x (Q, D) -> (N, Q) float32``."""
    if image_features.shape[-1] != text_features.shape[-1]:
        raise InputError(
            f"image features have dim {image_features.shape[-1]} but text features "
            f"{text_features.shape[-1]}: they come from different CLIP models"
        )
    sims = image_features.float() @ text_features.float().T
    return sims.cpu().numpy().astype(np.float32)


def prompt_probabilities(cosine: np.ndarray, logit_scale: float) -> np.ndarray:
    """CLIP's zero-shot softmax over prompts: ``softmax(logit_scale * cosine, axis=1)``.

    Args:
        cosine: ``(N, P) float`` similarities to P prompts (foreground then background).
        logit_scale: CLIP's learned temperature (``exp`` already applied; 100 for OpenAI CLIP).

    Returns:
        ``(N, P) float32``, rows sum to 1.
    """
    logits = logit_scale * cosine.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True) if logits.size else 0.0
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def check_score_mode(mode: str, num_texts: int) -> None:
    """Raise ConfigError unless ``mode`` can score against ``num_texts`` prompts (+ background)."""
    if mode not in SCORE_MODES:
        raise ConfigError(f"unknown score mode {mode!r}: use one of {', '.join(SCORE_MODES)}")
    if mode == "softmax" and num_texts < 2:
        raise ConfigError(
            "softmax over prompts needs at least two prompts: add a background prompt "
            "(e.g. background_prompts=('background',)) or use score_mode='cosine'"
        )


@dataclass(frozen=True)
class PromptScores:
    """Scores of N candidates against Q prompts (and B background prompts).

    Attributes:
        cosine: ``(N, Q + B) float32`` cosine similarities, prompts first.
        scores: ``(N, Q) float32`` the score used for selection: the cosine, or the softmax
            probability over the Q + B prompts, by ``mode``.
        best: ``(N,) int64`` index of the best of the Q + B prompts for each candidate.
        mode: ``"cosine"`` or ``"softmax"``.
    """

    cosine: np.ndarray
    scores: np.ndarray
    best: np.ndarray
    mode: str


def score_prompts(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    num_prompts: int,
    mode: str = "cosine",
    logit_scale: float = 100.0,
) -> PromptScores:
    """Score candidates against prompts followed by background prompts.

    Args:
        image_features: ``(N, D)`` candidate embeddings.
        text_features: ``(Q + B, D)`` embeddings of Q prompts then B background prompts.
        num_prompts: Q.
        mode: ``"cosine"`` (raw similarity, as both papers select) or ``"softmax"`` (CLIP's
            zero-shot probability over all Q + B prompts; needs Q + B >= 2).
        logit_scale: temperature for ``"softmax"``.
    """
    check_score_mode(mode, text_features.shape[0])
    cosine = cosine_scores(image_features, text_features)
    if mode == "softmax":
        probs = prompt_probabilities(cosine, logit_scale)
        scores, ranking = probs[:, :num_prompts], probs
    else:
        scores, ranking = cosine[:, :num_prompts], cosine
    best = ranking.argmax(axis=1).astype(np.int64) if len(ranking) else np.zeros(0, np.int64)
    return PromptScores(cosine=cosine, scores=scores.astype(np.float32), best=best, mode=mode)
