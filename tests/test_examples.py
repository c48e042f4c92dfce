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
