"""A custom ``nn.Module`` whose forward is a chain (``parity.chain``): the issue's ``Net``
(``fc1``, ``fc2``, ``F.relu`` in forward) against its NumPy twin, every function a record
lists, shared dropout masks through ``F.dropout``, and one-line refusals naming the node for
everything that is no chain."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import parity
from parity import chain, kinds
from parity import reference as R
from parity.kinds.record import spec_fields

TDT = {"float64": torch.float64, "float32": torch.float32}


class Net(nn.Module):
    """The most common torch model (the issue's): two Linear layers, ``F.relu`` between."""

    def __init__(self, d_in=4, hidden=16, classes=3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def _batch(dtype, n=12, d=4, classes=3, seed=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, classes, n)


def _net(dtype, cls=Net, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(**kw).to(TDT[dtype])


# ---- the issue's Net ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", {"kind": "sgd", "lr": 0.1, "momentum": 0.9}],
                         ids=["adam", "sgd-momentum"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_issue_net_passes_against_its_numpy_twin(dtype, optimizer):
    """Written by hand as a learner would (``W: (in, out)``), started from torch's weights,
    3 optimizer steps: every loss, gradient, update and optimizer state agrees."""
    net = _net(dtype)
    twin = R.Sequential(R.Linear(4, 16, dtype=dtype), R.ReLU(), R.Linear(16, 3, dtype=dtype))
    X, y = _batch(dtype)
    report = parity.compare_models(twin, net, X, y, loss="cross_entropy", optimizer=optimizer,
                                   steps=3, weights="torch")
    assert report.passed, report.report()
    assert report.localization.agrees, report.report()
    assert report.names == {"0.weight": "fc1.weight", "0.bias": "fc1.bias",
                            "2.weight": "fc2.weight", "2.bias": "fc2.bias"}
    labels = [c.label for c in report.checks]
    assert "step 3 grad 0.weight (your fc1.weight)" in labels, labels
    assert "Net traced as a chain (torch.fx) of 3 layers: 0 fc1 (Linear), 1 relu = F.relu " \
           "(ReLU), 2 fc2 (Linear)" in report.notes[0], report.notes


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_from_torch_of_the_issue_net_is_its_twin_bit_for_bit(dtype):
    net = _net(dtype)
    twin = parity.from_torch(net)
    assert [type(layer).__name__ for layer in twin.layers] == ["Linear", "ReLU", "Linear"]
    np.testing.assert_array_equal(twin.state_dict()["2.weight"],
                                  net.fc2.weight.detach().numpy().T)
    X, y = _batch(dtype)
    parity.assert_twins_close(twin, net, X, y, loss="cross_entropy", optimizer="adam", steps=3)


def test_the_chain_holds_the_users_own_parameters_and_restores_modes():
    """Layer 0 *is* ``net.fc1``: an optimizer over ``net.parameters()`` steps the chain.
    Tracing in both modes leaves every submodule's mode as it was."""
    net = _net("float64")
    net.eval()
    net.fc2.train()
    c = chain.trace(net)
    assert c.sequential[0] is net.fc1 and c.sequential[2] is net.fc2
    assert [id(p) for p in c.sequential.parameters()] == [id(p) for p in net.parameters()]
    assert (net.training, net.fc1.training, net.fc2.training) == (False, False, True)
    assert c.keys() == {"0.weight": "fc1.weight", "0.bias": "fc1.bias",
                        "2.weight": "fc2.weight", "2.bias": "fc2.bias"}


# ---- every function a record lists -------------------------------------------------------------

def _calls():
    """(kind, function) for every torch function and Tensor method of every record, the
    reshaping methods (tested on their own below) aside."""
    return [pytest.param(k, f, id=f"{k.name}-{f if isinstance(f, str) else f.__name__}")
            for k in kinds.KINDS for f in k.functions if f not in ("view", "reshape")]


KEYWORD_ONLY = {F.gelu: True}    # gelu(input, *, approximate): no option in order


class _Calls(nn.Module):
    """``Linear(5, 6)`` then one call of ``function`` with ``options``, by name or in order
    (``positional``; ``training=self.training`` where the function takes ``training``)."""

    def __init__(self, function, options, positional=False):
        super().__init__()
        self.fc = nn.Linear(5, 6)
        self.function, self.options, self.positional = function, options, positional

    def forward(self, x):
        h = self.fc(x)
        opts = dict(self.options)
        if "training" in opts:
            opts["training"] = self.training
        call = getattr(h, self.function) if isinstance(self.function, str) else (
            lambda *a, **k: self.function(h, *a, **k))
        return call(*opts.values()) if self.positional else call(**opts)


@pytest.mark.parametrize("passed", ["by-name", "in-order"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind, function", _calls())
def test_every_listed_function_becomes_its_kinds_layer_and_passes(kind, function, dtype,
                                                                  passed):
    """The kind's last example's options, passed by name or in the record's order (torch
    reads them in its own: they must agree): the traced layer is the kind's stock module
    with those options, and the net passes 3 Adam steps against ``from_torch`` (dropout:
    masks shared through the stock module the call became)."""
    signature = kind.functions[function]
    item = kind.examples[-1].spec
    options = {k: v for k, v in spec_fields(item).items() if k in signature}
    if "training" in signature:
        options["training"] = True
    if passed == "in-order":        # the record's order, defaults filling the gaps
        if KEYWORD_ONLY.get(function):
            pytest.skip(f"{function}: its options are keyword-only")
        names = list(signature)
        last = max((names.index(k) for k in options), default=-1)
        options = {k: options.get(k, signature[k]) for k in names[:last + 1]}
    torch.manual_seed(0)
    net = _Calls(function, options, positional=passed == "in-order").to(TDT[dtype])
    layer = chain.trace(net).sequential[1]
    assert type(layer) is kind.torch, f"{function}: {type(layer).__name__}"
    assert kind.build_torch(item, TDT[dtype]).extra_repr() == layer.extra_repr()
    X, y = _batch(dtype, n=10, d=5, classes=6)
    report = parity.compare_models(parity.from_torch(net), net, X, y, loss="cross_entropy",
                                   optimizer="adam", steps=3)
    assert report.passed, f"{kind.name} via {function}:\n{report.report()}"


class _Shapes(nn.Module):
    """Flattened the three common ways (the batch is (N, D): the checks take no images),
    then GELU, Sigmoid, Tanh and dropout."""

    def __init__(self, how):
        super().__init__()
        self.conv_free = nn.Linear(12, 8)
        self.out = nn.Linear(8, 3)
        self.how = how

    def forward(self, x):
        if self.how == "view":
            x = x.view(x.size(0), -1)
        elif self.how == "reshape":
            x = x.reshape(x.size(0), -1)
        else:
            x = torch.flatten(x, 1)
        x = F.gelu(self.conv_free(x), approximate="tanh")
        x = torch.tanh(torch.sigmoid(x))
        x = F.dropout(x, 0.4, training=self.training)
        return self.out(x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("how", ["view", "reshape", "flatten"])
def test_flatten_gelu_sigmoid_tanh_dropout_as_calls(how, dtype):
    torch.manual_seed(1)
    net = _Shapes(how).to(TDT[dtype])
    c = chain.trace(net)
    assert [type(m).__name__ for m in c.sequential] == [
        "Flatten", "Linear", "GELU", "Sigmoid", "Tanh", "Dropout", "Linear"]
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((10, 12)).astype(dtype), rng.integers(0, 3, 10)
    report = parity.compare_models(parity.from_torch(net), net, X, y, loss="cross_entropy",
                                   optimizer="adam", steps=3, seed=5)
    assert report.passed, report.report()


def test_functional_dropout_passes_only_with_torchs_masks(monkeypatch):
    """p = 0.4 drops units at random: the twins agree because the NumPy Dropout is handed
    the masks torch drew through the stock module ``F.dropout`` became; with the recorder
    blind to it (its record no longer drawing masks) they disagree."""
    net = _net("float64", _Shapes, how="flatten")
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((10, 12)), rng.integers(0, 3, 10)

    def run():
        return parity.compare_models(parity.from_torch(net, rng=np.random.default_rng(0)),
                                     net, X, y, loss="cross_entropy", steps=2, seed=3)
    assert run().passed
    monkeypatch.setattr(type(kinds.of_function(F.dropout)), "draws_masks", False)
    assert not run().passed


class _Nested(nn.Module):
    """A body ``nn.Sequential``, an unused ``mask=None`` argument, dropout only in training
    (``if self.training``: the functional default ``training=True`` is then right)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x, mask=None):
        x = self.body(x)
        if self.training:
            x = F.dropout(x, 0.3)
        return self.head(x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_nested_modules_unused_arguments_and_training_only_dropout(dtype):
    net = _net(dtype, _Nested)
    c = chain.trace(net)
    assert c.names == ["body.0", "body.1", "dropout = F.dropout", "head"]
    assert c.keys()["0.weight"] == "body.0.weight" and c.keys()["3.bias"] == "head.bias"
    X, y = _batch(dtype)
    report = parity.compare_models(parity.from_torch(net), net, X, y, loss="cross_entropy",
                                   optimizer="adam", steps=3, seed=1)
    assert report.passed, report.report()


# ---- refusals: one line naming the node ---------------------------------------------------------

class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.fc(x)


class _TwoUses(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        return F.relu(h) * h


class _Cat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cat([self.fc(x)], dim=1)


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            x = F.relu(x)
        return self.fc(x)


class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.exp(self.fc(x))


class _InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = self.fc(x)
        x += 1
        return x


class _AlwaysDrops(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.2)


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(F.relu(self.fc(x)))


class _Unused(Net):
    def __init__(self):
        super().__init__()
        self.spare = nn.Linear(2, 2)


class _ViewByNumber(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x.view(-1, 4))


class _TrainOnlyReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if self.training:
            x = F.relu(x)
        return self.fc(x)


class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, shift):
        return self.fc(x) + shift


REFUSALS = {
    "residual": (_Residual, "_Residual: node x (placeholder x) feeds 2 nodes (fc, add); a "
                 "chain passes each value to the next layer only"),
    "two uses": (_TwoUses, "_TwoUses: node fc (call_module fc) feeds 2 nodes (relu, mul)"),
    "cat": (_Cat, "_Cat: node cat (call_function torch.cat): no layer kind stands for "
            "torch.cat; supported calls: F.relu, torch.relu"),
    "data-dependent if": (_DataDependent, "_DataDependent.forward cannot be traced by "
                          "torch.fx (TraceError: symbolically traced variables cannot be used "
                          "as inputs to control flow)"),
    "unsupported function": (_Unsupported, "_Unsupported: node exp (call_function torch.exp): "
                             "no layer kind stands for torch.exp"),
    "in-place add": (_InPlace, "_InPlace: node add (call_function operator.add): no layer "
                     "kind stands for operator.add"),
    "dropout in eval": (_AlwaysDrops, "_AlwaysDrops: node dropout (call_function F.dropout): "
                        "F.dropout(training=True) in eval mode is not supported (pass "
                        "training=self.training, as nn.Dropout does)"),
    "layer twice": (_Twice, "_Twice: node fc_1 (call_module fc) calls fc a second time"),
    "unused layer": (_Unused, "_Unused: spare.weight, spare.bias belong to no layer its "
                     "forward runs"),
    "mode-dependent layers": (_TrainOnlyReLU, "_TrainOnlyReLU: its forward runs other layers "
                              "in eval mode than in training mode (from layer 0: relu = F.relu "
                              "vs fc)"),
    "two inputs": (_TwoInputs, "_TwoInputs.forward takes 2 inputs (x, shift); a chain takes "
                   "one"),
    "view by number": (_ViewByNumber, "_ViewByNumber: node view (call_method Tensor.view): "
                       "view/reshape to (-1, 4) is not supported"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_what_is_no_chain_is_refused_in_one_line_naming_the_node(case):
    cls, message = REFUSALS[case]
    net = cls().double()
    X, y = _batch("float64", n=6, d=4, classes=3)
    for call in (lambda: parity.from_torch(net),
                 lambda: parity.compare_models(R.Sequential(R.Linear(4, 4)), net, X, y,
                                               loss="cross_entropy")):
        with pytest.raises(ValueError) as info:
            call()
        text = str(info.value)
        assert text.startswith(message), f"{case}: {text}"
        assert "\n" not in text, f"{case}: not one line: {text!r}"


def test_a_chain_that_computes_another_output_is_refused(monkeypatch):
    """The trace is checked on the batch, not trusted: a record mapping F.relu to the wrong
    module is caught before any step."""
    relu = kinds.of_function(F.relu)
    monkeypatch.setattr(type(relu), "from_call", lambda self, options, training: nn.Tanh())
    net = _net("float64")
    twin = R.Sequential(R.Linear(4, 16), R.Tanh(), R.Linear(16, 3))
    X, y = _batch("float64")
    with pytest.raises(ValueError, match=r"Net: the chain traced from its forward \(0 fc1 "
                       r"\(Linear\), 1 relu = F.relu \(Tanh\), 2 fc2 \(Linear\)\) computes "
                       r"another output in training mode"):
        parity.compare_models(twin, net, X, y, loss="cross_entropy")


class _HalfReLU(R.ReLU):
    """Backward halves the gradient (a planted bug)."""

    def backward(self, dout):
        return super().backward(dout) * 0.5


def test_a_bug_in_the_twin_of_a_functional_call_is_named_by_the_users_names():
    net = _net("float64")
    twin = R.Sequential(R.Linear(4, 16), _HalfReLU(), R.Linear(16, 3))
    X, y = _batch("float64")
    report = parity.compare_models(twin, net, X, y, loss="cross_entropy", weights="torch")
    assert not report.passed
    assert report.localization.backward.kind == "_HalfReLU relu = F.relu", report.report()
    assert "0.weight (your fc1.weight)" in report.localization.affected, report.report()
