"""Segmentation quality of a pipeline on ShapeWorld with the zoo models, in three tables.

1. Every prompt of ``--n`` test scenes: mIoU overall, per prompt kind (single, multi,
   attribute, referring, thin), for seen against held-out colour-shape combinations, and the
   rate of correctly empty answers to negative prompts. This is ``promptseg eval --dataset
   shapeworld`` on the scenes ``promptseg data shapeworld`` writes (one code path for
   quality; ``--out`` keeps its results folder).
2. [SLIP]'s own protocol: 2x2 mosaics of four single-object scenes, a prompt naming one of
   them; accuracy = the chosen segment lies on the right tile.
3. With ``--novel``: the SLIP paper's claim in kind (Pokemon, 15.25% -> 69.75%): on the
   novel domain, each object named by its invented shape name alone ("a glorp", as a
   Pokemon by its name), the zoo CLIP before and after ``train clip`` fine-tunes it on
   novel-domain captions: crop naming (CLIP alone, perfect segments) and mosaic accuracy
   with the visual prompts ``black`` (slip's default) and ``crop:0.2``.

Run: ``python benchmarks/quality_shapeworld.py --pipeline slip --n 50 --seed 0 [--novel]``;
``--set threshold=0.3`` changes a pipeline setting (repeat). ``--calibrate`` instead searches
the zoo's settings on the val split and prints the grid that chose them: for ``slip`` SAM's
mask filters and the CLIP threshold (applied to the recorded answer scores), for ``camsam``
the CAM method, its input size and the peak points given to SAM.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _report import table  # noqa: E402

from promptseg._io import atomic_write  # noqa: E402
from promptseg.errors import PromptsegError  # noqa: E402
from promptseg.eval.protocols import below_threshold_empty, summarize_instance  # noqa: E402
from promptseg.eval.runner import parse_set_options  # noqa: E402
from promptseg.eval.shapeworld import (  # noqa: E402
    crop_naming_accuracy,
    evaluate_on_shapeworld,
    finetune_on_novel_domain,
    mosaic_accuracy,
)
from promptseg.pipelines import load_pipeline  # noqa: E402


def fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default="slip")
    parser.add_argument("--n", type=int, default=50, help="test scenes")
    parser.add_argument("--mosaics", type=int, default=None, help="mosaics (default: --n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip", default="shapeworld/clip")
    parser.add_argument("--sam", default="shapeworld/sam")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="pipeline setting key=value (repeat)")
    parser.add_argument("--novel", action="store_true",
                        help="also fine-tune the CLIP on the novel domain and compare")
    parser.add_argument("--novel-scenes", type=int, default=1500,
                        help="novel-domain training scenes for the fine-tuning")
    parser.add_argument("--novel-epochs", type=int, default=12)
    parser.add_argument("--json", dest="json_out", default=None, help="write the figures here")
    parser.add_argument("--out", default=None,
                        help="keep the scenes (OUT/data) and the promptseg eval results "
                             "folder of table 1 (OUT/eval: report.md, samples.csv, gallery)")
    parser.add_argument("--calibrate", action="store_true",
                        help="search slip's mask filters and threshold on the val split")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args)
        return
    # the settings the model folders recommend apply by themselves; --set overrides them
    options = parse_set_options(args.sets)
    mosaics = args.mosaics or args.n

    pipe = load_pipeline(args.pipeline, clip=args.clip, sam=args.sam, device=args.device,
                         **options)
    # promptseg eval --dataset shapeworld on the same scenes; --out keeps its results folder
    report = evaluate_on_shapeworld(pipe, n=args.n, seed=args.seed, progress=True,
                                    work=args.out)
    rows = [(what, fmt(value), count) for what, value, count in report.rows()]
    applied = {**pipe.model_settings.get("applied", {}), **options}
    settings = ", ".join(f"{k}={v}" for k, v in applied.items()) or "defaults"
    print(table(f"{args.pipeline} on {args.n} ShapeWorld test scenes (seed {args.seed}; "
                f"{args.clip} + {args.sam}; {settings}; {report.seconds:.0f} s)",
                ("what", "value", "prompts"), rows))
    # [SLIP] takes the most similar segment whatever its score: no threshold in its protocol
    slip_protocol = ({"threshold": None} if args.pipeline == "slip"
                     and getattr(pipe.config, "threshold", None) is not None else {})
    accuracy, trials = mosaic_accuracy(pipe, n=mosaics, seed=args.seed, progress=True,
                                       **slip_protocol)
    print(table(f"SLIP protocol: 2x2 mosaics of single-object scenes ({mosaics} mosaics; the "
                "most similar segment, no threshold)",
                ("domain", "CLIP", "accuracy", "trials"),
                [("base", args.clip, fmt(accuracy), trials)]))
    figures = {"pipeline": args.pipeline, "options": applied, "scenes": report.to_dict(),
               "mosaic": {"base": {"accuracy": accuracy, "trials": trials}}}

    if args.novel:
        figures["novel"] = novel_domain(args, options, slip_protocol, mosaics)
    if args.json_out:
        with atomic_write(args.json_out) as tmp:  # never a half-written file
            tmp.write_text(json.dumps(figures, indent=2, default=str) + "\n")


NOVEL_VISUAL_PROMPTS = ("black", "crop:0.2")


def novel_figures(clip: str, args, options: dict, slip_protocol: dict, mosaics: int) -> dict:
    """Crop naming (CLIP alone) and mosaic accuracy per visual prompt, on the novel domain."""
    naming, objects = crop_naming_accuracy(clip, n=args.n, seed=args.seed, domain="novel",
                                           progress=True)
    figures = {"crop_naming": {"accuracy": naming, "objects": objects}}
    for visual_prompt in NOVEL_VISUAL_PROMPTS:
        pipe = load_pipeline(args.pipeline, clip=clip, sam=args.sam, device=args.device,
                             **{**options, "visual_prompt": visual_prompt})
        accuracy, trials = mosaic_accuracy(pipe, n=mosaics, seed=args.seed, domain="novel",
                                           naming="shape", progress=True, **slip_protocol)
        figures[f"mosaic_{visual_prompt}"] = {"accuracy": accuracy, "trials": trials}
    return figures


def novel_domain(args, options: dict, slip_protocol: dict, mosaics: int) -> dict:
    """[SLIP]'s claim in kind: the zoo CLIP before and after ``train clip`` on the novel
    domain (``finetune_on_novel_domain``), named by the invented shape name alone."""
    before = novel_figures(args.clip, args, options, slip_protocol, mosaics)
    with tempfile.TemporaryDirectory(prefix="promptseg-novel-") as tmp:
        t0 = time.perf_counter()
        tuned = finetune_on_novel_domain(tmp, clip=args.clip, scenes=args.novel_scenes,
                                         epochs=args.novel_epochs, seed=args.seed, progress=True)
        seconds = time.perf_counter() - t0
        after = novel_figures(str(tuned), args, options, slip_protocol, mosaics)
    columns = ["crop_naming", *(f"mosaic_{v}" for v in NOVEL_VISUAL_PROMPTS)]
    rows = [(label, *(fmt(figs[c]["accuracy"]) for c in columns))
            for label, figs in ((f"{args.clip} (before)", before),
                                ("fine-tuned on novel (train clip)", after))]
    trials = before[columns[1]]["trials"]
    print(table(
        f"Novel domain, named by the invented shape name alone (\"a glorp\"). Crop naming: "
        f"CLIP alone picks the right one of 6 names for {before['crop_naming']['objects']} "
        f"object crops of {args.n} scenes. Mosaics: slip, {trials} prompts, per visual "
        f"prompt. Fine-tuning: {args.novel_scenes} scenes, {args.novel_epochs} epochs, "
        f"{seconds:.0f} s",
        ("CLIP", "crop naming", *(f"mosaic, {v}" for v in NOVEL_VISUAL_PROMPTS)), rows))
    return {"before": before, "after": after, "finetune_seconds": seconds,
            "scenes": args.novel_scenes, "epochs": args.novel_epochs}


def thresholded(report, threshold: float) -> tuple[float, float, float]:
    """(mIoU of naming prompts, negative empty rate, mean of the two) had every answer
    scoring below ``threshold`` been empty."""
    summary = summarize_instance(below_threshold_empty(report.records, threshold))
    miou, rate = summary["miou"], summary["negatives_empty"]
    return miou, rate, (miou + rate) / 2


def calibrate(args) -> None:
    """Search a pipeline's settings on the val split; print the grid, best first."""
    if args.pipeline == "camsam":
        calibrate_camsam(args)
        return
    rows = []
    for pred_iou in (0.4, 0.6, 0.75):
        for stability in (0.75, 0.85, 0.92):
            pipe = load_pipeline(args.pipeline, clip=args.clip, sam=args.sam, device=args.device,
                                 pred_iou_thresh=pred_iou, stability_score_thresh=stability,
                                 threshold=None)
            report = evaluate_on_shapeworld(pipe, n=args.n, seed=args.seed, split="val",
                                            progress=True)
            for threshold in (0.0, 0.2, 0.25, 0.3, 0.35, 0.4):
                miou, rate, mean = thresholded(report, threshold)
                rows.append((pred_iou, stability, threshold, f"{miou:.3f}", f"{rate:.3f}",
                             f"{mean:.3f}"))
    rows.sort(key=lambda r: -float(r[-1]))
    print(table(f"slip settings on {args.n} val scenes (seed {args.seed}), best first",
                ("pred_iou_thresh", "stability_score_thresh", "threshold", "mIoU naming",
                 "negatives empty", "mean"), rows[:15]))


def calibrate_camsam(args) -> None:
    """camsam: the map (CAM method, input size) and the points given to SAM."""
    rows = []
    for cam in ("gscorecam", "gradcam"):
        for input_size in (None, 128, 192):
            for points in (0, 1, 2):
                pipe = load_pipeline("camsam", clip=args.clip, sam=args.sam, device=args.device,
                                     cam=cam, cam_input_size=input_size, points=points)
                report = evaluate_on_shapeworld(pipe, n=args.n, seed=args.seed, split="val",
                                                progress=True)
                summary = report.summary()
                miou, rate = summary["miou"], summary["negatives_empty"]
                rows.append((cam, input_size or "CLIP's", points, f"{miou:.3f}", f"{rate:.3f}",
                             f"{(miou + rate) / 2:.3f}"))
    rows.sort(key=lambda r: -float(r[-1]))
    print(table(f"camsam settings on {args.n} val scenes (seed {args.seed}), best first",
                ("cam", "cam_input_size", "points", "mIoU naming", "negatives empty",
                 "mean"), rows))


if __name__ == "__main__":
    try:
        main()
    except PromptsegError as exc:  # bad settings or a missing model: one line, no traceback
        raise SystemExit(f"quality_shapeworld: error: {exc}") from None
