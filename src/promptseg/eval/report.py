"""The reports of ``promptseg eval``, built from the per-sample records alone.

Written into the results folder (each atomically, so an interrupted write leaves the
previous report):

- ``report.md``: one row per run (pipeline or model combination), one column per metric or
  level; the dataset, the package version and each run's config and model ids in its header;
- ``results.json``: the same, machine-readable, with the threshold curves;
- ``samples.csv``: one row per scored prompt (``semantic``: per image);
- ``gallery/<run>.png``: the best and worst answers of each run (instance tasks): the image
  with the prompt, the prediction and the truth side by side.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from promptseg._io import atomic_write, to_jsonable
from promptseg.eval.protocols import (
    summarize_binary,
    summarize_cost,
    summarize_instance,
    summarize_semantic,
)

__all__ = ["build_report", "write_reports", "render_markdown", "GALLERY_CASES"]

#: best and worst answers shown per run in its gallery
GALLERY_CASES = 3


def _records(run, samples, done) -> list[dict[str, Any]]:
    """The run's records in the dataset's order (the order of the report, resumed or not)."""
    return [done[(run.name, s.id)] for s in samples if (run.name, s.id) in done]


def build_report(dataset, runs, samples, done, metas) -> dict[str, Any]:
    """The report dict (what ``results.json`` holds) from the records of every run."""
    from promptseg import __version__

    rows = []
    for run in runs:
        records = _records(run, samples, done)
        if dataset.task == "semantic":
            summary = summarize_semantic(records, dataset.classes)
        else:
            prompts = [p for r in records for p in r["prompts"]]
            summary = summarize_instance(prompts)
            binary = summarize_binary(prompts)
            if binary:
                summary["binary"] = binary
        rows.append({
            "name": run.name, "pipeline": run.pipeline, "options": run.options,
            **metas.get(run.name, {}), "samples": len(records), "summary": summary,
            "cost": summarize_cost(records),
        })
    return to_jsonable({
        "promptseg": __version__,
        "date": datetime.date.today().isoformat(),
        "dataset": dataset.describe(),
        "samples": len(samples),
        "runs": rows,
    })


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _columns(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(header, summary -> value)`` for the report's task."""
    runs = report["runs"]
    if report["dataset"]["task"] == "semantic":
        return [("mIoU", lambda r: r["summary"]["miou"]),
                ("pixel acc.", lambda r: r["summary"]["pixel_accuracy"]),
                ("images", lambda r: r["summary"]["images"])]
    tags = sorted({t for r in runs for t in r["summary"]["per_tag"]})
    columns = [("mIoU", lambda r: r["summary"]["miou"]),
               ("oIoU", lambda r: r["summary"]["oiou"]),
               ("mBIoU", lambda r: r["summary"]["mbiou"])]
    columns += [(f"mIoU {t}", lambda r, t=t: r["summary"]["per_tag"].get(t)) for t in tags]
    groupings = sorted({(name, g) for r in runs
                        for name, groups in r["summary"].get("per_group", {}).items()
                        for g in groups})
    columns += [(f"mIoU {g}", lambda r, n=name, g=g: r["summary"]["per_group"].get(n, {}).get(g))
                for name, g in groupings]
    if any(r["summary"]["negatives"] for r in runs):
        columns.append(("negatives empty", lambda r: r["summary"]["negatives_empty"]))
    if any("binary" in r["summary"] for r in runs):
        for key, header in (("t", "best t"), ("miou", "mIoU@t"), ("iou_fg", "IoU_FG"),
                            ("iou_bin", "IoU_BIN"), ("ap", "pixel AP")):
            columns.append((header, lambda r, k=key: r["summary"].get("binary", {}).get(k)))
    columns.append(("prompts", lambda r: r["summary"]["prompts"]))
    return columns


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: the header, the table, and each run's config."""
    data = report["dataset"]
    lines = [
        f"# promptseg eval: {data['name']} ({data['split']})",
        "",
        f"- dataset: `{data['name']}`, split `{data['split']}`, task {data['task']}, "
        f"{report['samples']} samples, root `{data['root']}`",
        f"- promptseg {report['promptseg']}, {report['date']}",
    ]
    if data.get("source"):
        lines.append(f"- published at: {data['source']}")
    columns = _columns(report) + [
        ("s / sample", lambda r: r["cost"]["seconds_mean"]),
        ("peak MB", lambda r: r["cost"]["peak_memory_mb"]),
    ]
    lines += ["", "| run | " + " | ".join(h for h, _ in columns) + " |",
              "| --- |" + " --- |" * len(columns)]
    for run in report["runs"]:
        values = [_fmt(get(run), 1 if header == "peak MB" else 3) for header, get in columns]
        lines.append(f"| {run['name']} | " + " | ".join(values) + " |")
    lines += ["", "## Runs", ""]
    for run in report["runs"]:
        models = ", ".join(f"{k} `{v}`" for k, v in (run.get("models") or {}).items() if v)
        lines.append(f"- **{run['name']}**: pipeline `{run['pipeline']}`"
                     + (f", {models}" if models else "")
                     + f", {run['samples']} samples answered")
        applied = (run.get("model_settings") or {}).get("applied")
        if applied:
            lines.append(f"  - settings from the model folders: `{json.dumps(applied)}`")
        if run.get("config"):
            lines.append(f"  - config: `{json.dumps(run['config'], separators=(',', ':'))}`")
    return "\n".join(lines) + "\n"


def _csv_text(report, samples, done, runs) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    semantic = report["dataset"]["task"] == "semantic"
    if semantic:
        writer.writerow(["run", "sample", "seconds", "peak_memory_mb"])
    else:
        groupings = sorted({name for s in samples for name in s.groups})
        writer.writerow(["run", "sample", "prompt", "tag", *groupings, "negative", "empty",
                         "iou", "biou", "score", "seconds"])
    for run in runs:
        for record in _records(run, samples, done):
            if semantic:
                writer.writerow([run.name, record["sample"], _fmt(record["seconds"], 4),
                                 _fmt(record["peak_memory_mb"], 1)])
                continue
            for p in record["prompts"]:
                groups = p.get("groups") or {}
                writer.writerow([run.name, record["sample"], p["prompt"], p["tag"],
                                 *(groups.get(name, "") for name in groupings),
                                 int(p["negative"]), int(p["empty"]), _fmt(p["iou"], 4),
                                 _fmt(p["biou"], 4), _fmt(p["score"], 4),
                                 _fmt(record["seconds"], 4)])
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "run"


def write_reports(out: Path, report, dataset, samples, done) -> dict[str, Path]:
    """Write ``report.md``, ``results.json``, ``samples.csv`` and the galleries into ``out``."""
    from promptseg.eval.runner import EvalRun

    runs = [EvalRun(r["pipeline"], r["options"], r["name"]) for r in report["runs"]]
    paths = {"report": out / "report.md", "results": out / "results.json",
             "samples": out / "samples.csv"}
    texts = {"report": render_markdown(report), "results": json.dumps(report, indent=2) + "\n",
             "samples": _csv_text(report, samples, done, runs)}
    for key, path in paths.items():
        with atomic_write(path) as tmp:
            tmp.write_text(texts[key], encoding="utf-8")
    if dataset.task != "semantic":
        for run in runs:
            path = out / "gallery" / f"{_slug(run.name)}.png"
            if draw_gallery(run, samples, done, path):
                paths[f"gallery {run.name}"] = path
    return paths


# ---------------------------------------------------------------------- gallery
_PANEL = 192  # panel height in pixels


def _cases(run, samples, done, k: int) -> list[tuple[Any, int, dict[str, Any]]]:
    """The ``k`` best and ``k`` worst answered prompts naming something: (sample, q, rec)."""
    by_id = {s.id: s for s in samples}
    scored = []
    for record in _records(run, samples, done):
        for q, p in enumerate(record["prompts"]):
            if not p["negative"] and "rle" in p:
                scored.append((p["iou"], by_id[record["sample"]], q, p))
    scored.sort(key=lambda item: -item[0])
    picked = scored[:k] + scored[max(k, len(scored) - k):]
    return [(s, q, p) for _, s, q, p in picked]


def _tint(image: np.ndarray, mask: np.ndarray, color) -> np.ndarray:
    out = image.astype(np.float32).copy()
    out[mask] = 0.45 * out[mask] + 0.55 * np.asarray(color, np.float32)
    return out.astype(np.uint8)


def draw_gallery(run, samples, done, path: Path, k: int = GALLERY_CASES) -> bool:
    """One PNG: per case a row of (image + prompt, prediction in red, truth in green).

    Returns False (and writes nothing) when the run has no answered positive prompt.
    """
    from PIL import Image, ImageDraw

    from promptseg.convert.coco import rle_decode

    cases = _cases(run, samples, done, k)
    if not cases:
        return False
    rows = []
    for sample, q, record in cases:
        loaded = sample.load()
        image = loaded.image
        pred = rle_decode([record["rle"]])[0]
        truth = loaded.masks[q]
        panels = [image, _tint(image, pred, (230, 40, 40)), _tint(image, truth, (40, 200, 60))]
        scale = _PANEL / image.shape[0]
        size = (max(1, round(image.shape[1] * scale)), _PANEL)
        row = Image.new("RGB", (3 * size[0], _PANEL + 18), "white")
        for i, panel in enumerate(panels):
            row.paste(Image.fromarray(panel).resize(size), (i * size[0], 18))
        text = f"IoU {record['iou']:.2f}  {record['prompt'][:60]}  ({sample.id[-40:]})"
        ImageDraw.Draw(row).text((4, 3), text.encode("ascii", "replace").decode(), fill="black")
        rows.append(row)
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    with atomic_write(path) as tmp:
        sheet.save(tmp)
    return True

