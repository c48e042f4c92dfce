"""What every promptseg training command shares: the run folder, resume, the metrics log, the
optimiser and learning-rate schedule, progress bars and seeding.

A run folder ``OUT`` is, at every moment, a model folder the registry loads (the best
weights so far, saved by the command's ``save_model``) plus the files a run needs:

- ``train_config.json``: the command's configuration, written with the first epoch's record
  (a run that fails before it, on a bad model id or bad data, leaves no folder behind);
- ``metrics.jsonl``: one JSON object per line, one per epoch (``epoch``, ``train_loss``,
  ``val_loss``, ``lr``, ``seconds``, ...), appended as the run goes;
- ``train_state.pt``: the last epoch's full state (weights, optimiser, scheduler, epoch,
  best validation loss, random generator states), written atomically after every epoch, so
  a run stopped at any point restarts with ``resume=True`` from the last finished epoch.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from promptseg._io import atomic_write, to_jsonable
from promptseg.errors import ConfigError, InputError, PromptsegError

__all__ = [
    "SCHEDULERS",
    "LrSchedule",
    "TrainRun",
    "make_optimizer",
    "optimizer_step",
    "progress_bar",
    "quiet_library_bars",
    "seed_everything",
    "count_parameters",
    "holdout_split",
    "train_epoch",
    "DecodedImages",
]

SCHEDULERS = ("plateau", "cosine", "constant")
STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "train_config.json"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def holdout_split(
    n: int, fraction: float, seed: int, what: str = "image", min_train: int = 1
) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)`` of ``n`` items, ``round(fraction * n)`` of them drawn (seeded)
    for validation; both lists sorted. An error says what to change when the split would
    leave no validation item or fewer than ``min_train`` to train on."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < min_train:
        raise InputError(
            f"cannot hold out {fraction:.0%} of {n} {what}(s) for validation and keep "
            f"{min_train} to train on; add data, pass --val-data where the command has it, "
            "or change --val-fraction"
        )
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def make_optimizer(
    params: Iterable[torch.nn.Parameter], name: str = "adamw", lr: float = 1e-4,
    weight_decay: float = 0.01,
) -> torch.optim.Optimizer:
    """AdamW (the SLIP paper's optimiser, "Training" item 7) or Adam (the medical paper's
    Table I), over the parameters that require gradients."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    if not lr > 0:
        raise ConfigError(f"learning rate must be > 0, got {lr}")
    name = name.lower()
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}: use 'adamw' or 'adam'")


def optimizer_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: LrSchedule | None = None,
    epoch: int | None = None,
) -> float:
    """One update: refuse a non-finite loss (with advice), back-propagate, step the optimiser
    and the per-batch schedule. Returns the loss as a float."""
    if not torch.isfinite(loss):
        where = f" at epoch {epoch}" if epoch is not None else ""
        raise PromptsegError(f"the loss became {loss.item()}{where}; lower --lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step_batch()
    return loss.item()


class LrSchedule:
    """One object for the schedules the papers use, stepped the same way by every command.

    - ``plateau``: ``ReduceLROnPlateau`` on the validation loss, stepped once per epoch; the
      SLIP paper ("Training" item 7) uses factor 0.9 and patience 5.
    - ``cosine``: cosine decay from the initial rate to 0 over all steps, stepped per batch,
      after ``warmup_steps`` of linear warm-up.
    - ``constant``: the rate never changes.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, name: str = "plateau", *, total_steps: int = 1,
        warmup_steps: int = 0, factor: float = 0.9, patience: int = 5,
    ) -> None:
        if name not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULERS)}")
        self.name = name
        self.optimizer = optimizer
        self.plateau = None
        self.lambda_lr = None
        if name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=factor, patience=patience
            )
        elif name == "cosine":
            total = max(1, int(total_steps))
            warm = max(0, int(warmup_steps))

            def scale(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                progress = min(1.0, (step - warm) / max(1, total - warm))
                return 0.5 * (1.0 + math.cos(math.pi * progress))

            self.lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, scale)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step_batch(self) -> None:
        if self.lambda_lr is not None:
            self.lambda_lr.step()

    def step_epoch(self, val_loss: float | None) -> None:
        if self.plateau is not None and val_loss is not None and math.isfinite(val_loss):
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        inner = self.plateau or self.lambda_lr
        return {"name": self.name, "inner": inner.state_dict() if inner is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved schedule. A cosine schedule then sets the rate of the loaded step
        under the current total (which changes when a run is resumed with more epochs)."""
        inner = self.plateau or self.lambda_lr
        if inner is not None and state.get("inner") is not None:
            inner.load_state_dict(state["inner"])
        if self.lambda_lr is not None:
            lam = self.lambda_lr
            for group, base, fn in zip(self.optimizer.param_groups, lam.base_lrs,
                                       lam.lr_lambdas, strict=True):
                group["lr"] = base * fn(lam.last_epoch)


def train_epoch(
    bar: Any, epoch: int, epochs: int, batches: list[Any],
    loss_of: Callable[[Any], torch.Tensor], optimizer: torch.optim.Optimizer,
    schedule: LrSchedule | None = None,
) -> float:
    """One pass over ``batches``: ``loss_of(batch)`` then :func:`optimizer_step` for each,
    with a bar row ``epoch i/n`` showing the running mean loss. Returns that mean."""
    task = bar.add_task(f"epoch {epoch}/{epochs}", total=len(batches), loss="-")
    losses: list[float] = []
    for batch in batches:
        losses.append(optimizer_step(loss_of(batch), optimizer, schedule, epoch))
        bar.update(task, advance=1, loss=f"{np.mean(losses):.4f}")
    return float(np.mean(losses)) if losses else math.nan


class DecodedImages:
    """Images decoded once (RGB uint8) and kept in memory up to ``budget_bytes``; small domain
    datasets fit, larger ones are decoded again when needed.

    Args:
        budget_bytes: memory kept for decoded images.
        size: when given, images are resized (bilinear) to ``size`` x ``size`` first.
    """

    def __init__(self, budget_bytes: int = 2 << 30, size: int | None = None) -> None:
        self.budget = int(budget_bytes)
        self.size = size
        self.used = 0
        self.images: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        """``(H, W, 3)`` uint8 (``(size, size, 3)`` with ``size``)."""
        from promptseg.image import load_image

        image = self.images.get(path)
        if image is None:
            image = load_image(path)
            if self.size is not None:
                from PIL import Image

                pil = Image.fromarray(image).resize((self.size, self.size),
                                                    Image.Resampling.BILINEAR)
                image = np.asarray(pil, dtype=np.uint8)
            if self.used + image.nbytes <= self.budget:
                self.images[path] = image
                self.used += image.nbytes
        return image


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A ``rich`` progress display on stderr (or a silent stand-in when ``enabled`` is off).

    Use ``task = bar.add_task("epoch 1/10", total=n)`` and ``bar.update(task, advance=1,
    loss=...)``; the ``loss`` field shows beside the bar.
    """
    if not enabled:
        yield _SilentProgress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


@contextmanager
def quiet_library_bars() -> Iterator[None]:
    """Hide transformers' own tqdm bars ("Loading weights", "Writing model shards") while a
    training command shows its own progress; restores the previous setting."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class _SilentProgress:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


class TrainRun:
    """The output folder of one training run: configuration, metrics log and resume state.

    Args:
        out: the run folder, created by the first :meth:`log` or :meth:`save_state`.
        config: the command's configuration, stored as ``train_config.json``.
        resume: continue from ``train_state.pt`` when it exists. Without it, a folder that
            already holds a run is an error rather than silently overwritten.
    """

    def __init__(self, out: str | Path, config: dict[str, Any], resume: bool = False) -> None:
        self.out = Path(out)
        self.resume = bool(resume)
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file; give a folder for the trained model")
        has_run = (self.out / STATE_FILE).is_file() or (self.out / METRICS_FILE).is_file()
        if has_run and not resume:
            raise InputError(
                f"{self.out} already holds a training run; pass --resume to continue it, or "
                "choose another --out folder"
            )
        self.config = to_jsonable(config)
        self._written = False
        self.started = time.perf_counter()

    def _write_config(self) -> None:
        # deferred to the first record, so that a run failing on its inputs (an unknown model,
        # unreadable data) leaves no half-made folder behind
        if self._written:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.out / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(self.config, indent=2) + "\n")
        self._written = True

    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def load_state(self) -> dict[str, Any] | None:
        """The saved state of the last finished epoch, or ``None`` (fresh run)."""
        if not (self.resume and self.state_path.is_file()):
            return None
        try:
            return torch.load(self.state_path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(f"cannot resume: {self.state_path} is unreadable ({exc})") from exc

    def save_state(self, state: dict[str, Any]) -> None:
        """Write the resume state atomically (weights, optimiser, scheduler, epoch, ...)."""
        self._write_config()
        state = dict(state)
        state["rng"] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        }
        with atomic_write(self.state_path) as tmp:
            torch.save(state, tmp)

    def restore(
        self, state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        schedule: LrSchedule | None = None,
    ) -> tuple[int, Any]:
        """Load a saved ``state`` (from :meth:`load_state`) into the model, optimiser, schedule
        and random generators; returns ``(first epoch to run, best so far)``."""
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        self.restore_rng(state)
        return state["epoch"] + 1, state["best"]

    @staticmethod
    def restore_rng(state: dict[str, Any]) -> None:
        rng = state.get("rng")
        if rng:
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])

    def log(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl``."""
        self._write_config()
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(to_jsonable(record)) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        """Every record logged so far (all epochs, across resumes)."""
        path = self.out / METRICS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
