"""Real-size parity (slow, on demand: ``pytest -m slow``): official SAM ViT-B with random
weights, converted by our converter, against ``segment_anything`` 1.0 on a 1024 px image."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_size(tmp_path_factory):
    from segment_anything import sam_model_registry

    from promptseg.convert.sam_checkpoint import convert_sam_checkpoint
    from promptseg.models.sam import SamSegmenter

    folder = tmp_path_factory.mktemp("vit_b")
    torch.manual_seed(0)
    official = sam_model_registry["vit_b"]().eval()
    torch.save(official.state_dict(), folder / "sam_vit_b.pth")
    ours = SamSegmenter.from_pretrained(convert_sam_checkpoint(folder / "sam_vit_b.pth",
                                                               folder / "hf"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    image[100:400, 200:600] = (200, 30, 30)
    return official, ours, image


def test_prompted_masks_match(real_size):
    from segment_anything import SamPredictor

    official, ours, image = real_size
    predictor = SamPredictor(official)
    predictor.set_image(image)
    points = np.array([[300.0, 250.0]])
    want_masks, want_iou, _ = predictor.predict(point_coords=points, point_labels=np.array([1]),
                                                multimask_output=True)
    got = ours.predict(ours.embed(image), point_coords=points[None], point_labels=np.ones((1, 1)))
    np.testing.assert_allclose(got.iou_scores[0].numpy(), want_iou, atol=1e-3)
    for g, w in zip(got.masks[0].numpy(), want_masks, strict=True):
        inter, union = (g & w).sum(), (g | w).sum()
        assert union == 0 or inter / union >= 0.99


def test_automatic_masks_match(real_size):
    from segment_anything import SamAutomaticMaskGenerator

    from promptseg.stages.proposals import MaskGenerationConfig, generate_masks

    official, ours, image = real_size
    params = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
              "box_nms_thresh": 1.0}
    with torch.inference_mode():
        want = SamAutomaticMaskGenerator(official, **params).generate(image)
    got = generate_masks(ours, image, MaskGenerationConfig(**params))
    assert len(got) == len(want) > 0
    for w in want:
        ious = [(m & w["segmentation"]).sum() / max(1, (m | w["segmentation"]).sum())
                for m in got.masks]
        best = int(np.argmax(ious))
        assert ious[best] >= 0.99
        assert abs(got.predicted_iou[best] - w["predicted_iou"]) < 1e-3
        assert abs(got.stability_score[best] - w["stability_score"]) < 1e-3
