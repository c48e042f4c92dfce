"""A CLIP grid in ``promptseg eval`` against the naive loop (one evaluation per combination).

The grid shares each image's SAM work (embedding, automatic masks, overlap filter) among its
runs; the naive loop runs SAM again for every CLIP. Both give the same answers (asserted here
and in ``tests/test_eval_runner.py``); the ratio is the time saved.

Run: ``python benchmarks/eval_grid.py --n 10 --clips 2`` (zoo models on ShapeWorld test
scenes written to a temporary folder; the CLIP entries are the zoo CLIP under distinct ids).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from promptseg.data.shapeworld import write_dataset  # noqa: E402
from promptseg.eval.datasets import load_dataset  # noqa: E402
from promptseg.eval.runner import evaluate, plan_runs  # noqa: E402
from promptseg.zoo import zoo_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="ShapeWorld test scenes")
    parser.add_argument("--clips", type=int, default=2, help="CLIP entries in the grid")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "sw", n=args.n, seed=0, split="test", progress=False)
        data = load_dataset("shapeworld", tmp / "sw")
        clip = str(zoo_folder("shapeworld/clip"))
        clips = [clip + "/" * i for i in range(args.clips)]
        sam = ["shapeworld/sam"]
        evaluate(data, plan_runs(["slip"], clips=[clip], sams=sam), tmp / "warm", limit=1,
                 device=args.device, progress=False)  # load the models once
        t0 = time.perf_counter()
        grid = evaluate(data, plan_runs(["slip"], clips=clips, sams=sam), tmp / "grid",
                        device=args.device, progress=False)
        t_grid = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive = [evaluate(data, plan_runs(["slip"], clips=[c], sams=sam), tmp / f"naive{i}",
                          device=args.device, progress=False) for i, c in enumerate(clips)]
        t_naive = time.perf_counter() - t0
    same = [r["summary"] for r in grid["runs"]] == [n["runs"][0]["summary"] for n in naive]
    print(f"{args.n} scenes x {args.clips} CLIPs: grid {t_grid:.1f} s, naive loop "
          f"{t_naive:.1f} s, ratio {t_naive / t_grid:.2f}x; same answers: {same}")
    if not same:
        raise SystemExit("the grid and the naive loop disagree")


if __name__ == "__main__":
    main()
