"""Input checks shared by the NumPy reference (NumPy only; never imports torch).

Each checker validates one kind of array and returns it in the dtype the rest of the
reference expects. Errors name the checker, the argument, what was expected and what
was got, so a failure reads on its own:

    check_features: X contains NaN at row 5, column 1
    check_labels: y contains label 3 at index 17, expected labels in [0, 3)

Non-arrays (lists, tensors, scalars) are rejected with TypeError rather than silently
converted: the caller decides where conversion happens.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_binary_targets", "check_features", "check_images", "check_labels"]

# Float labels must be < 2**63 (exactly representable) to fit into int64.
_INT64_LIMIT = float(2**63)


def _check_count(value, func: str, arg: str) -> None:
    """Optional size arguments must be None or a positive Python/NumPy int (not bool)."""
    if value is None:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {arg} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{func}: {arg} must be >= 1, got {value}")


def _check_array(a, func: str, name: str, ndim: int, shape_doc: str) -> None:
    """Common prefix: an ndarray of the given rank with a real, non-bool numeric dtype."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray {shape_doc}, "
                        f"got {type(a).__module__}.{type(a).__qualname__}")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                   or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{func}: {name} must have a real integer or floating dtype, "
                        f"got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{func}: {name} must be {ndim}-D {shape_doc}, "
                         f"got {a.ndim}-D array of shape {a.shape}")


def _first_nonfinite(a: np.ndarray):
    """Index tuple and spelling ('NaN', 'Inf', '-Inf') of the first non-finite entry, or None."""
    if not np.issubdtype(a.dtype, np.floating):
        return None
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])  # first in C (row-major) order
    v = a[idx]
    return idx, ("NaN" if np.isnan(v) else ("Inf" if v > 0 else "-Inf"))


def check_features(X, n_features=None, *, name="X") -> np.ndarray:
    """Validate a feature matrix and return it unchanged.

    X: (N, D) real numeric ndarray, N >= 1, D >= 1 (float64 expected; integer dtypes are
    accepted and returned as they are, without conversion). All entries must be finite.
    n_features: if given, D must equal it. name: how X is called in messages.

    Raises TypeError for a non-ndarray or a bool/complex/object/string dtype, ValueError
    for ndim != 2, an empty matrix, a wrong feature count, or a NaN/Inf (naming the first
    offending row and column in row-major order).
    """
    func = "check_features"
    _check_count(n_features, func, "n_features")
    _check_array(X, func, name, 2, "of shape (N, D)")
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"{func}: {name} is empty, got shape {X.shape}; "
                         f"expected at least 1 row and 1 column")
    if n_features is not None and d != n_features:
        raise ValueError(f"{func}: {name} has {d} features, expected {n_features}")
    bad = _first_nonfinite(X)
    if bad is not None:
        (i, j), what = bad
        raise ValueError(f"{func}: {name} contains {what} at row {i}, column {j}")
    return X


def check_images(X, n_channels=None, *, name="X") -> np.ndarray:
    """Validate a batch of images and return it unchanged: ``check_features`` for NCHW.

    X: (N, C, H, W) real numeric ndarray with every dimension >= 1, all entries finite.
    n_channels: if given, C must equal it. Raises TypeError/ValueError as ``check_features``
    does, a NaN/Inf named by its (image, channel, row, column).
    """
    func = "check_images"
    _check_count(n_channels, func, "n_channels")
    _check_array(X, func, name, 4, "of shape (N, C, H, W)")
    if 0 in X.shape:
        raise ValueError(f"{func}: {name} is empty, got shape {X.shape}; "
                         f"expected at least one image of at least 1x1 pixel")
    if n_channels is not None and X.shape[1] != n_channels:
        raise ValueError(f"{func}: {name} has {X.shape[1]} channels, expected {n_channels}")
    bad = _first_nonfinite(X)
    if bad is not None:
        idx, what = bad
        raise ValueError(f"{func}: {name} contains {what} at (image, channel, row, column) "
                         f"{idx}")
    return X


def check_labels(y, n_samples=None, n_classes=None, *, name="y") -> np.ndarray:
    """Validate class labels and return them as int64.

    y: (N,) ndarray, N >= 1, of an integer dtype, or of a floating dtype whose values are
    all finite and integral (e.g. 2.0). Every label must lie in [0, n_classes) if
    n_classes is given, else in [0, 2**63). n_samples: if given, N must equal it.
    Returns y as (N,) int64 (the same object if y already is int64).

    Raises TypeError for a non-ndarray or a bool/complex/object/string dtype, ValueError
    for ndim != 1, N == 0, a length mismatch, a NaN/Inf, a fractional value or a label
    out of range (naming the first offending index).
    """
    func = "check_labels"
    _check_count(n_samples, func, "n_samples")
    _check_count(n_classes, func, "n_classes")
    _check_array(y, func, name, 1, "of shape (N,)")
    if y.shape[0] == 0:
        raise ValueError(f"{func}: {name} is empty, got shape {y.shape}")
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(f"{func}: {name} has {y.shape[0]} samples, expected {n_samples}")
    bad = _first_nonfinite(y)
    if bad is not None:
        (i,), what = bad
        raise ValueError(f"{func}: {name} contains {what} at index {i}, "
                         f"expected integer labels")
    if np.issubdtype(y.dtype, np.floating):
        frac = y != np.floor(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{func}: {name} contains non-integral value {y[i].item()!r} at index "
                             f"{i}, expected integer labels")
    if n_classes is not None:
        out = (y < 0) | (y >= n_classes)
    elif np.issubdtype(y.dtype, np.floating):
        out = (y < 0) | (y >= _INT64_LIMIT)
    elif y.dtype == np.uint64:
        out = y > np.iinfo(np.int64).max
    else:  # other integer dtypes always fit into int64
        out = y < 0
    if out.any():
        i = int(np.argmax(out))
        label = int(y[i])
        expected = (f"expected labels in [0, {n_classes})" if n_classes is not None
                    else "expected labels >= 0 that fit in int64")
        raise ValueError(f"{func}: {name} contains label {label} at index {i}, {expected}")
    return y.astype(np.int64, copy=False)


def check_binary_targets(y, n_samples=None, *, name="y") -> np.ndarray:
    """Validate binary targets (for BCE losses) and return them as float64.

    y: (N,) ndarray, N >= 1, integer or floating dtype, every value exactly 0 or 1.
    n_samples: if given, N must equal it. Returns (N,) float64 (the same object if y
    already is float64). Bool arrays are rejected like everywhere else; use
    y.astype(np.float64).

    Raises TypeError for a non-ndarray or a bool/complex/object/string dtype, ValueError
    for ndim != 1 (including (N, 1) columns), N == 0, a length mismatch, or any value other
    than 0/1 (naming the first offending index).
    """
    func = "check_binary_targets"
    _check_count(n_samples, func, "n_samples")
    _check_array(y, func, name, 1, "of shape (N,)")
    if y.shape[0] == 0:
        raise ValueError(f"{func}: {name} is empty, got shape {y.shape}")
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(f"{func}: {name} has {y.shape[0]} samples, expected {n_samples}")
    bad = ~((y == 0) | (y == 1))  # NaN compares False to both, so it is caught here too
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{func}: {name} contains value {y[i].item()!r} at index {i}, "
                         f"expected 0 or 1")
    return y.astype(np.float64, copy=False)
