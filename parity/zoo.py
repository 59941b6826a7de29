"""The catalogue: every model of the source documents (shared/seeds/) as one ``ModelSpec``.

Tests, the CLI and the study iterate over ``CATALOGUE``; nothing else defines a model.
"""

from __future__ import annotations

from parity.spec import ModelSpec, OptimSpec, Target

SEED_000 = "000_8ac0cd49e651210c.txt"   # cs231n case study (spiral, linear vs 2-layer)
SEED_001 = "001_ddd4811a56914c4d.txt"   # blog: NumPy net on spiral.csv
SEED_002 = "002_9d1f4197ac171368.txt"   # XOR and digits from scratch
SEED_003 = "003_877ca1bcc2424752.txt"   # two-spiral MLP with BatchNorm/Dropout/Adam
SEED_004 = "004_f27c30904d633e3f.txt"   # PyTorch two-spiral 2→16→8→1, XOR by hand

_MODELS = [
    ModelSpec(
        name="cs231n-linear", source=SEED_000,
        summary="softmax classifier on the 3-class spiral; the document's point: it fails (~49%)",
        layers=(("linear", 2, 3),), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0, weight_decay=1e-3, decay="weights"),
        reg_in_loss=True, dataset="spiral3", init="normal0.01", epochs=200,
        target=Target(0.60, "test", "<"),
    ),
    ModelSpec(
        name="cs231n-2layer", source=SEED_000,
        summary="2→100→3 ReLU net, 0.01·randn init, L2 1e-3 on weights, lr 1, full batch",
        layers=(("linear", 2, 100), ("relu",), ("linear", 100, 3)), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0, weight_decay=1e-3, decay="weights"),
        reg_in_loss=True, dataset="spiral3", init="normal0.01", epochs=10_000,
        target=Target(0.95),
    ),
    ModelSpec(
        name="blog-2layer", source=SEED_001,
        summary="the blog's NeuralNet: same 2→100→3 net, no regularization, lr 1, 10 000 epochs",
        layers=(("linear", 2, 100), ("relu",), ("linear", 100, 3)), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0), dataset="spiral3", init="normal0.01",
        epochs=10_000, target=Target(0.95),
        notes="the blog's spiral.csv is not shipped: the cs231n generator's data stand in "
              "(same format via reference.datasets.save_csv/load_csv)",
    ),
]

CATALOGUE: dict[str, ModelSpec] = {m.name: m for m in _MODELS}


def get(name: str) -> ModelSpec:
    if name not in CATALOGUE:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]
