"""Training and test data made by promptseg itself.

:mod:`promptseg.data.shapeworld` generates ShapeWorld, synthetic scenes with exact instance
masks, tagged text prompts and captions (numpy and OpenCV only, no torch); its public names
(``shapeworld.__all__``) are re-exported here.
"""

from __future__ import annotations

from promptseg.data import shapeworld
from promptseg.data.shapeworld import *  # noqa: F403 -- exactly the names in shapeworld.__all__

__all__ = ["shapeworld"]
__all__ += shapeworld.__all__
