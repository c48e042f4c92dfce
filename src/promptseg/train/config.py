"""Settings of the training commands, as dataclasses: the single source of their defaults,
their documentation and the command-line flags (``promptseg train ...`` builds one flag per
field). Kept free of torch so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TARGETS", "TRAIN_PARTS", "ClipTrainConfig"]

TRAIN_PARTS = ("projection", "image", "text", "all")
TARGETS = ("captions", "clip")


@dataclass
class ClipTrainConfig:
    """Settings of one ``train clip`` run (every field is a ``--flag`` of the command).

    Attributes:
        data: image-caption pairs: a CSV with a header (``image,caption``; also accepted:
            ``filepath``/``file_name`` and ``text``/``title``), a JSONL file of
            ``{"image": ..., "caption": ...}`` objects, or a COCO captions JSON
            (``images`` + ``annotations`` with ``caption``). Image paths are relative to
            ``image_root`` or else to the data file's folder.
        out: the run folder (the trained model, ``metrics.jsonl``, resume state).
        model: a CLIP id or folder the registry loads; exactly one of ``model`` and
            ``from_config``.
        from_config: a JSON configuration to build a CLIP with random weights: a transformers
            ``CLIPConfig`` (``model_type: "clip"``) or an OpenCLIP model configuration
            (``embed_dim``, ``vision_cfg``, ``text_cfg``; optionally wrapped as
            ``{"model_cfg": ..., "preprocess_cfg": ...}``).
        tokenizer: for ``from_config`` with transformers: a folder holding a tokenizer. By
            default the OpenAI CLIP BPE, cut to the configuration's ``vocab_size`` (a small
            vocabulary keeps the most frequent merges, so unseen words still tokenize).
        val_data: validation pairs in any of the ``data`` formats; by default
            ``val_fraction`` of ``data`` is held out (by image, with ``seed``).
        val_fraction: share held out when ``val_data`` is not given ([SLIP]: 80/20).
        image_root: folder image paths are relative to.
        train_parts: what trains, a comma list of ``projection`` (projection heads and the
            logit scale), ``image`` (image tower), ``text`` (text tower), or ``all``. The
            projection heads always train. [LVLM] Table II: ``projection`` (setting 1),
            ``image`` (2), ``image,text`` = ``all`` (3).
        epochs: passes over the training pairs ([LVLM] Table I: 10).
        batch_size: pairs per step; the contrastive loss sees the others in the batch as
            negatives, so it sets the task's difficulty ([LVLM] Table I: 128).
        lr: peak learning rate ([SLIP] Table 1: 1e-4 best of its grid).
        weight_decay: AdamW weight decay.
        optimizer: ``adamw`` ([SLIP] item 7) or ``adam`` ([LVLM] Table I).
        scheduler: ``plateau`` ([SLIP] item 7: factor 0.9, patience 5), ``cosine`` or
            ``constant``.
        plateau_factor: learning-rate factor of the plateau schedule.
        plateau_patience: epochs without improvement before the plateau schedule reduces.
        warmup_steps: linear warm-up steps of the cosine schedule.
        targets: ``captions`` (equal captions are positives of each other) or ``clip``.
        augment: random crops of 80-100% of the side and small shifts; never flips or
            colour changes, which would change what a caption says.
        max_samples: use only the first N training pairs (quick runs).
        seed: seeds the split, the data order, the augmentation and new weights.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        resume: continue the run in ``out`` from its last finished epoch.
        progress: show progress bars on stderr.
    """

    data: str
    out: str
    model: str | None = None
    from_config: str | None = None
    tokenizer: str | None = None
    val_data: str | None = None
    val_fraction: float = 0.2
    image_root: str | None = None
    train_parts: str = "all"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    scheduler: str = "plateau"
    plateau_factor: float = 0.9
    plateau_patience: int = 5
    warmup_steps: int = 0
    targets: str = "captions"
    augment: bool = True
    max_samples: int | None = None
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    progress: bool = True
