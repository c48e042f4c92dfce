"""Speed of the ``slip`` pipeline with real-size architectures and random weights.

Models: SAM ViT-B (the official ``segment_anything`` architecture, random weights, converted by
``promptseg convert sam``) and CLIP ViT-B/16 (transformers, random weights, the real CLIP
tokenizer built offline). Compute does not depend on weight values, so the times hold for the
trained models; mask counts do not (random SAM keeps few masks at the default thresholds, so the
thresholds are lowered here to give CLIP real work).

Prints four tables:

1. seconds per stage of one ``slip`` call on one image;
2. 10 prompts against 1 prompt (target <= 1.3x: the embedding, proposals and CLIP image
   features are shared);
3. CLIP scoring of 100 candidates batched against one by one;
4. our automatic mask generation against the official ``SamAutomaticMaskGenerator``, same
   weights, same parameters, same process.

Run: ``python benchmarks/slip_speed.py [--image-size 1024] [--points-per-side 16]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from _report import table  # noqa: E402


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """A 2-D scene with flat shapes on a gradient: gives SAM edges to follow."""
    import cv2

    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, size, dtype=np.float32)
    image = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                      np.full((size, size), 90, np.float32)], axis=-1).astype(np.uint8)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(size // 10, size - size // 10, 2))
        r = int(rng.integers(size // 20, size // 7))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), r, color, -1)
        else:
            cv2.rectangle(image, (x - r, y - r), (x + r, y + r), color, -1)
    return image


def build_models(folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """Random-weight SAM ViT-B (official .pth, converted) and CLIP ViT-B/16 folders."""
    from segment_anything import sam_model_registry
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from promptseg.convert.sam_checkpoint import convert_sam_checkpoint
    from promptseg.models.clip_tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    official = sam_model_registry["vit_b"]()
    ckpt = folder / "sam_vit_b_random.pth"
    torch.save(official.state_dict(), ckpt)
    sam_dir = convert_sam_checkpoint(ckpt, folder / "sam-vit-b")

    clip_dir = folder / "clip-vit-b-16"
    config = CLIPConfig(vision_config={"patch_size": 16}, projection_dim=512)
    CLIPModel(config).save_pretrained(clip_dir)
    tokenizer = build_clip_tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224},
                                         crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(clip_dir)
    return ckpt, sam_dir, clip_dir


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--points-per-side", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-official", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    import promptseg
    from promptseg.stages.proposals import MaskGenerationConfig, generate_masks
    from promptseg.stages.scoring import encode_candidates

    image = make_image(args.image_size)
    amg = {"points_per_side": args.points_per_side, "pred_iou_thresh": 0.0,
           "stability_score_thresh": 0.0, "box_nms_thresh": 0.7}
    print(f"threads={args.threads} image={args.image_size}px points_per_side="
          f"{args.points_per_side} torch={torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, sam_dir, clip_dir = build_models(Path(tmp))
        pipe = promptseg.load_pipeline("slip", clip=str(clip_dir), sam=str(sam_dir),
                                       device="cpu", **amg)

        # 1. one call, seconds per stage
        t1, seg1 = timed(lambda: pipe(image, ["a red circle"]), args.repeats)
        stages = seg1.meta["timings"]
        named = ("sam_encoder", "mask_generation", "clip_image", "clip_text")
        rest = stages["total"] - sum(stages.get(k, 0.0) for k in named)
        rows = [(k, f"{stages.get(k, 0.0):.2f}") for k in named]
        rows += [("rest (overlap filter, selection)", f"{rest:.2f}"), ("total", f"{t1:.2f}")]
        print(table(f"1. slip, one prompt: seconds per stage ({seg1.meta['num_proposals']} "
                    f"proposals, {seg1.meta['num_candidates']} candidates)",
                    ("stage", "seconds"), rows))

        # 2. ten prompts against one
        prompts = [f"object number {i}" for i in range(10)]
        t10, _ = timed(lambda: pipe(image, prompts), args.repeats)
        print(table("2. prompts per call", ("prompts", "seconds", "ratio to 1"),
                    [(1, f"{t1:.2f}", "1.00"), (10, f"{t10:.2f}", f"{t10 / t1:.2f}")]))

        # 3. CLIP scoring of N candidates, batched against one by one
        rng = np.random.default_rng(0)
        h = w = args.image_size
        masks = np.zeros((args.candidates, h, w), bool)
        for i in range(args.candidates):
            y, x = rng.integers(0, h - h // 8, 2)
            masks[i, y : y + h // 8, x : x + w // 8] = True
        clip = pipe.clip
        tb, _ = timed(lambda: encode_candidates(clip, image, masks, batch_size=32), args.repeats)
        to, _ = timed(lambda: encode_candidates(clip, image, masks, batch_size=1), args.repeats)
        print(table(f"3. CLIP scoring of {args.candidates} candidates",
                    ("mode", "seconds", "speed-up"),
                    [("one by one", f"{to:.2f}", "1.00"), ("batched (32)", f"{tb:.2f}",
                                                          f"{to / tb:.2f}")]))

        # 4. our automatic mask generation against the official generator
        if not args.skip_official:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

            official = sam_model_registry["vit_b"]()
            official.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
            official.eval()
            generator = SamAutomaticMaskGenerator(official, **amg)
            config = MaskGenerationConfig(**amg)
            with torch.inference_mode():
                t_off, off = timed(lambda: generator.generate(image), args.repeats)
            t_ours, ours = timed(lambda: generate_masks(pipe.sam, image, config), args.repeats)
            print(table("4. automatic mask generation, same weights and parameters",
                        ("implementation", "masks", "seconds", "ratio to official"),
                        [("segment_anything 1.0", len(off), f"{t_off:.2f}", "1.00"),
                         ("promptseg", len(ours.masks), f"{t_ours:.2f}",
                          f"{t_ours / t_off:.2f}")]))


if __name__ == "__main__":
    main()
