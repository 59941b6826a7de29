"""The traps of shared/PARITY_NOTES.md and DESIGN.md that issue 3's models touch."""

import numpy as np
import pytest
import torch
from parity.reference import SGD, CrossEntropyLoss, l2_penalty

from parity import transfer
from parity.catalogue import zoo


def _cs231n_step_by_hand(np_model, X, y, reg, lr):
    """cs231n: loss = data + 0.5·reg·ΣW², gradient dW += reg·W, plain SGD (no weight decay)."""
    loss_fn = CrossEntropyLoss()
    params = np_model.parameters()
    data = loss_fn.forward(np_model.forward(X), y)
    loss = data + l2_penalty([params["0.weight"], params["2.weight"]], reg)
    np_model.backward(loss_fn.backward())
    grads = dict(np_model.gradients())
    for k in ("0.weight", "2.weight"):
        grads[k] = grads[k] + reg * params[k]
    SGD(params, lr=lr).step(grads)
    return loss, data


def test_cs231n_penalty_in_loss_equals_torch_weight_decay_in_gradient():
    """Same update; torch reports the data loss only (the penalty is not in its loss)."""
    spec = zoo.get("cs231n-2layer")
    reg, lr = spec.optimizer.weight_decay, spec.optimizer.lr
    d = spec.data(0)
    np_model = spec.build_numpy(0)
    t_model = spec.build_torch()
    transfer.numpy_to_torch(np_model, t_model)
    loss_np, data_np = _cs231n_step_by_hand(np_model, d.X_train, d.y_train, reg, lr)
    opt = spec.torch_optimizer(t_model)
    loss_t = torch.nn.CrossEntropyLoss()(t_model(torch.from_numpy(d.X_train)),
                                         torch.from_numpy(d.y_train))
    loss_t.backward()
    opt.step()
    after_np = transfer.to_torch_layout(np_model.state_dict(), t_model)
    for k, v in transfer.torch_state(t_model).items():
        np.testing.assert_allclose(after_np[k], v, rtol=1e-12, atol=1e-15, err_msg=k)
    assert loss_t.item() == pytest.approx(data_np, rel=1e-13)
    assert loss_np - loss_t.item() == pytest.approx(
        l2_penalty([spec.build_numpy(0).parameters()[k] for k in ("0.weight", "2.weight")], reg),
        rel=1e-9)
    assert loss_np > loss_t.item()


def test_torch_sgd_weight_decay_also_decays_biases_without_param_groups():
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b.grad = torch.zeros(3, dtype=torch.float64)
    torch.optim.SGD([b], lr=1.0, weight_decay=0.1).step()
    assert torch.equal(b.detach(), torch.full((3,), 0.9, dtype=torch.float64))
    p = {"bias": np.ones(3)}
    SGD(p, lr=1.0, weight_decay=0.1).step({"bias": np.zeros(3)})
    assert np.array_equal(p["bias"], np.full(3, 0.9))


@pytest.mark.parametrize("name", ["cs231n-linear", "cs231n-2layer"])
def test_cs231n_param_groups_decay_weights_only(name):
    spec = zoo.get(name)
    groups = spec.numpy_optimizer(spec.build_numpy(0)).param_groups
    decayed = {k for g in groups if g["weight_decay"] for k in g["params"]}
    assert decayed == set(spec.weight_keys())
    t_groups = spec.torch_optimizer(spec.build_torch()).param_groups
    assert sorted(g["weight_decay"] for g in t_groups) == sorted(g["weight_decay"] for g in groups)
