"""Rebuild the ShapeWorld zoo (``shapeworld/clip``, ``shapeworld/sam``) from nothing.

The models are made by the same commands a user runs on their own data:

1. ``promptseg data shapeworld`` writes the train and val splits (seed 0);
2. ``promptseg train clip --from-config clip_config.json`` trains the CLIP on the caption CSV,
   written with object crops only (``--no-scene-captions``: the views ``slip`` shows CLIP);
3. ``promptseg train sam --from-config sam_config.json`` trains the SAM on the COCO instances;
4. the best weights of each run (model files only, no optimiser state) are copied into
   ``src/promptseg/zoo/shapeworld/{clip,sam}/``, and ``build_info.json`` records the
   commands, how long each took on this machine, and the validation figures of the saved
   epoch.

Usage::

    python scripts/build_shapeworld_zoo.py                 # both models
    python scripts/build_shapeworld_zoo.py --only clip     # one of them
    python scripts/build_shapeworld_zoo.py --work /tmp/zoo --train-scenes 500 --dry-run

Everything is seeded; on the same machine and library versions a rebuild gives the same
weights (CPU kernels are deterministic for these models).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from promptseg.models.settings import SETTINGS_FILE

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "promptseg" / "zoo" / "shapeworld"
MODEL_FILES = (
    "config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json",
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
    "special_tokens_map.json",
)

# Training settings of the zoo (the commands' defaults follow the papers; these are sized for
# a small model trained from scratch on 2 CPU cores).
CLIP_ARGS = [
    "--epochs", "20", "--batch-size", "128", "--lr", "5e-4", "--scheduler", "cosine",
    "--warmup-steps", "200", "--weight-decay", "0.05", "--seed", "0",
]
SAM_ARGS = [  # [SAM] App. A: AdamW at 8e-4 with warm-up; many prompts per image are cheap
    "--epochs", "8", "--batch-size", "8", "--prompts-per-image", "24", "--lr", "1e-3",
    "--scheduler", "cosine", "--warmup-steps", "250", "--seed", "0",
]


def run(cmd: list[str], dry_run: bool) -> float:
    print("$", " ".join(cmd), flush=True)
    if dry_run:
        return 0.0
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def best_epoch(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    saved = [r for r in records if r.get("best")]
    return saved[-1] if saved else records[-1]


def install(run_dir: Path, target: Path) -> int:
    """Copy the model files of a run into the zoo; returns their size in bytes.

    The zoo's ``promptseg_settings.json`` (calibrated on ShapeWorld by
    ``benchmarks/quality_shapeworld.py --calibrate``) is kept; a model new to the zoo takes
    the one its training run measured on the validation split.
    """
    settings = target / SETTINGS_FILE
    kept = settings.read_bytes() if settings.is_file() else None
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if kept is not None:
        settings.write_bytes(kept)
    elif (run_dir / SETTINGS_FILE).is_file():
        shutil.copy2(run_dir / SETTINGS_FILE, settings)
    size = 0
    for name in MODEL_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, target / name)
            size += (target / name).stat().st_size
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".zoo-build")
    parser.add_argument("--only", choices=("clip", "sam"), default=None)
    parser.add_argument("--train-scenes", type=int, default=4000)
    parser.add_argument("--val-scenes", type=int, default=400)
    parser.add_argument("--dry-run", action="store_true", help="Print the commands only.")
    args = parser.parse_args()

    exe = [sys.executable, "-m", "promptseg"]
    data = args.work / "data"
    info_path = ZOO / "build_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info["environment"] = {
        "date": datetime.date.today().isoformat(), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    for split, n in (("train", args.train_scenes), ("val", args.val_scenes)):
        if not (data / f"instances_{split}.json").is_file():
            # CLIP learns from the object crops (what slip shows it), not scene captions
            run([*exe, "data", "shapeworld", "--out", str(data), "--n", str(n), "--split", split,
                 "--seed", "0", "--no-scene-captions", "-q"], args.dry_run)
    jobs = {
        "clip": [*exe, "train", "clip", str(data / "captions_train.csv"), "--val-data",
                 str(data / "captions_val.csv"), "--from-config", str(ZOO / "clip_config.json"),
                 *CLIP_ARGS],
        "sam": [*exe, "train", "sam", str(data / "instances_train.json"), "--val-data",
                str(data / "instances_val.json"), "--from-config", str(ZOO / "sam_config.json"),
                *SAM_ARGS],
    }
    for name, cmd in jobs.items():
        if args.only not in (None, name):
            continue
        run_dir = args.work / name
        if run_dir.exists() and not args.dry_run:
            shutil.rmtree(run_dir)
        seconds = run([*cmd, "--out", str(run_dir)], args.dry_run)
        if args.dry_run:
            continue
        size = install(run_dir, ZOO / name)
        info[name] = {
            "id": f"shapeworld/{name}",
            "command": " ".join(["promptseg", *cmd[3:], "--out", f"<work>/{name}"]).replace(
                str(ROOT) + "/", ""
            ).replace(str(args.work), "<work>"),
            "train_scenes": args.train_scenes, "val_scenes": args.val_scenes,
            "seconds": round(seconds, 1), "bytes": size, "saved_epoch": best_epoch(run_dir),
        }
        info_path.write_text(json.dumps(info, indent=2) + "\n")
        print(f"{name}: {seconds / 60:.1f} min, {size / 1e6:.1f} MB -> {ZOO / name}", flush=True)


if __name__ == "__main__":
    main()
