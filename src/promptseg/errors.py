"""Exceptions raised by promptseg.

Every error a user can cause (a bad image, an empty prompt, an unknown model id, a
wrong shape) is a :class:`PromptsegError` whose message says what was wrong and what
to do. The CLI turns these into a one-line message and exit code 2.
"""

from __future__ import annotations


class PromptsegError(Exception):
    """Base class of every error promptseg raises on purpose."""


class InputError(PromptsegError, ValueError):
    """Bad user input: an image, a prompt, an argument of the wrong shape or value."""


class ImageError(InputError):
    """An image could not be read: missing, not an image, truncated, or too large."""


class ConfigError(PromptsegError, ValueError):
    """A configuration value is out of range or unknown (e.g. a wrong method name)."""


class UnknownModelError(PromptsegError, KeyError):
    """A model id is neither a local folder nor available from the hub cache."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(PromptsegError):
    """A model folder exists but holds the wrong family or unreadable weights."""


class MissingDependencyError(PromptsegError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Args:
        module: import name, e.g. ``"open_clip"``.
        extra: the promptseg extra that installs it, e.g. ``"openclip"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed for this feature: pip install 'promptseg[{extra}]'"
        ) from exc
