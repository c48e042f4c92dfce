"""Let OpenCLIP's Hugging Face text tower (``open_clip.hf_model.HFTextEncoder``) build text
encoders it does not know, such as DistilBERT, the text encoder of [SLIP].

OpenCLIP 3.3 fails on DistilBERT in two places: its table of architectures
(``open_clip.hf_configs.arch_dict``) has no ``distilbert`` entry (a ``KeyError`` when it
reads the width), and it always passes ``add_pooling_layer=`` to ``AutoModel``, which
``DistilBertModel`` rejects (``TypeError``). :func:`hf_text_towers` adds the missing table
entries (once; keys OpenCLIP already has are left alone) and, while it is active, lets
OpenCLIP's ``AutoModel`` drop ``add_pooling_layer`` for models without a pooler. Every other
model builds exactly as before. It changes how the model is built, not its weights, so the
folders written with it load with it again (``_OpenClipBackend.from_folder`` uses it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["NO_POOLER_MODEL_TYPES", "CompatAutoModel", "hf_text_towers"]

# transformers model types whose base model has no pooler (no ``add_pooling_layer`` argument)
NO_POOLER_MODEL_TYPES = frozenset({"distilbert"})

# open_clip.hf_configs.arch_dict entries; DistilBertConfig maps hidden_size -> dim etc.
_EXTRA_ARCHS: dict[str, dict[str, Any]] = {
    "distilbert": {
        "config_names": {
            "context_length": "max_position_embeddings",
            "vocab_size": "vocab_size",
            "width": "hidden_size",
            "heads": "num_attention_heads",
            "layers": "num_hidden_layers",
            "layer_attr": "layer",
            "token_embeddings_attr": "embeddings",
        },
        "pooler": "cls_last_hidden_state_pooler",
    },
}

_lock = threading.RLock()


class CompatAutoModel:
    """``transformers.AutoModel`` without ``add_pooling_layer`` for pooler-less models."""

    @staticmethod
    def from_pretrained(name: Any, *args: Any, **kwargs: Any) -> Any:
        from transformers import AutoConfig, AutoModel

        if "add_pooling_layer" in kwargs:
            config = kwargs.get("config") or AutoConfig.from_pretrained(name)
            if config.model_type in NO_POOLER_MODEL_TYPES:
                kwargs.pop("add_pooling_layer")
        return AutoModel.from_pretrained(name, *args, **kwargs)

    @staticmethod
    def from_config(config: Any, *args: Any, **kwargs: Any) -> Any:
        from transformers import AutoModel

        if config.model_type in NO_POOLER_MODEL_TYPES:
            kwargs.pop("add_pooling_layer", None)
        return AutoModel.from_config(config, *args, **kwargs)


@contextlib.contextmanager
def hf_text_towers() -> Iterator[None]:
    """Build OpenCLIP models with DistilBERT (and the usual) text towers inside this block."""
    from open_clip import hf_configs, hf_model

    with _lock:
        for name, entry in _EXTRA_ARCHS.items():
            hf_configs.arch_dict.setdefault(name, entry)
        original = hf_model.AutoModel
        hf_model.AutoModel = CompatAutoModel
        try:
            yield
        finally:
            hf_model.AutoModel = original
