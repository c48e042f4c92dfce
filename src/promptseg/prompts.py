"""Text prompts: validation shared by every pipeline and front end."""

from __future__ import annotations

from collections.abc import Iterable

from promptseg.errors import InputError

__all__ = ["MAX_PROMPTS", "normalize_prompts"]

MAX_PROMPTS = 100  # ours: one CLIP text batch; more is usually a mistake (a file read as a list)
MAX_PROMPT_CHARS = 1000  # CLIP truncates to 77 tokens anyway; longer text is a pasted file


def normalize_prompts(
    prompts: str | Iterable[str], max_prompts: int = MAX_PROMPTS
) -> tuple[str, ...]:
    """Check and tidy prompts: a string or a sequence of strings -> tuple of stripped strings.

    Raises:
        InputError: no prompt, an empty or non-string prompt, too many or too long prompts.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if prompts is None:
        raise InputError("no prompt given: pass at least one text prompt, e.g. 'the dog'")
    try:
        items = list(prompts)
    except TypeError as exc:
        raise InputError(
            f"prompts must be a string or a list of strings, got {type(prompts).__name__}"
        ) from exc
    if not items:
        raise InputError("no prompt given: pass at least one text prompt, e.g. 'the dog'")
    if len(items) > max_prompts:
        raise InputError(
            f"{len(items)} prompts given, more than the limit of {max_prompts}: split them over "
            "several calls or raise max_prompts"
        )
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InputError(f"prompt {i} is a {type(item).__name__}, not a string")
        text = " ".join(item.split())
        if not text:
            raise InputError(f"prompt {i} is empty: every prompt needs some text")
        if len(text) > MAX_PROMPT_CHARS:
            raise InputError(
                f"prompt {i} has {len(text)} characters, more than {MAX_PROMPT_CHARS}: "
                "CLIP reads only the first 77 tokens"
            )
        out.append(text)
    return tuple(out)
