"""Argument checks shared by the course's helpers.

Every public helper validates its input with these, so a learner who passes something wrong gets
a ``ValueError``/``TypeError`` that names the argument and the allowed range instead of a silently
wrong number or a numpy traceback from three calls deeper.
"""

from __future__ import annotations

import numbers

import numpy as np


def as_matrix(A: object, name: str = "A") -> np.ndarray:
    """Return ``A`` as a finite 2-D floating-point array, or raise naming ``name``.

    Integer and boolean input is converted to float64; float32/float64 keep their dtype so that
    tolerances based on machine epsilon match numpy's for that dtype.
    """
    if isinstance(A, (str, bytes)) or A is None:
        raise TypeError(f"{name} must be a 2-D array of numbers, got {type(A).__name__}")
    try:
        arr = np.asarray(A)
    except ValueError as exc:  # ragged nested lists, e.g. [[1, 2], [3]]
        raise ValueError(f"{name} must be a rectangular 2-D array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (a matrix), got {arr.ndim}-D with shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; the SVD and rank of such a matrix are undefined")
    return arr


def as_vector(s: object, name: str = "s") -> np.ndarray:
    """Return ``s`` as a finite 1-D float64 array, or raise naming ``name``."""
    try:
        arr = np.asarray(s, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D array of numbers: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return check_finite(arr, name)


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Return ``arr`` if every entry is finite, else raise ValueError naming ``name``."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_int(value: object, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[lo, hi]``, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise ValueError(f"{name} must be in [{lo_s}, {hi_s}], got {value}")
    return value


def check_float(
    value: object,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a float inside the given interval, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not np.isfinite(value)
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")
    return value
