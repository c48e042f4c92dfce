"""``promptseg eval``: pipelines, or a grid of model combinations, on one benchmark, resumable.

Every run (a pipeline with its options) answers the same samples in the same order. Each
answer is scored at once (:mod:`promptseg.eval.protocols`) and appended, one JSON line per
``(run, sample)``, to ``OUT/results.jsonl``, flushed and synced before the next sample starts.
A run killed at any moment (``kill -9`` included) loses at most the sample it was working
on: the next call with the same ``--out`` reads the lines back (a line cut off by the kill is
dropped), skips what is done and appends the rest. The report is built from the lines, in the
dataset's order, so it is the same as an uninterrupted run's.

Layout of ``OUT``: ``eval.json`` (the dataset this folder evaluates; a resumed call must name
the same), ``results.jsonl`` (the records), and the reports of :mod:`promptseg.eval.report`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import ConfigError, InputError
from promptseg.eval.protocols import (
    label_map_from_masks,
    prompt_masks,
    prompt_scores,
    score_instance,
    score_semantic,
)

__all__ = ["EVAL_FILE", "RESULTS_FILE", "EvalRun", "evaluate", "parse_set_options", "plan_runs",
           "read_records"]

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
EVAL_FILE = "eval.json"
_FORMAT = 1


@dataclass(frozen=True)
class EvalRun:
    """One row of the report: a pipeline and its options.

    Attributes:
        pipeline: a name from ``promptseg methods``.
        options: pipeline options (``--set``, ``--clip``, ``--sam``), JSON-ready.
        name: the row's label, unique in an evaluation (``"slip clip=A sam=X"``).
        instance: an already built pipeline to run instead of building ``pipeline`` with
            ``options`` (from the API: a pipeline object, or anything answering
            ``instance(image, prompts) -> Segmentation``); it is not saved with the results,
            so a resumed call must pass it again.
    """

    pipeline: str
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    instance: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.name:
            parts = [self.pipeline] + [f"{k}={_short(v)}" for k, v in self.options.items()]
            object.__setattr__(self, "name", " ".join(parts))


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else "..." + text[-37:]


def parse_set_options(items: Sequence[str], flag: str = "--set") -> dict[str, Any]:
    """``["threshold=0.3", "visual_prompt=crop"]`` -> ``{"threshold": 0.3, ...}``: each value
    read as JSON when it parses (numbers, true/false, null, lists), else as text."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key.strip() or not sep:
            raise ConfigError(f"{flag} wants key=value, got {item!r}")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = value
    return options


def plan_runs(pipelines: Sequence[str], sets: dict[str, Any] | None = None,
              clips: Sequence[str] = (), sams: Sequence[str] = ()) -> list[EvalRun]:
    """The grid: every pipeline x every CLIP x every SAM, each with the shared ``sets``.

    An empty ``clips`` / ``sams`` leaves the pipeline's default model (and the option out of
    the row's name).
    """
    if not pipelines:
        raise ConfigError("name at least one --pipeline (see `promptseg methods`)")
    runs = []
    for pipeline in pipelines:
        for clip in clips or (None,):
            for sam in sams or (None,):
                options = dict(sets or {})
                if clip is not None:
                    options["clip"] = clip
                if sam is not None:
                    options["sam"] = sam
                runs.append(EvalRun(pipeline, options))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"the grid names a combination twice: {names}")
    return runs


# ---------------------------------------------------------------------- the results file
def read_records(out: Path, repair: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
    """The complete lines of ``out/results.jsonl`` as ``{(run, sample): record}``.

    A last line without its newline is what a killed run leaves; with ``repair`` it is cut
    off the file (so appending starts on a fresh line), otherwise ignored.
    """
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        return {}
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        logger.warning("eval: dropping an incomplete last line of %s (an interrupted run)", path)
        if repair:
            with open(path, "r+b") as fh:
                fh.truncate(complete)
    records = {}
    for number, line in enumerate(data[:complete].splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[(record["run"], record["sample"])] = record
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}, line {number}: not a promptseg eval record ({exc}); "
                             "use a fresh --out") from exc
    return records


def _append(fh, record: dict[str, Any]) -> dict[str, Any]:
    """Write one record as a line, synced to disk; returns it as it reads back."""
    record = to_jsonable(record)
    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
    return record


def _check_out(out: Path, described: dict[str, Any]) -> None:
    """Write ``eval.json``, or check that an existing one describes the same dataset."""
    path = out / EVAL_FILE
    mine = {"format": _FORMAT, "dataset": described}
    if path.is_file():
        try:
            theirs = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not readable ({exc}); use a fresh --out") from exc
        if theirs.get("dataset") != described:
            raise InputError(
                f"{out} holds an evaluation of another dataset ({theirs.get('dataset')}); "
                "use another --out, or the same --dataset, --root and --split to resume it"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(mine, indent=2) + "\n")


# ---------------------------------------------------------------------- answering samples
def _peak_memory_mb(device) -> float:
    """Peak memory of this sample on a CUDA device; elsewhere the process's peak RSS so far."""
    import torch

    if device is not None and getattr(device, "type", "") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _pipeline_device(pipe):
    for name in ("sam", "clip", "model"):
        device = getattr(getattr(pipe, name, None), "device", None)
        if device is not None:
            return device
    return None


def answer_sample(pipe, dataset, sample, loaded) -> dict[str, Any]:
    """Run ``pipe`` on one loaded sample and score it by the dataset's task."""
    import torch

    device = _pipeline_device(pipe)
    if device is not None and getattr(device, "type", "") == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    seg = pipe(loaded.image, list(sample.prompts))
    seconds = time.perf_counter() - start
    shape = loaded.image.shape[:2]
    q = len(sample.prompts)
    masks, scores = prompt_masks(seg, q, shape), prompt_scores(seg, q)
    record: dict[str, Any] = {"seconds": seconds, "peak_memory_mb": _peak_memory_mb(device)}
    if dataset.task == "semantic":
        c = len(dataset.classes)
        fill = 0 if dataset.background == "class" else c  # c: "no class predicted"
        label = label_map_from_masks(masks, scores, list(range(q)), fill)
        record.update(score_semantic(label, loaded.label_map, c, dataset.ignore_index))
        return record
    prompts = score_instance(masks, loaded.masks, sample.prompts, sample.tags, scores,
                             score_maps=seg.heatmaps, groups=sample.groups)
    from promptseg.convert.coco import rle_encode

    for rec, rle in zip(prompts, rle_encode(masks), strict=True):
        rec["rle"] = rle  # the prediction, for the gallery
    record["prompts"] = prompts
    return record


def _build(run: EvalRun, task: str, device: str, dtype: str):
    from promptseg.pipelines import get_pipeline_class, load_pipeline

    if run.instance is not None:
        return run.instance
    cls = get_pipeline_class(run.pipeline)
    # how the pipeline answers this kind of benchmark (e.g. slip names every segment for a
    # semantic one); the run's own options win
    options = {**getattr(cls, "task_options", {}).get(task, {}), **run.options}
    return load_pipeline(run.pipeline, device=device, dtype=dtype, **options)


def _pipeline_meta(pipe) -> dict[str, Any]:
    from promptseg.pipelines.base import config_to_dict

    models = {name: getattr(getattr(pipe, name), "model_id", None)
              for name in ("clip", "sam") if hasattr(pipe, name)}
    config = getattr(pipe, "config", None)
    return {"config": config_to_dict(config) if config is not None else {}, "models": models,
            "model_settings": getattr(pipe, "model_settings", {})}


def evaluate(
    dataset,
    runs: Sequence[EvalRun],
    out: str | Path,
    limit: int | None = None,
    device: str = "auto",
    dtype: str = "fp32",
    progress: bool = True,
) -> dict[str, Any]:
    """Answer and score ``dataset`` with every run, resuming what ``out`` already holds.

    Args:
        dataset: an :class:`~promptseg.eval.datasets.EvalDataset`.
        runs: from :func:`plan_runs`.
        out: the results folder (created; reused to resume).
        limit: only the first ``limit`` samples.
        device, dtype: where and how the pipelines run.
        progress: a progress bar over samples x runs.

    Returns:
        The report (see :func:`promptseg.eval.report.build_report`), also written to ``out``.
    """
    from rich.progress import Progress

    from promptseg.eval.report import build_report, write_reports

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    out = Path(out)
    _check_out(out, dataset.describe())
    done = read_records(out, repair=True)
    samples = []
    for sample in dataset.samples():
        samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise InputError(f"{dataset!r} has no samples")
    todo = sum((run.name, s.id) not in done for run in runs for s in samples)
    if todo < len(runs) * len(samples):
        logger.warning("eval: resuming %s, %d of %d answers already there", out,
                       len(runs) * len(samples) - todo, len(runs) * len(samples))
    pipes: dict[str, Any] = {}
    metas: dict[str, Any] = {}
    # one image's SAM work (embedding, proposals), reused by every run of the grid that
    # differs only after it (another CLIP, visual prompt or selection option)
    shared: dict = {}
    with open(out / RESULTS_FILE, "a", encoding="utf-8") as fh, \
            Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {dataset.name}", total=todo)
        for sample in samples:
            missing = [run for run in runs if (run.name, sample.id) not in done]
            if not missing:
                continue
            loaded = sample.load()
            for run in missing:
                if run.name not in pipes:
                    pipes[run.name] = _build(run, dataset.task, device, dtype)
                    metas[run.name] = _pipeline_meta(pipes[run.name])
                    pipes[run.name].stage_cache = shared
                record = answer_sample(pipes[run.name], dataset, sample, loaded)
                record = {"run": run.name, "sample": sample.id, **record,
                          "info": sample.info}
                done[(run.name, sample.id)] = _append(fh, record)
                bar.advance(task)
            shared.clear()
    _write_metas(out, metas)
    report = build_report(dataset, runs, samples, done, _read_metas(out))
    write_reports(out, report, dataset, samples, done)
    return report


_META_FILE = "pipelines.json"


def _read_metas(out: Path) -> dict[str, Any]:
    path = out / _META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_metas(out: Path, metas: dict[str, Any]) -> None:
    """Keep each run's resolved config and model ids (a resumed call may not build it)."""
    if not metas:
        return
    merged = {**_read_metas(out), **to_jsonable(metas)}
    with atomic_write(out / _META_FILE) as tmp:
        tmp.write_text(json.dumps(merged, indent=2) + "\n")

