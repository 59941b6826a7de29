"""Datasets for the NumPy reference (NumPy only; scikit-learn only in the digits loaders).

Generators take an explicit `rng: numpy.random.Generator` and document the exact order in
which they draw from it, so the same seed gives bit-identical arrays on every run. All
features are float64 (N, D), images float64 (N, C, H, W); all class labels are int64 (N,).

Contents
    spiral_cs231n          K-class spiral of Stanford cs231n
    two_spirals_as_written seed document 003's generator, bug included (for the demonstration)
    two_spirals_corrected  the same with arm 1 = arm 0 rotated by pi
    two_spirals_seed004    seed document 004's generator
    xor                    the four XOR points
    digits                 sklearn's 8x8 digits, split, then standardized on train only
    digit_images           the same digits as (N, 1, 8, 8) images scaled by 1/16, stratified split
    Standardizer           (x - mean) / std with population std, like sklearn StandardScaler
    split                  train/test split (seed 003's floor rule)
    save_csv, load_csv     seed document 001's CSV format `x1,...,xD,y`, bit-exact round trip
"""

from __future__ import annotations

import csv
import functools
import math
import numbers
import os
import re
import secrets

import numpy as np
from parity.reference.validation import check_features, check_labels

__all__ = [
    "Standardizer", "digit_images", "digits", "load_csv", "save_csv", "spiral_cs231n",
    "split", "two_spirals_as_written", "two_spirals_corrected", "two_spirals_seed004", "xor",
]


# ── argument checks ──────────────────────────────────────────────────────────────────────

def _check_rng(rng, func: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{func}: rng must be a numpy.random.Generator "
                        f"(e.g. np.random.default_rng(0)), got {type(rng).__name__}")


def _check_int(value, func: str, arg: str, minimum: int) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {arg} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{func}: {arg} must be >= {minimum}, got {value}")


def _check_noise(noise, func: str) -> None:
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, numbers.Real):
        raise TypeError(f"{func}: noise must be a real number, got {type(noise).__name__}")
    if not (math.isfinite(noise) and float(noise) >= 0):
        raise ValueError(f"{func}: noise must be finite and >= 0, got {noise!r}")


# ── generators ───────────────────────────────────────────────────────────────────────────

def spiral_cs231n(rng, n_per_class=100, n_classes=3, noise=0.2):
    """K-class spiral of Stanford cs231n ("Putting it together: minimal neural network").

    For class j = 0..K-1, with N = n_per_class:
        r = linspace(0, 1, N)
        t = linspace(4j, 4(j+1), N) + noise * standard_normal(N)
        X[jN:(j+1)N] = [r sin t, r cos t];  y[jN:(j+1)N] = j
    Noise is drawn class by class, j = 0..K-1, one `rng.standard_normal(N)` call per class.
    Rows are NOT shuffled (class blocks in order), as in cs231n. Only the angle is noisy,
    so every point of class j keeps radius r exactly (up to rounding of sin/cos).

    rng: numpy.random.Generator. n_per_class, n_classes: ints >= 1. noise: float >= 0.
    Returns X: (N*K, 2) float64, y: (N*K,) int64.
    """
    func = "spiral_cs231n"
    _check_rng(rng, func)
    _check_int(n_per_class, func, "n_per_class", 1)
    _check_int(n_classes, func, "n_classes", 1)
    _check_noise(noise, func)
    n, k = n_per_class, n_classes
    X = np.zeros((n * k, 2), dtype=np.float64)
    y = np.zeros(n * k, dtype=np.int64)
    r = np.linspace(0.0, 1.0, n)
    for j in range(k):
        t = np.linspace(4.0 * j, 4.0 * (j + 1), n) + noise * rng.standard_normal(n)
        X[j * n:(j + 1) * n] = np.column_stack([r * np.sin(t), r * np.cos(t)])
        y[j * n:(j + 1) * n] = j
    return X, y


def _two_arms(rng, n, noise, arm):
    """Shared tail of the seed-003-style generators: noisy arms, stack, label, permute.

    arm(k) -> (x, y) noise-free coordinates of arm k; per arm, draws x noise then y noise
    with `rng.normal(0, noise, n)`; then `rng.permutation(2n)` shuffles the rows.
    """
    arms = []
    for k in (0, 1):
        cx, cy = arm(k)
        x = cx + rng.normal(0, noise, n)
        yy = cy + rng.normal(0, noise, n)
        arms.append(np.stack([x, yy], axis=1))
    X = np.vstack(arms)
    y = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def two_spirals_as_written(rng, n_per_class=300, noise=0.08):
    """Seed document 003's `make_spirals`, exactly as written — including its bug.

    With n = n_per_class:
        arm(n, offset): theta = linspace(0, 4pi, n) + offset
                        r = theta / (4pi)
                        x = r cos(theta) + normal(0, noise, n)
                        y = r sin(theta) + normal(0, noise, n)
        X0 = arm(n, 0); X1 = arm(n, pi); X = vstack([X0, X1]); y = [0]*n + [1]*n
        perm = rng.permutation(2n); return X[perm], y[perm]
    Draw order: arm 0 x noise, arm 0 y noise, arm 1 x noise, arm 1 y noise (each
    `rng.normal(0, noise, n)`), then `rng.permutation(2n)`.

    The bug: r = theta/(4pi) is computed AFTER the offset is added, so arm 1 is not arm 0
    rotated by pi. Writing phi for the (unwrapped) angle, both arms lie on the single
    Archimedean curve r = phi/(4pi): arm 0 covers phi in [0, 4pi], arm 1 covers
    phi in [pi, 5pi] — arm 1 is arm 0's continuation. For phi in [pi, 4pi] (three quarters of
    each arm) both classes occupy the same curve, so the classes overlap there (up to the
    noise) and no classifier can separate them; accuracy is capped well below 100%.
    Kept only to demonstrate this; use `two_spirals_corrected`.

    rng: numpy.random.Generator. n_per_class: int >= 1. noise: float >= 0 (std. deviation).
    Returns X: (2n, 2) float64 (shuffled), y: (2n,) int64 with n zeros and n ones.
    """
    func = "two_spirals_as_written"
    _check_rng(rng, func)
    _check_int(n_per_class, func, "n_per_class", 1)
    _check_noise(noise, func)
    n = n_per_class

    def arm(k):
        theta = np.linspace(0, 4 * np.pi, n) + k * np.pi  # offset added first ...
        r = theta / (4 * np.pi)                           # ... so r grows past 1 on arm 1
        return r * np.cos(theta), r * np.sin(theta)

    return _two_arms(rng, n, noise, arm)


def two_spirals_corrected(rng, n_per_class=300, noise=0.08):
    """Two interleaved spirals: seed 003's generator with its bug fixed.

    With n = n_per_class, theta = linspace(0, 4pi, n) and r = theta/(4pi) (computed before
    any offset), arm k in {0, 1} is
        x = r cos(theta + k pi) + normal(0, noise, n)
        y = r sin(theta + k pi) + normal(0, noise, n)
    i.e. arm 1 is arm 0 rotated by pi (noise-free: arm 1 = -arm 0), both with r in [0, 1].
    Labels: n zeros then n ones; rows are then shuffled with `rng.permutation(2n)`.
    Draw order identical to `two_spirals_as_written` (arm 0 x, arm 0 y, arm 1 x, arm 1 y,
    then the permutation), so with the same seed arm 0 and the permutation are identical.

    rng: numpy.random.Generator. n_per_class: int >= 1. noise: float >= 0 (std. deviation).
    Returns X: (2n, 2) float64 (shuffled), y: (2n,) int64 with n zeros and n ones.
    """
    func = "two_spirals_corrected"
    _check_rng(rng, func)
    _check_int(n_per_class, func, "n_per_class", 1)
    _check_noise(noise, func)
    n = n_per_class
    theta = np.linspace(0, 4 * np.pi, n)
    r = theta / (4 * np.pi)

    def arm(k):
        phi = theta + k * np.pi
        return r * np.cos(phi), r * np.sin(phi)

    return _two_arms(rng, n, noise, arm)


def two_spirals_seed004(rng, n_per_class=200, noise=0.2):
    """Seed document 004's `create_spiral_data` (two classes), with an explicit Generator.

    With n = n_per_class, theta = linspace(0, 4pi, n), r = linspace(0.5, 2, n):
        class 0: (r cos theta,        r sin theta)        + noise * standard_normal
        class 1: (r cos(theta + pi),  r sin(theta + pi))  + noise * standard_normal
    Draw order: x0, y0, x1, y1 noise, each `rng.standard_normal(n)`; then the rows
    (class 0 block, class 1 block) are shuffled with `rng.permutation(2n)`.
    Differences from the document: np.random.seed(42)/randn replaced by `rng`; labels are
    (2n,) int64 instead of a (2n, 1) float tensor; float64 instead of float32.

    rng: numpy.random.Generator. n_per_class: int >= 1. noise: float >= 0.
    Returns X: (2n, 2) float64 (shuffled), y: (2n,) int64 with n zeros and n ones.
    """
    func = "two_spirals_seed004"
    _check_rng(rng, func)
    _check_int(n_per_class, func, "n_per_class", 1)
    _check_noise(noise, func)
    n = n_per_class
    theta = np.linspace(0, 4 * np.pi, n)
    r = np.linspace(0.5, 2, n)
    x0 = r * np.cos(theta) + noise * rng.standard_normal(n)
    y0 = r * np.sin(theta) + noise * rng.standard_normal(n)
    x1 = r * np.cos(theta + np.pi) + noise * rng.standard_normal(n)
    y1 = r * np.sin(theta + np.pi) + noise * rng.standard_normal(n)
    X = np.column_stack([np.concatenate([x0, x1]), np.concatenate([y0, y1])])
    y = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    perm = rng.permutation(2 * n)
    return X[perm], y[perm]


def xor():
    """The XOR problem: X = [[0,0],[0,1],[1,0],[1,1]], y = x1 XOR x2 = [0,1,1,0].

    Returns X: (4, 2) float64, y: (4,) int64.
    """
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


# ── standardizing, splitting, digits ─────────────────────────────────────────────────────

class Standardizer:
    """Per-feature standardization z = (x - mean_) / scale_, like sklearn's StandardScaler.

    fit(X): mean_ = X.mean(0), var = X.var(0) (population variance, ddof=0),
    scale_ = sqrt(var), with near-constant features given scale_ = 1.0 exactly as
    StandardScaler does: a feature is constant if var <= N eps var + (N mean eps)^2
    (the rounding bound of the two-pass variance; an exactly zero variance always is).
    mean_, scale_: (D,) float64. Inputs are validated with `check_features`.
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None

    def fit(self, X):
        """Learn mean_ and scale_ from X: (N, D) real (cast to float64). Returns self."""
        X = np.asarray(check_features(X, name="Standardizer.fit X"), dtype=np.float64)
        n = X.shape[0]
        mean = X.mean(axis=0)
        var = X.var(axis=0)
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        self.mean_ = mean
        self.scale_ = np.where(constant, 1.0, np.sqrt(var))
        return self

    def transform(self, X):
        """Return (X - mean_) / scale_ as (N, D) float64; X must have the fitted D.

        Raises RuntimeError if called before fit, ValueError on a feature-count mismatch.
        """
        if self.mean_ is None:
            raise RuntimeError("Standardizer.transform: not fitted yet; call fit(X) first")
        X = check_features(X, n_features=self.mean_.shape[0], name="Standardizer.transform X")
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_

    def fit_transform(self, X):
        """fit(X) then transform(X): (N, D) -> (N, D) float64."""
        return self.fit(X).transform(X)


def split(X, y, test_fraction, rng=None):
    """Split rows into train and test: returns (X_tr, y_tr, X_te, y_te).

    X: (N, D) real, y: (N,) any dtype (returned with its dtype). With
    n_train = int(N * (1 - test_fraction)) — floor, exactly seed 003's
    `split = int(0.8 * len(y))` for test_fraction = 0.2 (1 - 0.2 == 0.8 in float64) —
    the first n_train rows are train and the rest test. If rng (numpy.random.Generator)
    is given, rows are first reordered by `rng.permutation(N)`; if None, the order is kept
    (seed 003 splits data its generator has already shuffled).
    Note the floor: N * (1 - f) can land just below an integer (N=10, f=0.9 gives
    0.9999999999999998, i.e. 0 train rows, which raises).

    Raises TypeError for a non-real test_fraction or a non-Generator rng, ValueError if
    test_fraction is not in (0, 1), if y's shape is not (N,), or if either part is empty.
    """
    func = "split"
    X = check_features(X, name="split X")
    n = X.shape[0]
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{func}: y must be a numpy.ndarray of shape (N,), "
                        f"got {type(y).__name__}")
    if y.shape != (n,):
        raise ValueError(f"{func}: y must have shape ({n},) to match X, got {y.shape}")
    if isinstance(test_fraction, (bool, np.bool_)) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"{func}: test_fraction must be a real number, "
                        f"got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"{func}: test_fraction must be in (0, 1), got {test_fraction!r}")
    n_train = int(n * (1 - test_fraction))
    if n_train == 0 or n_train == n:
        raise ValueError(f"{func}: N={n} with test_fraction={test_fraction!r} gives "
                         f"{n_train} train and {n - n_train} test rows; both must be >= 1")
    if rng is not None:
        _check_rng(rng, func)
        perm = rng.permutation(n)
        X, y = X[perm], y[perm]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's ``load_digits(return_X_y=True)`` as float64 and int64, read once per
    process (it parses a compressed CSV at every call) and read-only, so no caller can
    change what the next one gets."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = np.array(X, dtype=np.float64), np.array(y, dtype=np.int64)
    X.flags.writeable = y.flags.writeable = False
    return X, y


def digits(test_size=0.2, random_state=42):
    """sklearn's 8x8 handwritten digits, split, then standardized without leakage.

    X, y = sklearn.datasets.load_digits(return_X_y=True)   # 1797 x 64, pixels 0..16
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=random_state)
    then a `Standardizer` is fit on X_train ONLY and applied to both parts.
    Seed document 002 instead fits StandardScaler on all 1797 rows before splitting, so
    the test rows' statistics leak into the training features; here they don't (train
    columns have mean 0, test columns only approximately).
    The data ship with scikit-learn: no download. scikit-learn is imported here only.

    Returns X_train: (1437, 64) float64, X_test: (360, 64) float64, y_train: (1437,) int64,
    y_test: (360,) int64 (for the defaults) — sklearn's order, unlike `split`.
    """
    from sklearn.model_selection import train_test_split

    X, y = _load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state)
    scaler = Standardizer().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def digit_images(test_size=0.2, random_state=0):
    """sklearn's 8x8 handwritten digits as one-channel images for a convnet (NCHW).

    X, y = sklearn.datasets.load_digits(return_X_y=True)   # 1797 x 64, pixels 0..16
    X = (X / 16).reshape(N, 1, 8, 8)   # in [0, 1]; X[i, 0] == load_digits().images[i] / 16
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size,
                                                        random_state=random_state, stratify=y)
    The scale is the pixels' fixed range, not a statistic of the data, so nothing is learned
    from either part and nothing can leak from the held-out part. Stratified: every digit has
    the same share of each part (to within one image), so a held-out accuracy is not moved by
    which digits the draw happened to hold out. The split is fixed by ``random_state``, not by
    a model's seed: every seed of a model is judged on the same held-out images.

    Returns X_train: (1437, 1, 8, 8) float64, X_test: (360, 1, 8, 8) float64,
    y_train: (1437,) int64, y_test: (360,) int64 (for the defaults).
    """
    from sklearn.model_selection import train_test_split

    X, y = _load_digits()
    X = (X / 16.0).reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y)
    return X_train, X_test, y_train, y_test


# ── CSV (seed document 001's format) ─────────────────────────────────────────────────────

# ASCII digits only: Python's \d (and float()/int()) also take Arabic-Indic, fullwidth, …
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE_RE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)
_INT_RE = re.compile(r"[+-]?[0-9]+")


def _header(d: int) -> list[str]:
    return [f"x{i}" for i in range(1, d + 1)] + ["y"]


def save_csv(path, X, y):
    """Write X, y as CSV in seed document 001's format, atomically.

    X: (N, D) float64 (integers accepted; written as floats), finite. y: (N,) integer
    labels >= 0 (see `check_labels`). File layout: header `x1,...,xD,y`, then one line per
    sample: the D features as `repr(float(v))` (shortest string that round-trips, so
    `load_csv` gives back bit-identical float64, including -0.0 and subnormals) and the
    label as a decimal integer; lines end with "\\n", UTF-8.

    Inputs are validated before anything touches the disk. The data go to a temp file in
    the target directory which then replaces `path` with os.replace, so `path` is either
    the old file or the complete new one, and no temp file is left behind on failure.
    """
    X = check_features(X, name="save_csv X")
    y = check_labels(y, n_samples=X.shape[0], name="save_csv y")
    path = os.path.realpath(os.fspath(path))   # a symlink's target is written, the link kept
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"save_csv: {path} exists and is not a regular file; refusing to "
                         f"replace it")
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:  # "x": never clobber
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(_header(X.shape[1]))
            for row, label in zip(X.tolist(), y.tolist(), strict=True):
                writer.writerow([repr(float(v)) for v in row] + [str(label)])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _open_regular(name: str):
    """A text reader of ``name`` if it is a regular file; a FIFO, device or directory is a
    ValueError, judged by fstat on a non-blocking open (a FIFO never blocks the open)."""
    import stat  # local: this module's top-level imports are pinned by a test
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
                    stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
                    stat.S_IFSOCK: "a socket"}.get(stat.S_IFMT(mode), "not a regular file")
            raise ValueError(f"{name}: {kind}, not a regular file; only regular files are read")
        os.set_blocking(fd, True)
        return open(fd, encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


def _parse_feature(field: str, where: str, col: int) -> float:
    if _FLOAT_RE.fullmatch(field):
        v = float(field)
        if math.isfinite(v):
            return v
        raise ValueError(f"{where}: x{col} = {field!r} overflows float64, expected a finite number")
    if _NONFINITE_RE.fullmatch(field):
        raise ValueError(f"{where}: x{col} = {field!r} is not finite, expected a finite number")
    raise ValueError(f"{where}: x{col} = {field!r} is not a number")


def _parse_label(field: str, where: str) -> int:
    if _INT_RE.fullmatch(field):
        v = int(field)
    elif _FLOAT_RE.fullmatch(field) and float(field).is_integer():
        v = int(float(field))  # e.g. "2.0" as written by pandas for a float column
    else:
        raise ValueError(f"{where}: y = {field!r} is not an integer label")
    if not 0 <= v < 2**63:
        raise ValueError(f"{where}: y = {field!r}, expected an integer label >= 0 "
                         f"that fits in int64")
    return v


def load_csv(path, n_features=None):
    """Read a CSV in seed document 001's format (as written by `save_csv`), strictly.

    Expected: header exactly `x1,...,xD,y` (D = n_features if given, else inferred from
    the header, D >= 1), then >= 1 data lines of D + 1 fields: D decimal floats (finite;
    no 'nan'/'inf', no surrounding spaces) and an integer label >= 0 (an integral float
    such as "2.0" is accepted). Parsed with the csv module.

    Returns X: (N, D) float64, y: (N,) int64.
    Raises FileNotFoundError for a missing file and ValueError for anything malformed,
    naming the file and the 1-based line: "spiral.csv line 7: expected 3 fields, got 2";
    an empty or header-only file raises "... no data rows".
    """
    func = "load_csv"
    if n_features is not None:
        _check_int(n_features, func, "n_features", 1)
    name = os.fspath(path)
    rows, labels = [], []
    try:
        with _open_regular(name) as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{name}: empty file; expected a header 'x1,...,xD,y' "
                                 f"and data rows, found no data rows")
            d = n_features if n_features is not None else max(len(header) - 1, 1)
            if header != _header(d):
                raise ValueError(f"{name} line 1: expected header {','.join(_header(d))!r}, "
                                 f"got {','.join(header)!r}")
            for fields in reader:
                where = f"{name} line {reader.line_num}"
                if len(fields) != d + 1:
                    raise ValueError(f"{where}: expected {d + 1} fields, got {len(fields)}")
                rows.append([_parse_feature(v, where, j + 1) for j, v in enumerate(fields[:-1])])
                labels.append(_parse_label(fields[-1], where))
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{name} line {reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise ValueError(f"{name}: header only, no data rows")
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64)
