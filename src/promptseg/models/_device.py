"""Devices and dtypes: one spelling for every model family."""

from __future__ import annotations

import torch

from promptseg.errors import ConfigError

__all__ = ["resolve_device", "resolve_dtype"]

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) -> cuda if present, else mps, else cpu; other values as given."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available: use cpu")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None = "fp32") -> torch.dtype:
    """``"fp32"``, ``"fp16"``, ``"bf16"`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ConfigError(f"unsupported dtype {dtype}: use fp32, fp16 or bf16")
        return dtype
    if dtype is None:
        return torch.float32
    key = str(dtype).lower()
    if key not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}: use fp32, fp16 or bf16")
    return _DTYPES[key]
