"""The ``promptseg`` command line: a thin front end over the Python API.

Exit codes: 0 success; 2 bad input (missing or unreadable image, empty prompt, unknown model or
method, bad option); 1 any other failure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from promptseg._cli_help import PanelCommand, new_app
from promptseg.errors import InputError, PromptsegError

ABOUT = "Segment what a sentence names: image + text prompts in, masks, scores and boxes out."
app = new_app(ABOUT, name="promptseg", add_completion=False, pretty_exceptions_enable=False)
convert_app = new_app("Convert official checkpoints to folders promptseg loads.")
app.add_typer(convert_app, name="convert")
train_app = new_app(
    "Train or fine-tune models on your data (CLIP contrastive, SAM masks, autoencoder)."
)
app.add_typer(train_app, name="train")
data_app = new_app("Generate datasets (ShapeWorld).")
app.add_typer(data_app, name="data")

#: the sections of ``segment --help``
MODELS, SELECTION, PROPOSALS, OUTPUT = "Models", "Selection", "SAM proposals", "Output"
SALIENCY = "Saliency (camsam)"
#: how help marks a default that a model folder's promptseg_settings.json may replace
BY_MODEL = "or the model's"


def _version(value: bool) -> None:
    if value:
        from promptseg import __version__

        typer.echo(f"promptseg {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Segment what a sentence names: image + text prompts in, masks, scores and boxes out."""


FORMATS = ("png", "coco", "overlay")
DEFAULT_OUT = "promptseg-out"

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _err(message: str) -> None:
    typer.echo(f"promptseg: error: {message}", err=True)


def _parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(
            f"unknown --format {', '.join(unknown)}: use a comma list of {', '.join(FORMATS)}"
        )
    return formats


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")


def _expand_images(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it (sorted)."""
    images: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"folder {path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise InputError(f"image not found: {path}")
    return images


def _output_dirs(images: list[Path], out: Path) -> list[Path]:
    """One output folder per image, named by its stem; clashing stems get a numeric suffix."""
    seen: dict[str, int] = {}
    dirs = []
    for image in images:
        stem = image.stem or "image"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        dirs.append(out / (stem if count == 0 else f"{stem}-{count}"))
    return dirs


def _write_outputs(seg, image, folder: Path, formats: list[str], file_name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "png" in formats:
        written += seg.save_masks(folder / "masks")
    if "coco" in formats:
        path = folder / "coco.json"
        seg.save_coco(path, file_name=file_name)
        written.append(path)
    if "overlay" in formats:
        path = folder / "overlay.png"
        seg.save_overlay(image, path)
        written.append(path)
    return written


@app.command(cls=PanelCommand)
def segment(
    images: Annotated[list[Path], typer.Argument(
        help="Image files or folders of images.", metavar="IMAGE", show_default=False)],
    prompt: Annotated[list[str], typer.Option(
        "--prompt", "-p", metavar="TEXT", help="Text prompt; repeat for several.")],
    method: Annotated[str, typer.Option(
        help="Pipeline: see `promptseg methods`.", rich_help_panel=MODELS)] = "slip",
    clip: Annotated[str | None, typer.Option(
        metavar="ID", help="CLIP id or folder [default: the method's].",
        rich_help_panel=MODELS)] = None,
    sam: Annotated[str | None, typer.Option(
        metavar="ID", help="SAM-family id, folder or .pth [default: the method's].",
        rich_help_panel=MODELS)] = None,
    device: Annotated[str, typer.Option(
        help="auto, cpu, cuda or mps.", rich_help_panel=MODELS)] = "auto",
    dtype: Annotated[str, typer.Option(
        help="fp32, fp16 or bf16.", rich_help_panel=MODELS)] = "fp32",
    model_settings: Annotated[bool, typer.Option(
        help="Apply the settings a model folder recommends (promptseg_settings.json); "
        "options given here win.", rich_help_panel=MODELS)] = True,
    threshold: Annotated[float | None, typer.Option(
        help="slip: minimum score of a mask, in --score-mode units [default: none, "
        f"{BY_MODEL}]; camsam: the map's foreground threshold [default: 0.5].",
        rich_help_panel=SELECTION)] = None,
    output: Annotated[str | None, typer.Option(
        metavar="MODE", help="best, all or label [default: best].",
        rich_help_panel=SELECTION)] = None,
    background: Annotated[list[str] | None, typer.Option(
        metavar="TEXT", help="Background prompt; repeat for several.",
        rich_help_panel=SELECTION)] = None,
    visual_prompt: Annotated[str | None, typer.Option(
        metavar="SPEC", help="How CLIP sees a segment: black, crop, crop:0.2, black+crop... "
        "[default: black].", rich_help_panel=SELECTION)] = None,
    crop_margin: Annotated[float | None, typer.Option(
        help="Context around crops, a fraction of the box [default: 0].",
        rich_help_panel=SELECTION)] = None,
    score_mode: Annotated[str | None, typer.Option(
        metavar="MODE", help="cosine or softmax [default: cosine].",
        rich_help_panel=SELECTION)] = None,
    points_per_side: Annotated[int | None, typer.Option(
        help=f"Point grid side [default: 32, {BY_MODEL}].", rich_help_panel=PROPOSALS)] = None,
    pred_iou_thresh: Annotated[float | None, typer.Option(
        help=f"Predicted-IoU filter [default: 0.88, {BY_MODEL}].",
        rich_help_panel=PROPOSALS)] = None,
    stability_score_thresh: Annotated[float | None, typer.Option(
        help=f"Stability filter [default: 0.95, {BY_MODEL}].",
        rich_help_panel=PROPOSALS)] = None,
    box_nms_thresh: Annotated[float | None, typer.Option(
        help=f"Box NMS IoU [default: 0.7, {BY_MODEL}].", rich_help_panel=PROPOSALS)] = None,
    crop_n_layers: Annotated[int | None, typer.Option(
        help=f"Crop layers [default: 0, {BY_MODEL}].", rich_help_panel=PROPOSALS)] = None,
    min_mask_region_area: Annotated[int | None, typer.Option(
        help=f"Fill holes and drop islands below this many pixels [default: 0, {BY_MODEL}].",
        rich_help_panel=PROPOSALS)] = None,
    cam: Annotated[str | None, typer.Option(
        metavar="METHOD", help="gradcam, gscorecam or clip-es [default: gscorecam, "
        f"{BY_MODEL}].",
        rich_help_panel=SALIENCY)] = None,
    cam_input_size: Annotated[int | None, typer.Option(
        help=f"Side CLIP sees the image at [default: the CLIP's, {BY_MODEL}].",
        rich_help_panel=SALIENCY)] = None,
    crf: Annotated[bool | None, typer.Option(
        "--crf/--no-crf", help="Refine the map with a dense CRF [default: crf].",
        show_default=False, rich_help_panel=SALIENCY)] = None,
    sigma: Annotated[float | None, typer.Option(
        help="Gaussian smoothing of the map, pixels [default: 0].",
        rich_help_panel=SALIENCY)] = None,
    cam_points: Annotated[int | None, typer.Option(
        help="Also give SAM the k highest map peaks as points [default: 0].",
        rich_help_panel=SALIENCY)] = None,
    out: Annotated[Path | None, typer.Option(
        help=f"Output folder [default: {DEFAULT_OUT}; none with --json].",
        rich_help_panel=OUTPUT)] = None,
    format: Annotated[str, typer.Option(
        "--format", metavar="LIST", help="Comma list of png, coco, overlay.",
        rich_help_panel=OUTPUT)] = "png,coco,overlay",
    max_pixels: Annotated[int, typer.Option(
        help="Refuse larger images.", rich_help_panel=OUTPUT)] = 50_000_000,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print results as JSON.", rich_help_panel=OUTPUT)] = False,
    masks_in_json: Annotated[bool, typer.Option(
        help="Include RLE masks in --json.", rich_help_panel=OUTPUT)] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress bar.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Segment PROMPTs in each IMAGE and write masks, COCO JSON and an overlay to --out."""
    from rich.progress import Progress

    from promptseg.pipelines import load_pipeline
    from promptseg.prompts import normalize_prompts

    formats = _parse_formats(format)
    prompts = normalize_prompts(prompt)
    options = {
        "clip": clip, "sam": sam, "threshold": threshold, "output": output,
        "visual_prompt": visual_prompt, "score_mode": score_mode,
        "background_prompts": tuple(background) if background else None,
        "points_per_side": points_per_side, "pred_iou_thresh": pred_iou_thresh,
        "stability_score_thresh": stability_score_thresh, "crop_n_layers": crop_n_layers,
        "min_mask_region_area": min_mask_region_area, "box_nms_thresh": box_nms_thresh,
        "crop_margin": crop_margin, "max_pixels": max_pixels,
        "use_model_settings": None if model_settings else False,
        "cam": cam, "cam_input_size": cam_input_size, "crf": crf, "sigma": sigma,
        "points": cam_points,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if out is None and not json_out:
        out = Path(DEFAULT_OUT)
    images = _expand_images(images)

    pipe = load_pipeline(method, device=device, dtype=dtype, **options)
    folders = _output_dirs(images, out) if out is not None else [None] * len(images)
    results, failed = [], 0
    with Progress(disable=quiet or json_out, transient=True) as progress:
        task = progress.add_task("segmenting", total=len(images))
        for path, folder in zip(images, folders, strict=True):
            try:
                from promptseg.image import load_image

                image = load_image(path, max_pixels=max_pixels)
                seg = pipe(image, prompts)
                if folder is not None:
                    _write_outputs(seg, image, folder, formats, path.name)
                record = seg.to_dict(include_masks=masks_in_json)
                record["image"] = str(path)
                if folder is not None:
                    record["out"] = str(folder)
                results.append(record)
            except PromptsegError as exc:
                failed += 1
                message = str(exc)
                _err(message if str(path) in message else f"{path}: {message}")
            progress.advance(task)
    if json_out:
        typer.echo(json.dumps(results if len(images) > 1 else (results or [None])[0], indent=2))
    elif not quiet:
        for record in results:
            n = record["num_instances"]
            typer.echo(f"{record['image']}: {n} mask(s) -> {record.get('out', '-')}", err=True)
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def _dataset_names() -> str:
    from promptseg.eval.datasets import list_datasets

    return ", ".join(list_datasets())


@app.command("eval", cls=PanelCommand)
def eval_command(
    dataset: Annotated[str, typer.Option(
        metavar="NAME", help=f"Benchmark: {_dataset_names()}.", rich_help_panel="Data")],
    root: Annotated[Path, typer.Option(
        help="Folder holding the benchmark as published (docs/benchmarks.md).",
        rich_help_panel="Data")],
    split: Annotated[str | None, typer.Option(
        help="Split to read [default: the papers' test split].", rich_help_panel="Data")
    ] = None,
    dataset_option: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Reader option, e.g. manifest=subset.csv; repeat.",
        rich_help_panel="Data")] = None,
    limit: Annotated[int | None, typer.Option(
        help="Only the first N samples [default: all].", rich_help_panel="Data")] = None,
    pipeline: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="Pipeline to compare; repeat [default: slip].",
        rich_help_panel="Runs")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Pipeline option for every run; repeat.",
        rich_help_panel="Runs")] = None,
    clip: Annotated[list[str] | None, typer.Option(
        metavar="ID", help="CLIP of the grid; repeat [default: the pipeline's].",
        rich_help_panel="Runs")] = None,
    sam: Annotated[list[str] | None, typer.Option(
        metavar="ID", help="SAM of the grid; repeat [default: the pipeline's].",
        rich_help_panel="Runs")] = None,
    device: Annotated[str, typer.Option(
        help="auto, cpu, cuda or mps.", rich_help_panel="Runs")] = "auto",
    dtype: Annotated[str, typer.Option(
        help="fp32, fp16 or bf16.", rich_help_panel="Runs")] = "fp32",
    out: Annotated[Path, typer.Option(
        help="Results folder; run again with the same one to resume.",
        rich_help_panel="Output")] = Path("promptseg-eval"),
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print results.json instead of the table.", rich_help_panel="Output")
    ] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress bar.", rich_help_panel="Output")] = False,
) -> None:
    """Score pipelines, or a grid of CLIP x SAM, on a benchmark: report.md, results.json,
    samples.csv and a gallery in --out. Interrupted? The same command resumes."""
    from promptseg.eval.datasets import load_dataset
    from promptseg.eval.report import render_markdown
    from promptseg.eval.runner import evaluate, parse_set_options, plan_runs

    reader_options = parse_set_options(dataset_option or [], "--dataset-option")
    data = load_dataset(dataset, root, split=split, **reader_options)
    runs = plan_runs(pipeline or ["slip"], parse_set_options(set_ or []), clip or (), sam or ())
    report = evaluate(data, runs, out, limit=limit, device=device, dtype=dtype,
                      progress=not (quiet or json_out))
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    table = [line for line in render_markdown(report).splitlines() if line.startswith("|")]
    typer.echo("\n".join(table))
    typer.echo(f"report: {out / 'report.md'}", err=True)


@app.command(cls=PanelCommand)
def models(
    family: Annotated[str | None, typer.Option(help="clip or sam.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the known model ids, their family, size, and whether each is available locally."""
    from rich.console import Console
    from rich.table import Table

    from promptseg.models.registry import is_available_locally, list_models

    rows = [
        {"id": m.id, "family": m.family, "arch": m.arch, "params_m": m.params_m,
         "local": is_available_locally(m.id), "paper": m.paper}
        for m in list_models(family)
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="promptseg models (any local folder or hub id also works)")
    for col in ("id", "family", "arch", "params (M)", "local", "paper"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["family"], r["arch"], f"{r['params_m']:.0f}",
                      "yes" if r["local"] else "no", r["paper"])
    Console().print(table)


@app.command(cls=PanelCommand)
def explain(
    image: Annotated[Path, typer.Argument(help="Image file.", show_default=False)],
    prompt: Annotated[list[str], typer.Option(
        "--prompt", "-p", metavar="TEXT", help="Text prompt; repeat for several.")],
    cam: Annotated[str, typer.Option(
        metavar="METHOD", help="gradcam, gscorecam or clip-es.")] = "gscorecam",
    clip: Annotated[str, typer.Option(
        metavar="ID", help="CLIP id or folder.")] = "open_clip:RN50/openai",
    input_size: Annotated[int | None, typer.Option(
        help="Side CLIP sees the image at [default: the CLIP's].")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("explain.png"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images.")] = 50_000_000,
) -> None:
    """Show where CLIP looks for each PROMPT: heatmap overlays with a legend."""
    from promptseg.convert.overlay import save_heatmaps
    from promptseg.image import load_image
    from promptseg.models.registry import load_clip
    from promptseg.prompts import normalize_prompts
    from promptseg.stages.saliency import saliency_maps

    prompts = normalize_prompts(prompt)
    pixels = load_image(image, max_pixels=max_pixels)
    model = load_clip(clip, device=device)
    options = {"input_size": input_size} if input_size else {}
    maps = saliency_maps(model, pixels, prompts, method=cam, **options)
    save_heatmaps(pixels, maps, prompts, out, title=f"{cam} maps of {model.model_id}")
    typer.echo(f"{image}: {len(prompts)} map(s) -> {out}", err=True)


@app.command(cls=PanelCommand)
def methods() -> None:
    """List the pipelines (--method values)."""
    from promptseg.pipelines import list_pipelines

    for name in list_pipelines():
        typer.echo(name)


@convert_app.command("sam", cls=PanelCommand)
def convert_sam(
    checkpoint: Annotated[Path, typer.Argument(help="Official segment_anything .pth file.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (transformers format).")],
) -> None:
    """Convert an official SAM or MedSAM checkpoint to a folder the registry loads."""
    from promptseg.convert.sam_checkpoint import convert_sam_checkpoint

    if not checkpoint.is_file():
        raise InputError(f"checkpoint not found: {checkpoint}")
    path = convert_sam_checkpoint(checkpoint, out_dir)
    typer.echo(f"wrote {path}")


def _print_summary(summary: dict) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str))


#: ``promptseg train NAME``: (config class in promptseg.train.config, trainer module, help)
TRAIN_COMMANDS = {
    "clip": (
        "ClipTrainConfig", "promptseg.train.clip:train_clip",
        "Contrastive fine-tuning of a CLIP (transformers or OpenCLIP) on image-caption pairs "
        "(CSV, JSONL or COCO captions); --from-config starts from random weights, "
        "--image-backbone + --text-encoder builds one from parts (timm + transformers). The "
        "--out folder loads like any model: --clip OUT.",
    ),
    "sam": (
        "SamTrainConfig", "promptseg.train.sam:train_sam",
        "Fine-tune a SAM-family model on COCO instance masks from box and point prompts "
        "(BCE + dice); the image encoder is frozen unless --train-image-encoder or "
        "--from-config. The --out folder loads like any model: --sam OUT, with the "
        "proposal filters measured on the validation split (promptseg_settings.json).",
    ),
    "autoencoder": (
        "AutoencoderTrainConfig", "promptseg.train.autoencoder:train_autoencoder",
        "Pretrain a CLIP image backbone (any timm architecture) as an autoencoder on domain "
        "images (a folder, caption file or COCO JSON; MSE, Adam 1e-3, as [LVLM]). Start a "
        "CLIP from it: train clip --image-backbone B --text-encoder T --image-init OUT.",
    ),
}


def _trainer(target: str):
    """``run(config)`` for a ``module:function`` trainer, imported only when it runs."""

    def run(config) -> None:
        import importlib

        module, function = target.split(":")
        summary = getattr(importlib.import_module(module), function)(config)
        _print_summary(summary)

    return run


def _register_train_commands() -> None:
    from promptseg._cli_options import command_from_config
    from promptseg.train import config as train_config

    for name, (config_name, target, help_text) in TRAIN_COMMANDS.items():
        command = command_from_config(getattr(train_config, config_name), _trainer(target),
                                      arguments=("data",))
        train_app.command(name, help=help_text, cls=PanelCommand)(command)


_register_train_commands()


@data_app.command("shapeworld", cls=PanelCommand)
def data_shapeworld(
    out: Annotated[Path, typer.Option(help="Folder to write (splits can share one).")],
    n: Annotated[int, typer.Option("--n", help="Number of scenes.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same scenes.")] = 0,
    split: Annotated[str, typer.Option(help="train, val or test (held-out colour-shape "
                                            "combinations appear only in test).")] = "train",
    domain: Annotated[str, typer.Option(help="base, or novel (invented shape names).")] = "base",
    size: Annotated[int, typer.Option(help="Scene side in pixels.")] = 256,
    crops: Annotated[bool, typer.Option(help="Also write object crops with captions.")] = True,
    scene_captions: Annotated[bool, typer.Option(
        help="Caption rows for whole scenes in the CSV (off: object crops only).")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write ShapeWorld scenes: images, COCO instances (RLE), phrases and a caption CSV."""
    from promptseg.data.shapeworld import ShapeWorldConfig, write_dataset

    paths = write_dataset(out, n=n, seed=seed, split=split, domain=domain,
                          config=ShapeWorldConfig(size=size), crops=crops, progress=not quiet,
                          scene_captions=scene_captions)
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


@app.command(cls=PanelCommand)
def demo(
    out: Annotated[Path, typer.Option(help="Folder for scene.png, overlay.png, demo.json.")] = Path(
        "promptseg-demo"),
    seed: Annotated[int, typer.Option(help="Picks the ShapeWorld test scene.")] = 0,
    method: Annotated[str, typer.Option(help="Pipeline: see `promptseg methods`.")] = "slip",
    clip: Annotated[str, typer.Option(help="CLIP id or folder.")] = "shapeworld/clip",
    sam: Annotated[str, typer.Option(help="SAM-family id or folder.")] = "shapeworld/sam",
    prompt: Annotated[list[str] | None, typer.Option(
        "--prompt", "-p", help="Your own prompt instead of the scene's (not scored); repeat.")
    ] = None,
    domain: Annotated[str, typer.Option(help="base, or novel (invented shape names).")] = "base",
    threshold: Annotated[float | None, typer.Option(
        help="Minimum score of a mask (default: the pipeline's).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    model_settings: Annotated[bool, typer.Option(
        help="Apply the settings the zoo folders recommend (promptseg_settings.json).")
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Segment a generated ShapeWorld scene with the zoo models, offline, and print each
    prompt's IoU against the exact truth."""
    from rich.console import Console
    from rich.table import Table

    from promptseg.demo import run_demo

    options = {"threshold": threshold} if threshold is not None else {}
    if not model_settings:
        options["use_model_settings"] = False
    result = run_demo(out, seed=seed, method=method, clip=clip, sam=sam, prompts=prompt,
                      domain=domain, device=device, **options)
    if json_out:
        typer.echo(json.dumps({"rows": result.rows, "mean_iou": result.mean_iou,
                               "files": {k: str(v) for k, v in result.files.items()}}, indent=2))
        return
    table = Table(title=f"promptseg demo: ShapeWorld test scene, seed {seed}, {method}")
    for col in ("prompt", "kind", "masks", "score", "IoU"):
        table.add_column(col)
    for r in result.rows:
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        value = "-" if r["iou"] is None else f"{r['iou']:.3f}"
        table.add_row(r["prompt"], r["kind"], str(r["masks"]), score, value)
    console = Console()
    console.print(table)
    console.print(f"mean IoU {result.mean_iou:.3f}; overlay: {result.files['overlay']}; "
                  f"{result.seconds['segment']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to exit codes (0 ok, 2 bad input, 1 failure)."""
    import click

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="promptseg: %(message)s")
    try:
        code = app(args=argv, prog_name="promptseg", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _err("aborted")
        return EXIT_FAILURE
    except click.ClickException as exc:
        exc.show()
        return EXIT_BAD_INPUT
    except PromptsegError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:  # anything else is our failure, still one line for the user
        _err(f"unexpected failure: {type(exc).__name__}: {exc}")
        if os.environ.get("PROMPTSEG_DEBUG"):
            raise
        return EXIT_FAILURE
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
