"""The scoring protocols of the papers, split into a per-sample record and a summary.

``promptseg eval`` scores each sample as soon as its answer comes (``score_*``: a small
JSON-ready record, appended to the run's results file) and summarises the records at the end
(``summarize_*``). A resumed run reads the records back, so a report never depends on whether
the run was interrupted. Every number here is computed from the records alone.

Protocols:

- **instance** (referring expressions, single objects, folders of masks, ShapeWorld): per
  prompt the IoU of the union of the masks answering it with its truth; ``miou`` is their
  mean over the prompts that name something, ``oiou`` the cumulative intersection over the
  cumulative union (RefCOCO's "overall IoU"); ``per_tag`` the mean per group (the medical
  paper's easy / medium / hard / very hard, [LVLM] Sec. IV-A1 and Table IV); ``mbiou`` the
  mean Boundary IoU (Talk2SAM Sec. 4.1, "mBIoU"); ``negatives_empty`` the share of prompts
  that name nothing and got no mask.
- **binary sweep** (CLIPSeg Sec. 5, Tables 2-7): soft score maps binarised at each threshold
  ``t``; ``iou_fg`` is the foreground IoU accumulated over all pixels, ``miou`` the mean over
  classes (prompts) of their accumulated foreground IoU, ``iou_bin`` the mean of foreground and
  background IoU, each at the best ``t`` (CLIPSeg: "We use the best threshold t for each
  model"), and pixel AP from the same counts.
- **semantic** (CaR Sec. 4.1): a label map per image from the answered masks, a confusion
  matrix over the split, mIoU over the dataset's classes with its background rule.
- **cost**: wall time and peak memory per sample.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from promptseg.errors import InputError
from promptseg.eval.metrics import (
    CLIPSEG_AP_THRESHOLDS,
    ConfusionMatrix,
    PixelAveragePrecision,
    boundary_iou,
)

__all__ = [
    "SWEEP_THRESHOLDS",
    "below_threshold_empty",
    "label_map_from_masks",
    "prompt_masks",
    "prompt_scores",
    "score_instance",
    "score_semantic",
    "summarize_binary",
    "summarize_cost",
    "summarize_instance",
    "summarize_semantic",
]

#: thresholds of the binary sweep: CLIPSeg's 49 AP thresholds, 0.02 ... 0.98
SWEEP_THRESHOLDS = CLIPSEG_AP_THRESHOLDS


# ---------------------------------------------------------------------- from a result
def prompt_masks(seg, n_prompts: int, shape: tuple[int, int]) -> np.ndarray:
    """``(Q, H, W)`` bool: per prompt, the union of the instances answering it."""
    out = np.zeros((n_prompts, *shape), dtype=bool)
    for mask, q in zip(seg.masks, seg.query_index, strict=True):
        if 0 <= q < n_prompts:
            out[q] |= mask
    return out


def prompt_scores(seg, n_prompts: int) -> np.ndarray:
    """``(Q,)`` per prompt, the best score of an instance answering it (NaN when none)."""
    out = np.full(n_prompts, np.nan)
    for score, q in zip(seg.scores, seg.query_index, strict=True):
        if 0 <= q < n_prompts and not score <= out[q]:
            out[q] = float(score)
    return out


def label_map_from_masks(masks: np.ndarray, scores: np.ndarray, classes: Sequence[int],
                         fill: int) -> np.ndarray:
    """``(H, W) int64`` label map from answered masks: each pixel takes the class of the
    highest-scoring mask covering it, ``fill`` where none does.

    Args:
        masks: ``(Q, H, W)`` bool, one per prompt.
        scores: ``(Q,)`` the score of each prompt's answer (NaN: no answer).
        classes: ``(Q,)`` the class index each prompt stands for.
        fill: the label of uncovered pixels (the background class, or "no prediction").
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or len(masks) != len(scores) or len(masks) != len(classes):
        raise InputError(f"label_map_from_masks: {masks.shape} masks, {len(scores)} scores, "
                         f"{len(classes)} classes")
    out = np.full(masks.shape[1:], fill, dtype=np.int64)
    best = np.full(masks.shape[1:], -np.inf)
    # the low-scoring masks first, so a better one covering the same pixel wins
    for q in np.argsort(np.nan_to_num(np.asarray(scores, float), nan=-np.inf), kind="stable"):
        score = scores[q]
        if not np.isfinite(score):
            score = -1e30  # answered without a score: still better than nothing
        region = masks[q] & (score >= best)
        out[region] = int(classes[q])
        best[region] = score
    return out


# ---------------------------------------------------------------------- per sample
def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(pred & truth)), int(np.count_nonzero(pred | truth))


def _sweep_counts(score_map: np.ndarray, truth: np.ndarray,
                  thresholds: np.ndarray) -> dict[str, list[int]]:
    """Per threshold ``t``: pixels with ``score > t`` that are true (tp), false (fp), and
    true pixels missed (fn), false pixels left out (tn)."""
    scores = np.sort(score_map.ravel().astype(np.float64))
    positives = np.sort(score_map[truth].astype(np.float64))
    predicted = scores.size - np.searchsorted(scores, thresholds, "right")
    tp = positives.size - np.searchsorted(positives, thresholds, "right")
    fp = predicted - tp
    fn = positives.size - tp
    tn = (scores.size - positives.size) - fp
    return {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(), "tn": tn.tolist()}


def score_instance(
    pred: np.ndarray,
    truth: np.ndarray,
    prompts: Sequence[str],
    tags: Sequence[str] = (),
    scores: Sequence[float] | None = None,
    score_maps: np.ndarray | None = None,
    boundary: bool = True,
    thresholds: np.ndarray = SWEEP_THRESHOLDS,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """One record per prompt of an instance-task sample.

    Args:
        pred: ``(Q, H, W)`` bool, the union of the masks answering each prompt.
        truth: ``(Q, H, W)`` bool; an all-false truth marks a prompt that names nothing.
        prompts, tags: ``Q`` texts and group names.
        scores: ``(Q,)`` the answer's score (NaN: no answer), kept for reports.
        score_maps: ``(Q, H, W)`` float in ``[0, 1]``, soft outputs (CLIPSeg's heatmaps); when
            given, the record holds the binary-sweep counts of :func:`summarize_binary`.
        boundary: also compute Boundary IoU (Cheng et al. 2021; costs two erosions).
        groups: further groupings, name -> ``Q`` group names (see ``Sample.groups``).

    Returns:
        Records with ``prompt``, ``tag``, ``negative`` (truth empty), ``empty`` (no answer),
        ``iou``, ``inter``, ``union``, ``truth`` (pixels), ``biou`` (None for negatives or
        without ``boundary``), ``score``; with ``groups``, ``groups`` (name -> this prompt's
        group); with ``score_maps``, ``sweep``.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape or pred.ndim != 3 or len(pred) != len(prompts):
        raise InputError(f"score_instance: prediction {pred.shape} and truth {truth.shape} for "
                         f"{len(prompts)} prompts")
    tags = tuple(tags) if tags else ("",) * len(prompts)
    groups = {name: tuple(values) for name, values in (groups or {}).items()}
    for name, values in groups.items():
        if len(values) != len(prompts):
            raise InputError(f"score_instance: grouping {name!r} has {len(values)} values for "
                             f"{len(prompts)} prompts")
    records = []
    for q, prompt in enumerate(prompts):
        inter, union = _counts(pred[q], truth[q])
        negative = not truth[q].any()
        record: dict[str, Any] = {
            "prompt": prompt, "tag": tags[q], "negative": negative,
            "empty": not pred[q].any(), "iou": 1.0 if union == 0 else inter / union,
            "inter": inter, "union": union, "truth": int(np.count_nonzero(truth[q])),
            "biou": boundary_iou(truth[q], pred[q]) if boundary and not negative else None,
            "score": None if scores is None or not math.isfinite(scores[q]) else float(scores[q]),
        }
        if groups:
            record["groups"] = {name: values[q] for name, values in groups.items()}
        if score_maps is not None:
            record["sweep"] = _sweep_counts(np.asarray(score_maps[q]), truth[q], thresholds)
        records.append(record)
    return records


def score_semantic(pred: np.ndarray, label_map: np.ndarray, num_classes: int,
                   ignore_index: int) -> dict[str, Any]:
    """A semantic sample's confusion counts, sparse: ``{"confusion": [[g, p, n], ...]}``.

    ``pred`` may use label ``num_classes`` for "no class predicted": such pixels count as
    missed for their true class and as nobody's false positive.
    """
    cm = ConfusionMatrix(num_classes + 1, ignore_index=ignore_index)
    cm.update(np.asarray(pred), np.asarray(label_map))
    g, p = np.nonzero(cm.matrix)
    return {"confusion": [[int(a), int(b), int(cm.matrix[a, b])] for a, b in zip(g, p,
                                                                                 strict=True)]}


# ---------------------------------------------------------------------- summaries
def _mean(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def summarize_instance(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The instance summary of prompt records.

    Returns ``miou``, ``oiou``, ``mbiou``, ``per_tag`` (tag -> mIoU), ``per_group``
    (grouping -> group -> mIoU), ``negatives_empty``, ``prompts`` and ``negatives``
    (counts), and ``counts`` (``{"tag": {tag: n}, grouping: {group: n}}``, prompts naming
    something).
    """
    positive = [r for r in records if not r["negative"]]
    negative = [r for r in records if r["negative"]]
    per_tag: dict[str, list[float]] = defaultdict(list)
    per_group: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in positive:
        if r["tag"]:
            per_tag[r["tag"]].append(r["iou"])
        for name, group in (r.get("groups") or {}).items():
            per_group[name][group].append(r["iou"])
    union = sum(r["union"] for r in positive)
    counts = {"tag": {tag: len(v) for tag, v in sorted(per_tag.items())}}
    counts.update({name: {g: len(v) for g, v in sorted(groups.items())}
                   for name, groups in sorted(per_group.items())})
    return {
        "miou": _mean(r["iou"] for r in positive),
        "oiou": sum(r["inter"] for r in positive) / union if union else math.nan,
        "mbiou": _mean(r["biou"] for r in positive),
        "per_tag": {tag: float(np.mean(v)) for tag, v in sorted(per_tag.items())},
        "per_group": {name: {g: float(np.mean(v)) for g, v in sorted(groups.items())}
                      for name, groups in sorted(per_group.items())},
        "negatives_empty": _mean(float(r["empty"]) for r in negative),
        "prompts": len(positive),
        "negatives": len(negative),
        "counts": counts,
    }


def below_threshold_empty(records: Sequence[dict[str, Any]],
                          threshold: float) -> list[dict[str, Any]]:
    """The records as they would read had every answer scoring below ``threshold`` been
    empty (an answer without a score counts as below): for calibrating a score threshold on
    one run's records instead of re-running the pipeline per threshold. A changed record
    loses its sweep; its Boundary IoU becomes 0 (nothing predicted) when it had one."""
    out = []
    for r in records:
        if r["empty"] or (r["score"] is not None and r["score"] >= threshold):
            out.append(r)
            continue
        changed = {k: v for k, v in r.items() if k != "sweep"}
        changed.update(empty=True, inter=0, union=r["truth"],
                       biou=None if r["biou"] is None else 0.0,
                       iou=1.0 if r["truth"] == 0 else 0.0)
        out.append(changed)
    return out


def summarize_binary(records: Sequence[dict[str, Any]],
                     thresholds: np.ndarray = SWEEP_THRESHOLDS) -> dict[str, Any]:
    """CLIPSeg's binary metrics from records with ``sweep`` counts (others are skipped).

    Returns ``t`` (the threshold of the best mIoU), ``miou``, ``iou_fg``, ``iou_bin`` at it,
    ``ap`` (pixel AP, :class:`~promptseg.eval.metrics.PixelAveragePrecision` on the summed
    counts) and ``curve`` (``{"t", "miou", "iou_fg", "iou_bin"}`` lists over thresholds); an
    empty dict when no record has a sweep.
    """
    swept = [r for r in records if "sweep" in r]
    if not swept:
        return {}
    k = len(thresholds)
    total = {key: np.zeros(k, np.int64) for key in ("tp", "fp", "fn", "tn")}
    per_class: dict[str, dict[str, np.ndarray]] = {}
    for r in swept:
        counts = {key: np.asarray(r["sweep"][key], np.int64) for key in total}
        if any(len(v) != k for v in counts.values()):
            raise InputError("binary sweep: records were counted at other thresholds")
        mine = per_class.setdefault(r["prompt"], {key: np.zeros(k, np.int64) for key in total})
        for key in total:
            total[key] += counts[key]
            mine[key] += counts[key]

    def fg_iou(c):
        denom = c["tp"] + c["fp"] + c["fn"]
        return np.where(denom > 0, c["tp"] / np.maximum(denom, 1), np.nan)

    iou_fg = fg_iou(total)
    bg_denom = total["tn"] + total["fp"] + total["fn"]
    iou_bg = np.where(bg_denom > 0, total["tn"] / np.maximum(bg_denom, 1), np.nan)
    iou_bin = (iou_fg + iou_bg) / 2
    class_ious = np.stack([fg_iou(c) for c in per_class.values()])
    with warnings.catch_warnings():  # a threshold where no class has a pixel: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        miou = np.nanmean(class_ious, axis=0)
    best = int(np.nanargmax(miou)) if np.isfinite(miou).any() else 0
    ap = PixelAveragePrecision(thresholds=thresholds)
    ap.tp, ap.fp, ap.fn = total["tp"], total["fp"], total["fn"]
    return {
        "t": float(thresholds[best]), "miou": float(miou[best]), "iou_fg": float(iou_fg[best]),
        "iou_bin": float(iou_bin[best]), "ap": ap.value(),
        "curve": {"t": [float(t) for t in thresholds], "miou": miou.tolist(),
                  "iou_fg": iou_fg.tolist(), "iou_bin": iou_bin.tolist()},
    }


def summarize_semantic(records: Sequence[dict[str, Any]],
                       classes: Sequence[str]) -> dict[str, Any]:
    """``miou`` over the classes present in truth or prediction, ``per_class`` IoU,
    ``pixel_accuracy`` and ``images``, from :func:`score_semantic` records."""
    c = len(classes)
    cm = ConfusionMatrix(c + 1, ignore_index=None)  # the last column: no class predicted
    for r in records:
        for g, p, n in r["confusion"]:
            cm.matrix[g, p] += n
    real = ConfusionMatrix(c, ignore_index=None)
    real.matrix = cm.matrix[:c, :c].copy()
    tp = np.diag(real.matrix).astype(np.float64)
    denom = cm.matrix[:c, :].sum(axis=1) + real.matrix.sum(axis=0) - tp  # gt + pred - tp
    per_class = np.full(c, np.nan)
    np.divide(tp, denom, out=per_class, where=denom > 0)
    counted = cm.matrix[:c].sum()
    return {
        "miou": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else math.nan,
        "per_class": {name: (None if np.isnan(v) else float(v))
                      for name, v in zip(classes, per_class, strict=True)},
        "pixel_accuracy": float(tp.sum() / counted) if counted else math.nan,
        "images": len(records),
    }


def summarize_cost(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``seconds_mean``, ``seconds_median``, ``seconds_total`` and ``peak_memory_mb`` (the
    largest of the samples') from records with ``seconds`` and ``peak_memory_mb``."""
    seconds = [r["seconds"] for r in records if r.get("seconds") is not None]
    memory = [r["peak_memory_mb"] for r in records if r.get("peak_memory_mb") is not None]
    return {
        "seconds_mean": _mean(seconds),
        "seconds_median": float(np.median(seconds)) if seconds else math.nan,
        "seconds_total": float(np.sum(seconds)) if seconds else 0.0,
        "peak_memory_mb": float(max(memory)) if memory else math.nan,
    }
