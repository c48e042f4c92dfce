"""`promptseg eval`: grids, reports, resume after kill -9, and one-line errors."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from promptseg.cli import main
from promptseg.eval.datasets import load_dataset
from promptseg.eval.runner import RESULTS_FILE, evaluate, plan_runs, read_records

LOW = ["--set", "points_per_side=4", "--set", "pred_iou_thresh=0", "--set",
       "stability_score_thresh=0", "--set", "box_nms_thresh=0.9"]


@pytest.fixture
def table(tmp_path):
    """A CSV benchmark: 6 images with a red square (truth) and one negative row."""
    rows = []
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)
        mask = np.zeros((32, 40), np.uint8)
        mask[4 + i:20 + i, 6:22] = 255
        image[mask > 0] = (230, 30, 30)
        Image.fromarray(image).save(tmp_path / f"im{i}.png")
        Image.fromarray(mask).save(tmp_path / f"m{i}.png")
        rows.append({"image": f"im{i}.png", "mask": f"m{i}.png", "prompt": "a red square",
                     "tag": "easy" if i < 3 else "hard"})
    rows.append({"image": "im0.png", "mask": "", "prompt": "a blue circle", "tag": ""})
    with open(tmp_path / "samples.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "mask", "prompt", "tag"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "samples.csv"


@pytest.fixture
def models(tiny_sam_dir, tiny_hf_clip_dir):
    return ["--clip", str(tiny_hf_clip_dir), "--sam", str(tiny_sam_dir), "--device", "cpu"]


def _summaries(out):
    report = json.loads((out / "results.json").read_text())
    return [(r["name"].split(" clip=")[0], r["samples"], r["summary"]) for r in report["runs"]]


def test_eval_writes_every_report(table, models, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--dataset", "table", "--root", str(table), *models, *LOW,
                 "--set", "threshold=-1", "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert printed.startswith("| run | mIoU") and "slip" in printed
    report = json.loads((out / "results.json").read_text())
    (run,) = report["runs"]
    assert run["samples"] == 7 and report["dataset"]["name"] == "table"
    assert set(run["summary"]["per_tag"]) == {"easy", "hard"}
    assert run["summary"]["prompts"] == 6 and run["summary"]["negatives"] == 1
    assert 0 <= run["summary"]["miou"] <= 1 and run["cost"]["seconds_mean"] > 0
    assert run["models"]["sam"] and run["config"]["mask_generation"]["points_per_side"] == 4
    # the per-sample CSV agrees with the summary
    with open(out / "samples.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7
    ious = [float(r["iou"]) for r in rows if r["negative"] == "0"]
    assert np.mean(ious) == pytest.approx(run["summary"]["miou"], abs=1e-4)
    md = (out / "report.md").read_text()
    assert "mIoU easy" in md and "promptseg" in md and "config" in md
    gallery = list((out / "gallery").glob("*.png"))
    assert len(gallery) == 1 and Image.open(gallery[0]).size[1] > 100


def test_grid_runs_every_combination_on_the_same_samples(table, tiny_sam_dir,
                                                         tiny_hf_clip_dir, tmp_path):
    runs = plan_runs(["slip"], {"points_per_side": 4, "pred_iou_thresh": 0,
                                "stability_score_thresh": 0},
                     clips=[str(tiny_hf_clip_dir)], sams=[str(tiny_sam_dir), str(tiny_sam_dir)
                                                          + "/"])
    assert len(runs) == 2 and runs[0].name != runs[1].name
    report = evaluate(load_dataset("table", table), runs, tmp_path / "grid", limit=3,
                      device="cpu", progress=False)
    assert [r["samples"] for r in report["runs"]] == [3, 3]
    # the same SAM and CLIP under two names give the same masks
    assert report["runs"][0]["summary"]["miou"] == report["runs"][1]["summary"]["miou"]


def test_truncated_last_line_is_dropped_and_resumed(table, models, tmp_path):
    out = tmp_path / "out"
    args = ["eval", "--dataset", "table", "--root", str(table), *models, *LOW, "--out",
            str(out), "-q", "--limit", "4"]
    assert main(args) == 0
    first = _summaries(out)
    lines = (out / RESULTS_FILE).read_bytes().splitlines(keepends=True)
    # as if killed while writing the fourth answer: three lines and half a line
    (out / RESULTS_FILE).write_bytes(b"".join(lines[:3]) + lines[3][:25])
    assert len(read_records(out)) == 3
    assert main(args) == 0
    assert _summaries(out) == first
    assert len((out / RESULTS_FILE).read_bytes().splitlines()) == 4


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_then_resume_gives_the_same_report(table, models, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    base = ["eval", "--dataset", "table", "--root", str(table), *models, *LOW, "-q"]
    assert main([*base, "--out", str(full)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "promptseg.cli", *base, "--out",
                             str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = killed / RESULTS_FILE
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    answered = results.read_bytes().count(b"\n")
    assert 2 <= answered < 7, "the run ended before it could be killed"
    assert not (killed / "results.json").exists()
    assert main([*base, "--out", str(killed)]) == 0
    assert _summaries(killed) == _summaries(full)
    ids = [json.loads(line)["sample"] for line in results.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 7  # none lost, none twice


def test_bad_input_is_one_line_and_keeps_results(table, models, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["eval", "--root", str(table), *models, *LOW, "--out", str(out), "-q"]
    assert main(["eval", "--dataset", "tabel", "--root", str(table), "--out", str(out)]) == 2
    assert "unknown dataset 'tabel'" in capsys.readouterr().err
    assert main(["eval", "--dataset", "folder", "--root", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["eval", "--dataset", "table", "--root", str(table), "--split", "x"]) == 2
    assert "split" in capsys.readouterr().err
    assert main(["eval", "--dataset", "table", *base[1:], "--pipeline", "slipp"]) == 2
    assert "slipp" in capsys.readouterr().err
    assert main(["eval", "--dataset", "table", *base[1:], "--limit", "2"]) == 0
    before = (out / RESULTS_FILE).read_bytes()
    capsys.readouterr()
    # a mask of the wrong size in the third sample: one line, the first two answers kept
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(table.parent / "m2.png")
    assert main(["eval", "--dataset", "table", *base[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match the image" in err
    assert (out / RESULTS_FILE).read_bytes() == before
    # another dataset in the same folder is refused
    other = tmp_path / "other.csv"
    other.write_text("image,mask,prompt\nim0.png,m0.png,x\n")
    assert main(["eval", "--dataset", "table", "--root", str(other), "--out", str(out)]) == 2
    assert "another dataset" in capsys.readouterr().err


def test_grid_reuses_sam_proposals_across_clips(table, tiny_sam_dir, tiny_hf_clip_dir,
                                                tmp_path, monkeypatch):
    import promptseg.pipelines.slip as slip

    calls = []
    real = slip.generate_masks

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(slip, "generate_masks", counting)
    sets = {"points_per_side": 4, "pred_iou_thresh": 0, "stability_score_thresh": 0}
    clips = [str(tiny_hf_clip_dir), str(tiny_hf_clip_dir) + "/"]
    data = load_dataset("table", table)
    shared = evaluate(data, plan_runs(["slip"], sets, clips=clips, sams=[str(tiny_sam_dir)]),
                      tmp_path / "a", limit=3, device="cpu", progress=False)
    assert len(calls) == 3  # one SAM pass per image for both CLIPs
    # the same answers as two separate evaluations, each running SAM itself
    calls.clear()
    alone = [evaluate(data, plan_runs(["slip"], sets, clips=[c], sams=[str(tiny_sam_dir)]),
                      tmp_path / f"b{i}", limit=3, device="cpu", progress=False)
             for i, c in enumerate(clips)]
    assert len(calls) == 6
    assert [r["summary"] for r in shared["runs"]] == [a["runs"][0]["summary"] for a in alone]


def test_semantic_benchmark_end_to_end(tmp_path, models, capsys):
    from test_eval_datasets_semantic import VOC_LABELS, _write_voc

    _write_voc(tmp_path / "VOC2012", VOC_LABELS)
    out = tmp_path / "out"
    code = main(["eval", "--dataset", "voc21", "--root", str(tmp_path), *models, *LOW,
                 "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    (run,) = report["runs"]
    summary = run["summary"]
    assert summary["images"] == 2 and len(summary["per_class"]) == 21
    assert run["config"]["output"] == "label"  # slip's way of answering a semantic benchmark
    assert 0 <= summary["miou"] <= 1 and 0 <= summary["pixel_accuracy"] <= 1
    records = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    # every scored pixel counted once: 6 x 8 pixels, the last row a 255 border
    assert [sum(n for _, _, n in r["confusion"]) for r in records] == [40, 40]
    assert "| mIoU | pixel acc. |" in (out / "report.md").read_text()
