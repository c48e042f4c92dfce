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

from promptseg.errors import InputError, PromptsegError

app = typer.Typer(
    name="promptseg",
    help="Segment what a sentence names: image + text prompts in, masks, scores and boxes out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
convert_app = typer.Typer(help="Convert official checkpoints to folders promptseg loads.",
                          no_args_is_help=True)
app.add_typer(convert_app, name="convert")
train_app = typer.Typer(
    help="Train or fine-tune models on your data (CLIP contrastive, SAM masks, autoencoder).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
data_app = typer.Typer(help="Generate datasets (ShapeWorld).", no_args_is_help=True)
app.add_typer(data_app, name="data")


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


@app.command()
def segment(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.",
                                                 show_default=False)],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Text prompt; repeat.")],
    method: Annotated[str, typer.Option(help="Pipeline: see `promptseg methods`.")] = "slip",
    clip: Annotated[str | None, typer.Option(help="CLIP id or folder.")] = None,
    sam: Annotated[str | None, typer.Option(help="SAM-family id, folder or .pth.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: promptseg-out, or none with --json).")] = None,
    format: Annotated[str, typer.Option("--format", help="png,coco,overlay")] = "png,coco,overlay",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
    dtype: Annotated[str, typer.Option(help="fp32, fp16, bf16.")] = "fp32",
    threshold: Annotated[float | None, typer.Option(help="Minimum score of a mask.")] = None,
    output: Annotated[str | None, typer.Option(help="best, all or label.")] = None,
    background: Annotated[list[str] | None, typer.Option(help="Background prompt; repeat.")] = None,
    visual_prompt: Annotated[str | None, typer.Option(help="e.g. black, black+crop.")] = None,
    score_mode: Annotated[str | None, typer.Option(help="cosine or softmax.")] = None,
    points_per_side: Annotated[int | None, typer.Option(help="SAM point grid size.")] = None,
    pred_iou_thresh: Annotated[float | None, typer.Option(help="SAM IoU filter (0.88).")] = None,
    stability_score_thresh: Annotated[float | None, typer.Option(help="(0.95)")] = None,
    box_nms_thresh: Annotated[float | None, typer.Option(help="NMS IoU (0.7).")] = None,
    crop_n_layers: Annotated[int | None, typer.Option(help="SAM crop layers (0).")] = None,
    min_mask_region_area: Annotated[int | None, typer.Option(help="Pixels (0).")] = None,
    crop_margin: Annotated[float | None, typer.Option(help="Context around crops.")] = None,
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images.")] = 50_000_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    masks_in_json: Annotated[bool, typer.Option(help="Include RLE masks in --json.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
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


@app.command()
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


@app.command()
def methods() -> None:
    """List the pipelines (--method values)."""
    from promptseg.pipelines import list_pipelines

    for name in list_pipelines():
        typer.echo(name)


@convert_app.command("sam")
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


def _run_train_clip(config) -> None:
    from promptseg.train.clip import train_clip

    _print_summary(train_clip(config))


def _run_train_sam(config) -> None:
    from promptseg.train.sam import train_sam

    _print_summary(train_sam(config))


def _run_train_autoencoder(config) -> None:
    from promptseg.train.autoencoder import train_autoencoder

    _print_summary(train_autoencoder(config))


def _register_train_commands() -> None:
    from promptseg._cli_options import command_from_config
    from promptseg.train.config import AutoencoderTrainConfig, ClipTrainConfig, SamTrainConfig

    train_app.command(
        "clip",
        help="Contrastive fine-tuning of a CLIP (transformers or OpenCLIP) on image-caption "
        "pairs (CSV, JSONL or COCO captions); --from-config starts from random weights, "
        "--image-backbone + --text-encoder builds one from parts (timm + transformers). The "
        "--out folder loads like any model: --clip OUT.",
    )(command_from_config(ClipTrainConfig, _run_train_clip, arguments=("data",)))
    train_app.command(
        "sam",
        help="Fine-tune a SAM-family model on COCO instance masks from box and point prompts "
        "(BCE + dice); the image encoder is frozen unless --train-image-encoder or "
        "--from-config. The --out folder loads like any model: --sam OUT.",
    )(command_from_config(SamTrainConfig, _run_train_sam, arguments=("data",)))
    train_app.command(
        "autoencoder",
        help="Pretrain a CLIP image backbone (any timm architecture) as an autoencoder on "
        "domain images (a folder, caption file or COCO JSON; MSE, Adam 1e-3, as [LVLM]). Start "
        "a CLIP from it: train clip --image-backbone B --text-encoder T --image-init OUT.",
    )(command_from_config(AutoencoderTrainConfig, _run_train_autoencoder, arguments=("data",)))


_register_train_commands()


@data_app.command("shapeworld")
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


@app.command()
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
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Segment a generated ShapeWorld scene with the zoo models, offline, and print each
    prompt's IoU against the exact truth."""
    from rich.console import Console
    from rich.table import Table

    from promptseg.demo import run_demo

    options = {"threshold": threshold} if threshold is not None else {}
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
