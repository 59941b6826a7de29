"""reference.datasets: generators (draw order, geometry, seed-document fidelity), digits,
Standardizer, split, and the CSV format of seed document 001."""

import ast
import os
import pathlib

import numpy as np
import pytest
from parity.reference import datasets as ds

TWO_PI = 2 * np.pi


def _wrapped(a):
    """Angle difference wrapped into [-pi, pi)."""
    return (np.asarray(a) + np.pi) % TWO_PI - np.pi


def _radius(P):
    return np.hypot(P[:, 0], P[:, 1])


def _assert_same_angle(a, b):
    """Angles equal modulo 2pi, to 1e-12."""
    np.testing.assert_allclose(_wrapped(np.asarray(a) - b), 0, rtol=0, atol=1e-12)


def _table(argnames, cases):
    """parametrize from rows (id, *values)."""
    return pytest.mark.parametrize(argnames, [pytest.param(*c[1:], id=c[0]) for c in cases])


def _by_class_sorted_by_radius(X, y, label):
    """Rows of one class, ordered by radius (undoes the shuffle for noise-free spirals)."""
    P = X[y == label]
    return P[np.argsort(_radius(P), kind="stable")]


# ── every generator: shapes, dtypes, labels, determinism, argument checks ────────────────

GENERATORS = [
    # id, generator, kwargs, n_rows, counts per class
    ("cs231n-default", ds.spiral_cs231n, {}, 300, [100, 100, 100]),
    ("cs231n-5x7", ds.spiral_cs231n, {"n_per_class": 7, "n_classes": 5}, 35, [7] * 5),
    ("as-written-default", ds.two_spirals_as_written, {}, 600, [300, 300]),
    ("as-written-small", ds.two_spirals_as_written, {"n_per_class": 11, "noise": 0.3},
     22, [11, 11]),
    ("corrected-default", ds.two_spirals_corrected, {}, 600, [300, 300]),
    ("seed004-default", ds.two_spirals_seed004, {}, 400, [200, 200]),
    ("seed004-small", ds.two_spirals_seed004, {"n_per_class": 5, "noise": 0.0}, 10, [5, 5]),
]
GEN_TABLE = _table("gen, kwargs, n_rows, counts", GENERATORS)


@GEN_TABLE
def test_generator_shapes_dtypes_counts(gen, kwargs, n_rows, counts):
    X, y = gen(np.random.default_rng(0), **kwargs)
    assert X.shape == (n_rows, 2) and X.dtype == np.float64
    assert y.shape == (n_rows,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), counts)
    assert np.isfinite(X).all()


@GEN_TABLE
def test_generator_same_seed_bit_identical_different_seed_differs(gen, kwargs, n_rows, counts):
    X1, y1 = gen(np.random.default_rng(123), **kwargs)
    X2, y2 = gen(np.random.default_rng(123), **kwargs)
    assert X1.tobytes() == X2.tobytes() and y1.tobytes() == y2.tobytes()
    X3, _ = gen(np.random.default_rng(124), **kwargs)
    assert not np.array_equal(X1, X3)


RANDOM_GENERATORS = pytest.mark.parametrize(
    "gen",
    [ds.spiral_cs231n, ds.two_spirals_as_written, ds.two_spirals_corrected, ds.two_spirals_seed004],
    ids=["cs231n", "as-written", "corrected", "seed004"])


@RANDOM_GENERATORS
@_table("rng", [("None", None), ("int", 42), ("RandomState", np.random.RandomState(0))])
def test_generator_rejects_non_generator_rng(gen, rng):
    with pytest.raises(TypeError, match=rf"{gen.__name__}: rng must be a numpy\.random\.Generator"):
        gen(rng)


BAD_ARGS = [
    ("n-zero", {"n_per_class": 0}, ValueError, r"n_per_class must be >= 1, got 0"),
    ("n-float", {"n_per_class": 10.0}, TypeError, r"n_per_class must be an int, got float"),
    ("noise-negative", {"noise": -0.1}, ValueError, r"noise must be finite and >= 0, got -0\.1"),
    ("noise-nan", {"noise": float("nan")}, ValueError, r"noise must be finite and >= 0, got nan"),
    ("noise-str", {"noise": "0.1"}, TypeError, r"noise must be a real number, got str"),
]


@RANDOM_GENERATORS
@_table("kwargs, exc, pattern", BAD_ARGS)
def test_generator_rejects_bad_arguments(gen, kwargs, exc, pattern):
    with pytest.raises(exc, match=rf"{gen.__name__}: {pattern}"):
        gen(np.random.default_rng(0), **kwargs)


# ── fidelity: each generator replays its source literally from the same Generator ────────

def test_cs231n_matches_course_code():
    rng = np.random.default_rng(7)
    N, D, K = 100, 2, 3  # cs231n: "number of points per class", dimensionality, classes
    X = np.zeros((N * K, D))
    y = np.zeros(N * K, dtype="uint8")
    for j in range(K):
        ix = range(N * j, N * (j + 1))
        r = np.linspace(0.0, 1, N)
        t = np.linspace(j * 4, (j + 1) * 4, N) + rng.standard_normal(N) * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    X_ours, y_ours = ds.spiral_cs231n(np.random.default_rng(7))
    assert X_ours.tobytes() == X.tobytes()
    np.testing.assert_array_equal(y_ours, y)


def test_as_written_matches_seed_003_code():
    rng = np.random.default_rng(42)  # seed 003's make_spirals body, verbatim
    n, noise = 300, 0.08

    def arm(n, offset):
        theta = np.linspace(0, 4*np.pi, n) + offset
        r = theta / (4*np.pi)
        x = r * np.cos(theta) + rng.normal(0, noise, n)
        y = r * np.sin(theta) + rng.normal(0, noise, n)
        return np.stack([x, y], axis=1)
    X0 = arm(n, 0)
    X1 = arm(n, np.pi)
    X = np.vstack([X0, X1])
    y = np.array([0]*n + [1]*n)
    perm = rng.permutation(len(y))
    X_ours, y_ours = ds.two_spirals_as_written(np.random.default_rng(42))
    assert X_ours.tobytes() == X[perm].tobytes()
    np.testing.assert_array_equal(y_ours, y[perm])


def test_seed004_matches_seed_004_code():
    rng = np.random.default_rng(42)  # seed 004's create_spiral_data, randn -> rng.standard_normal
    n_points, noise = 200, 0.2
    theta0 = np.linspace(0, 4*np.pi, n_points)
    r0 = np.linspace(0.5, 2, n_points)
    x0 = r0 * np.cos(theta0) + rng.standard_normal(n_points) * noise
    y0 = r0 * np.sin(theta0) + rng.standard_normal(n_points) * noise
    theta1 = np.linspace(0, 4*np.pi, n_points)
    r1 = np.linspace(0.5, 2, n_points)
    x1 = r1 * np.cos(theta1 + np.pi) + rng.standard_normal(n_points) * noise
    y1 = r1 * np.sin(theta1 + np.pi) + rng.standard_normal(n_points) * noise
    X = np.column_stack([np.concatenate([x0, x1]), np.concatenate([y0, y1])])
    y = np.concatenate([np.zeros(n_points), np.ones(n_points)])
    idx = rng.permutation(len(y))
    X_ours, y_ours = ds.two_spirals_seed004(np.random.default_rng(42))
    assert X_ours.tobytes() == X[idx].tobytes()
    np.testing.assert_array_equal(y_ours, y[idx])


# ── geometry ─────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("n, k, noise", [(100, 3, 0.2), (50, 4, 1.0), (2, 1, 0.0)],
                         ids=["default", "4-classes-noisy", "tiny"])
def test_cs231n_radius_is_linspace_despite_angle_noise(n, k, noise):
    X, y = ds.spiral_cs231n(np.random.default_rng(3), n_per_class=n, n_classes=k, noise=noise)
    for j in range(k):
        P = X[y == j]  # cs231n does not shuffle: class blocks in order
        np.testing.assert_allclose(_radius(P), np.linspace(0, 1, n), rtol=0, atol=1e-12)


def test_cs231n_noise_free_angle_is_linspace_mod_2pi():
    n, k = 100, 3
    X, y = ds.spiral_cs231n(np.random.default_rng(0), n_per_class=n, n_classes=k, noise=0.0)
    for j in range(k):
        P = X[y == j][1:]  # point 0 sits at the origin: no angle
        angle = np.arctan2(P[:, 0], P[:, 1])  # X = [r sin t, r cos t]
        _assert_same_angle(angle, np.linspace(4 * j, 4 * j + 4, n)[1:])


def test_as_written_both_classes_lie_on_one_archimedean_curve():
    """The bug of seed 003: every noise-free point satisfies r = phi/(4pi), i.e. its angle is
    4pi*r (mod 2pi) — class 1 included, so the classes share one curve."""
    X, y = ds.two_spirals_as_written(np.random.default_rng(0), n_per_class=300, noise=0.0)
    _assert_same_angle(np.arctan2(X[:, 1], X[:, 0]), 4 * np.pi * _radius(X))
    # ... and class 1 is class 0's continuation: radius (theta_k + pi)/(4pi), angle theta_k + pi
    theta = np.linspace(0, 4 * np.pi, 300)
    P1 = _by_class_sorted_by_radius(X, y, 1)
    np.testing.assert_allclose(_radius(P1), (theta + np.pi) / (4 * np.pi), rtol=0, atol=1e-12)
    _assert_same_angle(np.arctan2(P1[:, 1], P1[:, 0]), theta + np.pi)
    # the overlap: class 1 on phi in [pi, 4pi] retraces class 0's radii there
    P0 = _by_class_sorted_by_radius(X, y, 0)
    r0, r1 = _radius(P0), _radius(P1)
    assert r0.max() == pytest.approx(1.0)
    assert r1.min() == pytest.approx(0.25) and r1.max() == pytest.approx(1.25)
    assert np.mean(r1 <= 1.0) > 0.74


def test_corrected_arm1_is_arm0_rotated_by_pi():
    X, y = ds.two_spirals_corrected(np.random.default_rng(0), n_per_class=300, noise=0.0)
    P0, P1 = _by_class_sorted_by_radius(X, y, 0), _by_class_sorted_by_radius(X, y, 1)
    np.testing.assert_allclose(P1, -P0, rtol=0, atol=1e-12)
    theta = np.linspace(0, 4 * np.pi, 300)
    np.testing.assert_allclose(_radius(P0), theta / (4 * np.pi), rtol=0, atol=1e-12)
    # class 1 is off class 0's curve by exactly half a turn (origin point excluded)
    P1 = P1[1:]
    _assert_same_angle(np.arctan2(P1[:, 1], P1[:, 0]), 4 * np.pi * _radius(P1) + np.pi)


def test_corrected_shares_arm0_and_permutation_with_as_written():
    """Same draw order: with one seed, arm 0 rows and the shuffle are bit-identical."""
    Xa, ya = ds.two_spirals_as_written(np.random.default_rng(5), n_per_class=50)
    Xc, yc = ds.two_spirals_corrected(np.random.default_rng(5), n_per_class=50)
    np.testing.assert_array_equal(ya, yc)
    assert Xa[ya == 0].tobytes() == Xc[yc == 0].tobytes()
    assert not np.array_equal(Xa[ya == 1], Xc[yc == 1])


def test_seed004_noise_free_radius_range():
    X, y = ds.two_spirals_seed004(np.random.default_rng(0), n_per_class=200, noise=0.0)
    assert X.shape == (400, 2)
    for label in (0, 1):
        P = _by_class_sorted_by_radius(X, y, label)
        np.testing.assert_allclose(_radius(P), np.linspace(0.5, 2, 200), rtol=0, atol=1e-12)
    r = _radius(X)
    assert r.min() == pytest.approx(0.5, abs=1e-12) and r.max() == pytest.approx(2.0, abs=1e-12)


def test_xor():
    X, y = ds.xor()
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0], X[:, 1]).astype(np.int64))


# ── Standardizer and digits ──────────────────────────────────────────────────────────────

@pytest.fixture(scope="module")
def raw_digits():
    from sklearn.datasets import load_digits
    return load_digits(return_X_y=True)


def test_standardizer_matches_sklearn_on_digits(raw_digits):
    from sklearn.preprocessing import StandardScaler
    X, _ = raw_digits
    ours, theirs = ds.Standardizer().fit(X), StandardScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=0, atol=1e-12)
    assert (ours.scale_[X.std(axis=0) == 0] == 1.0).all() and (X.std(axis=0) == 0).any()


@pytest.mark.parametrize("column", [np.zeros(10), np.full(10, 0.1), np.full(7, 1e10 / 3)],
                         ids=["zeros", "tenths", "large"])
def test_standardizer_constant_feature_scale_is_one_like_sklearn(column):
    """Rounding leaves 'tenths' and 'large' a tiny nonzero variance: a plain `var == 0`
    test would divide them by ~1e-7; sklearn's rounding bound (and ours) sets scale 1."""
    from sklearn.preprocessing import StandardScaler
    X = np.column_stack([column, np.arange(len(column), dtype=np.float64)])
    ours, theirs = ds.Standardizer().fit(X), StandardScaler().fit(X)
    assert ours.scale_[0] == 1.0 == theirs.scale_[0]
    np.testing.assert_allclose(ours.fit_transform(X), theirs.transform(X), rtol=0, atol=1e-12)


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match=r"Standardizer\.transform: not fitted yet; call fit"):
        ds.Standardizer().transform(np.ones((2, 3)))
    s = ds.Standardizer().fit(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match=r"Standardizer\.transform X has 3 features, expected 2"):
        s.transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Standardizer\.fit X contains NaN at row 0, column 0"):
        ds.Standardizer().fit(np.array([[np.nan]]))


def test_digits_split_then_standardize_on_train_only(raw_digits):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X_train, X_test, y_train, y_test = ds.digits()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert X_train.dtype == X_test.dtype == np.float64 and y_train.dtype == y_test.dtype == np.int64
    # fit on train only: train columns centred, test columns not all
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-12)
    assert not np.allclose(X_test.mean(axis=0), 0, atol=1e-12)
    # the same rows as sklearn's split of the raw data with the same random_state
    X, y = raw_digits
    Xr_tr, Xr_te, yr_tr, yr_te = train_test_split(X, y, test_size=0.2, random_state=42)
    np.testing.assert_array_equal(y_test, yr_te)
    np.testing.assert_array_equal(y_train, yr_tr)
    scaler = StandardScaler().fit(Xr_tr)
    np.testing.assert_allclose(X_test, scaler.transform(Xr_te), rtol=0, atol=1e-12)
    np.testing.assert_allclose(X_train, scaler.transform(Xr_tr), rtol=0, atol=1e-12)
    # seed 002's order (scale all, then split) gives different features: that is the leak
    leaky = StandardScaler().fit_transform(X)
    leaky_te = train_test_split(leaky, y, test_size=0.2, random_state=42)[1]
    assert np.abs(leaky_te - X_test).max() > 1e-3


def test_digits_other_split():
    X_train, X_test, _, _ = ds.digits(test_size=0.5, random_state=0)
    assert X_train.shape == (898, 64) and X_test.shape == (899, 64)


def test_digit_images_are_the_pixels_over_16_in_nchw_with_a_stratified_split(raw_digits):
    from sklearn.datasets import load_digits
    X_train, X_test, y_train, y_test = ds.digit_images()
    assert X_train.shape == (1437, 1, 8, 8) and X_test.shape == (360, 1, 8, 8)
    assert X_train.dtype == X_test.dtype == np.float64 and y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0, "pixels 0..16 scaled by 1/16"
    # every image is one of sklearn's, in its 8x8 orientation, with its label
    images, labels = load_digits().images / 16, raw_digits[1]
    rows = {img.tobytes(): int(k) for img, k in zip(images, labels)}
    for X, y in ((X_train, y_train), (X_test, y_test)):
        assert [rows.get(x[0].tobytes(), -1) for x in X] == y.tolist(), "image / label pairs"
    assert len({x.tobytes() for x in np.concatenate([X_train, X_test])}) == len(
        {img.tobytes() for img in images}), "the parts together hold every distinct image"
    # stratified: each digit's share of the held-out part within one image of its share overall
    overall = np.bincount(labels, minlength=10) * 360 / len(labels)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - overall) <= 1)
    # fixed by random_state, not by any global state
    again = ds.digit_images()
    assert all(np.array_equal(a, b) for a, b in zip(again, (X_train, X_test, y_train, y_test)))
    assert not np.array_equal(ds.digit_images(random_state=1)[3], y_test)


# ── split ────────────────────────────────────────────────────────────────────────────────

@_table("n, frac, n_train", [("seed003", 600, 0.2, 480), ("floor-7.5", 10, 0.25, 7),
                             ("floor-3.5", 7, 0.5, 3), ("floor-2.4", 3, 0.2, 2)])
def test_split_without_rng_keeps_order_and_floors(n, frac, n_train):
    X = np.arange(2.0 * n).reshape(n, 2)
    y = np.arange(n)
    X_tr, y_tr, X_te, y_te = ds.split(X, y, frac)
    assert len(y_tr) == n_train == int(n * (1 - frac))
    np.testing.assert_array_equal(np.concatenate([X_tr, X_te]), X)
    np.testing.assert_array_equal(np.concatenate([y_tr, y_te]), y)


def test_split_reproduces_seed_003():
    X, y = ds.two_spirals_as_written(np.random.default_rng(42))
    split = int(0.8 * len(y))  # seed 003, verbatim
    X_tr, y_tr, X_te, y_te = ds.split(X, y, 0.2)
    assert X_tr.tobytes() == X[:split].tobytes() and X_te.tobytes() == X[split:].tobytes()
    np.testing.assert_array_equal(y_tr, y[:split])
    np.testing.assert_array_equal(y_te, y[split:])


def test_split_with_rng_permutes_first():
    n = 50
    X, y = np.arange(2.0 * n).reshape(n, 2), np.arange(n) * 1.5
    X_tr, y_tr, X_te, y_te = ds.split(X, y, 0.3, rng=np.random.default_rng(9))
    perm = np.random.default_rng(9).permutation(n)
    np.testing.assert_array_equal(np.concatenate([X_tr, X_te]), X[perm])
    np.testing.assert_array_equal(np.concatenate([y_tr, y_te]), y[perm])
    assert len(y_tr) == 35 and y_tr.dtype == np.float64  # y keeps its dtype


SPLIT_ERRORS = [
    ("frac-zero", 10, 0.0, {}, ValueError, r"split: test_fraction must be in \(0, 1\), got 0\.0"),
    ("frac-one", 10, 1, {}, ValueError, r"test_fraction must be in \(0, 1\), got 1"),
    ("frac-nan", 10, float("nan"), {}, ValueError, r"test_fraction must be in \(0, 1\), got nan"),
    ("frac-str", 10, "0.2", {}, TypeError, r"test_fraction must be a real number, got str"),
    ("empty-train", 10, 0.9, {},
     ValueError, r"N=10 with test_fraction=0\.9 gives 0 train and 10 test rows"),
    ("empty-test", 3, 1e-17, {},
     ValueError, r"N=3 with test_fraction=1e-17 gives 3 train and 0 test rows"),
    ("rng-int", 10, 0.2, {"rng": 0}, TypeError, r"split: rng must be a numpy\.random\.Generator"),
]


@_table("n, frac, kwargs, exc, pattern", SPLIT_ERRORS)
def test_split_errors(n, frac, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ds.split(np.zeros((n, 2)), np.zeros(n, dtype=np.int64), frac, **kwargs)


def test_split_rejects_mismatched_y():
    with pytest.raises(ValueError, match=r"split: y must have shape \(4,\) to match X, got \(3,\)"):
        ds.split(np.zeros((4, 2)), np.zeros(3), 0.5)


# ── CSV ──────────────────────────────────────────────────────────────────────────────────

def test_csv_round_trip_bit_exact(tmp_path):
    rng = np.random.default_rng(11)
    X, y = ds.spiral_cs231n(rng, n_per_class=40, n_classes=3)
    path = tmp_path / "spiral.csv"
    ds.save_csv(path, X, y)
    X2, y2 = ds.load_csv(path, n_features=2)
    assert X2.dtype == np.float64 and y2.dtype == np.int64
    assert X2.tobytes() == X.tobytes() and np.array_equal(y2, y)


def test_csv_round_trip_special_values(tmp_path):
    X = np.array([[0.1, 1e-300], [-0.0, 5e-324], [np.finfo(float).max, -np.finfo(float).tiny],
                  [1 / 3, 2.0**53 + 2], [-1e22, 123456789.123456789]])
    y = np.array([0, 1, 2, 3, 9])
    path = tmp_path / "special.csv"
    ds.save_csv(str(path), X, y)
    X2, y2 = ds.load_csv(str(path))
    assert X2.view(np.uint64).tolist() == X.view(np.uint64).tolist()  # bits: -0.0 stays -0.0
    assert np.array_equal(X2, X) and np.array_equal(y2, y)
    assert path.read_text().splitlines()[1:3] == ["0.1,1e-300,0", "-0.0,5e-324,1"]


def test_csv_header_and_layout(tmp_path):
    path = tmp_path / "three.csv"
    ds.save_csv(path, np.array([[1.0, 2.5, -3.0]]), np.array([2.0]))  # integral float labels ok
    assert path.read_bytes() == b"x1,x2,x3,y\n1.0,2.5,-3.0,2\n"
    X, y = ds.load_csv(path)
    assert X.shape == (1, 3) and y.tolist() == [2]


def test_csv_integer_features_are_written_as_floats(tmp_path):
    path = tmp_path / "int.csv"
    ds.save_csv(path, np.array([[1, 2]]), np.array([0]))
    assert path.read_text() == "x1,x2,y\n1.0,2.0,0\n"


def test_csv_accepts_integral_float_labels(tmp_path):
    path = tmp_path / "pandas.csv"
    path.write_text("x1,x2,y\n0.5,1,2.0\n1e3,-2E-2,0\n")
    X, y = ds.load_csv(path)
    np.testing.assert_array_equal(X, [[0.5, 1.0], [1000.0, -0.02]])
    np.testing.assert_array_equal(y, [2, 0])


MALFORMED = [
    # id, file content, load kwargs, message regex (after the file name)
    ("bad-header", "a,b,y\n0.1,0.2,0\n", {}, r" line 1: expected header 'x1,x2,y', got 'a,b,y'"),
    ("header-spaces", "x1, x2, y\n0.1,0.2,0\n", {},
     r" line 1: expected header 'x1,x2,y', got 'x1, x2, y'"),
    ("header-only-y", "y\n0\n", {}, r" line 1: expected header 'x1,y', got 'y'"),
    ("wrong-n-features", "x1,x2,y\n0.1,0.2,0\n", {"n_features": 3},
     r" line 1: expected header 'x1,x2,x3,y', got 'x1,x2,y'"),
    ("short-row", "x1,x2,y\n" + "0.1,0.2,0\n" * 5 + "0.3,1\n", {},
     r" line 7: expected 3 fields, got 2$"),
    ("long-row", "x1,x2,y\n0.1,0.2,0,4\n", {}, r" line 2: expected 3 fields, got 4$"),
    ("blank-line", "x1,x2,y\n0.1,0.2,0\n\n0.1,0.2,0\n", {}, r" line 3: expected 3 fields, got 0$"),
    ("non-numeric", "x1,x2,y\n0.1,0.2,0\n0.1,abc,1\n", {}, r" line 3: x2 = 'abc' is not a number$"),
    ("space-padded", "x1,x2,y\n 0.1,0.2,0\n", {}, r" line 2: x1 = ' 0\.1' is not a number$"),
    ("nan", "x1,x2,y\nnan,0.2,0\n", {},
     r" line 2: x1 = 'nan' is not finite, expected a finite number$"),
    ("inf", "x1,x2,y\n0.1,-inf,0\n", {}, r" line 2: x2 = '-inf' is not finite"),
    ("overflow", "x1,x2,y\n0.1,1e400,0\n", {}, r" line 2: x2 = '1e400' overflows float64"),
    ("negative-label", "x1,x2,y\n0.1,0.2,0\n0.1,0.2,-1\n", {},
     r" line 3: y = '-1', expected an integer label >= 0"),
    ("fractional-label", "x1,x2,y\n0.1,0.2,1.5\n", {},
     r" line 2: y = '1\.5' is not an integer label$"),
    ("text-label", "x1,x2,y\n0.1,0.2,b\n", {}, r" line 2: y = 'b' is not an integer label$"),
    ("huge-label", "x1,x2,y\n0.1,0.2,9223372036854775808\n", {},
     r" line 2: y = '9223372036854775808', expected"),
    ("bad-quote", 'x1,x2,y\n0.1,0.2,0\n0.1,"0.2,0\n', {}, r" line 3: malformed CSV"),
    ("empty-file", "", {}, r": empty file; .*no data rows$"),
    ("header-only", "x1,x2,y\n", {}, r": header only, no data rows$"),
]


@_table("content, kwargs, pattern", MALFORMED)
def test_load_csv_rejects_malformed(tmp_path, content, kwargs, pattern):
    path = tmp_path / "spiral.csv"
    path.write_bytes(content.encode())
    with pytest.raises(ValueError, match=r"spiral\.csv" + pattern):
        ds.load_csv(path, **kwargs)


def test_load_csv_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.load_csv(tmp_path / "absent.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x1,y\n\xe9,0\n")
    with pytest.raises(ValueError, match=r"latin1\.csv: not valid UTF-8"):
        ds.load_csv(path)


BAD_SAVES = [
    ("nan-feature", np.array([[0.1, np.nan]]), np.array([0]),
     ValueError, r"save_csv X contains NaN at row 0, column 1"),
    ("1d-features", np.array([0.1, 0.2]), np.array([0, 1]), ValueError, r"save_csv X must be 2-D"),
    ("length-mismatch", np.zeros((3, 2)), np.array([0, 1]),
     ValueError, r"save_csv y has 2 samples, expected 3"),
    ("negative-label", np.zeros((2, 2)), np.array([0, -1]),
     ValueError, r"save_csv y contains label -1 at index 1"),
    ("fractional-label", np.zeros((2, 2)), np.array([0, 0.5]),
     ValueError, r"non-integral value 0\.5 at index 1"),
    ("list-features", [[0.1, 0.2]], np.array([0]),
     TypeError, r"save_csv X must be a numpy\.ndarray"),
]


@_table("X, y, exc, pattern", BAD_SAVES)
def test_failed_save_writes_nothing(tmp_path, X, y, exc, pattern):
    with pytest.raises(exc, match=pattern):
        ds.save_csv(tmp_path / "out.csv", X, y)
    assert os.listdir(tmp_path) == []


def test_failed_replace_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    ds.save_csv(path, np.array([[1.0, 2.0]]), np.array([1]))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk on fire")
    monkeypatch.setattr(ds.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        ds.save_csv(path, np.array([[3.0, 4.0]]), np.array([0]))
    assert os.listdir(tmp_path) == ["data.csv"] and path.read_bytes() == before


def test_save_overwrites_atomically_and_into_missing_dir_fails(tmp_path):
    path = tmp_path / "data.csv"
    ds.save_csv(path, np.zeros((5, 2)), np.zeros(5, dtype=np.int64))
    ds.save_csv(path, np.ones((1, 1)), np.array([3]))
    assert path.read_text() == "x1,y\n1.0,3\n" and os.listdir(tmp_path) == ["data.csv"]
    with pytest.raises(FileNotFoundError):
        ds.save_csv(tmp_path / "no" / "such.csv", np.ones((1, 1)), np.array([0]))
    assert os.listdir(tmp_path) == ["data.csv"]


# ── hygiene ──────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("module", ["datasets", "validation"])
def test_reference_module_imports_no_torch_and_sklearn_only_lazily(module):
    source = pathlib.Path(ds.__file__).with_name(f"{module}.py").read_text()
    tree = ast.parse(source)

    def root(name):  # "parity.reference.x" -> "parity.reference", "numpy.linalg" -> "numpy"
        parts = name.split(".")
        return ".".join(parts[:2]) if parts[0] == "parity" else parts[0]

    def roots(nodes):
        out = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                out |= {root(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module == "parity":
                out |= {f"parity.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                out.add(root(node.module or ""))
        return out
    assert "torch" not in roots(ast.walk(tree))  # anywhere, even inside functions
    # sklearn only inside the digits loader
    assert roots(tree.body) <= {"__future__", "csv", "functools", "math", "numbers", "os", "re",
                                "secrets", "numpy", "parity.reference"}
