"""Data that ships inside installed packages, so the course runs with no download.

* :func:`sample_image` - matplotlib's ``grace_hopper.jpg`` sample (600 x 512 photo) as grayscale.
"""

from __future__ import annotations

import numpy as np

from lora_edu._checks import check_int

SAMPLE_IMAGES = ("grace_hopper.jpg",)


def sample_image(name: str = "grace_hopper.jpg", size: int | None = None) -> np.ndarray:
    """A photo from matplotlib's sample data as a grayscale float64 array in [0, 1].

    Args:
        name: a file of ``matplotlib.cbook.get_sample_data``; see :data:`SAMPLE_IMAGES`.
        size: if given, the centred ``size x size`` crop (<= the shorter side).

    Returns:
        Array of shape (H, W) (600 x 512 for the default), ITU-R 601 luma of the RGB pixels.
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"name must be one of {SAMPLE_IMAGES}, got {name!r}")
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data(name) as f:
        rgb = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255.0
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    if size is not None:
        h, w = gray.shape
        size = check_int(size, "size", 1, min(h, w))
        top, left = (h - size) // 2, (w - size) // 2
        gray = gray[top : top + size, left : left + size]
    return np.ascontiguousarray(gray)


def load_digits_data(*, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8 x 8 handwritten digits (1,797 images; no download).

    Returns:
        ``(X, y)``: X of shape (1797, 64) float64, pixel intensities divided by 16 into [0, 1]
        when ``scale`` (raw 0..16 otherwise); y of shape (1797,) int labels 0..9.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data.astype(np.float64)
    return (X / 16.0 if scale else X), digits.target.astype(np.int64)


def train_test_split_indices(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into (train, test) index arrays."""
    from lora_edu._checks import check_float

    n = check_int(n, "n", 2)
    test_fraction = check_float(test_fraction, "test_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
