"""``parity.tools.bench``: the structure of a tiny run, and that each floor does the trainer's work.

The speed targets themselves live in ``nn-parity bench`` (a timing is not a test verdict on a
shared machine); here: the pairing arithmetic, the fields the CLI and the study read, that the
raw torch floor reports the very losses the torch_impl trainer reports, that the fused NumPy
floor computes the reference trainer's losses, and that the trainer's backward without an
input gradient leaves every parameter gradient bit-identical.
"""

import math

import numpy as np
import pytest

from parity.catalogue import zoo
from parity.catalogue.train import run
from parity.tolerances import tolerance
from parity.tools import bench, check_cost

STEPS = 4


@pytest.fixture(scope="module")
def ratios():
    return bench.trainer_ratios(steps=STEPS, pairs=3)


def test_paired_alternates_and_takes_median_of_pair_ratios():
    calls = []
    out = bench.paired(lambda: calls.append("floor"), lambda: calls.append("trainer"), pairs=3)
    assert calls == ["floor", "trainer"] * 4, "one warm-up pair, then A/B/A/B"
    for clock in ("cpu", "wall"):
        s = out[clock]
        assert len(s["ratios"]) == 3, f"{clock}: one ratio per pair"
        assert s["ratio"] == float(np.median(s["ratios"])), f"{clock}: median of pair ratios"
        assert s["min"] == min(s["ratios"]) and s["max"] == max(s["ratios"]), clock


def test_paired_rejects_zero_pairs():
    with pytest.raises(ValueError, match="pairs"):
        bench.paired(lambda: None, lambda: None, pairs=0)


def test_trainer_ratios_structure(ratios):
    keys = set(bench.TARGETS)
    assert ratios["steps"] == STEPS and ratios["pairs"] == 3 and ratios["clock"] == bench.CLOCK
    for view in (ratios, ratios["wall"]):
        assert set(view["ratios"]) == keys and set(view["ratio_range"]) == keys
        for k in keys:
            lo, hi = view["ratio_range"][k]
            assert len(view["pair_ratios"][k]) == 3, f"{k}: pair ratios"
            assert lo <= view["ratios"][k] <= hi, f"{k}: median outside its min–max"
        assert set(view["seconds"]) == {"fused_numpy", "reference_trainer", "raw_torch",
                                        "torch_impl_trainer"}
        assert all(t > 0 for t in view["seconds"].values()), "seconds"


def test_render_names_both_clocks_and_every_target(ratios):
    sweep = bench.width_sweep(widths=(8,), batches=(4,), repeats=1)
    met = {k: ratios["ratios"][k] <= v for k, v in bench.TARGETS.items()}
    result = {"threads": {"torch": 1, "blas": 1}, "torch": "t", "numpy": "n",
              "trainers": ratios, "targets": bench.TARGETS, "met": met, "sweep": sweep}
    text = bench.render(result)
    assert text.count("target ≤ 1.1") == 2 and text.count("wall clock") == 2, text
    assert "8     4" in text, "sweep row (width 8, batch 4)"


def test_raw_torch_floor_reports_the_trainers_losses():
    """Same weights, same ops, float64: the floor's reported loss (loss.item() + cs231n's
    0.5·reg·ΣW²) is the trainer's, step for step (an epoch of one full batch reports
    ``loss·N/N``, hence the same scaling on the floor's side)."""
    spec = zoo.get("cs231n-2layer")
    assert spec.reg_keys(), "the bench model must exercise the penalty"
    d = spec.data(0)
    floor = bench.raw_torch_loop(spec, d.X_train, d.y_train, spec.build_numpy(0), STEPS)
    res, _ = run(spec, "torch", 0, epochs=STEPS)
    n = len(d.X_train)
    np.testing.assert_array_equal(np.array(floor) * n / n, res.loss,
                                  err_msg="reported loss per step: raw torch floor vs trainer")


def test_fused_numpy_floor_computes_the_reference_losses():
    """Same arithmetic re-associated by hand (fused backward, reg·W inline): equal at the
    float64 loss tolerance, never exactly (rounding order differs)."""
    spec = zoo.get("cs231n-2layer")
    d = spec.data(0)
    floor = bench.fused_numpy_cs231n(d.X_train, d.y_train, spec.build_numpy(0).state_dict(),
                                     STEPS, spec.optimizer.lr, spec.optimizer.weight_decay)
    res, _ = run(spec, "numpy", 0, epochs=STEPS)
    rtol, atol = tolerance("float64", "loss")
    np.testing.assert_allclose(floor, res.loss, rtol=rtol, atol=atol,
                               err_msg="loss per step: fused NumPy floor vs reference trainer")


@pytest.mark.parametrize("name", list(zoo.CATALOGUE))
def test_backward_without_input_grad_keeps_every_gradient(name):
    """``Sequential.backward(dout, input_grad=False)`` (the trainer's step) skips only dL/dx:
    each parameter gradient is the same array computation, so bit-identical."""
    spec = zoo.get(name)
    model = spec.build_numpy(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, *spec.input_shape()))
    out = model.forward(X, training=True)
    cot = rng.standard_normal(out.shape)
    dx = model.backward(cot.copy())
    full = {k: v.copy() for k, v in model.gradients().items()}
    assert dx is not None and dx.shape == X.shape, f"{name}: dL/dx shape"
    assert model.backward(cot.copy(), input_grad=False) is None, f"{name}: no dL/dx"
    for k, g in model.gradients().items():
        np.testing.assert_array_equal(g, full[k], err_msg=f"{name}: grad {k}, input_grad=False")


def test_convnet_step_times_pair_both_twins_on_the_recipes_batch():
    out = bench.convnet_step_times(steps=1, pairs=2)
    assert out["clock"] == bench.CLOCK
    assert [r["model"] for r in out["rows"]] == list(bench.CONVNETS)
    for r in out["rows"]:
        spec = zoo.get(r["model"])
        assert r["batch"] == spec.batch_size and r["pairs"] == 2, r["model"]
        assert r["numpy_s_per_step"] > 0 and r["torch_s_per_step"] > 0, r["model"]
        lo, hi = r["ratio_range"]
        assert lo <= r["numpy_over_torch"] <= hi, f"{r['model']}: median outside min–max"


def test_the_timed_steps_are_the_trainers_steps():
    """The closures ``convnet_step_times`` times do what each trainer's step does: after
    two steps on the recipe's first batch both twins hold the same parameters and buffers
    (float64), but for the conv bias BatchNorm2d cancels (its gradient is rounding noise,
    which Adam scales up: ``parity.twins.cancelled_keys``)."""
    from parity import transfer
    from parity.twins import cancelled_keys
    spec = zoo.get(bench.CONVNETS[1])
    X, y = bench._recipe_batch(spec)
    np_model, t_model = spec.build_numpy(0), spec.build_torch()
    bench._numpy_steps(spec, X, y, 2, model=np_model)()
    bench._torch_steps(spec, X, y, 2, model=t_model)()
    mine = transfer.to_torch_layout(np_model.state_dict(), t_model)
    rtol, atol = tolerance("float64", "param")
    skip = cancelled_keys(np_model)
    assert skip == {"0.bias", "1.running_mean"}
    for k, v in transfer.torch_state(t_model).items():
        if k in skip:
            continue
        np.testing.assert_allclose(mine[k], v, rtol=rtol, atol=atol * np.abs(v).max(),
                                   err_msg=f"{spec.name}: {k} after 2 timed steps")


def test_layer_profile_times_every_layer_both_ways():
    prof = bench.layer_profile(bench.CONVNETS[0], repeats=1)
    spec = zoo.get(bench.CONVNETS[0])
    assert [r["layer"] for r in prof["layers"]] == [type(layer).__name__
                                                   for layer in spec.build_numpy(0).layers]
    assert all(r["forward_s"] >= 0 and r["backward_s"] >= 0 for r in prof["layers"])
    text = bench.render_convnets(bench.convnet_step_times(steps=1, pairs=1), prof)
    for part in ("numpy/torch", "0 Conv2d", f"batch  {spec.batch_size}", *bench.CONVNETS):
        assert part in text, f"render_convnets: no {part!r} in\n{text}"


# ---- 5. what a check costs (parity.tools.check_cost): structure, never timings -------------

@pytest.fixture(scope="module")
def cost():
    """A tiny sweep (widths 8 and 16, one pair each, targets from width 16), its memory
    measured in fresh processes as ``nn-parity bench`` does."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(check_cost, "FROM_WIDTH", 16)
        return check_cost.check_cost(widths=(8, 16), pairs=3, budget_s=0.0,
                                     memory_timeout_s=120)


@pytest.mark.parametrize("width", [8, 32])
def test_the_parameter_count_is_the_models(width):
    np_model, t_model, X, y = check_cost.twins(width, "float64")
    n = sum(p.numel() for p in t_model.parameters())
    assert n == check_cost.parameters(width) == sum(v.size for v in np_model.parameters().values())
    assert len(t_model) == 2 * check_cost.DEPTH - 1, "DEPTH Linear layers, ReLU between"
    assert X.shape == (check_cost.BATCH, check_cost.IN) and y.max() < check_cost.OUT


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_floor_computes_the_checked_steps_gradients(dtype):
    """One floor call from the twins' common weights: the NumPy backward's parameter
    gradients are torch's (the floor does the step's work, both sides, in the dtype)."""
    from parity import transfer
    np_model, t_model, X, y = pair = check_cost.twins(8, dtype)
    check_cost.floor(8, dtype, pair)()
    mine = transfer.to_torch_layout(np_model.gradients(), t_model)
    rtol, atol = tolerance(dtype, "grad")
    for k, p in t_model.named_parameters():
        assert mine[k].dtype == np.dtype(dtype), f"floor {dtype}: NumPy grad {k} dtype"
        np.testing.assert_allclose(mine[k], p.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"floor {dtype}: grad {k}, NumPy vs torch")


def test_each_row_pairs_floor_and_check_and_judges_from_the_width(cost):
    rows = cost["rows"]
    assert [(r["dtype"], r["width"]) for r in rows] == [
        (d, w) for d in check_cost.DTYPES for w in (8, 16)]
    for r in rows:
        where = f"{r['dtype']} width {r['width']}"
        assert r["pairs"] == 1, f"{where}: budget 0 s → exactly one pair"
        assert r["passed"] and r["decided_by"] in ("table", "σ"), where
        assert r["min"] <= r["ratio"] <= r["max"] and r["check_s"] > 0, where
        assert r["parameters"] == check_cost.parameters(r["width"]), where
        if r["width"] < 16:
            assert r["target"] is None and r["met"] is None and r["memory_met"] is None, where
        else:
            key = r["dtype"] + ("_sigma" if r["decided_by"] == "σ" else "") \
                if r["dtype"] == "float32" else "float64"
            assert r["target"] == check_cost.TARGETS[key], where
            assert r["met"] == (r["ratio"] <= r["target"]), where
        assert r["memory_error"] is None and r["memory_multiple"] >= 0, where


def test_render_prints_every_row_and_the_estimate(cost):
    text = check_cost.render(cost)
    for r in cost["rows"]:
        assert f"  {r['dtype']:<8} {r['width']:>5} {r['parameters']:>11,}" in text, text
    assert "largest float32 model checked in 60 s" in text and "target" in text
    assert "not parity" in text.splitlines()[0], "performance, not a parity verdict"


def test_largest_in_solves_the_power_law():
    """t = k·P through two rows: 60 s at P = 60/k; the width it names has P parameters."""
    k = 1e-6
    rows = [{"dtype": "float32", "parameters": p, "width": 0, "check_s": k * p}
            for p in (1e5, 1e6)]
    est = check_cost.largest_in(rows)
    assert est["exponent"] == pytest.approx(1.0)
    assert est["parameters"] == pytest.approx(60 / k)
    w = est["width"]
    assert check_cost.parameters(math.floor(w)) <= 60 / k <= check_cost.parameters(math.ceil(w))
    assert check_cost.largest_in(rows[:1]) is None, "one row: no fit"
    flat = [dict(r, check_s=1.0) for r in rows]
    assert check_cost.largest_in(flat) is None, "no growth: no estimate"
    # a loaded machine: the wider row barely slower, b ≈ 4e-5, and 60 s far beyond both
    nearly = [dict(rows[0], check_s=1e-3), dict(rows[1], check_s=1.0001e-3)]
    assert check_cost.largest_in(nearly) is None, "a flat fit: no estimate, no overflow"


def test_a_child_past_its_time_is_stopped_and_says_so():
    out = check_cost.in_child(8, "float64", timeout_s=0.01)
    assert out == {"error": "no result within 0.01 s"}


def test_the_large_line_says_not_met_when_it_did_not_finish(cost):
    large = {"width": check_cost.LARGE_WIDTH, "parameters": 50_220_010, "timeout_s": 300,
             "error": "no result within 300 s", "met": False}
    text = check_cost.render({**cost, "large": large})
    assert "width 5000 (50.2 M parameters)" in text and "no result within 300 s; target NOT met" \
        in text, text


def test_the_large_line_judges_its_time_and_its_memory(cost, monkeypatch):
    """A finished 50 M check: its CPU seconds and its peak memory each against its own
    target (60 s met, 28.5x the parameter bytes above 25x: NOT met), from ``large_check``."""
    n = check_cost.parameters(check_cost.LARGE_WIDTH)
    monkeypatch.setattr(check_cost, "in_child", lambda *a: {
        "peak_bytes": int(28.5 * 4 * n), "cpu_s": 41.6, "passed": True})
    large = check_cost.large_check()
    assert large["met"] is True and large["memory_met"] is False, large
    text = check_cost.render({**cost, "large": large})
    assert "41.6 s CPU (target ≤ 60 s met), peak memory 28.5x the parameter bytes (target " \
        "≤ 25x NOT met)" in text, text


def test_the_large_model_is_not_started_when_the_sweep_says_it_would_not_fit(monkeypatch):
    monkeypatch.setattr(check_cost, "available_bytes", lambda: 2**30)
    out = check_cost.large_check(multiple=100.0)
    assert out["met"] is False and out["error"].startswith("not run: ≈ 18.7 GiB needed"), out


def test_a_measuring_child_is_held_to_its_memory_cap(monkeypatch):
    """Address space capped below what a check needs: an error line, never the machine's
    memory."""
    monkeypatch.setattr(check_cost, "available_bytes", lambda: 2**30)
    monkeypatch.setattr(check_cost, "MEMORY_SHARE", 0.5)
    out = check_cost.in_child(8, "float64", timeout_s=120)
    assert set(out) == {"error"}, out
