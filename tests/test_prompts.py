import pytest

from promptseg.errors import InputError
from promptseg.prompts import normalize_prompts


@pytest.mark.parametrize(
    "given, expected",
    [("the dog", ("the dog",)), (["  a   cat ", "lungs"], ("a cat", "lungs"))],
)
def test_normalize(given, expected):
    assert normalize_prompts(given) == expected


@pytest.mark.parametrize(
    "given, message",
    [([], "no prompt"), ("", "empty"), (["ok", "  "], "prompt 1 is empty"), ([3], "not a string"),
     (["x"] * 5, "more than the limit")],
)
def test_bad_prompts(given, message):
    with pytest.raises(InputError, match=message):
        normalize_prompts(given, max_prompts=4)
