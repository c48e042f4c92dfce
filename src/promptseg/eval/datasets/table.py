"""Any image-mask-prompt triples listed in a table, as ``promptseg eval --dataset table``.

The table is a CSV file (a header row), a JSON-lines file (an object per line) or a JSON list
of objects, one row per sample, with columns:

- ``image``: image path;
- ``mask``: path of the truth mask (see :func:`~promptseg.eval.datasets._common.read_mask`
  for what counts as foreground); empty (or JSON ``null``) for a prompt that names nothing in
  the image, whose truth is then an empty mask (a negative);
- ``prompt``: the text prompt;
- optional ``tag`` (a group the row is reported in), ``id`` (the sample id; default
  ``row-{n}``, ``n`` counting data rows from 1) and ``split`` (then ``split=`` selects rows).

Relative paths are relative to the table's folder. Each row is one sample with one prompt,
even when several rows share an image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from promptseg.errors import InputError
from promptseg.eval.datasets._common import read_image, read_mask, read_rows
from promptseg.eval.datasets.base import EvalDataset, LoadedSample, Sample, check_split

__all__ = ["TABLE_NAMES", "TableDataset"]

#: File names looked for when ``root`` is a folder, in order.
TABLE_NAMES = ("samples.csv", "samples.jsonl", "samples.json")


class TableDataset(EvalDataset):
    """Samples listed in a table file (module docstring).

    Args:
        root: the table file, or a folder holding one of :data:`TABLE_NAMES`.
        split: ``"all"`` (default: every row), or a value of the table's ``split`` column.

    Sample ids are the ``id`` column or ``"row-{n}"``; ``info`` holds ``row``, ``image`` and
    ``mask`` as written in the table.

    Raises:
        InputError: no table; a row without ``image`` or ``prompt``; repeated ids; an
            unknown split (listing the table's); a missing image or mask file (named when the
            sample is loaded); a mask of another size than its image.
    """

    name = "table"
    task = "instance"
    source = "a CSV / JSON-lines table of image, mask, prompt"

    def __init__(self, root: str | Path, split: str = "all"):
        path = Path(root).expanduser()
        if path.is_file():
            table, folder = path, path.parent
        else:
            table, folder = None, path
        super().__init__(folder, split)
        if table is None:
            table = next((self.root / n for n in TABLE_NAMES if (self.root / n).is_file()), None)
            if table is None:
                raise InputError(
                    f"dataset 'table': no {', '.join(TABLE_NAMES)} in {str(self.root)!r}; pass "
                    "the table file itself or put one of these in the folder"
                )
        self.table = table
        where = f"dataset 'table': {table}"
        rows = read_rows(table, where)
        splits = ["all", *sorted({str(r.get("split")) for r in rows if r.get("split")})]
        check_split(split, splits, self.name)
        self._rows: list[tuple[str, int, dict[str, Any]]] = []
        ids: set[str] = set()
        for n, row in enumerate(rows, 1):
            for col in ("image", "prompt"):
                if not str(row.get(col) or "").strip():
                    raise InputError(f"{where}: row {n} has no {col!r} (columns: image, mask, "
                                     "prompt, optional tag, id, split)")
            if "mask" not in row:
                raise InputError(f"{where}: row {n} has no 'mask' column (leave it empty for "
                                 "a negative)")
            if split != "all" and str(row.get("split") or "") != split:
                continue
            sid = str(row.get("id") or "").strip() or f"row-{n}"
            if sid in ids:
                raise InputError(f"{where}: row {n} repeats id {sid!r}")
            ids.add(sid)
            self._rows.append((sid, n, row))

    def _path(self, value: Any) -> Path:
        path = Path(str(value).strip()).expanduser()
        return path if path.is_absolute() else self.table.parent / path

    def samples(self) -> Iterator[Sample]:
        for sid, n, row in self._rows:
            image = self._path(row["image"])
            mask_value = str(row.get("mask") or "").strip()
            mask = self._path(mask_value) if mask_value else None
            yield Sample(
                id=sid,
                image=image,
                prompts=(str(row["prompt"]).strip(),),
                tags=(str(row.get("tag") or "").strip(),),
                loader=_RowLoader(image, mask, sid),
                info={"row": n, "image": str(row["image"]), "mask": mask_value},
            )

    def __len__(self) -> int:
        return len(self._rows)

    def describe(self):
        return {**super().describe(), "table": str(self.table)}


class _RowLoader:
    def __init__(self, image: Path, mask: Path | None, sid: str):
        self.image, self.mask, self.sid = image, mask, sid

    def __call__(self) -> LoadedSample:
        image = read_image(self.image, f"sample {self.sid}: image")
        if self.mask is None:
            truth = np.zeros(image.shape[:2], dtype=bool)
        else:
            truth = read_mask(self.mask, f"sample {self.sid}: mask")
        return LoadedSample(image=image, masks=truth[None])
