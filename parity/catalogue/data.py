"""Named datasets of the catalogue: each gives a training part and a held-out part."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.reference import datasets as ds


@dataclass(frozen=True)
class Dataset:
    """``X_*: (N, D)`` float64 (images: ``(N, C, H, W)``), ``y_*: (N,)`` int64; ``held_out``:
    how the test part was made."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    held_out: str


def _fresh_draw(gen, rng, **opts) -> Dataset:
    r_train, r_test = (np.random.default_rng(int(s)) for s in rng.integers(2**63, size=2))
    X, y = gen(r_train, **opts)
    Xt, yt = gen(r_test, **opts)
    return Dataset(X, y, Xt, yt, "an independent draw of the same size from the same generator")


def _split(gen, rng, **opts) -> Dataset:
    X, y = gen(rng, **opts)
    X_tr, y_tr, X_te, y_te = ds.split(X, y, 0.2)
    return Dataset(X_tr, y_tr, X_te, y_te, "the last 20% of one permuted draw (as seed 003)")


def _xor(rng) -> Dataset:
    X, y = ds.xor()
    return Dataset(X, y, X, y, "none: XOR's four points are the whole domain")


def _digits(rng) -> Dataset:
    X_tr, X_te, y_tr, y_te = ds.digits(test_size=0.2, random_state=42)
    return Dataset(X_tr, y_tr, X_te, y_te,
                   "sklearn train_test_split(test_size=0.2, random_state=42)")


def _digit_images(rng) -> Dataset:
    X_tr, X_te, y_tr, y_te = ds.digit_images(test_size=0.2, random_state=0)
    return Dataset(X_tr, y_tr, X_te, y_te, "sklearn train_test_split(test_size=0.2, "
                   "random_state=0, stratified by digit)")


DATASETS = {
    "spiral3": lambda rng, **o: _fresh_draw(ds.spiral_cs231n, rng, **o),
    "two_spirals_003_as_written": lambda rng, **o: _split(ds.two_spirals_as_written, rng, **o),
    "two_spirals_003_corrected": lambda rng, **o: _split(ds.two_spirals_corrected, rng, **o),
    "two_spirals_004": lambda rng, **o: _fresh_draw(ds.two_spirals_seed004, rng, **o),
    "xor": lambda rng: _xor(rng),
    "digits": lambda rng: _digits(rng),
    "digit_images": lambda rng: _digit_images(rng),
}


def load(name: str, rng: np.random.Generator, **options) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](rng, **options)
