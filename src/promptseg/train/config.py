"""Settings of the training commands, as dataclasses: the single source of their defaults,
their documentation and the command-line flags (``promptseg train ...`` builds one flag per
field). Kept free of torch so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TARGETS", "TRAIN_PARTS", "AutoencoderTrainConfig", "ClipTrainConfig",
           "SamTrainConfig"]

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
        model: a CLIP id or folder the registry loads; exactly one of ``model``,
            ``from_config`` and ``image_backbone`` + ``text_encoder``.
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
        image_backbone: build the CLIP from parts: a timm image backbone (``resnet50``,
            ``swin_tiny_patch4_window7_224``, ...), with ``text_encoder``; instead of
            ``model`` / ``from_config``. [SLIP] "Training" item 3: ResNet-50; [LVLM] Table II:
            Swin-T or ResNet-50.
        text_encoder: with ``image_backbone``: a Hugging Face text encoder, a folder or an id
            in the local cache ([SLIP] item 3: ``distilbert-base-uncased``); its weights are
            used when it has them.
        embed_dim: with ``image_backbone``: size of the joint space the projection heads map
            to ([SLIP] Table 1: 128 or 512, 128 best).
        image_init: with ``image_backbone``: ``scratch``, ``imagenet`` (timm's weights) or a
            folder written by ``promptseg train autoencoder`` ([LVLM] Table II, settings 1-3).
        image_size: with ``image_backbone``: side of the square input images ([SLIP] item 2,
            [LVLM]: 224).
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
    image_backbone: str | None = None
    text_encoder: str | None = None
    embed_dim: int = 128
    image_init: str = "scratch"
    image_size: int = 224


@dataclass
class SamTrainConfig:
    """Settings of one ``train sam`` run (every field is a ``--flag`` of the command).

    Attributes:
        data: a COCO instances JSON (polygons or RLE; crowd annotations are skipped).
        out: the run folder (the trained model, ``metrics.jsonl``, resume state).
        model: a SAM or SAM-HQ id, folder or official ``.pth`` the registry resolves; exactly
            one of ``model`` and ``from_config``.
        from_config: a transformers ``SamConfig`` / ``SamHQConfig`` JSON (e.g. a model's
            ``config.json``, or its folder) to build a model with random weights.
        val_data: a COCO JSON of validation images; without it ``val_fraction`` of the
            annotated images of ``data`` are held out (chosen by ``seed``).
        val_fraction: share of the images held out for validation.
        image_root: folder the ``file_name`` of images is relative to (default: each JSON's
            folder).
        train_image_encoder: ``None``: frozen when fine-tuning ``model``, trained when
            ``from_config``.
        epochs: passes over the training images.
        batch_size: images per optimiser step.
        prompts_per_image: instances sampled (without replacement) per image and step.
        point_probability: chance that a sampled instance is prompted with one positive
            point (three masks, the loss on the best one) rather than a box (one mask).
        box_jitter: each box coordinate moves by up to this share of the box side (MedSAM:
            0-20 px at 1024).
        lr, weight_decay, optimizer: AdamW 1e-4 with decay 0.01 as MedSAM; or ``"adam"``.
        scheduler: ``"cosine"`` (per step, after ``warmup_steps``), ``"plateau"`` or
            ``"constant"``.
        dice_weight, bce_weight, iou_weight: weights of the dice, BCE and IoU-head losses.
        augment: random horizontal flips.
        seed: seeds the split, the data order, the prompts and random initial weights.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        resume: continue the run in ``out`` from its last finished epoch.
        progress: show a progress bar per epoch.
        max_images: use only the first N images of each data file (quick runs).
        cache_embeddings: with a frozen image encoder, keep each image's embedding (and its
            flipped twin's) in memory after the first epoch, on the training device (4 MiB
            per image and flip for the 1024-pixel models; turn off for large datasets).
    """

    data: str
    out: str
    model: str | None = None
    from_config: str | None = None
    val_data: str | None = None
    val_fraction: float = 0.1
    image_root: str | None = None
    train_image_encoder: bool | None = None
    epochs: int = 10
    batch_size: int = 4
    prompts_per_image: int = 8
    point_probability: float = 0.5
    box_jitter: float = 0.1
    lr: float = 1e-4
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup_steps: int = 0
    dice_weight: float = 1.0
    bce_weight: float = 1.0
    iou_weight: float = 1.0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    progress: bool = True
    max_images: int | None = None
    cache_embeddings: bool = True


@dataclass
class AutoencoderTrainConfig:
    """Settings of one ``train autoencoder`` run (every field is a ``--flag`` of the command):
    pretrain a CLIP image backbone on the domain's images by reconstructing them ([LVLM]
    Sec. III-B; its defaults are Table I's).

    Attributes:
        data: the images: a folder (searched recursively for .png, .jpg, .jpeg, .bmp, .tif,
            .tiff, .webp), a caption file as ``train clip`` reads it (CSV, JSONL, COCO
            captions JSON; each image once), or a COCO instances JSON (its ``images``).
        out: the run folder: ``encoder.safetensors`` (the backbone's weights, as a CLIP built
            with ``image_init=OUT`` takes them), ``decoder.safetensors``,
            ``autoencoder_config.json``, ``metrics.jsonl``, resume state.
        backbone: the timm architecture of the encoder, the CLIP's later image backbone
            ([LVLM] Table II: Swin-T, ResNet-50).
        image_size: side of the square images the autoencoder reconstructs ([LVLM]: 224).
        image_init: ``scratch`` ([LVLM] "FS") or ``imagenet`` ([LVLM] "FP": timm's
            pretrained weights, fine-tuned).
        image_root: folder image paths of a caption or COCO file are relative to (default:
            the file's folder).
        epochs: passes over the training images ([LVLM] Table I: 10).
        batch_size: images per step ([LVLM] Table I: 128).
        lr: learning rate ([LVLM] Table I: 1e-3).
        weight_decay: optimiser weight decay.
        optimizer: ``adam`` ([LVLM] Table I) or ``adamw``.
        val_fraction: share of the images held out to pick the best epoch by validation MSE.
        max_images: use only the first N images (quick runs).
        seed: seeds the split, the data order and new weights.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        resume: continue the run in ``out`` from its last finished epoch.
        progress: show progress bars on stderr.
    """

    data: str
    out: str
    backbone: str = "resnet50"
    image_size: int = 224
    image_init: str = "scratch"
    image_root: str | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    val_fraction: float = 0.1
    max_images: int | None = None
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    progress: bool = True
