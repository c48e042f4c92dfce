"""`benchmarks/quality_shapeworld.py` runs end to end (tiny sizes) and writes its figures."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_quality_benchmark_with_novel_domain_runs(tmp_path):
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "quality_shapeworld.py"), "--n", "2", "--mosaics", "1",
         "--novel", "--novel-scenes", "10", "--novel-epochs", "1", "--device", "cpu",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mIoU, single" in run.stdout and "Novel domain" in run.stdout
    figures = json.loads(out.read_text())
    novel = figures["novel"]
    for stage in ("before", "after"):
        assert set(novel[stage]) == {"crop_naming", "mosaic_black", "mosaic_crop:0.2"}
        assert novel[stage]["crop_naming"]["objects"] > 0
        assert 0.0 <= novel[stage]["mosaic_black"]["accuracy"] <= 1.0
    # a benchmark's figures are those of its prompts: the same mosaics before and after
    assert (novel["before"]["mosaic_black"]["trials"]
            == novel["after"]["mosaic_black"]["trials"] > 0)
    assert figures["scenes"]["scenes"] == 2
    assert {row["what"] for row in figures["scenes"]["rows"]} >= {"mIoU, single", "mIoU, thin"}
