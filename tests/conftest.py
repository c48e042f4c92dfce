"""Shared fixtures: tiny random models saved to temp folders and loaded through the registry."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

# Tiny models run fastest single-threaded on 2-core machines (ENVIRONMENT.md, "Threads").
torch.set_num_threads(1)

from fixtures_clip import *  # noqa: E402,F401,F403
from fixtures_sam import *  # noqa: E402,F401,F403
