"""The vocabularies of the public API as ``Literal`` types, one definition each, so that a type
checker and an editor know ``loss="cross_entropy"`` from ``loss="crossentropy"``.

Runtime validation stays where it was (``parity.kinds``, ``parity.dtypes``, ``parity.api``,
``parity.function_twins``): a value a type checker never saw (read from a file, a CLI
argument) is still refused with a ``ValueError`` naming it. tests/test_public_api.py holds each
``Literal`` equal to the runtime vocabulary it stands for. Standard library only.
"""

from __future__ import annotations

from typing import Literal

#: A loss of ``parity.kinds.LOSSES`` (README, "Check your own model").
LossName = Literal["cross_entropy", "bce", "bce_with_logits", "mse", "l1", "smooth_l1",
                   "huber", "nll", "cross_entropy_probs", "multi_margin"]
#: An optimizer of ``parity.kinds.OPTIMIZERS``, with torch's defaults when named alone.
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
#: float64 is the exact tier, float32 the practical tier (``parity.dtypes.DTYPES``).
DtypeName = Literal["float64", "float32"]
#: The loss over the batch: torch's default mean, or the sum.
Reduction = Literal["mean", "sum"]
#: Dropout masks: torch's, handed to NumPy (the only mode).
Masks = Literal["shared"]
#: Whose weights both copies start from.
Weights = Literal["numpy", "torch"]
#: One example per row ``X: (N, D)`` or per column ``X: (D, N)`` (``compare_functions``).
Examples = Literal["rows", "columns"]
#: The batch variance a hand-written BatchNorm folds into its running variance.
RunningVar = Literal["unbiased", "biased"]
