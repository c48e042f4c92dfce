"""The camsam pipeline: its plumbing with tiny random models and constructed maps, and where
the zoo CLIP looks on ShapeWorld."""

import numpy as np
import pytest

import promptseg
from promptseg.data.shapeworld import generate_scene
from promptseg.errors import ConfigError
from promptseg.pipelines.camsam import CamSamConfig
from promptseg.stages import saliency


@pytest.fixture
def pipe(tiny_sam_dir, tiny_hf_clip_dir):
    return promptseg.load_pipeline("camsam", clip=str(tiny_hf_clip_dir), sam=str(tiny_sam_dir),
                                   device="cpu", top_k=8)


@pytest.fixture
def image():
    img = np.full((96, 128, 3), 30, np.uint8)
    img[10:50, 20:60] = (220, 40, 40)
    return img


def _square_map(h=96, w=128):
    m = np.zeros((h, w), np.float32)
    m[10:50, 20:60] = 1.0
    return m


@pytest.fixture
def known_maps(monkeypatch):
    """CLIP "looks" at the red square for the first prompt and nowhere for the second."""
    def fake(clip, image, queries, method="gscorecam", size=None, **options):
        maps = np.zeros((len(queries), *image.shape[:2]), np.float32)
        maps[0] = _square_map(*image.shape[:2])
        return maps

    monkeypatch.setattr(saliency, "saliency_maps", fake)


@pytest.fixture
def sam_calls(pipe, monkeypatch):
    calls = []
    original = pipe.sam.predict

    def spy(embedding, **kwargs):
        calls.append(kwargs)
        return original(embedding, **kwargs)

    monkeypatch.setattr(pipe.sam, "predict", spy)
    return calls


def test_map_becomes_box_and_empty_map_no_mask(pipe, image, known_maps, sam_calls):
    seg = pipe(image, ["the red square", "a dog"], crf=False)
    (call,) = sam_calls
    np.testing.assert_array_equal(call["boxes"], [[20, 10, 60, 50]])
    assert call["point_coords"] is None and call["mask_inputs"] is None
    assert set(seg.query_index.tolist()) <= {0}  # "a dog": nothing above the threshold
    assert seg.heatmaps.shape == (2, 96, 128)
    np.testing.assert_array_equal(seg.heatmaps[0], _square_map())
    assert seg.meta["pipeline"] == "camsam" and "saliency" in seg.meta["timings"]
    if len(seg):
        np.testing.assert_array_equal(seg.extras["prompt_boxes"], [[20, 10, 60, 50]])


def test_crf_keeps_a_map_on_the_object(pipe, image, known_maps, sam_calls):
    pipe(image, ["the red square", "a dog"])  # default: MedCLIP-SAM's CRF on the image
    np.testing.assert_array_equal(sam_calls[0]["boxes"], [[20, 10, 60, 50]])


def test_points_and_mask_prompt_go_to_sam(pipe, image, known_maps, sam_calls):
    pipe(image, ["the red square", "a dog"], crf=False, points=2, mask_input=True)
    call = sam_calls[0]
    assert call["point_coords"].shape == (1, 2, 2)
    assert call["point_labels"].tolist() == [[1, 1]]
    inside = _square_map()[call["point_coords"][0, :, 1].astype(int),
                           call["point_coords"][0, :, 0].astype(int)]
    assert (inside == 1).all()
    assert call["mask_inputs"].shape == (1, 1, pipe.sam.low_res_size, pipe.sam.low_res_size)


@pytest.mark.parametrize("cam", ["gradcam", "gscorecam", "clip-es"])
def test_real_maps_end_to_end(pipe, image, cam):
    seg = pipe(image, ["a red square", "something blue"], cam=cam)
    assert seg.heatmaps.shape == (2, 96, 128)
    assert 0 <= seg.heatmaps.min() and seg.heatmaps.max() <= 1
    assert seg.masks.shape[1:] == (96, 128)


def test_sam_embedding_is_shared_through_the_stage_cache(pipe, image, monkeypatch):
    calls = []
    original = pipe.sam.embed
    monkeypatch.setattr(pipe.sam, "embed", lambda img: calls.append(1) or original(img))
    pipe.stage_cache = {}
    pipe.prepare(image)
    pipe.prepare(image.copy())
    assert len(calls) == 1
    pipe.stage_cache = None
    pipe.prepare(image)
    assert len(calls) == 2


@pytest.mark.parametrize("options, message", [
    ({"cam": "hilacam"}, "cam must be one of gradcam, gscorecam, clip-es"),
    ({"threshold": "mean"}, "threshold must be a number"),
    ({"threshold": 1.5}, r"threshold must be in \[0, 1\)"),
    ({"box": "biggest"}, "box must be 'largest' or 'all'"),
    ({"top_k": 0}, "top_k must be >= 1"),
    ({"sigma": -1}, "sigma must be >= 0"),
])
def test_bad_config_is_one_clear_error(options, message):
    with pytest.raises(ConfigError, match=message):
        CamSamConfig(**options)


# ---------------------------------------------------------------------- the zoo
@pytest.fixture(scope="module")
def zoo_pipe():
    return promptseg.load_pipeline("camsam", clip="shapeworld/clip", sam="shapeworld/sam",
                                   device="cpu")


def test_zoo_clip_looks_at_the_named_object(zoo_pipe):
    """Where the gScoreCAM map of a single-object prompt peaks: on that object, mostly."""
    hits = total = 0
    for index in range(12):
        scene = generate_scene(index, 100, "test")
        singles = [p for p in scene.prompts if p.kind == "single"]
        if not singles:
            continue
        seg = zoo_pipe(scene.image, [p.text for p in singles])
        for q, p in enumerate(singles):
            y, x = np.unravel_index(seg.heatmaps[q].argmax(), seg.heatmaps[q].shape)
            hits += bool(scene.target_mask(p)[y, x])
            total += 1
    assert total >= 15
    assert hits / total > PEAK_IN_OBJECT_FLOOR, (hits, total)


PEAK_IN_OBJECT_FLOOR = 0.5


@pytest.mark.parametrize("family", ["sam_hq", "sam2"])
def test_any_sam_family_segments_from_the_box(family, request, tiny_hf_clip_dir, image,
                                              known_maps):
    """The box prompt goes to SAM-HQ and SAM 2 the same way (MedSAM is a SAM checkpoint)."""
    sam_dir = request.getfixturevalue(f"tiny_{family}_dir")
    pipe = promptseg.load_pipeline("camsam", clip=str(tiny_hf_clip_dir), sam=str(sam_dir),
                                   device="cpu", crf=False)
    assert pipe.sam.family == family
    seg = pipe(image, ["the red square", "a dog"])
    assert seg.heatmaps.shape == (2, 96, 128)
    assert set(seg.query_index.tolist()) <= {0}
