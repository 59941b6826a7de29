"""Catalogue models a generic check cannot run on yet, each with the measured reason. A test
that leaves one out first asserts that the limit still holds (``assert_no_kink_free_batch``),
so the day the check can run, the test fails and names the entry to delete here."""

import pytest

from parity.catalogue.checks import kink_free_batch
from parity.finite_diff import KinkError

_RELU_POOL = ("conv → ReLU → 2×2 max pool on 8×8 digits: a window whose four ReLU inputs are "
              "all negative outputs four 0s, a tie that MaxPool2d's kink distance counts as a "
              "kink although no parameter perturbation changes that window's maximum; a "
              "window over blank pixels holds four equal ReLU(b); with zero biases (He init) "
              "a blank 3×3 patch puts a ReLU input exactly at 0. Measured on the first 8 "
              "rows: He 2496 ReLU inputs and 4228 pooled entries at a kink, torch-default "
              "init 2 and 6330 (5740 of them tied 0s); 0 kink-free rows of 400 for either "
              "init, with input noise up to 0.1 (parity.finite_diff.kink_free_rows)")

NO_KINK_FREE_BATCH = {"digits-convnet": _RELU_POOL, "digits-convnet-bn": _RELU_POOL}


def skip_without_kink_free_batch(name: str, spec, seed: int = 0) -> None:
    """For a model of ``NO_KINK_FREE_BATCH``: assert ``kink_free_batch`` still finds no batch,
    then skip with the reason; any other model returns at once."""
    if name not in NO_KINK_FREE_BATCH:
        return
    with pytest.raises(KinkError):
        kink_free_batch(spec, seed)
    pytest.skip(f"{name}: no kink-free batch — {NO_KINK_FREE_BATCH[name]}")
