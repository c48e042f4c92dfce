"""Speed of the saliency maps and of ``camsam``, real-size architectures with random weights.

Models: OpenCLIP RN50 and ViT-B/16 (``open_clip.create_model``, random weights, saved as
OpenCLIP folders and loaded through the registry) and SAM ViT-B (the official architecture,
random weights, converted). Compute does not depend on weight values.

Tables:

1. one gScoreCAM map on RN50: ours against the official procedure (anguyen8/gScoreCAM
   ``GScoreCAM.get_cam_weights``, re-stated here: every channel upsampled, normalised and
   multiplied into the image, 2048 masked images, then the top 300 scored in batches of 64;
   same weights, same input), with the maps' largest difference; Grad-CAM and CLIP-ES
   beside them;
   ``precision="bf16"`` scores the masked images under bfloat16 autocast;
2. 10 queries in one call against 10 calls of one query;
3. ``camsam`` per 1024 px image (SAM ViT-B embedding, the map, CRF, box, decoder).

Run: ``python benchmarks/cam_speed.py [--threads 2] [--queries 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _report import table  # noqa: E402
from slip_speed import make_image  # noqa: E402

QUERIES = ["a dog", "a cat", "a red car", "a tree", "the sky", "a person", "a bicycle",
           "a chair", "a bottle", "a bird"]


def save_open_clip(arch: str, folder: Path, seed: int = 0) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": open_clip.get_model_config(arch),
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                 "std": list(open_clip.OPENAI_DATASET_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder


def official_gscorecam(clip, image: np.ndarray, query: str, topk: int = 300,
                       batch_size: int = 64) -> np.ndarray:
    """The official procedure, step for step (see the module docstring)."""
    import cv2

    from promptseg.stages.saliency import ActivationsAndGradients, clip_input

    pixels = clip_input(clip, image)
    text = clip.encode_text([query])
    found = ActivationsAndGradients(clip).run(pixels, text)
    activations = found.activations[None]  # (1, C, h, w)
    grads = found.gradients  # (1, C, h, w)
    with torch.no_grad():
        upsampled = torch.nn.UpsamplingBilinear2d(pixels.shape[-2:])(activations)
        maxs = upsampled.view(1, upsampled.size(1), -1).max(dim=-1)[0][:, :, None, None]
        mins = upsampled.view(1, upsampled.size(1), -1).min(dim=-1)[0][:, :, None, None]
        upsampled = (upsampled - mins) / (maxs - mins + 1e-6)
        input_tensors = pixels[:, None] * upsampled[:, :, None]  # (1, C, 3, S, S)
        indices = grads.mean(dim=(2, 3)).topk(topk)[1][0]
        top = input_tensors[:, indices][0]
        scores = []
        for i in range(0, top.size(0), batch_size):
            features = F.normalize(clip._backend.image_features(top[i:i + batch_size]).float(),
                                   dim=-1)
            scores.extend((clip.logit_scale * features @ text.T)[:, 0].tolist())
        full = torch.zeros(activations.shape[1])
        full[indices] = torch.tensor(scores)
        weights = torch.softmax(full, dim=0)
        cam = torch.relu((weights[:, None, None] * activations[0]).sum(0)).numpy()
    cam -= cam.min()
    cam /= 1e-8 + cam.max()
    cam = cv2.resize(cam, (image.shape[1], image.shape[0]))
    cam -= cam.min()
    return cam / (1e-8 + cam.max())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--skip-camsam", action="store_true")
    parser.add_argument("--maps-only", action="store_true", help="table 1 only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from promptseg.models import load_clip
    from promptseg.stages.saliency import clip_es, grad_cam, gscore_cam

    image = make_image(args.image_size)
    queries = QUERIES[: args.queries]
    with tempfile.TemporaryDirectory(prefix="promptseg-cam-speed-") as tmp:
        tmp = Path(tmp)
        rn50 = load_clip(str(save_open_clip("RN50", tmp / "rn50")))
        vit = load_clip(str(save_open_clip("ViT-B-16", tmp / "vit-b-16")))
        grad_cam(rn50, image, queries[:1])  # warm-up

        t_official, official = timed(official_gscorecam, rn50, image, queries[0])
        t_ours, ours = timed(gscore_cam, rn50, image, queries[:1])
        t_bf16, bf16 = timed(gscore_cam, rn50, image, queries[:1], precision="bf16")
        t_grad, _ = timed(grad_cam, rn50, image, queries[:1])
        t_grad_vit, _ = timed(grad_cam, vit, image, queries[:1])
        t_es, _ = timed(clip_es, vit, image, queries[:1])
        diff = float(np.abs(official - ours[0]).max())
        print(table(
            f"One map, {args.image_size} px image, {args.threads} threads (random weights)",
            ("method", "CLIP", "seconds", "vs official gScoreCAM"),
            [("gScoreCAM, official procedure", "RN50", f"{t_official:.2f}", "1.00x"),
             ("gScoreCAM, ours", "RN50", f"{t_ours:.2f}", f"{t_official / t_ours:.2f}x faster"),
             ("gScoreCAM, ours, precision=bf16", "RN50", f"{t_bf16:.2f}",
              f"{t_official / t_bf16:.2f}x faster"),
             ("Grad-CAM", "RN50", f"{t_grad:.2f}", f"{t_official / t_grad:.1f}x faster"),
             ("Grad-CAM", "ViT-B/16", f"{t_grad_vit:.2f}", ""),
             ("CLIP-ES", "ViT-B/16", f"{t_es:.2f}", "")]))
        print(f"largest difference from the official map (maps in [0, 1]): ours {diff:.2e}, "
              f"bf16 {float(np.abs(official - bf16[0]).max()):.3f}")
        if args.maps_only:
            return

        rows = []
        for label, fn, clip in (("Grad-CAM", grad_cam, rn50), ("Grad-CAM", grad_cam, vit),
                                ("CLIP-ES", clip_es, vit), ("gScoreCAM", gscore_cam, rn50)):
            t_batch, _ = timed(fn, clip, image, queries)
            if label == "gScoreCAM":  # one by one would take minutes: 10 x the 1-query call
                t_single, note = len(queries) * t_ours, " (10 x the 1-query time)"
            else:
                t_single = sum(timed(fn, clip, image, [q])[0] for q in queries)
                note = ""
            arch = "RN50" if clip is rn50 else "ViT-B/16"
            rows.append((label, arch, f"{t_batch:.2f}", f"{t_single:.2f}{note}",
                         f"{t_single / t_batch:.2f}x"))
        print(table(f"{len(queries)} queries: one call against one call per query",
                    ("method", "CLIP", "batched s", "one by one s", "ratio"), rows))

        if not args.skip_camsam:
            camsam_table(tmp, image, queries, rn50)


def camsam_table(tmp: Path, image: np.ndarray, queries: list[str], rn50) -> None:
    from segment_anything import sam_model_registry

    from promptseg.convert.sam_checkpoint import convert_sam_checkpoint
    from promptseg.pipelines import load_pipeline

    torch.manual_seed(0)
    ckpt = tmp / "sam_vit_b.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), ckpt)
    sam_dir = convert_sam_checkpoint(ckpt, tmp / "sam-vit-b")
    rows = []
    for cam in ("gscorecam", "gradcam"):
        pipe = load_pipeline("camsam", clip=rn50.model_id, sam=str(sam_dir), device="cpu",
                             cam=cam)
        for q in (1, len(queries)):
            seconds, seg = timed(pipe, image, queries[:q])
            stages = ", ".join(f"{k} {v:.1f}" for k, v in seg.meta["timings"].items()
                               if k != "total")
            rows.append((cam, q, f"{seconds:.1f}", stages))
    print(table(f"camsam per {image.shape[0]} px image (SAM ViT-B + RN50, CRF on)",
                ("cam", "queries", "seconds", "seconds per stage"), rows))


if __name__ == "__main__":
    main()
