"""Evaluation protocols on hand-computed cases: perfect = 1, empty = 0, known overlaps."""

import math

import numpy as np
import pytest

from promptseg.eval.protocols import (
    below_threshold_empty,
    label_map_from_masks,
    score_instance,
    score_semantic,
    summarize_binary,
    summarize_cost,
    summarize_instance,
    summarize_semantic,
)


def _square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_instance_perfect_empty_partial_and_negative():
    truth = np.stack([_square(10, 10, 0, 4, 0, 4),   # 16 px
                      _square(10, 10, 0, 4, 0, 4),
                      _square(10, 10, 0, 4, 0, 4),
                      np.zeros((10, 10), bool)])     # names nothing
    pred = np.stack([truth[0],                       # perfect
                     np.zeros((10, 10), bool),       # empty answer
                     _square(10, 10, 0, 4, 2, 6),    # 8 shared of 24: IoU 1/3
                     np.zeros((10, 10), bool)])      # correctly empty
    records = score_instance(pred, truth, ["a", "b", "c", "n"], tags=["easy", "hard", "hard", ""],
                             scores=[0.9, np.nan, 0.3, np.nan])
    assert [r["iou"] for r in records[:3]] == [1.0, 0.0, pytest.approx(1 / 3)]
    assert records[0]["biou"] == 1.0 and records[1]["biou"] == 0.0
    assert records[3]["negative"] and records[3]["empty"] and records[3]["biou"] is None
    assert records[1]["score"] is None and records[0]["score"] == 0.9
    summary = summarize_instance(records)
    assert summary["miou"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert summary["oiou"] == pytest.approx((16 + 0 + 8) / (16 + 16 + 24))
    assert summary["per_tag"] == {"easy": 1.0, "hard": pytest.approx(1 / 6)}
    assert summary["negatives_empty"] == 1.0
    assert (summary["prompts"], summary["negatives"]) == (3, 1)


def test_groupings_beside_tags_and_their_counts():
    truth = np.stack([_square(10, 10, 0, 4, 0, 4)] * 3 + [np.zeros((10, 10), bool)])
    pred = np.stack([truth[0], np.zeros((10, 10), bool), _square(10, 10, 0, 4, 2, 6),
                     np.zeros((10, 10), bool)])
    records = score_instance(pred, truth, ["a", "b", "c", "n"], tags=["x", "x", "y", "neg"],
                             groups={"combination": ["seen", "held-out", "seen", "seen"]})
    assert [r["groups"] for r in records[:2]] == [{"combination": "seen"},
                                                  {"combination": "held-out"}]
    assert [r["truth"] for r in records] == [16, 16, 16, 0]
    summary = summarize_instance(records)
    # the negative is in no mean: seen = (1 + 1/3) / 2, held-out = 0
    assert summary["per_group"] == {"combination": {"held-out": 0.0,
                                                    "seen": pytest.approx(2 / 3)}}
    assert summary["counts"] == {"tag": {"x": 2, "y": 1},
                                 "combination": {"held-out": 1, "seen": 2}}
    with pytest.raises(Exception, match="grouping 'combination' has 1 values for 4 prompts"):
        score_instance(pred, truth, ["a", "b", "c", "n"], groups={"combination": ["seen"]})


def test_below_threshold_empty_recomputes_from_records():
    truth = np.stack([_square(10, 10, 0, 4, 0, 4), _square(10, 10, 0, 4, 0, 4),
                      np.zeros((10, 10), bool)])
    pred = np.stack([truth[0], _square(10, 10, 0, 4, 2, 6), _square(10, 10, 5, 7, 5, 7)])
    records = score_instance(pred, truth, ["a", "b", "n"], scores=[0.9, 0.3, 0.2])
    assert summarize_instance(records)["negatives_empty"] == 0.0
    cut = below_threshold_empty(records, 0.5)
    assert [r["empty"] for r in cut] == [False, True, True]
    assert [r["iou"] for r in cut] == [1.0, 0.0, 1.0]
    assert cut[1]["union"] == 16 and cut[1]["biou"] == 0.0
    summary = summarize_instance(cut)
    assert summary["miou"] == 0.5 and summary["negatives_empty"] == 1.0
    assert summary["oiou"] == pytest.approx(16 / 32)
    assert below_threshold_empty(records, 0.0) == records


def test_negative_answered_counts_against():
    truth = np.zeros((1, 5, 5), bool)
    pred = np.ones((1, 5, 5), bool)
    summary = summarize_instance(score_instance(pred, truth, ["x"]))
    assert summary["negatives_empty"] == 0.0 and math.isnan(summary["miou"])


def test_instance_shape_errors_are_one_line():
    with pytest.raises(Exception, match="prediction"):
        score_instance(np.zeros((1, 4, 4), bool), np.zeros((1, 5, 5), bool), ["x"])


def test_binary_sweep_picks_the_best_threshold():
    truth = _square(4, 4, 0, 2, 0, 4)  # top half, 8 px
    scores = np.where(truth, 0.7, 0.1)
    scores[0, 0] = 0.3  # one true pixel scores low
    records = score_instance(truth[None], truth[None], ["a"], score_maps=scores[None],
                             thresholds=np.array([0.2, 0.5, 0.8]))
    out = summarize_binary(records, thresholds=np.array([0.2, 0.5, 0.8]))
    # t=0.2: all 8 true pixels, no false one -> IoU 1; t=0.5: 7/8; t=0.8: nothing -> 0
    assert out["curve"]["iou_fg"] == [1.0, 0.875, 0.0]
    assert out["t"] == 0.2 and out["miou"] == 1.0 and out["iou_fg"] == 1.0
    assert out["iou_bin"] == 1.0
    assert out["curve"]["iou_bin"][1] == pytest.approx((7 / 8 + 8 / 9) / 2)


def test_binary_miou_averages_classes_not_pixels():
    big, small = _square(10, 10, 0, 10, 0, 5), _square(10, 10, 0, 1, 0, 1)
    t = np.array([0.5])
    records = (score_instance(big[None], big[None], ["big"], score_maps=big[None] * 1.0,
                              thresholds=t)
               + score_instance(small[None], small[None], ["small"],
                                score_maps=np.zeros((1, 10, 10)), thresholds=t))
    out = summarize_binary(records, thresholds=t)
    assert out["miou"] == 0.5  # big perfect, small missed
    assert out["iou_fg"] == pytest.approx(50 / 51)
    assert summarize_binary(score_instance(big[None], big[None], ["x"])) == {}


def test_label_map_highest_score_wins_and_fill():
    a = _square(4, 4, 0, 2, 0, 4)
    b = _square(4, 4, 1, 3, 0, 4)
    out = label_map_from_masks(np.stack([a, b]), np.array([0.2, 0.9]), [3, 5], fill=0)
    assert out[0].tolist() == [3] * 4 and out[1].tolist() == [5] * 4
    assert out[2].tolist() == [5] * 4 and out[3].tolist() == [0] * 4


def test_semantic_miou_with_ignore_and_no_prediction():
    classes = ("background", "cat", "dog")
    gt = np.array([[0, 1, 1, 255],
                   [0, 2, 2, 255]])
    pred = np.array([[0, 1, 3, 1],    # 3 = no class predicted
                     [0, 2, 1, 2]])
    summary = summarize_semantic([score_semantic(pred, gt, 3, 255)], classes)
    # background 2/2; cat: tp 1, gt 2, pred 2 -> 1/3; dog: tp 1, gt 2, pred 1 -> 1/2
    assert summary["per_class"] == {"background": 1.0, "cat": pytest.approx(1 / 3),
                                    "dog": 0.5}
    assert summary["miou"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert summary["pixel_accuracy"] == pytest.approx(4 / 6)


def test_semantic_absent_class_is_not_averaged():
    gt = np.zeros((2, 2), np.int64)
    summary = summarize_semantic([score_semantic(gt, gt, 2, 255)], ("a", "b"))
    assert summary["per_class"] == {"a": 1.0, "b": None} and summary["miou"] == 1.0


def test_cost_summary():
    out = summarize_cost([{"seconds": 1.0, "peak_memory_mb": 10}, {"seconds": 3.0,
                                                                    "peak_memory_mb": 30}])
    assert out == {"seconds_mean": 2.0, "seconds_median": 2.0, "seconds_total": 4.0,
                   "peak_memory_mb": 30.0}
