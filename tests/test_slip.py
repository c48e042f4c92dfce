"""The slip pipeline: plumbing with tiny random models, selection logic with a colour "CLIP"."""

import numpy as np
import pytest
import torch

import promptseg
from promptseg.errors import ConfigError, InputError
from promptseg.models import registry
from promptseg.pipelines.slip import SlipConfig, SlipPipeline
from promptseg.stages.proposals import MaskProposals

LOW = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
       "box_nms_thresh": 1.0}


@pytest.fixture
def pipe(tiny_sam_dir, tiny_hf_clip_dir):
    return promptseg.load_pipeline("slip", clip=str(tiny_hf_clip_dir), sam=str(tiny_sam_dir),
                                   device="cpu", **LOW)


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    img = np.full((96, 128, 3), 30, np.uint8)
    img[10:50, 20:60] = (220, 40, 40)
    img[50:90, 70:120] = (40, 40, 220)
    return np.clip(img + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)


def test_one_mask_per_prompt_with_everything_recorded(pipe, image):
    seg = pipe(image, ["a red square", "a blue square"])
    assert isinstance(seg, promptseg.Segmentation)
    assert seg.masks.shape[1:] == (96, 128) and len(seg) == 2
    assert seg.query_index.tolist() == [0, 1]
    assert seg.extras["clip_scores"].shape == (2, 2)
    np.testing.assert_allclose(seg.scores, seg.extras["clip_scores"][[0, 1], [0, 1]])
    meta = seg.meta
    assert meta["pipeline"] == "slip" and meta["num_proposals"] >= meta["num_candidates"] > 0
    for stage in ("sam_encoder", "mask_generation", "overlap_filter", "clip_image", "clip_text"):
        assert meta["timings"][stage] >= 0
    assert meta["config"]["mask_generation"]["points_per_side"] == 4


def test_prompts_share_one_preparation(pipe, image):
    prepared = pipe.prepare(image)
    both = pipe.segment(prepared, ["a red square", "a blue square"])
    alone = pipe.segment(prepared, ["a blue square"])
    np.testing.assert_array_equal(both.masks[1], alone.masks[0])
    np.testing.assert_allclose(both.scores[1], alone.scores[0], atol=1e-6)


def test_bad_requests_fail_before_any_work(pipe, image, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("prepare ran")

    monkeypatch.setattr(pipe, "prepare", no_work)
    with pytest.raises(ConfigError, match="at least two prompts"):
        pipe(image, ["x"], score_mode="softmax")
    with pytest.raises(ConfigError, match="threshold or background"):
        pipe(image, ["x"], output="all")


def test_segment_takes_selection_overrides(pipe, image):
    prepared = pipe.prepare(image, visual_prompt="black+crop")
    best = pipe.segment(prepared, ["a red square"])
    above = float(best.scores[0]) + 1e-3
    assert len(pipe.segment(prepared, ["a red square"], threshold=above)) == 0
    everything = pipe.segment(prepared, ["a red square"], output="all", threshold=-1.0)
    assert len(everything) >= 1


def test_threshold_gives_empty_answer_with_axes(pipe, image):
    seg = pipe(image, ["a red square"], threshold=1.01)
    assert len(seg) == 0 and seg.masks.shape == (0, 96, 128) and seg.boxes.shape == (0, 4)
    assert seg.extras["clip_scores"].shape == (0, 1)


def test_options_are_validated(pipe, image):
    with pytest.raises(ConfigError, match="threshold or background"):
        pipe(image, ["x"], output="all")
    with pytest.raises(ConfigError, match="at least two prompts"):
        pipe(image, ["x"], score_mode="softmax")
    with pytest.raises(ConfigError, match="unknown option"):
        pipe(image, ["x"], points_per_sid=3)
    with pytest.raises(InputError, match="empty"):
        pipe(image, [""])
    with pytest.raises(ConfigError, match="unknown method"):
        promptseg.load_pipeline("slipp")
    with pytest.raises(ConfigError):
        SlipConfig(visual_prompt="sparkles")


# ---------------------------------------------------------------- selection with known answers
class ColourClip:
    """A stand-in CLIP whose embedding is the mean colour of the non-black pixels."""

    model_id, embed_dim, logit_scale = "colour-clip", 3, 100.0
    words = {"red": [1, 0, 0], "green": [0, 1, 0], "blue": [0, 0, 1], "background": [1, 1, 1]}

    def encode_text(self, texts):
        vecs = torch.tensor([self.words[t.split()[-1]] for t in texts], dtype=torch.float32)
        return torch.nn.functional.normalize(vecs, dim=-1)

    def encode_images(self, images, batch_size=32):
        out = []
        for img in images:
            pixels = img.reshape(-1, 3).astype(np.float32)
            pixels = pixels[pixels.sum(1) > 0]
            out.append(pixels.mean(0) if len(pixels) else np.ones(3, np.float32))
        return torch.nn.functional.normalize(torch.tensor(np.stack(out)), dim=-1)


class NoSam:
    model_id = "exact-masks"

    def embed(self, image):
        return None


@pytest.fixture
def scene(monkeypatch):
    """Red square, two blue discs, on white-ish ground; proposals are the exact masks."""
    h, w = 64, 96
    img = np.full((h, w, 3), 200, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    red = (yy >= 5) & (yy < 25) & (xx >= 5) & (xx < 25)
    blue1 = (yy - 45) ** 2 + (xx - 30) ** 2 < 100
    blue2 = (yy - 40) ** 2 + (xx - 75) ** 2 < 120
    ground = ~(red | blue1 | blue2)
    img[red], img[blue1], img[blue2] = (230, 20, 20), (20, 20, 230), (30, 30, 210)
    shifted = (yy >= 15) & (yy < 35) & (xx >= 15) & (xx < 35)  # a bad proposal across two things
    half = blue1 & (xx < 30)  # a part of blue1: nested, so never a second instance
    masks = np.stack([ground, red, blue1, blue2, shifted, half])
    n = len(masks)

    def fake_generate(sam, image, config, embedding=None, progress=False):
        return MaskProposals(masks=masks, boxes=np.zeros((n, 4), np.float32),
                             predicted_iou=np.linspace(0.9, 0.5, n).astype(np.float32),
                             stability_score=np.ones(n, np.float32),
                             point_coords=np.zeros((n, 2), np.float32),
                             crop_boxes=np.zeros((n, 4), np.float32))

    monkeypatch.setattr("promptseg.pipelines.slip.generate_masks", fake_generate)
    monkeypatch.setattr(registry, "load_clip", lambda *a, **k: ColourClip())
    monkeypatch.setattr(registry, "load_sam", lambda *a, **k: NoSam())
    return img, {"red": red, "blue1": blue1, "blue2": blue2, "ground": ground}


def test_best_segment_is_the_named_one(scene):
    img, truth = scene
    seg = SlipPipeline(overlap_filter=False)(img, ["red", "blue"])
    np.testing.assert_array_equal(seg.masks[0], truth["red"])
    assert seg.masks[1].sum() in (truth["blue1"].sum(), truth["blue2"].sum())
    assert not (seg.masks[1] & ~(truth["blue1"] | truth["blue2"])).any()


def test_multi_instance_and_negative(scene):
    img, truth = scene
    pipe = SlipPipeline(overlap_filter=False, output="all", threshold=0.95)
    seg = pipe(img, ["blue", "green"])
    blues = seg.for_prompt(0)
    assert len(blues) == 2
    got = sorted(int(m.sum()) for m in blues.masks)
    assert got == sorted([int(truth["blue1"].sum()), int(truth["blue2"].sum())])
    assert len(seg.for_prompt(1)) == 0  # nothing green: an empty answer


def test_multi_instance_with_background_prompt(scene):
    img, truth = scene
    pipe = SlipPipeline(overlap_filter=False, output="all", background_prompts=("background",))
    seg = pipe(img, ["red", "blue"])
    reds = seg.for_prompt(0)
    assert len(reds) == 1
    np.testing.assert_array_equal(reds.masks[0], truth["red"])
    assert len(seg.for_prompt(1)) == 2


def test_label_every_segment(scene):
    img, truth = scene
    pipe = SlipPipeline(overlap_filter=False, output="label", background_prompts=("background",),
                        score_mode="softmax")
    seg = pipe(img, ["red", "blue"])
    labels = {int(m.sum()): int(q) for m, q in zip(seg.masks, seg.query_index, strict=True)}
    assert labels[int(truth["red"].sum())] == 0
    assert labels[int(truth["blue1"].sum())] == 1 and labels[int(truth["blue2"].sum())] == 1
    assert int(truth["ground"].sum()) not in labels  # the ground went to the background prompt


def test_overlap_filter_separates_the_merged_proposal(scene):
    img, truth = scene
    pipe = SlipPipeline()
    prepared = pipe.prepare(img)
    union = prepared.masks.any(0)
    np.testing.assert_array_equal(union, np.ones_like(union))  # no pixel lost
    # the shifted square overlaps ground and red partially: it loses the shared pixels to them
    # (they score higher) and nothing is left of it
    # the nested half of blue1 is kept: a part is a legitimate answer of its own
    assert prepared.proposal_index.tolist() == [0, 1, 2, 3, 5]


@pytest.mark.parametrize("spec", ["black+crop", "black+crop:0.1", "blur+ellipse", "gray"])
def test_visual_prompt_options(pipe, image, spec):
    seg = pipe(image, ["a red square"], visual_prompt=spec)
    assert len(seg) == 1 and seg.meta["config"]["visual_prompt"] == spec


@pytest.mark.parametrize("sam_fixture", ["tiny_sam_hq_dir", "tiny_sam2_dir"])
def test_other_sam_families_and_open_clip(request, sam_fixture, tiny_open_clip_dir, image):
    sam_dir = request.getfixturevalue(sam_fixture)
    seg = promptseg.segment(image, ["a red square", "a blue square"], method="slip",
                            clip=f"open_clip:{tiny_open_clip_dir}", sam=str(sam_dir),
                            device="cpu", **LOW)
    assert len(seg) == 2 and seg.masks.shape[1:] == image.shape[:2]
    assert seg.meta["models"]["sam"] == str(sam_dir)


def test_one_pipeline_serves_threads(pipe, image):
    from concurrent.futures import ThreadPoolExecutor

    expected = pipe(image, ["a red square"])
    flipped = np.ascontiguousarray(image[:, ::-1])
    expected_flipped = pipe(flipped, ["a red square"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda im: pipe(im, ["a red square"]), [image, flipped] * 2))
    for got, want in zip(results, [expected, expected_flipped] * 2, strict=True):
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision(tiny_sam_dir, tiny_hf_clip_dir, image, dtype):
    pipe = promptseg.load_pipeline("slip", clip=str(tiny_hf_clip_dir), sam=str(tiny_sam_dir),
                                   device="cpu", dtype=dtype, **LOW)
    seg = pipe(image, ["a red square"])
    assert len(seg) == 1 and seg.scores.dtype == np.float32 and np.isfinite(seg.scores).all()
