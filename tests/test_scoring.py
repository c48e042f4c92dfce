import numpy as np
import pytest
import torch

from promptseg.errors import ConfigError, InputError
from promptseg.models.registry import load_clip
from promptseg.stages.scoring import (
    cosine_scores,
    encode_candidates,
    prompt_probabilities,
    score_prompts,
)


def _unit(rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_cosine_and_softmax_exact():
    image = _unit([[1, 0], [0, 1]])
    text = _unit([[1, 0], [1, 1]])
    cos = cosine_scores(image, text)
    np.testing.assert_allclose(cos, [[1, 2**-0.5], [0, 2**-0.5]], atol=1e-6)
    probs = prompt_probabilities(cos, logit_scale=10.0)
    e = np.exp(10 * (1 - 2**-0.5))
    np.testing.assert_allclose(probs[0], [e / (1 + e), 1 / (1 + e)], atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_score_prompts_background_and_best():
    image = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    text = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])  # two prompts, one background
    scored = score_prompts(image, text, num_prompts=2, mode="softmax", logit_scale=100.0)
    assert scored.scores.shape == (3, 2) and scored.cosine.shape == (3, 3)
    assert scored.best.tolist() == [0, 1, 2]  # the third candidate is background
    cosine = score_prompts(image, text, num_prompts=2)
    np.testing.assert_allclose(cosine.scores, np.eye(3)[:, :2], atol=1e-6)


def test_score_prompts_errors():
    with pytest.raises(ConfigError, match="at least two"):
        score_prompts(_unit([[1, 0]]), _unit([[1, 0]]), 1, mode="softmax")
    with pytest.raises(ConfigError, match="unknown score mode"):
        score_prompts(_unit([[1, 0]]), _unit([[1, 0]]), 1, mode="max")
    with pytest.raises(InputError, match="different CLIP"):
        cosine_scores(_unit([[1, 0]]), _unit([[1, 0, 0]]))


def test_encode_candidates_batches_do_not_change_features(tiny_hf_clip_dir):
    clip = load_clip(str(tiny_hf_clip_dir), device="cpu")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    masks = np.zeros((5, 40, 50), bool)
    for i in range(5):
        masks[i, 5 * i : 5 * i + 12, 3 * i : 3 * i + 20] = True
    one = encode_candidates(clip, image, masks, "black+crop:0.1", batch_size=1)
    all_ = encode_candidates(clip, image, masks, "black+crop:0.1", batch_size=32)
    assert one.shape == (5, clip.embed_dim)
    torch.testing.assert_close(one, all_, atol=1e-5, rtol=1e-5)
    empty = encode_candidates(clip, image, masks[:0])
    assert empty.shape == (0, clip.embed_dim)
