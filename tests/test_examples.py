"""The examples in examples/ run as documented."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_offline_smoke(tmp_path):
    module = runpy.run_path(str(EXAMPLES / "offline_smoke.py"))
    module["main"](tmp_path)
    assert (tmp_path / "overlay.png").is_file()
    assert (tmp_path / "cli" / "scene" / "coco.json").is_file()
    assert len(list((tmp_path / "cli" / "scene" / "masks").glob("*.png"))) == 1


def test_shapeworld_zoo_example(tmp_path):
    module = runpy.run_path(str(EXAMPLES / "shapeworld_zoo.py"))
    scores = module["main"](tmp_path)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert (tmp_path / "overlay.png").is_file()
