"""Folders of images and binary masks, and the published benchmarks laid out that way.

One sample per image: one prompt, its truth the image's mask file (any 8-bit value above 127,
or any non-zero value otherwise, is foreground: :func:`~promptseg.eval.datasets._common.read_mask`).
A mask is matched to its image by file stem: ``images/cat_1.jpg`` takes ``masks/cat_1.png``,
``masks/cat_1_mask.png``, ``masks/cat_1_gt.png`` or ``masks/cat_1-mask.png`` (the first that
exists; a ``.png`` before other endings). The prompt is ``prompt=`` when given, else the
preset's fixed prompt, else read from the file name by :func:`prompt_from_file_name`, as
[Talk2SAM] (``papers/talk2sam.txt``) Sec. 4.1 does for all three of its benchmarks.

Presets (``--dataset NAME`` of ``promptseg eval``), with the layouts they read under ``root``:

================  ===========================================  ===============================
preset            layout                                       splits (default first)
================  ===========================================  ===============================
``None``          ``[{split}/]images/`` + ``[{split}/]masks/``  ``all`` (``root`` itself), or
(``folder``)                                                   any subfolder of ``root``
``thinobject5k``  ThinObject-5K (Liew et al. 2021,             ``test``, ``train``
                  arXiv:2103.06217): ``images_{split}/`` +
                  ``masks_{split}/`` (SAM-HQ's copy), else
                  ``images/`` + ``masks/``, restricted to
                  ``list/{split}.txt`` when that file exists
``dis5k``         DIS5K (Qin et al. 2022, arXiv:2203.03041):   ``DIS-VD``, ``DIS-TE1`` ..
                  ``{split}/im/*.jpg`` + ``{split}/gt/*.png``  ``DIS-TE4``, ``DIS-TR``
``big``           BIG (Cheng et al. 2020, CascadePSP,          ``test``, ``val``
                  arXiv:2005.02551): ``{split}/{name}_im.jpg``
                  + ``{split}/{name}_gt.png`` (the
                  ``_seg.png`` inputs are ignored)
``chest-xray``    lungs, prompt ``"lungs"`` ([LVLM]             ``all``, or any subfolder
                  Sec. IV-A1): ``CXR_png/`` + ``masks/``
                  (Kaggle "Chest X-ray masks and labels"),
                  else ``CXR_png/`` + ``ManualMask/leftMask/``
                  and ``ManualMask/rightMask/`` (Montgomery;
                  truth = left | right), else ``images/`` +
                  ``masks/`` (or ``leftMask/`` + ``rightMask/``)
================  ===========================================  ===============================

An image without a mask is an error, except for ``chest-xray``, whose Kaggle release holds
X-rays without masks: there they are skipped (and counted in ``skipped``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promptseg.errors import InputError
from promptseg.eval.datasets._common import IMAGE_SUFFIXES, read_image, read_mask
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample, check_split

__all__ = ["PRESETS", "MaskFolder", "prompt_from_file_name"]

logger = logging.getLogger(__name__)

#: Endings tried, in order, after an image's stem to find its mask.
MASK_SUFFIXES = ("", "_mask", "_gt", "-mask")

# PASCAL VOC class names as BIG's file names spell them (CascadePSP's scripts/BIG), in words
_VOC_WORDS = {
    "aeroplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair",
    "cow": "cow", "diningtable": "dining table", "dog": "dog", "horse": "horse",
    "motorbike": "motorbike", "person": "person", "pottedplant": "potted plant",
    "sheep": "sheep", "sofa": "sofa", "train": "train", "tv": "tv", "tvmonitor": "tv monitor",
}


@dataclass(frozen=True)
class _Layout:
    images: str
    masks: tuple[str, ...]
    image_suffix: str = ""  # stripped from image stems (BIG's "_im"); images must end with it
    mask_suffixes: tuple[str, ...] = MASK_SUFFIXES


@dataclass(frozen=True)
class _Preset:
    splits: tuple[str, ...] | None  # None: "all" or any subfolder
    layouts: tuple[_Layout, ...]
    split_folders: bool = False  # the split is a subfolder of root holding the layout
    prompt: str | None = None
    skip_missing: bool = False
    source: str = ""


PRESETS: dict[str | None, _Preset] = {
    None: _Preset(None, (_Layout("images", ("masks",)),)),
    "thinobject5k": _Preset(
        ("test", "train"),
        (_Layout("images_{split}", ("masks_{split}",)), _Layout("images", ("masks",))),
        source="https://github.com/liewjunhao/thin-object-selection (ThinObject-5K)",
    ),
    "dis5k": _Preset(
        ("DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4", "DIS-TR"),
        (_Layout("im", ("gt",)),),
        split_folders=True,
        source="https://github.com/xuebinqin/DIS (DIS5K)",
    ),
    "big": _Preset(
        ("test", "val"),
        (_Layout(".", (".",), image_suffix="_im", mask_suffixes=("_gt",)),),
        split_folders=True,
        source="https://github.com/hkchengrex/CascadePSP/blob/master/docs/dataset.md (BIG)",
    ),
    "chest-xray": _Preset(
        None,
        (
            _Layout("CXR_png", ("masks",)),
            _Layout("CXR_png", ("ManualMask/leftMask", "ManualMask/rightMask")),
            _Layout("images", ("masks",)),
            _Layout("images", ("leftMask", "rightMask")),
        ),
        prompt="lungs",
        skip_missing=True,
        source="Kaggle 'Chest X-ray masks and labels' (N. Pandey); Montgomery County set",
    ),
}


def _words(tokens: Sequence[str]) -> str | None:
    lead = []
    for tok in tokens:
        if not tok or any(c.isdigit() for c in tok):
            break
        lead.append(tok.lower())
    return " ".join(lead) or None


def prompt_from_file_name(stem: str, preset: str | None = None) -> str | None:
    """The text prompt a benchmark's file name gives, or ``None`` when it gives none.

    Rules ([Talk2SAM] Sec. 4.1 reads its prompts from file names; the rules are ours):

    - ``dis5k``: names are ``{group id}#{group}#{class id}#{class}#{name}``; the prompt is
      the class, lower case, ``_`` read as a space (``1#Accessories#1#Bag#2339506821_83cf``
      gives ``"bag"``). Talk2SAM further drops by hand names that describe a scene or an
      action; that list is not published, so nothing is dropped here.
    - ``big``: the first ``_``/``-``-separated word that is a PASCAL VOC class name, in words
      (``diningtable`` gives ``"dining table"``), as CascadePSP's own scripts find the class
      in BIG's names; else the general rule.
    - ``chest-xray``: always ``"lungs"`` ([LVLM] Sec. IV-A1).
    - ``thinobject5k`` and the general rule: the leading words, split on ``_``, ``-`` and
      spaces, up to the first one holding a digit, lower case (``bicycle_12345`` gives
      ``"bicycle"``, ``tennis_racket_3`` gives ``"tennis racket"``).

    Args:
        stem: the image file name without its folder and ending (and without BIG's ``_im``).
        preset: a key of :data:`PRESETS`.

    Example:
        >>> prompt_from_file_name("bicycle_12345", "thinobject5k")
        'bicycle'
        >>> prompt_from_file_name("1#Accessories#1#Bag#2339506821_83cf9f1d22_o", "dis5k")
        'bag'
        >>> prompt_from_file_name("pottedplant_2031_im", "big")
        'potted plant'
    """
    if preset == "chest-xray":
        return "lungs"
    if preset == "dis5k" and stem.count("#") >= 3:
        word = stem.split("#")[3].replace("_", " ").strip().lower()
        return " ".join(word.split()) or None
    tokens = [t for t in re.split(r"[_\-\s]+", stem) if t]
    if preset == "big":
        if tokens and tokens[-1].lower() in ("im", "gt", "seg"):
            tokens = tokens[:-1]
        for tok in tokens:
            if tok.lower() in _VOC_WORDS:
                return _VOC_WORDS[tok.lower()]
    return _words(tokens)


def _listing(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files in ``folder``; a ``.png`` wins a repeated stem."""
    files = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: (p.suffix.lower() != ".png", p.name),
    )
    out: dict[str, Path] = {}
    for p in files:
        out.setdefault(p.stem, p)
    return out


class MaskFolder(EvalDataset):
    """Images with one binary mask each, one prompt per image (see the module docstring).

    Args:
        root: the dataset folder (layout per preset, module docstring).
        split: per preset; ``"all"`` for a plain folder means ``root`` itself.
        preset: ``None`` (plain folder), ``"thinobject5k"``, ``"dis5k"``, ``"big"`` or
            ``"chest-xray"``.
        images: image subfolder (relative to the split's folder), instead of the preset's.
        masks: mask subfolder, or several whose masks are united per image (left and right
            lung), instead of the preset's.
        prompt: one fixed prompt for every image, instead of the preset's or the file name's.

    Sample ids are ``"{name}/{split}/{stem}"``; ``info`` holds ``file_name`` and
    ``mask_files``. ``skipped`` lists images without a mask that were skipped.

    Raises:
        InputError: missing root, split or folders; unknown preset or split (listing the
            splits); an image without a mask (where not skipped) or whose name gives no
            prompt; two images of one stem.
    """

    task = "instance"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        preset: str | None = None,
        images: str | None = None,
        masks: str | Sequence[str] | None = None,
        prompt: str | None = None,
    ):
        if preset not in PRESETS:
            names = ", ".join(str(k) for k in PRESETS if k)
            raise InputError(f"unknown folder preset {preset!r}; choose None or {names}")
        self.preset = preset
        self.name = preset or "folder"
        spec = PRESETS[preset]
        self.source = spec.source
        if split is None:
            split = spec.splits[0] if spec.splits else "all"
        super().__init__(root, split)
        base = self._split_folder(spec, split)
        layouts = list(spec.layouts)
        if images is not None or masks is not None:
            first = layouts[0]
            mask_dirs = (masks,) if isinstance(masks, str) else tuple(masks or first.masks)
            layouts = [_Layout(images or first.images, mask_dirs, first.image_suffix,
                               first.mask_suffixes)]
        layout = self._pick(base, layouts, split)
        self.prompt = prompt if prompt is not None else spec.prompt
        self.image_dir = base / layout.images.format(split=split)
        self.mask_dirs = tuple(base / m.format(split=split) for m in layout.masks)
        self._layout = layout
        self.skipped: list[str] = []
        self._items = self._index(base, spec, split)

    def _split_folder(self, spec: _Preset, split: str) -> Path:
        if spec.splits is not None:
            check_split(split, spec.splits, self.name)
            if not spec.split_folders:
                return self.root
            folder = self.root / split
            if not folder.is_dir():
                found = [s for s in spec.splits if (self.root / s).is_dir()]
                raise InputError(
                    f"dataset {self.name!r}: split folder {str(folder)!r} not found; splits "
                    f"found under root: {', '.join(found) or 'none'}"
                )
            return folder
        if split == "all":
            return self.root
        folder = self.root / split
        if not folder.is_dir():
            subs = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            check_split(split, ["all", *subs], self.name)
        return folder

    def _pick(self, base: Path, layouts: list[_Layout], split: str) -> _Layout:
        for layout in layouts:
            dirs = [layout.images, *layout.masks]
            if all((base / d.format(split=split)).is_dir() for d in dirs):
                return layout
        tried = "; ".join(
            f"{lay.images.format(split=split)}/ + "
            + " + ".join(m.format(split=split) + "/" for m in lay.masks)
            for lay in layouts
        )
        raise InputError(
            f"dataset {self.name!r}: no image and mask folders under {str(base)!r}; "
            f"expected {tried}"
        )

    def _index(self, base: Path, spec: _Preset, split: str) -> list[tuple[str, Path, tuple]]:
        lay = self._layout
        found = _listing(self.image_dir)
        if lay.image_suffix:
            found = {s[: -len(lay.image_suffix)]: p for s, p in found.items()
                     if s.endswith(lay.image_suffix)}
        if self.preset == "thinobject5k" and lay.images == "images":
            listed = base / "list" / f"{split}.txt"
            if listed.is_file():
                keep = {Path(line.strip()).stem
                        for line in listed.read_text(encoding="utf-8").splitlines()
                        if line.strip()}
                found = {s: p for s, p in found.items() if s in keep}
        listings = [_listing(d) for d in self.mask_dirs]
        same_dir = self.image_dir.resolve() in {d.resolve() for d in self.mask_dirs}
        suffixes = [s for s in lay.mask_suffixes if s or not same_dir]
        items: list[tuple[str, Path, tuple[Path, ...]]] = []
        missing: list[str] = []
        for key in sorted(found):
            masks = []
            for listing in listings:
                hit = next((listing[key + s] for s in suffixes if key + s in listing), None)
                if hit is None:
                    break
                masks.append(hit)
            if len(masks) != len(listings):
                missing.append(found[key].name)
                continue
            items.append((key, found[key], tuple(masks)))
        if missing and not spec.skip_missing:
            dirs = ", ".join(str(d) for d in self.mask_dirs)
            raise InputError(
                f"dataset {self.name!r}: {len(missing)} image(s) have no mask in {dirs} "
                f"(first: {missing[0]!r}); masks are matched by stem, optionally + "
                f"{', '.join(repr(s) for s in suffixes if s)}"
            )
        if missing:
            logger.warning("dataset %r: skipped %d image(s) without a mask (first: %s)",
                           self.name, len(missing), missing[0])
            self.skipped = missing
        if not items:
            raise InputError(
                f"dataset {self.name!r}: no image with a mask in {str(self.image_dir)!r}"
            )
        for key, path, _ in items:
            if self.prompt is None and prompt_from_file_name(key, self.preset) is None:
                raise InputError(
                    f"dataset {self.name!r}: file name {path.name!r} gives no prompt; pass a "
                    "fixed prompt (prompt=...)"
                )
        return items

    def samples(self) -> Iterator[Sample]:
        for key, path, masks in self._items:
            text = self.prompt or prompt_from_file_name(key, self.preset) or ""
            sid = f"{self.name}/{self.split}/{key}"
            yield Sample(
                id=sid,
                image=path,
                prompts=(text,),
                loader=_FolderLoader(path, masks, sid),
                info={"file_name": path.name, "mask_files": [m.name for m in masks]},
            )

    def __len__(self) -> int:
        return len(self._items)

    def describe(self):
        return {**super().describe(), "preset": self.preset, "skipped": len(self.skipped)}


class _FolderLoader:
    def __init__(self, path: Path, masks: tuple[Path, ...], sid: str):
        self.path, self.masks, self.sid = path, masks, sid

    def __call__(self) -> LoadedSample:
        image = read_image(self.path, f"sample {self.sid}: image")
        parts = [read_mask(m, f"sample {self.sid}: mask") for m in self.masks]
        if len({p.shape for p in parts}) > 1:
            raise InputError(
                f"sample {self.sid}: mask files {[m.name for m in self.masks]} differ in size "
                f"{[p.shape for p in parts]}"
            )
        mask = np.logical_or.reduce(parts)
        return LoadedSample(image=image, masks=mask[None])
