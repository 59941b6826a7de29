"""Optimizer update rules against torch.optim (tinygrad style: one line per configuration).

A tiny parameter set, 5 steps of the same random gradients on both sides, then parameters and
every state entry are compared with the float64/float32 "param"/"state" tolerances.
"""

import numpy as np
import pytest
import torch
from parity.reference.optim import SGD, Adam, AdamW
from torch import nn

import parity
from parity import twins as twins_mod
from parity.compare import compare_twins
from parity.kinds import OPTIMIZERS
from parity.tolerances import ABSOLUTE_FLOOR, tolerance


def assert_same(label, mine, theirs: torch.Tensor, dtype, quantity):
    """``assert_close`` with ``parity.tolerances``' (rtol, atol) for ``quantity``; below
    float64 the atol is relative to the tensor's own scale, as the float32 table is
    (``parity.judge``): an absolute 1e-5 passed every tensor smaller than it blind (93 of
    the 200 Adam ``exp_avg_sq`` entries here). The scale is capped at 1, so no tensor is
    allowed more than the absolute atol allowed it before."""
    rtol, atol = tolerance(dtype, quantity)
    got, want = torch.as_tensor(np.asarray(mine)), theirs.detach()
    if dtype != "float64":
        own = max(float(got.abs().max()), float(want.abs().max())) if got.numel() else 0.0
        atol *= min(1.0, own)
    torch.testing.assert_close(got.to(torch.float64), want.to(torch.float64), rtol=rtol,
                               atol=atol, msg=lambda m: f"{label}: {m}")


def helper_test_optim(kind, dtype="float64", steps=5, numpy_cls=None, **opts):
    """``kind``'s NumPy optimizer (or ``numpy_cls``, a planted subclass) against its torch
    twin, both built by the record."""
    record = OPTIMIZERS[kind]
    rng = np.random.default_rng(0)
    shapes = {"0.weight": (7, 5), "0.bias": (5,)}
    p0 = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    grads = [{k: (rng.standard_normal(s) * 10.0 ** rng.uniform(-6, 0, s)).astype(dtype)
              for k, s in shapes.items()} for _ in range(steps)]
    mine = {k: v.copy() for k, v in p0.items()}
    opt = (numpy_cls or record.numpy)(mine, **opts)
    theirs = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in p0.items()}
    t_opt = record.build_torch([{"params": list(theirs.values())}], **opts)
    for step, g in enumerate(grads, 1):
        opt.step(g)
        for k, p in theirs.items():
            p.grad = torch.from_numpy(g[k].copy())
        t_opt.step()
        for k, p in theirs.items():
            assert mine[k].dtype == np.dtype(dtype), f"step {step} param {k}: dtype"
            assert_same(f"step {step} param {k}", mine[k], p, dtype, "param")
            for sk, sv in t_opt.state[p].items():
                assert_same(f"step {step} state {k}.{sk}", opt.state[k][sk], sv, dtype, "state")


CONFIGS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    # τ = 0.3, 1 − τ = 0.7: a rule that swapped them would show (with 0.5 it would not)
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("sgd", dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.01)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("adam", dict(lr=1e-2)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
    ("adam", dict(lr=1e-2, weight_decay=0.1)),
    ("adam", dict(lr=1e-2, amsgrad=True)),
    ("adamw", dict(lr=1e-2)),
    ("adamw", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", dict(lr=1e-2)),
    # α = 0.9 and eps 1e-3: eps is the size of sqrt(s) for the small gradients drawn
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-3, weight_decay=0.1)),
    ("rmsprop", dict(lr=1e-2, momentum=0.9)),
    ("rmsprop", dict(lr=1e-2, centered=True)),
    ("rmsprop", dict(lr=1e-2, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.01)),
    ("adagrad", dict(lr=1e-1)),
    ("adagrad", dict(lr=1e-1, lr_decay=0.3, weight_decay=0.1)),
    ("adagrad", dict(lr=1e-1, initial_accumulator_value=0.5, eps=1e-6)),
]
IDS = ["sgd", "sgd-wd", "momentum", "dampening", "dampening-wd", "nesterov-wd", "adam",
        "adam-betas-eps", "adam-l2", "amsgrad", "adamw", "adamw-amsgrad", "rmsprop",
        "rmsprop-alpha-eps-wd", "rmsprop-momentum", "rmsprop-centered", "rmsprop-all",
        "adagrad", "adagrad-lr-decay-wd", "adagrad-initial-eps"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,opts", CONFIGS, ids=IDS)
def test_optimizer_matches_torch(kind, opts, dtype): helper_test_optim(kind, dtype, **opts)


def test_every_optimizer_record_has_a_configuration():
    assert {k for k, _ in CONFIGS} == set(OPTIMIZERS), "an optimizer record without a test"


def test_first_momentum_step_copies_the_gradient_without_dampening():
    p = {"w": np.zeros(3)}
    opt = SGD(p, lr=1.0, momentum=0.9, dampening=0.3)
    g = np.array([1.0, -2.0, 3.0])
    opt.step({"w": g})
    np.testing.assert_array_equal(opt.state["w"]["momentum_buffer"], g)   # a copy: not 0.7·g
    opt.step({"w": g})
    # b = μ·b + (1 − τ)·g = 1.6·g (τ = 0.3 tells 1 − τ from τ: 1.2·g); a few roundings, so
    # compare to 4 ulp rather than pin one evaluation order
    np.testing.assert_allclose(opt.state["w"]["momentum_buffer"], 0.9 * g + 0.7 * g,
                               rtol=4 * np.finfo(float).eps, atol=0)


def test_adam_eps_is_added_after_the_sqrt_of_the_corrected_second_moment():
    p = {"w": np.zeros(1)}
    Adam(p, lr=1.0, eps=1e-2).step({"w": np.array([1e-4])})
    # m̂ = g, sqrt(v̂) = |g|: step = g / (|g| + eps), not g / sqrt(g² + eps)
    assert p["w"][0] == pytest.approx(-1e-4 / (1e-4 + 1e-2), rel=1e-12)


def test_adamw_decays_before_the_step_and_adam_l2_adds_to_the_gradient():
    g = {"w": np.array([0.0])}
    pw, pa = {"w": np.array([1.0])}, {"w": np.array([1.0])}
    AdamW(pw, lr=0.1, weight_decay=0.5).step(g)
    Adam(pa, lr=0.1, weight_decay=0.5).step(g)
    assert pw["w"][0] == pytest.approx(1.0 - 0.1 * 0.5)     # θ(1 − lr·wd), zero gradient step
    assert pa["w"][0] == pytest.approx(1.0 - 0.1)           # g = wd·θ → Adam step of ~lr


def test_amsgrad_takes_the_max_of_the_raw_second_moment():
    p = {"w": np.zeros(1)}
    opt = Adam(p, lr=0.1, amsgrad=True)
    opt.step({"w": np.array([1.0])})
    opt.step({"w": np.array([0.0])})
    st = opt.state["w"]
    assert st["max_exp_avg_sq"][0] == pytest.approx(0.001)   # step 1's raw v, not corrected
    assert st["exp_avg_sq"][0] == pytest.approx(0.000999)


def test_why_float64_updates_differ_by_an_ulp_torch_fuses_multiply_add():
    """torch's CPU kernels compute ``p.add_(g, alpha=a)`` as a fused multiply-add (one
    rounding); NumPy's ``p + a*g`` rounds twice. Evaluating in extended precision (a close
    stand-in for the fused operation) reproduces torch on almost every element, so the ≤ 1 ulp
    differences per update in parity/tolerances.py come from fusion, not from a rule."""
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(100_000), rng.standard_normal(100_000)
    t = torch.from_numpy(p.copy())
    t.add_(torch.from_numpy(g), alpha=-0.01)
    plain = p - 0.01 * g
    fused_like = (p.astype(np.longdouble) + np.longdouble(-0.01) * g.astype(np.longdouble)
                  ).astype(np.float64)
    plain_mismatch = int((plain != t.numpy()).sum())
    fused_mismatch = int((fused_like != t.numpy()).sum())
    if plain_mismatch == 0:
        pytest.skip(f"torch did not fuse on this CPU ({torch.backends.cpu.get_cpu_capability()})")
    assert fused_mismatch < plain_mismatch / 20
    assert np.abs(plain - t.numpy()).max() <= np.spacing(np.abs(plain)).max()


# ---- compare's per-step sync: torch starts every compared step from NumPy's state ------------

def _twins_for_sync(kind, dtype, opts):
    torch.manual_seed(11)
    t = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).to(
        {"float64": torch.float64, "float32": torch.float32}[dtype])
    return twins_mod.from_models(parity.from_torch(t), t, "cross_entropy", optimizer=kind,
                                 **opts)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind, opts", [
    ("adam", dict(lr=1e-2)),
    ("sgd", dict(lr=0.1, options=dict(momentum=0.9, dampening=0.3))),
    ("rmsprop", dict(lr=1e-2, options=dict(momentum=0.9, centered=True))),
    ("adagrad", dict(lr=0.1, options=dict(lr_decay=0.1, initial_accumulator_value=0.1))),
], ids=["adam", "sgd-momentum", "rmsprop", "adagrad"])
def test_every_compared_step_starts_from_numpys_state_bit_for_bit(kind, opts, dtype):
    """``parity.compare`` syncs torch to NumPy (weights, buffers, optimizer state) before
    every step ≥ 2, so each step — and its float64 evaluation — starts from one state. At
    the moment torch's optimizer steps (a step pre-hook; the weights and state are those the
    step started from), every torch state entry is NumPy's in torch layout, same dtype, bit
    for bit, and so is every weight. Without the state sync the twins' moments after step 2
    differ by their rounding (torch's lerp/addcmul against NumPy's products: 3e-18 in
    float64, 2e-9 in float32 here), and step 3 would start from two states."""
    twins = _twins_for_sync(kind, dtype, opts)
    rng = np.random.default_rng(12)
    X = rng.standard_normal((12, 6)).astype(dtype)
    y = rng.integers(0, 4, 12)
    lin = {f"{n}.weight" for n, m in twins.torch_model.named_children()   # an independent
           if isinstance(m, torch.nn.Linear)}                              # oracle of the layout
    names = {id(p): k for k, p in twins.torch_model.named_parameters()}
    seen = []

    def before_step(opt, args, kwargs):
        if opt is not twins.torch_optimizer:     # compare's copy measuring the update from 0
            return
        seen.append(len(seen) + 1)
        if len(seen) == 1:
            # step 1 starts from no state on either side (torch's Adagrad builds its ``sum``
            # at construction: step 0)
            assert all(float(st["step"]) == 0 for st in opt.state.values())
            return
        mine = twins.numpy_model.state_dict()
        for k, v in twins.torch_model.state_dict().items():
            want = np.ascontiguousarray(mine[k].T) if k in lin else mine[k]
            got = v.detach().numpy()
            assert got.dtype == want.dtype and np.array_equal(got, want), (
                f"step {len(seen)} weight {k}")
        for p, st in opt.state.items():
            k = names[id(p)]
            np_st = twins.numpy_optimizer.state[k]
            assert st, k
            for entry, v in st.items():
                if entry == "step":              # a counter: float tensor in torch, int here
                    assert float(v) == np_st["step"] == len(seen) - 1
                    continue
                want = np_st[entry]
                want = np.ascontiguousarray(want.T) if k in lin and want.ndim == 2 else want
                got = v.detach().numpy()
                assert got.dtype == want.dtype and np.array_equal(got, want), (
                    f"step {len(seen)} state {k}.{entry}: max |diff| "
                    f"{np.abs(got.astype(np.float64) - want).max():.3g}")
    handle = twins.torch_optimizer.register_step_pre_hook(before_step)
    try:
        result = compare_twins(twins, X, y, steps=3)
    finally:
        handle.remove()
    assert seen == [1, 2, 3]
    assert result.passed, result.report()


class _PlantedAdam(Adam):
    """Adam whose step-1 ``exp_avg_sq`` of ``0.bias`` — a tensor wholly below 1e-5 — is off
    by a relative 1e-3 in its largest entry."""

    def step(self, grads):
        super().step(grads)
        v = self.state["0.bias"]["exp_avg_sq"]
        if self.state["0.bias"]["step"] == 1:
            assert v.max() < ABSOLUTE_FLOOR["float32"]      # the old atol passed it blind
            i = int(np.argmax(v))
            v[i] = v[i] * v.dtype.type(1 + 1e-3)


def test_a_relative_error_in_a_tiny_state_entry_fails_in_float32():
    with pytest.raises(AssertionError, match=r"step 1 state 0\.bias\.exp_avg_sq"):
        helper_test_optim("adam", "float32", numpy_cls=_PlantedAdam, lr=1e-2)


@pytest.mark.parametrize("kind,opts", CONFIGS, ids=IDS)
def test_the_update_from_zero_is_a_deep_copys_bit_for_bit(kind, opts):
    """``compare.zero_copy`` builds the optimizer that measures ``Δθ`` from zero instead of
    deep-copying the real one: after 3 steps (state in every entry, two param groups), its
    step gives every bit a deep copy's step gives, and the real optimizer and parameters are
    untouched."""
    import copy

    from parity.compare import zero_copy
    torch.manual_seed(0)
    w, b = nn.Parameter(torch.randn(5, 3, dtype=torch.float64)), nn.Parameter(torch.randn(5))
    b.data = b.data.double()
    opt = OPTIMIZERS[kind].build_torch([{"params": [w]}, {"params": [b], "lr": 0.05}], **opts)
    for _ in range(3):
        w.grad, b.grad = torch.randn_like(w), torch.randn_like(b)
        opt.step()
    w.grad, b.grad = torch.randn_like(w), torch.randn_like(b)
    kept = {k: {e: (v.clone() if torch.is_tensor(v) else v) for e, v in st.items()}
            for k, st in ((id(p), opt.state[p]) for p in (w, b))}
    before = w.detach().clone(), b.detach().clone()
    deep = copy.deepcopy(opt)
    with torch.no_grad():
        for p, q in zip((w, b), (p for g in deep.param_groups for p in g["params"])):
            q.zero_()
            q.grad = p.grad.clone()
    deep.step()
    built, pairs = zero_copy(opt)
    built.step()
    for (_, c), q in zip(pairs, (p for g in deep.param_groups for p in g["params"])):
        assert c.numpy().tobytes() == q.detach().numpy().tobytes(), (kind, opts)
        for e, v in deep.state[q].items():
            assert torch.equal(torch.as_tensor(built.state[c][e]), torch.as_tensor(v)), e
    assert torch.equal(w, before[0]) and torch.equal(b, before[1])
    for p in (w, b):
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(kept[id(p)][e]))
                   for e, v in opt.state[p].items())
