"""The one-call API: ``promptseg.segment(image, prompts, method="slip", **options)``."""

from __future__ import annotations

from collections.abc import Iterable

from promptseg.pipelines import load_pipeline

__all__ = ["segment"]


def segment(image, prompts: str | Iterable[str], method: str = "slip", **options):
    """Segment what ``prompts`` name in ``image``.

    Args:
        image: a path, bytes, PIL image or ``(H, W, 3) uint8`` array.
        prompts: a string or a list of strings.
        method: a pipeline name (``promptseg.list_pipelines()``).
        **options: ``device``, ``dtype``, and fields of the pipeline's config (for ``slip``:
            ``clip``, ``sam``, ``threshold``, ``output``, ``points_per_side``, ...).

    Returns:
        A :class:`promptseg.Segmentation`.

    Models are loaded once per process and reused by later calls; for many images,
    :func:`promptseg.load_pipeline` avoids rebuilding the pipeline each time.
    """
    # models are cached by the registry, so building the pipeline per call is cheap
    pipe = load_pipeline(method, **options)
    return pipe(image, prompts)
