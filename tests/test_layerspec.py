"""The layer vocabulary (``layerspec``): every type built by both builders and counted by
``num_parameters`` exactly as the built twins count their parameters; the catalogue's layer
summaries and parameter counts unchanged by the move from tuples (pinned below, also through
``nn-parity list`` and its JSON); unknown items refused with a ``TypeError`` naming them."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from parity import kinds, reference
from parity import layerspec as S
from parity.catalogue import zoo
from parity.catalogue.spec import ModelSpec
from parity.cli import main
from parity.kinds import numpy_model as build_numpy
from parity.kinds import torch_model
from parity.twins import OptimSpec

# one example per vocabulary type, from its record (tests/test_kinds.py keeps them complete);
# the summaries of the catalogue's types pinned, every other type's checked to be one line
EXAMPLE = {k.spec: k.examples[0].spec for k in kinds.KINDS}
SUMMARY = {S.Linear: "Linear(5,3)", S.ReLU: "ReLU", S.Sigmoid: "Sigmoid", S.Tanh: "Tanh",
           S.Dropout: "Dropout(0.5)", S.BatchNorm1d: "BN(5)", S.LayerNorm: "LN(5)"}
TYPES = [pytest.param(t, id=t.__name__) for t in S.VOCABULARY]


def _numpy_count(model: reference.Sequential) -> int:
    return sum(v.size for v in model.parameters().values())


def _torch_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build_both(layers):
    rng = np.random.default_rng(0)
    return (build_numpy(layers, init="uniform_torch", rng=rng, dropout_rng=rng),
            torch_model(layers, torch.float64))


def test_every_type_has_an_example():
    """VOCABULARY is every LayerSpec subclass layerspec defines, and each has an example."""
    defined = {t for t in S.LayerSpec.__subclasses__() if t.__module__ == "parity.layerspec"}
    assert defined == set(S.VOCABULARY)
    assert set(EXAMPLE) == set(S.VOCABULARY) and set(SUMMARY) <= set(S.VOCABULARY)


@pytest.mark.parametrize("kind", TYPES)
def test_both_builders_build_it_and_count_what_num_parameters_says(kind):
    """NumPy layer and torch module of the same class name; NumPy params and torch
    ``named_parameters`` under the same keys; sizes summed = ``num_parameters()``."""
    item = EXAMPLE[kind]
    np_model, t_model = _build_both((item,))
    (np_layer,), (t_layer,) = np_model.layers, list(t_model)
    assert type(np_layer).__name__ == type(t_layer).__name__ == kind.__name__
    assert set(np_layer.params) == {k for k, _ in t_layer.named_parameters()}, kind.__name__
    n = item.num_parameters()
    assert _numpy_count(np_model) == n, f"{kind.__name__}: NumPy builds {_numpy_count(np_model)}"
    assert _torch_count(t_model) == n, f"{kind.__name__}: torch builds {_torch_count(t_model)}"
    assert item.summary == SUMMARY.get(kind, item.summary) and "\n" not in item.summary


@pytest.mark.parametrize("name", list(zoo.CATALOGUE))
def test_catalogue_count_matches_both_built_twins(name):
    spec = zoo.get(name)
    assert _numpy_count(spec.build_numpy(0)) == spec.num_parameters(), f"{name}: NumPy twin"
    assert _torch_count(spec.build_torch()) == spec.num_parameters(), f"{name}: torch twin"


# ---- the catalogue's summaries and counts as the tuple vocabulary printed them -----------------
_BN3 = ("Linear(2,128) → BN(128) → ReLU → Dropout(0.15) → Linear(128,128) → BN(128) → ReLU → "
        "Dropout(0.15) → Linear(128,64) → BN(64) → ReLU → Dropout(0.15) → Linear(64,1) → Sigmoid")
_N004 = "Linear(2,16) → ReLU → Linear(16,8) → ReLU → Linear(8,1)"
_N2 = "Linear(2,100) → ReLU → Linear(100,3)"
_D2 = "Linear(64,128) → ReLU → Linear(128,10)"
PINNED = {
    "cs231n-linear": ("Linear(2,3)", 9),
    "cs231n-2layer": (_N2, 603),
    "blog-2layer": (_N2, 603),
    "xor-relu": ("Linear(2,8) → ReLU → Linear(8,2)", 42),
    "digits-2layer": (_D2, 9610),
    "digits-minibatch": (_D2, 9610),
    "digits-3layer": ("Linear(64,128) → ReLU → Linear(128,64) → ReLU → Linear(64,10)", 17226),
    "digits-dropout": ("Linear(64,128) → ReLU → Dropout(0.2) → Linear(128,10)", 9610),
    "digits-momentum": (_D2, 9610),
    "spiral003-as-written": (_BN3, 25857),
    "spiral003": (_BN3, 25857),
    "spiral003-layernorm": (_BN3.replace("BN(", "LN("), 25857),
    "spiral003-adam-l2": (_BN3, 25857),
    "spiral003-adamw": (_BN3, 25857),
    "spiral004": (_N004, 193),
    "spiral004-corrected": ("Linear(2,32) → ReLU → Linear(32,16) → ReLU → Linear(16,1)", 641),
    "xor-sigmoid": ("Linear(2,2) → Sigmoid → Linear(2,1) → Sigmoid", 9),
    "spiral004-deeper": (_N004.replace("(8,1)", "(8,4) → ReLU → Linear(4,1)"), 225),
    "spiral004-sgd": (_N004, 193),
    "spiral004-momentum": (_N004, 193),
    "spiral004-weight-decay": (_N004, 193),
    "spiral004-early-stopping": (_N004, 193),
    "spiral004-numpy-challenge": ("Linear(2,64) → ReLU → Linear(64,1) → Sigmoid", 257),
}


def test_layer_summary_and_counts_are_unchanged():
    got = {n: (s.layer_summary(), s.num_parameters()) for n, s in zoo.CATALOGUE.items()}
    for name in PINNED.keys() & got.keys():
        assert got[name] == PINNED[name], f"{name}: layer_summary/num_parameters"


def test_cli_list_prints_the_same_layers_and_counts(capsys):
    """``nn-parity list`` (text and ``--json``) carries the pinned summary and count."""
    assert main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert main(["list"]) == 0
    text = capsys.readouterr().out.splitlines()
    for name, (layers, n) in PINNED.items():
        assert (rows[name]["layers"], rows[name]["parameters"]) == (layers, n), name
        i = next(i for i, line in enumerate(text) if line.split()[:1] == [name])
        assert text[i].split()[1] == str(n), f"{name}: PARAMS column"
        assert text[i + 1].split(None, 1) == ["layers:", layers], f"{name}: layers line"


# ---- what is refused -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Conv1d(S.LayerSpec):
    """A description neither builder knows (defined here; not in VOCABULARY)."""

    channels: int


@pytest.mark.parametrize("item", [("linear", 2, 3), "relu", torch.nn.ReLU(), Conv1d(3)],
                         ids=["old-tuple", "string", "torch-module", "unknown-LayerSpec"])
def test_builders_refuse_what_is_not_in_the_vocabulary(item):
    layers = (S.Linear(2, 3), item)
    pattern = "layer 1: .* is not a layer description" if not isinstance(item, S.LayerSpec) \
        else r"cannot build Conv1d\(channels=3\) \(Conv1d\): no layer kind records it; known: Lin"
    with pytest.raises(TypeError, match=pattern):
        build_numpy(layers, init="he", rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match=pattern):
        torch_model(layers)


def test_model_spec_refuses_tuple_layers():
    with pytest.raises(TypeError, match=r"layer 0: \('linear', 2, 3\) is not a layer desc"):
        ModelSpec(name="old", source="", summary="", layers=(("linear", 2, 3),),
                  loss="cross_entropy", optimizer=OptimSpec("sgd", 0.1), dataset="xor",
                  init="he", epochs=1)
    with pytest.raises(TypeError, match="layers must be a sequence of layer descriptions"):
        S.check_layers(S.ReLU())


def test_descriptions_are_frozen_hashable_values():
    assert S.Linear(2, 3) == S.Linear(2, 3) != S.Linear(3, 2)
    assert S.ReLU() == S.ReLU() != S.Tanh()
    assert len({S.Dropout(0.5), S.Dropout(0.5), S.BatchNorm1d(4)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.Linear(2, 3).in_features = 4          # type: ignore[misc]


def test_adjacent_finds_the_linear_layers_feeding_a_norm():
    layers = zoo.get("spiral003").layers
    assert S.adjacent(layers, S.Linear, S.BatchNorm1d) == [0, 4, 8]
    assert S.adjacent(layers, S.Linear, S.LayerNorm) == []
    assert S.adjacent((S.Linear(2, 2),), S.Linear, S.BatchNorm1d) == []
