"""`promptseg.eval.shapeworld`: the quality protocols, checked with stand-in pipelines whose
right answers are known (an oracle, a constant answer)."""

import hashlib

import numpy as np
import pytest
import torch

from promptseg.data.shapeworld import (
    COLOURS,
    NOVEL_SHAPES,
    SHAPES,
    ShapeWorldConfig,
    generate_scene,
    mosaic,
    object_crop,
)
from promptseg.errors import InputError
from promptseg.eval.shapeworld import (
    _tile_of_mask,
    crop_naming_accuracy,
    evaluate_on_shapeworld,
    mosaic_accuracy,
)
from promptseg.result import Segmentation


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class OraclePipeline:
    """Answers each prompt with its exact truth (scenes looked up by their pixels)."""

    def __init__(self, scenes):
        self.scenes = {_key(s.image): s for s in scenes}

    def prepare(self, image):
        return image

    def segment(self, image, prompts):
        scene = self.scenes[_key(image)]
        by_text = {p.text: p for p in scene.prompts}
        masks, query = [], []
        for q, text in enumerate(prompts):
            truth = scene.target_mask(by_text[text])
            if truth.any():
                masks.append(truth)
                query.append(q)
        if not masks:
            return Segmentation.empty(prompts, image.shape[:2])
        return Segmentation.from_masks(np.stack(masks), np.ones(len(masks)), query, prompts)


class WholeImagePipeline:
    """Answers every prompt with the whole image."""

    def prepare(self, image):
        return image

    def segment(self, image, prompts):
        full = np.ones((len(prompts), *image.shape[:2]), bool)
        return Segmentation.from_masks(full, np.ones(len(prompts)), range(len(prompts)), prompts)


def test_oracle_scores_perfectly():
    scenes = [generate_scene(i, 3, "test") for i in range(6)]
    report = evaluate_on_shapeworld(OraclePipeline(scenes), n=6, seed=3)
    assert report.miou() == 1.0
    assert report.negative_empty_rate() == 1.0
    assert all(o.score == 1.0 if o.kind != "negative" else np.isnan(o.score)
               for o in report.outcomes)
    assert report.count() + report.count("negative") == sum(len(s.prompts) for s in scenes)
    rows = {what: (value, n) for what, value, n in report.rows()}
    assert rows["mIoU, single"][0] == 1.0
    held_out = sum(1 for s in scenes for p in s.prompts if not p.seen and p.kind != "negative")
    assert rows["mIoU, held-out combinations"][1] == held_out


def test_scores_come_from_a_promptseg_eval_folder(tmp_path):
    """The table is promptseg eval's: its results folder holds the same figures."""
    scenes = [generate_scene(i, 4, "test") for i in range(3)]
    report = evaluate_on_shapeworld(WholeImagePipeline(), n=3, seed=4, work=tmp_path)
    table = (tmp_path / "eval" / "report.md").read_text()
    assert "mIoU held-out" in table and "mIoU thin" in table
    run = report.eval_report["runs"][0]
    assert run["summary"]["miou"] == report.miou()
    assert run["samples"] == 3
    rows = (tmp_path / "eval" / "samples.csv").read_text().splitlines()
    assert rows[0].startswith("run,sample,prompt,tag,combination,")
    assert len(rows) == 1 + sum(len(s.prompts) for s in scenes)
    # a second call on the same folder starts afresh (another pipeline's records are gone)
    again = evaluate_on_shapeworld(OraclePipeline(scenes), n=3, seed=4, work=tmp_path)
    assert again.miou() == 1.0


def test_whole_image_answer_scores_truth_area():
    scenes = [generate_scene(i, 5, "test") for i in range(4)]
    report = evaluate_on_shapeworld(WholeImagePipeline(), n=4, seed=5)
    expected = [s.target_mask(p).mean() for s in scenes for p in s.prompts
                if p.kind != "negative"]
    assert report.miou() == pytest.approx(float(np.mean(expected)))
    assert report.negative_empty_rate() == 0.0


def test_kinds_filter_and_bad_input():
    report = evaluate_on_shapeworld(WholeImagePipeline(), n=3, seed=1, kinds=["negative"])
    assert {o.kind for o in report.outcomes} == {"negative"}
    assert np.isnan(report.miou())
    with pytest.raises(InputError, match="kinds"):
        evaluate_on_shapeworld(WholeImagePipeline(), n=1, kinds=["nonsense"])
    with pytest.raises(InputError, match="positive"):
        evaluate_on_shapeworld(WholeImagePipeline(), n=0)


def test_mosaic_protocol_oracle_and_constant_tile():
    single = ShapeWorldConfig(size=64, min_objects=1, max_objects=1, thin_probability=0.0)
    mosaics = [mosaic([generate_scene(4 * k + t, 2, "test", "base", single) for t in range(4)])
               for k in range(5)]
    accuracy, trials = mosaic_accuracy(OraclePipeline(mosaics), n=5, seed=2, size=64)
    assert accuracy == 1.0
    assert trials == sum(p.kind == "single" for m in mosaics for p in m.prompts)

    class TopLeft(WholeImagePipeline):
        def segment(self, image, prompts):
            seg = super().segment(image, prompts)
            masks = np.zeros_like(seg.masks)
            masks[:, :64, :64] = True
            return Segmentation.from_masks(masks, seg.scores, seg.query_index, prompts)

    accuracy, _ = mosaic_accuracy(TopLeft(), n=5, seed=2, size=64)
    on_tile0 = [m.tile_of(p.targets[0]) == 0 for m in mosaics for p in m.prompts
                if p.kind == "single"]
    assert accuracy == pytest.approx(np.mean(on_tile0))


def test_tile_of_mask():
    mask = np.zeros((8, 8), bool)
    assert _tile_of_mask(mask, 4) == -1
    mask[5:8, 0:2] = True  # bottom-left
    mask[0, 7] = True
    assert _tile_of_mask(mask, 4) == 2


def test_mosaic_named_by_shape_alone():
    single = ShapeWorldConfig(size=64, min_objects=1, max_objects=1, thin_probability=0.0)
    mosaics = [mosaic([generate_scene(4 * k + t, 4, "test", "novel", single) for t in range(4)])
               for k in range(4)]
    accuracy, trials = mosaic_accuracy(OracleByShape(mosaics), n=4, seed=4, domain="novel",
                                       size=64, naming="shape")
    unique = sum(1 for m in mosaics for o in m.objects
                 if [x.shape for x in m.objects].count(o.shape) == 1)
    assert trials == unique and accuracy == 1.0
    with pytest.raises(InputError, match="naming"):
        mosaic_accuracy(OracleByShape(mosaics), n=1, naming="colour")


class OracleByShape(OraclePipeline):
    """Answers "a glorp" with the mask of the one glorp in the scene."""

    def segment(self, image, prompts):
        scene = self.scenes[_key(image)]
        masks = [next(o.mask for o in scene.objects if text.endswith(" " + o.shape))
                 for text in prompts]
        return Segmentation.from_masks(np.stack(masks), np.ones(len(masks)), range(len(masks)),
                                       prompts)


class LookupClip:
    """A stand-in CLIP: texts embed one-hot by position; a crop embeds as the one-hot of the
    name ``answer(crop)`` returns (its first text when ``answer`` is None)."""

    def __init__(self, answer=None):
        self.answer, self.texts = answer, []

    def encode_text(self, texts):
        self.texts = list(texts)
        return torch.eye(len(texts))

    def encode_images(self, crops, batch_size=32):
        rows = [self.texts.index(self.answer(c)) if self.answer else 0 for c in crops]
        return torch.eye(len(self.texts))[rows]


def _visible_objects(n, seed, domain):
    return [(scene, i) for k in range(n) for scene in [generate_scene(k, seed, "test", domain)]
            for i, o in enumerate(scene.objects) if not o.thin and o.mask.any()]


@pytest.mark.parametrize("domain", ["base", "novel"])
def test_crop_naming_oracle_and_constant_answer(domain):
    objects = _visible_objects(5, 2, domain)
    truth = {_key(object_crop(s, i)): "a " + s.objects[i].shape for s, i in objects}
    accuracy, count = crop_naming_accuracy(LookupClip(lambda c: truth[_key(c)]), n=5, seed=2,
                                           domain=domain)
    assert (accuracy, count) == (1.0, len(objects))
    # always the first name: right exactly for the objects of the domain's first shape
    first = (NOVEL_SHAPES if domain == "novel" else SHAPES)[0]
    accuracy, _ = crop_naming_accuracy(LookupClip(), n=5, seed=2, domain=domain)
    assert accuracy == sum(s.objects[i].shape == first for s, i in objects) / len(objects)


def test_crop_naming_by_colour_and_shape_names_every_pair():
    clip = LookupClip()
    crop_naming_accuracy(clip, n=1, seed=0, naming="colour+shape")
    assert len(clip.texts) == len(COLOURS) * len(SHAPES) and "a red star" in clip.texts
    with pytest.raises(InputError, match="naming"):
        crop_naming_accuracy(clip, n=1, naming="colour")
