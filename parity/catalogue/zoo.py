"""The catalogue: every model of the source documents (shared/seeds/) as one ``ModelSpec``,
and beyond them cs231n's three-layer convnet on the 8×8 digits (with a BatchNorm2d variant).

Tests, the CLI and the study iterate over ``CATALOGUE``; nothing else defines a model.
"""

from __future__ import annotations

from typing import Any

from parity.catalogue.spec import ModelSpec, Source, Target
from parity.layerspec import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
)
from parity.twins import OptimSpec

SEED_000 = "000_8ac0cd49e651210c.txt"   # cs231n case study (spiral, linear vs 2-layer)
SEED_001 = "001_ddd4811a56914c4d.txt"   # blog: NumPy net on spiral.csv
SEED_002 = "002_9d1f4197ac171368.txt"   # XOR and digits from scratch
SEED_003 = "003_877ca1bcc2424752.txt"   # two-spiral MLP with BatchNorm/Dropout/Adam
SEED_004 = "004_f27c30904d633e3f.txt"   # PyTorch two-spiral 2→16→8→1, XOR by hand
# Beyond the documents: a model none of them holds, named by where its architecture is from.
CS231N_CNN = "cs231n assignment 2: ThreeLayerConvNet (cs231n/classifiers/cnn.py)"

# Each source once: the document's own title (000 has none: its opening line stands for it),
# what the catalogue takes from it, and the seed file. The report and `list` lead with title.
SOURCES = {s.key: s for s in (
    Source(SEED_000, "Build a complete 2-layer neural network from raw Python",
           "the cs231n case study: spiral data, a linear classifier, then a 2-layer net",
           SEED_000),
    Source(SEED_001, "Decoding the Deep Learning Black Box: Building a Neural Net with NumPy",
           "the blog's NumPy net on spiral.csv", SEED_001),
    Source(SEED_002, "Neural Network from Scratch",
           "XOR and the 8×8 digits with a NumPy 2-layer net", SEED_002),
    Source(SEED_003, "ch334 — Project: Neural Net from Scratch (NumPy only)",
           "the two-spiral MLP with BatchNorm, Dropout and Adam", SEED_003),
    Source(SEED_004, "Building Your First Neural Network",
           "PyTorch 2→16→8→1 on two spirals, and XOR by hand", SEED_004),
    Source(CS231N_CNN, "Beyond the documents: cs231n's ThreeLayerConvNet",
           "cs231n's three-layer convnet (assignment 2, cs231n/classifiers/cnn.py) on 8×8 "
           "digits"),
)}


def source_of(spec_or_key) -> Source:
    """The ``Source`` record of a ``ModelSpec`` (or of a ``ModelSpec.source`` key)."""
    key = getattr(spec_or_key, "source", spec_or_key)
    if key not in SOURCES:
        raise ValueError(f"catalogue: source {key!r} has no record in zoo.SOURCES")
    return SOURCES[key]


_MODELS = [
    ModelSpec(
        name="cs231n-linear", source=SEED_000,
        summary="softmax classifier on the 3-class spiral; the document's point: it fails (~49%)",
        layers=(Linear(2, 3),), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0, weight_decay=1e-3, decay="weights"),
        reg_in_loss=True, dataset="spiral3", init="normal0.01", epochs=200,
        target=Target(0.60, "test", "<"),
    ),
    ModelSpec(
        name="cs231n-2layer", source=SEED_000,
        summary="2→100→3 ReLU net, 0.01·randn init, L2 1e-3 on weights, lr 1, full batch",
        layers=(Linear(2, 100), ReLU(), Linear(100, 3)), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0, weight_decay=1e-3, decay="weights"),
        reg_in_loss=True, dataset="spiral3", init="normal0.01", epochs=10_000,
        target=Target(0.95),
    ),
    ModelSpec(
        name="blog-2layer", source=SEED_001,
        summary="the blog's NeuralNet: same 2→100→3 net, no regularization, lr 1, 10 000 epochs",
        layers=(Linear(2, 100), ReLU(), Linear(100, 3)), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=1.0), dataset="spiral3", init="normal0.01",
        epochs=10_000, target=Target(0.95),
        notes="the blog's spiral.csv is not shipped: the cs231n generator's data stand in "
              "(same format via reference.datasets.save_csv/load_csv)",
    ),
]

# ---- seed 002: XOR and digits, "Xavier" init that is really He (sqrt(2/fan_in)) ----------------
_DIGITS: dict[str, Any] = dict(loss="cross_entropy", dataset="digits", init="he")


def _bn_block(i, o, p_drop):
    return (Linear(i, o), BatchNorm1d(o), ReLU(), Dropout(p_drop))


def _ln_block(i, o, p_drop):
    return (Linear(i, o), LayerNorm(o), ReLU(), Dropout(p_drop))


def _spiral003(block, hidden=(128, 128, 64)):
    dims = (2,) + tuple(hidden)
    body = tuple(x for i, o in zip(dims, dims[1:]) for x in block(i, o, 0.15))
    return body + (Linear(dims[-1], 1), Sigmoid())


_SPIRAL003: dict[str, Any] = dict(loss="bce", init="he", epochs=500, batch_size=64)
# On the corrected generator the arms are 0.25 apart radially; at the document's noise 0.08
# per coordinate the Bayes ceiling is 0.862 (parity.audit.bayes: exact posterior over the latent
# grid, Monte Carlo), so 95% is out of reach for any classifier (see the claims audit).
# Noise 0.02 is where the net reaches it (measured, numpy, seeds 0/1: 98.3% / 96.7%
# held-out; 0.04 gives 97.5% / 95.0%).
_CORRECTED: dict[str, Any] = dict(dataset="two_spirals_003_corrected",
                                  dataset_options={"noise": 0.02})
_SPIRAL004: dict[str, Any] = dict(loss="bce_with_logits", dataset="two_spirals_004",
                                  init="uniform_torch", epochs=500)
_NET004 = (Linear(2, 16), ReLU(), Linear(16, 8), ReLU(), Linear(8, 1))

_MODELS += [
    ModelSpec(
        name="xor-relu", source=SEED_002,
        summary="XOR with 2→8→2 ReLU + softmax cross-entropy, lr 0.5, 2000 full-batch epochs",
        layers=(Linear(2, 8), ReLU(), Linear(8, 2)), loss="cross_entropy",
        optimizer=OptimSpec("sgd", lr=0.5), dataset="xor", init="he", epochs=2000,
        target=Target(1.0, "train"),
        notes="seed-dependent: some initializations leave dead ReLUs; see the 20-seed table",
    ),
    ModelSpec(
        name="digits-2layer", source=SEED_002,
        summary="8×8 digits, 64→128→10 ReLU, lr 0.1, 500 full-batch epochs",
        layers=(Linear(64, 128), ReLU(), Linear(128, 10)),
        optimizer=OptimSpec("sgd", lr=0.1), epochs=500, target=Target(0.95), **_DIGITS,
    ),
    ModelSpec(
        name="digits-minibatch", source=SEED_002,
        summary="digits 64→128→10, SGD lr 0.01, 200 epochs of shuffled minibatches of 32",
        layers=(Linear(64, 128), ReLU(), Linear(128, 10)),
        optimizer=OptimSpec("sgd", lr=0.01), epochs=200, batch_size=32, target=Target(0.95),
        **_DIGITS,
    ),
    ModelSpec(
        name="digits-3layer", source=SEED_002,
        summary="exercise 1: a third layer, 64→128→64→10 ReLU, lr 0.1, 500 full-batch epochs",
        layers=(Linear(64, 128), ReLU(), Linear(128, 64), ReLU(), Linear(64, 10)),
        optimizer=OptimSpec("sgd", lr=0.1), epochs=500, target=Target(0.95), **_DIGITS,
    ),
    ModelSpec(
        name="digits-dropout", source=SEED_002,
        summary="exercise 2: inverted dropout p=0.2 on the hidden layer, lr 0.1, 500 epochs",
        layers=(Linear(64, 128), ReLU(), Dropout(0.2), Linear(128, 10)),
        optimizer=OptimSpec("sgd", lr=0.1), epochs=500, target=Target(0.95), **_DIGITS,
    ),
    ModelSpec(
        name="digits-momentum", source=SEED_002,
        summary="exercise 3: SGD momentum 0.9 (torch's v = βv + g; θ −= lr·v), lr 0.01, 500 epochs",
        layers=(Linear(64, 128), ReLU(), Linear(128, 10)),
        optimizer=OptimSpec("sgd", lr=0.01, options={"momentum": 0.9}), epochs=500,
        target=Target(0.95), **_DIGITS,
    ),
    # ---- seed 003: the two-spiral MLP with BatchNorm, ReLU, Dropout(keep 0.85), Adam --------
    ModelSpec(
        name="spiral003-as-written", source=SEED_003,
        summary="2→128→128→64→1 BN+ReLU+Dropout, sigmoid+BCE, Adam 3e-3, 500 epochs of 64, "
                "on the document's generator (both arms on one curve)",
        layers=_spiral003(_bn_block), optimizer=OptimSpec("adam", lr=3e-3),
        dataset="two_spirals_003_as_written", target=None, **_SPIRAL003,
        notes="the generator puts both classes on r = φ/4π: no classifier reaches 95% — "
              "see the claims audit",
    ),
    ModelSpec(
        name="spiral003", source=SEED_003,
        summary="the same net on the corrected generator (arm 1 = arm 0 rotated by π), "
                "noise 0.02",
        layers=_spiral003(_bn_block), optimizer=OptimSpec("adam", lr=3e-3),
        target=Target(0.95), **_CORRECTED, **_SPIRAL003,
    ),
    ModelSpec(
        name="spiral003-layernorm", source=SEED_003,
        summary="extension 1: LayerNorm instead of BatchNorm",
        layers=_spiral003(_ln_block), optimizer=OptimSpec("adam", lr=3e-3),
        target=Target(0.95), **_CORRECTED, **_SPIRAL003,
    ),
    ModelSpec(
        name="spiral003-adam-l2", source=SEED_003,
        summary="extension 2: Adam with L2 weight_decay 1e-3 (added to the gradient)",
        layers=_spiral003(_bn_block),
        optimizer=OptimSpec("adam", lr=3e-3, weight_decay=1e-3),
        target=Target(0.95), **_CORRECTED, **_SPIRAL003,
    ),
    ModelSpec(
        name="spiral003-adamw", source=SEED_003,
        summary="extension 2: AdamW, decoupled weight decay 1e-2",
        layers=_spiral003(_bn_block),
        optimizer=OptimSpec("adamw", lr=3e-3, weight_decay=1e-2),
        target=Target(0.95), **_CORRECTED, **_SPIRAL003,
    ),
    # ---- seed 004: PyTorch 2→16→8→1 on two spirals, and XOR by hand ------------------------
    ModelSpec(
        name="spiral004", source=SEED_004,
        summary="2→16→8→1 ReLU (193 parameters), BCEWithLogits, Adam 0.01, 500 full-batch "
                "epochs, torch's default init, 2×200 points, noise 0.2",
        layers=_NET004, optimizer=OptimSpec("adam", lr=0.01), target=None, **_SPIRAL004,
        notes="the claimed ~95% is not reachable at noise 0.2 — see the claims audit",
    ),
    ModelSpec(
        name="spiral004-corrected", source=SEED_004,
        summary="a setting that reaches 95%: noise 0.05 and 2→32→16→1, Adam 0.01, 3000 epochs",
        layers=(Linear(2, 32), ReLU(), Linear(32, 16), ReLU(), Linear(16, 1)),
        optimizer=OptimSpec("adam", lr=0.01), target=Target(0.95),
        **{**_SPIRAL004, "epochs": 3000, "dataset_options": {"noise": 0.05}},
        notes="Bayes ceiling of the seed-004 generator: 0.728 at noise 0.2, 0.952 at 0.1, "
              "0.9998 at 0.05 (parity.audit.bayes)",
    ),
    ModelSpec(
        name="xor-sigmoid", source=SEED_004,
        summary="XOR 2→2→1 with sigmoid hidden and output, BCE, randn·0.5 init, lr 1.0, "
                "10 000 full-batch epochs",
        layers=(Linear(2, 2), Sigmoid(), Linear(2, 1), Sigmoid()), loss="bce",
        optimizer=OptimSpec("sgd", lr=1.0), dataset="xor", init="normal0.5", epochs=10_000,
        target=Target(1.0, "train"),
    ),
    ModelSpec(
        name="spiral004-deeper", source=SEED_004,
        summary="exercise 1: a third hidden layer of 4 (2→16→8→4→1)",
        layers=_NET004[:-1] + (Linear(8, 4), ReLU(), Linear(4, 1)),
        optimizer=OptimSpec("adam", lr=0.01), target=None, **_SPIRAL004,
    ),
    ModelSpec(
        name="spiral004-sgd", source=SEED_004,
        summary="exercise 2: plain SGD lr 0.01 instead of Adam",
        layers=_NET004, optimizer=OptimSpec("sgd", lr=0.01), target=None, **_SPIRAL004,
    ),
    ModelSpec(
        name="spiral004-momentum", source=SEED_004,
        summary="exercise 2: SGD lr 0.01 with momentum 0.9",
        layers=_NET004, optimizer=OptimSpec("sgd", lr=0.01, options={"momentum": 0.9}),
        target=None, **_SPIRAL004,
    ),
    ModelSpec(
        name="spiral004-weight-decay", source=SEED_004,
        summary="exercise 4: Adam with weight_decay 1e-4 (torch's: every parameter)",
        layers=_NET004, optimizer=OptimSpec("adam", lr=0.01, weight_decay=1e-4), target=None,
        **_SPIRAL004,
    ),
    ModelSpec(
        name="spiral004-early-stopping", source=SEED_004,
        summary="exercise 3: early stopping on validation loss (last 20% of the training "
                "draw), patience 100, up to 3000 epochs",
        layers=_NET004, optimizer=OptimSpec("adam", lr=0.01), target=None, patience=100,
        **{**_SPIRAL004, "epochs": 3000},
    ),
    ModelSpec(
        name="spiral004-numpy-challenge", source=SEED_004,
        summary="challenge: 2→64→1, ReLU hidden, sigmoid output + BCE, SGD lr 0.5, "
                "2000 full-batch epochs",
        layers=(Linear(2, 64), ReLU(), Linear(64, 1), Sigmoid()), loss="bce",
        optimizer=OptimSpec("sgd", lr=0.5), dataset="two_spirals_004", init="he",
        epochs=2000, target=None,
    ),
]



# ---- beyond the documents: cs231n's three-layer convnet on sklearn's 8×8 digits -------------
def _convnet(batchnorm: bool, filters: int = 32, hidden: int = 100):
    """conv 3×3 (padding 1 keeps 8×8) → [BatchNorm2d] → ReLU → 2×2 max pool → affine → ReLU
    → affine: cs231n's ThreeLayerConvNet (32 filters, hidden 100: its defaults)."""
    conv = (Conv2d(1, filters, 3, padding=1),) + ((BatchNorm2d(filters),) if batchnorm else ())
    return conv + (ReLU(), MaxPool2d(2), Flatten(), Linear(filters * 4 * 4, hidden), ReLU(),
                   Linear(hidden, 10))


# cs231n's solver settings for it: Adam lr 1e-3, minibatches of 50, L2 reg 1e-3 on the weights
# reported in the loss as 0.5·reg·ΣW² (torch: Adam's weight_decay on the weights' group).
_CONVNET: dict[str, Any] = dict(
    source=CS231N_CNN, loss="cross_entropy", dataset="digit_images", image_shape=(1, 8, 8),
    init="he", epochs=30, batch_size=50, reg_in_loss=True, target=Target(0.97),
    optimizer=OptimSpec("adam", lr=1e-3, weight_decay=1e-3, decay="weights"))
_CONVNET_NOTES = ("cs231n's filter size is 7 for 32×32 CIFAR images; on 8×8 digits 3×3 "
                  "(padding 1). Its init 1e-3·N(0, 1) trained slowly here (torch-only search, "
                  "16 filters, 15 epochs: 73% and 83% held-out, seed 2 at chance): He normal "
                  "instead, as the digits models (docs/convnet.md)")

_MODELS += [
    ModelSpec(
        name="digits-convnet",
        summary="cs231n's three-layer convnet on 8×8 digits (pixels/16): conv 32×3×3 → ReLU → "
                "2×2 max pool → 512→100 → ReLU → 100→10, softmax, L2 1e-3, Adam 1e-3, "
                "30 epochs of 50",
        layers=_convnet(batchnorm=False), notes=_CONVNET_NOTES, **_CONVNET),
    ModelSpec(
        name="digits-convnet-bn",
        summary="the same with BatchNorm2d(32) between the convolution and its ReLU "
                "(cs231n's spatial batch normalization)",
        layers=_convnet(batchnorm=True), notes=_CONVNET_NOTES, **_CONVNET),
]

CATALOGUE: dict[str, ModelSpec] = {m.name: m for m in _MODELS}


def get(name: str) -> ModelSpec:
    if name not in CATALOGUE:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]
