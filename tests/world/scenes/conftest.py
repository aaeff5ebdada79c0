"""Helpers shared by the scene tests, as fixtures (test folders are not importable)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imsave

from vrbalance.world.app import WorldApp

#: Rec. 709 luma weights: green counts most, as it does for the eye.
_LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(float) @ _LUMA_WEIGHTS


@pytest.fixture
def luma() -> Callable[[np.ndarray], np.ndarray]:
    """``luma(img)``: brightness of an RGB image of shape (H, W, 3), shape (H, W), 0-255."""
    return _luma


@pytest.fixture
def render(artifacts: Path) -> Callable[..., np.ndarray]:
    """``render(app, name=None)``: draw one frame and return it; a named one is kept as PNG.

    The PNGs land in the gitignored artefact folder, for a person to look at.
    """

    def draw(app: WorldApp, name: str | None = None) -> np.ndarray:
        app.step_frames(1)
        img = app.image()
        if name is not None:
            imsave(artifacts / f"{name}.png", img)
        return img

    return draw
