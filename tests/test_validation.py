"""reference.validation and the layerspec vocabulary: every error case names the checker (or
layer), the argument, expected and got."""

import numpy as np
import pytest
from parity.reference.validation import (
    check_binary_targets,
    check_features,
    check_images,
    check_labels,
)

from parity import layerspec as S


def _table(argnames, cases):
    """parametrize from rows (id, *values)."""
    return pytest.mark.parametrize(argnames, [pytest.param(*c[1:], id=c[0]) for c in cases])


def _nan_at(shape, idx, value=np.nan):
    a = np.zeros(shape)
    a[idx] = value
    return a


# ── check_features ───────────────────────────────────────────────────────────────────────

FEATURE_ERRORS = [
    # id, X, kwargs, exception, message regex
    ("list", [[1.0, 2.0]], {},
     TypeError, r"check_features: X must be a numpy\.ndarray .*got builtins\.list"),
    ("bool", np.ones((2, 2), dtype=bool), {}, TypeError, r"check_features: X .*dtype bool"),
    ("complex", np.ones((2, 2), dtype=complex), {}, TypeError, r"X .*dtype complex128"),
    ("object", np.ones((2, 2), dtype=object), {}, TypeError, r"X .*dtype object"),
    ("string", np.array([["a", "b"]]), {}, TypeError, r"X .*dtype <U1"),
    ("1d", np.ones(3), {}, ValueError, r"X must be 2-D .*got 1-D array of shape \(3,\)"),
    ("3d", np.ones((2, 2, 2)), {}, ValueError, r"got 3-D array of shape \(2, 2, 2\)"),
    ("no-rows", np.ones((0, 2)), {}, ValueError, r"X is empty, got shape \(0, 2\)"),
    ("no-cols", np.ones((3, 0)), {}, ValueError, r"X is empty, got shape \(3, 0\)"),
    ("n-features", np.ones((4, 3)), {"n_features": 2}, ValueError, r"X has 3 features, expected 2"),
    ("nan", _nan_at((8, 3), (5, 1)), {}, ValueError, r"X contains NaN at row 5, column 1$"),
    ("inf", _nan_at((8, 3), (2, 0), np.inf), {}, ValueError, r"X contains Inf at row 2, column 0$"),
    ("-inf", _nan_at((8, 3), (7, 2), -np.inf), {},
     ValueError, r"X contains -Inf at row 7, column 2$"),
    ("first-in-row-major-order", _nan_at((4, 4), (1, 3)) + _nan_at((4, 4), (3, 0), np.inf),
     {}, ValueError, r"NaN at row 1, column 3$"),
    ("custom-name", np.ones(3), {"name": "layer 0 input"},
     ValueError, r"layer 0 input must be 2-D"),
    ("n-features-type", np.ones((2, 2)), {"n_features": 2.0},
     TypeError, r"n_features must be an int"),
    ("n-features-zero", np.ones((2, 2)), {"n_features": 0},
     ValueError, r"n_features must be >= 1, got 0"),
]


@_table("X, kwargs, exc, pattern", FEATURE_ERRORS)
def test_check_features_errors(X, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_features(X, **kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32, np.uint8],
                         ids=lambda d: np.dtype(d).name)
def test_check_features_returns_input_unchanged(dtype):
    X = np.arange(6).reshape(3, 2).astype(dtype)
    out = check_features(X, 2)
    assert out is X and out.dtype == np.dtype(dtype)


def test_check_features_accepts_extremes():
    X = np.array([[np.finfo(np.float64).max, -np.finfo(np.float64).max],
                  [5e-324, -0.0]])
    assert check_features(X, n_features=2) is X


# ── check_images ─────────────────────────────────────────────────────────────────────────

IMAGE_ERRORS = [
    # id, X, kwargs, exception, message regex
    ("list", [[[[1.0]]]], {}, TypeError, r"check_images: X must be a numpy\.ndarray"),
    ("complex", np.ones((1, 1, 2, 2), dtype=complex), {}, TypeError, r"dtype complex128"),
    ("2d", np.ones((2, 64)), {}, ValueError,
     r"X must be 4-D of shape \(N, C, H, W\), got 2-D array of shape \(2, 64\)"),
    ("no-images", np.ones((0, 1, 8, 8)), {}, ValueError, r"X is empty, got shape \(0, 1, 8, 8\)"),
    ("no-width", np.ones((2, 1, 8, 0)), {}, ValueError, r"X is empty"),
    ("channels", np.ones((2, 3, 8, 8)), {"n_channels": 1}, ValueError,
     r"X has 3 channels, expected 1$"),
    ("nan", _nan_at((2, 1, 8, 8), (1, 0, 6, 2)), {}, ValueError,
     r"X contains NaN at \(image, channel, row, column\) \(1, 0, 6, 2\)$"),
    ("-inf", _nan_at((2, 2, 3, 3), (0, 1, 2, 0), -np.inf), {}, ValueError,
     r"-Inf at \(image, channel, row, column\) \(0, 1, 2, 0\)$"),
    ("n-channels-type", np.ones((1, 1, 2, 2)), {"n_channels": True}, TypeError,
     r"n_channels must be an int"),
]


@_table("X, kwargs, exc, pattern", IMAGE_ERRORS)
def test_check_images_errors(X, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_images(X, **kwargs)


def test_check_images_returns_input_unchanged():
    X = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    assert check_images(X, 3) is X


# ── check_labels ─────────────────────────────────────────────────────────────────────────

def _labels_with(n, idx, value, dtype=np.int64):
    y = np.zeros(n, dtype=dtype)
    y[idx] = value
    return y


LABEL_ERRORS = [
    ("list", [0, 1], {},
     TypeError, r"check_labels: y must be a numpy\.ndarray .*got builtins\.list"),
    ("bool", np.array([True, False]), {},
     TypeError, r"y must have a real integer or floating dtype, got dtype bool"),
    ("complex", np.zeros(2, dtype=complex), {}, TypeError, r"dtype complex128"),
    ("object", np.zeros(2, dtype=object), {}, TypeError, r"dtype object"),
    ("2d", np.zeros((4, 1), dtype=np.int64), {},
     ValueError, r"y must be 1-D .*got 2-D array of shape \(4, 1\)"),
    ("empty", np.zeros(0, dtype=np.int64), {}, ValueError, r"y is empty, got shape \(0,\)"),
    ("n-samples", np.zeros(5, dtype=np.int64), {"n_samples": 4},
     ValueError, r"y has 5 samples, expected 4"),
    ("out-of-range", _labels_with(20, 17, 3), {"n_classes": 3}, ValueError,
     r"y contains label 3 at index 17, expected labels in \[0, 3\)$"),
    ("negative", _labels_with(5, 2, -1), {},
     ValueError, r"y contains label -1 at index 2, expected labels >= 0"),
    ("negative-with-classes", _labels_with(5, 4, -2), {"n_classes": 3}, ValueError,
     r"label -2 at index 4, expected labels in \[0, 3\)"),
    ("fractional", _labels_with(6, 3, 1.5, np.float64), {}, ValueError,
     r"y contains non-integral value 1\.5 at index 3, expected integer labels"),
    ("nan", _labels_with(6, 1, np.nan, np.float64), {}, ValueError, r"y contains NaN at index 1"),
    ("inf", _labels_with(6, 0, np.inf, np.float64), {}, ValueError, r"y contains Inf at index 0"),
    ("float-too-big", _labels_with(3, 1, 2.0**63, np.float64), {}, ValueError,
     r"label 9223372036854775808 at index 1, expected labels >= 0 that fit in int64"),
    ("uint64-too-big", _labels_with(3, 2, 2**63, np.uint64), {},
     ValueError, r"at index 2, expected labels >= 0 that fit"),
    ("float-out-of-range", _labels_with(4, 3, 3.0, np.float64), {"n_classes": 3}, ValueError,
     r"label 3 at index 3, expected labels in \[0, 3\)"),
    ("n-classes-type", np.zeros(2, dtype=np.int64), {"n_classes": "3"},
     TypeError, r"n_classes must be an int or None, got str"),
    ("custom-name", np.zeros((2, 2), dtype=np.int64), {"name": "targets"},
     ValueError, r"targets must be 1-D"),
]


@_table("y, kwargs, exc, pattern", LABEL_ERRORS)
def test_check_labels_errors(y, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_labels(y, **kwargs)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint64, np.float64, np.float32],
                         ids=lambda d: np.dtype(d).name)
def test_check_labels_returns_int64(dtype):
    y = np.array([0, 2, 1, 2], dtype=dtype)
    out = check_labels(y, n_samples=4, n_classes=3)
    assert out.dtype == np.int64 and out.shape == (4,)
    np.testing.assert_array_equal(out, [0, 2, 1, 2])


def test_check_labels_int64_is_not_copied():
    y = np.array([1, 0], dtype=np.int64)
    assert check_labels(y, 2, 2) is y


def test_check_labels_extreme_valid():
    y = np.array([np.iinfo(np.int64).max, 0], dtype=np.int64)
    assert check_labels(y) is y
    np.testing.assert_array_equal(check_labels(np.array([-0.0, 2.0**62])), [0, 2**62])


# ── check_binary_targets ─────────────────────────────────────────────────────────────────

BINARY_ERRORS = [
    ("list", [0, 1], {}, TypeError, r"check_binary_targets: y must be a numpy\.ndarray"),
    ("bool", np.array([True, False]), {}, TypeError, r"dtype bool"),
    ("column", np.zeros((4, 1)), {},
     ValueError, r"y must be 1-D .*got 2-D array of shape \(4, 1\)"),
    ("empty", np.zeros(0), {}, ValueError, r"y is empty"),
    ("n-samples", np.zeros(3), {"n_samples": 4}, ValueError, r"y has 3 samples, expected 4"),
    ("two", np.array([0, 1, 2]), {},
     ValueError, r"y contains value 2 at index 2, expected 0 or 1$"),
    ("half", np.array([0.0, 0.5]), {},
     ValueError, r"y contains value 0\.5 at index 1, expected 0 or 1$"),
    ("minus-one", np.array([-1, 1]), {}, ValueError, r"value -1 at index 0"),
    ("nan", np.array([1.0, np.nan]), {}, ValueError, r"value nan at index 1"),
    ("near-one", np.array([1.0, 1.0 + 2**-52]), {},
     ValueError, r"value 1\.0000000000000002 at index 1"),
]


@_table("y, kwargs, exc, pattern", BINARY_ERRORS)
def test_check_binary_targets_errors(y, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_binary_targets(y, **kwargs)


@pytest.mark.parametrize("y", [np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 1.0, -0.0]),
                               np.array([0, 1, 1, 0], dtype=np.uint8),
                               np.array([0, 1, 1, 0], dtype=np.float32)],
                         ids=["int64", "float64", "uint8", "float32"])
def test_check_binary_targets_returns_float64(y):
    out = check_binary_targets(y, n_samples=4)
    assert out.dtype == np.float64 and out.shape == (4,)
    np.testing.assert_array_equal(out, [0.0, 1.0, 1.0, 0.0])


# ── layerspec: each description checks its arguments on construction ────────────────────────

LAYERSPEC_ERRORS = [
    # id, type, args, exception, message regex
    ("linear-zero", S.Linear, (0, 3), ValueError, r"Linear: in_features must be >= 1, got 0$"),
    ("linear-negative-out", S.Linear, (2, -1), ValueError,
     r"Linear: out_features must be >= 1, got -1$"),
    ("linear-float", S.Linear, (2.0, 3), TypeError,
     r"Linear: in_features must be an int, got float 2\.0$"),
    ("linear-bool", S.Linear, (True, 3), TypeError, r"in_features must be an int, got bool"),
    ("linear-string", S.Linear, (2, "3"), TypeError, r"out_features must be an int, got str"),
    ("dropout-one", S.Dropout, (1.0,), ValueError, r"Dropout: p must be in \[0, 1\), got 1\.0$"),
    ("dropout-negative", S.Dropout, (-0.1,), ValueError, r"p must be in \[0, 1\), got -0\.1$"),
    ("dropout-nan", S.Dropout, (float("nan"),), ValueError, r"p must be in \[0, 1\), got nan$"),
    ("dropout-string", S.Dropout, ("0.5",), TypeError,
     r"Dropout: p must be a real number, got str '0\.5'$"),
    ("dropout-bool", S.Dropout, (False,), TypeError, r"p must be a real number, got bool"),
    ("batchnorm-zero", S.BatchNorm1d, (0,), ValueError,
     r"BatchNorm1d: num_features must be >= 1, got 0$"),
    ("layernorm-float", S.LayerNorm, (4.5,), TypeError,
     r"LayerNorm: normalized_shape must be an int, got float 4\.5$"),
]


@_table("kind, args, exc, pattern", LAYERSPEC_ERRORS)
def test_layerspec_errors(kind, args, exc, pattern):
    with pytest.raises(exc, match=pattern):
        kind(*args)


def test_layerspec_stores_plain_python_numbers():
    """NumPy scalars are accepted and stored as int/float, so a description prints, compares
    and serializes the same whichever way its sizes were computed."""
    lin, drop = S.Linear(np.int64(2), np.int32(3)), S.Dropout(np.float32(0.5))
    assert (type(lin.in_features), type(lin.out_features), type(drop.p)) == (int, int, float)
    assert lin == S.Linear(2, 3) and lin.summary == "Linear(2,3)" and drop == S.Dropout(0.5)
