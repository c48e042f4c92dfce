"""Quality floors of `slip` with the ShapeWorld zoo, and [SLIP]'s fine-tuning claim in kind.

Slow (minutes on 2 CPU cores): ``python -m pytest -m slow tests/test_quality_shapeworld.py``.
The floors sit below the figures measured with ``benchmarks/quality_shapeworld.py`` (README,
"Quality on ShapeWorld"), with room for run-to-run noise of the small samples used here.
"""

import pytest

from promptseg.eval.shapeworld import (
    evaluate_on_shapeworld,
    finetune_on_novel_domain,
    mosaic_accuracy,
)
from promptseg.pipelines import load_pipeline
from promptseg.zoo import SHAPEWORLD_SLIP_SETTINGS as ZOO

pytestmark = pytest.mark.slow

# measured on 100 scenes / 100 mosaics (README); asserted on 30 / 30
SLIP_MIOU_FLOOR = 0.30
SLIP_SINGLE_FLOOR = 0.40
SLIP_MOSAIC_FLOOR = 0.50


@pytest.fixture(scope="module")
def slip():
    return load_pipeline("slip", clip="shapeworld/clip", sam="shapeworld/sam", device="cpu",
                         **ZOO)


def test_slip_with_zoo_clears_floors(slip):
    report = evaluate_on_shapeworld(slip, n=30, seed=100)
    assert report.miou() > SLIP_MIOU_FLOOR, report.rows()
    assert report.miou("single") > SLIP_SINGLE_FLOOR, report.rows()
    accuracy, trials = mosaic_accuracy(slip, n=30, seed=100, threshold=None)
    assert trials >= 60
    assert accuracy > SLIP_MOSAIC_FLOOR


def test_finetuning_on_novel_domain_beats_the_base_clip(tmp_path):
    base = load_pipeline("slip", clip="shapeworld/clip", sam="shapeworld/sam", device="cpu", **ZOO)
    before, _ = mosaic_accuracy(base, n=30, seed=7, domain="novel", naming="shape",
                                threshold=None)
    tuned = finetune_on_novel_domain(tmp_path, scenes=400, epochs=4, seed=0)
    after_pipe = load_pipeline("slip", clip=str(tuned), sam="shapeworld/sam", device="cpu", **ZOO)
    after, _ = mosaic_accuracy(after_pipe, n=30, seed=7, domain="novel", naming="shape",
                               threshold=None)
    assert after > before, (before, after)
