"""The verdict rules (parity.judge, parity.tolerances): what each rule decides, that a small
tensor is never passed blind, that float32 verdicts come from the float64 evaluation and still
catch a 1e-4 relative error in a gradient, an update or an optimizer state entry — and that
float64's rounding rule, which passes values formed from cancelling parts, still catches
1e-8."""

import functools

import numpy as np
import pytest
import torch
from parity.layerspec import BatchNorm1d, Dropout, Linear, ReLU
from torch import nn

import parity
from parity import reference
from parity.catalogue import zoo
from parity.catalogue.checks import compare, default_steps, first_batch, from_spec
from parity.catalogue.spec import ModelSpec
from parity.compare import compare_twins
from parity.judge import Pair, judge
from parity.tolerances import tolerance
from parity.twins import OptimSpec

MODELS = list(zoo.CATALOGUE)
# the injected relative error per dtype: 1e-4 in float32 (the issue's), 1e-8 in float64 (100×
# the table's rtol: the rounding rule must not pass it where the table does not)
REL = {"float32": 1e-4, "float64": 1e-8}


# ---- injected errors: the rule must still catch real bugs -------------------------------------
def inject_grad(twins, key):
    """Scale the NumPy gradient of ``key`` by 1 + rel (a class swap, so that the float64
    evaluation, which copies the model, carries the same bug: the rule must then see that
    torch is far from it)."""
    i, name = key.split(".")
    rel = REL[twins.dtype]
    layer = twins.numpy_model.layers[int(i)]
    base = type(layer)

    def backward(self, d):
        dx = base.backward(self, d)
        self.grads[name] = self.grads[name] * (1 + rel)
        return dx
    layer.__class__ = type("Injected" + base.__name__, (base,), {"backward": backward})


def _swap_step(opt, after):
    base = type(opt)

    def step(self, grads):
        before = {k: p.copy() for g in self.param_groups for k, p in g["params"].items()}
        base.step(self, grads)
        after(self, before)
    opt.__class__ = type("Injected" + base.__name__, (base,), {"step": step})


def inject_update(twins, key):
    """Scale the NumPy update ``Δθ`` of ``key`` by 1 + rel."""
    rel = REL[twins.dtype]

    def after(opt, before):
        for g in opt.param_groups:
            if key in g["params"]:
                p = g["params"][key]
                p[...] = before[key] + (p - before[key]) * (1 + rel)
    _swap_step(twins.numpy_optimizer, after)


def inject_state(twins, key, entry):
    """Scale the NumPy optimizer's state entry ``key.entry`` by 1 + rel after each step."""
    rel = REL[twins.dtype]

    def after(opt, before):
        opt.state[key][entry] = opt.state[key][entry] * (1 + rel)
    _swap_step(twins.numpy_optimizer, after)


def run_injected(name, inject, *args, dtype="float32"):
    spec = zoo.get(name)
    X, y = first_batch(spec, 0)
    twins = from_spec(spec, dtype, 0)
    inject(twins, *args)
    return compare_twins(twins, X, y, steps=default_steps(spec))


@functools.lru_cache(maxsize=None)
def clean(name) -> tuple[dict, dict]:
    """One clean float32 comparison of ``name`` (one per model and test process): what
    ``resolvable`` reads, and the NumPy optimizer's state entries by parameter (which an
    injection scales; they are the same in either dtype)."""
    spec = zoo.get(name)
    X, y = first_batch(spec, 0)
    twins = from_spec(spec, "float32", 0)
    result = compare_twins(twins, X, y, steps=default_steps(spec))
    assert result.passed, result.report()
    return _resolvable(result), {k: tuple(st) for k, st in twins.numpy_optimizer.state.items()}


def resolvable(name) -> dict:
    """Per gradient key, whether float32 can resolve a 1e-4 relative error in it: the clean
    comparison's noise σ (float32 rounding of the float64 evaluation) is below REL/10 of the
    tensor's scale at every step. Not resolvable: a Linear bias feeding BatchNorm (its exact
    gradient is 0: 1e-4 of rounding noise is not an error) and a bias gradient that is a sum
    of ~300 terms cancelling to 1e-4 of their size (cs231n's b2: float32 itself errs by 1e-3)."""
    return clean(name)[0]


def _resolvable(clean) -> dict:
    ok: dict[str, bool] = {}
    for c in clean.checks:
        if c.quantity == "grad":
            key = c.label.rsplit(" ", 1)[-1]
            noisy = c.noise is not None and c.noise > REL["float32"] / 10 * max(c.scale, 1e-300)
            ok[key] = ok.get(key, True) and not noisy and c.rule != "precision"
    return ok


def state_entries(name, key) -> tuple:
    return clean(name)[1].get(key, ())


def last_weight(name) -> str:
    return [k for k in zoo.get(name).build_numpy(0).parameters() if k.endswith("weight")][-1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", MODELS)
def test_an_injected_error_in_a_gradient_update_or_state_entry_fails(name, dtype):
    """Fast tier: the last Linear weight's gradient, update and every state entry, each
    scaled by 1 + REL[dtype]."""
    key = last_weight(name)
    if dtype == "float32":
        assert resolvable(name)[key]
    assert not run_injected(name, inject_grad, key, dtype=dtype).passed, f"grad {key}"
    assert not run_injected(name, inject_update, key, dtype=dtype).passed, f"update {key}"
    for entry in state_entries(name, key):
        if entry != "step":
            assert not run_injected(name, inject_state, key, entry, dtype=dtype).passed, (
                f"state {entry}")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_resolvable_injection_fails_in_float32(name):
    """Slow tier: every parameter, every kind; gradients where float32 can resolve 1e-4."""
    missed = []
    for key, ok in resolvable(name).items():
        if ok and run_injected(name, inject_grad, key).passed:
            missed.append(f"grad {key}")
        if run_injected(name, inject_update, key).passed:
            missed.append(f"update {key}")
        for entry in state_entries(name, key):
            if entry != "step" and run_injected(name, inject_state, key, entry).passed:
                missed.append(f"state {key}.{entry}")
    assert not missed


# ---- the rules themselves ---------------------------------------------------------------------
def test_a_failure_message_shows_plain_numbers():
    """The worst element of a table failure is printed as a number a reader can paste back
    (``-0.0412``), never as NumPy 2's ``np.float64(-0.0412)``; likewise a non-finite one."""
    table = Pair("step 1 grad 0.weight", "grad", "grad", 1, np.array([[1.0, -0.0412]]),
                 np.array([[1.0, 0.0197]]))
    (check,) = judge([table], "float64")
    assert not check.passed and "NumPy -0.0412 vs torch 0.0197" in check.detail, check.detail
    nan = Pair("step 1 loss", "loss", "loss", 1, np.array([np.nan, 2.5]), np.array([1.0, 2.5]))
    (check,) = judge([nan], "float64")
    assert "np.float64(" not in check.detail and "first nan" in check.detail, check.detail


def test_a_tiny_tensor_is_judged_against_its_own_scale_in_float32():
    """torch 1e-7, NumPy 2e-7: the old absolute atol 1e-5 passed it blind."""
    pair = Pair("step 1 state 0.bias.exp_avg_sq", "state", "state.exp_avg_sq", 1,
                np.array([2e-7], np.float32), np.array([1e-7], np.float32))
    (check,) = judge([pair], "float32")
    assert not check.passed and check.tiny and check.rule == "table"


def test_a_small_tensor_beside_a_large_one_is_judged_against_its_own_scale_in_float32():
    """One step, one group (``state.exp_avg_sq``): a weight's entry of 1 and a bias's of
    ~1e-7 that NumPy has 1e-3 off. Against the group's scale (1) the bias would pass
    (|diff| 1e-10 ≤ atol·1); below float64 S is the tensor's own scale, and it fails. In
    float64 the group's scale is the rule: a 5e-13 difference (rounding noise of a true zero
    beside entries of 1) passes with the large tensor in its group and fails alone."""
    big_t = np.array([1.0, -0.5, 0.25])
    small_t = np.array([1.0e-7, 4.0e-8, 2.0e-8])
    small_n = small_t * (1 + np.array([1e-3, 0.0, 0.0]))

    def pairs(dtype, small_mine, alone=False):
        dt = np.dtype(dtype)
        big = Pair("step 2 state 0.weight.exp_avg_sq", "state", "state.exp_avg_sq", 2,
                   big_t.astype(dt), big_t.astype(dt))
        small = Pair("step 2 state 0.bias.exp_avg_sq", "state", "state.exp_avg_sq", 2,
                     small_mine.astype(dt), small_t.astype(dt))
        return [small] if alone else [big, small]

    big, small = judge(pairs("float32", small_n), "float32")
    _, atol = tolerance("float32", "state")
    assert small.max_abs <= atol * 1.0            # the group's scale would pass it blind
    assert big.passed and not small.passed and small.rule == "table", small
    own = float(np.abs(small_n.astype(np.float32)).max())      # max(|NumPy|, |torch|)
    assert small.scale == own and big.scale == 1.0
    assert all(judge(pairs("float32", small_t), "float32")[i].passed for i in (0, 1))
    noise = small_t + np.array([5e-13, 0.0, 0.0])
    big, small = judge(pairs("float64", noise), "float64")
    assert big.passed and small.passed and small.scale == 1.0
    (alone,) = judge(pairs("float64", noise, alone=True), "float64")
    assert not alone.passed and alone.scale == float(noise.max())
    assert not judge(pairs("float64", small_n), "float64")[1].passed


def test_a_tiny_tensor_is_judged_against_its_group_in_float64():
    """A 1e-13 gradient beside a gradient of 1: rounding noise of a true zero passes; the
    same tensor beside gradients of 1e-6 is a real value and 1e-13 vs 0 is a failure."""
    noise = Pair("g b", "grad", "grad", 1, np.array([0.0]), np.array([1e-13]))
    big = Pair("g w", "grad", "grad", 1, np.array([1.0]), np.array([1.0]))
    small = Pair("g w", "grad", "grad", 1, np.array([1e-6]), np.array([1e-6]))
    assert all(c.passed for c in judge([noise, big], "float64"))
    assert not judge([noise, small], "float64")[0].passed


def test_precision_rule_decides_when_the_table_fails_and_says_so():
    """Both twins 1e-6 from the float64 value (noise σ 1e-6): beyond the table, inside the
    rule. The same with NumPy 1e-4 away: fails, naming both distances."""
    r = np.array([1.0])
    ok = Pair("q", "grad", "grad", 1, r + 3e-5, r - 3e-5, r, 3e-5)
    bad = Pair("q", "grad", "grad", 1, r + 1e-4, r - 1e-7, r, 1e-7)
    (c1,), (c2,) = judge([ok], "float32"), judge([bad], "float32")
    assert c1.passed and c1.rule == "precision"
    assert not c2.passed and "float64 evaluation" in c2.detail


def test_rounding_rule_decides_in_float64_when_the_table_fails_and_says_so():
    """A loss of 1.5e-6 formed from terms of 13 (σ 2e-15): twins 2.4e-16 apart fail the
    table (rtol 1e-10 of the loss is 1.5e-16) and pass within 2σ; 1e-14 apart they fail, and
    the message names the spread."""
    L = np.array(1.4589952732763426e-06)
    ok = Pair("step 3 loss", "loss", "loss", 3, L, L - 2.4e-16, None, 2e-15)
    bad = Pair("step 3 loss", "loss", "loss", 3, L, L - 1e-14, None, 2e-15)
    (c1,), (c2,) = judge([ok], "float64"), judge([bad], "float64")
    assert c1.passed and c1.rule == "rounding" and c1.noise == 2e-15
    assert not c2.passed and c2.rule == "rounding" and "rounding spread 2e-15" in c2.detail
    (c3,) = judge([Pair("step 3 loss", "loss", "loss", 3, L, L - 2.4e-16)], "float64")
    assert not c3.passed and c3.rule == "table"   # no spread measured: the table alone


def test_integers_are_compared_exactly():
    pair = Pair("nbt", "buffer", "buffer.num_batches_tracked", 1, np.array(2), np.array(3))
    (check,) = judge([pair], "float64")
    assert not check.passed and check.rule == "exact"


def test_json_counts_rules_and_tiny_tensors():
    r = compare(zoo.get("spiral003"), "float32", 0)
    j = r.to_json()
    assert sum(j["judged_by"].values()) == len(r.checks)
    assert j["tiny_tensors"] == sum(c.tiny for c in r.checks) > 0


# ---- nets larger than the catalogue -----------------------------------------------------------
def _large(layers, opt) -> ModelSpec:
    return ModelSpec(name="large", source="tests/test_verdicts.py", summary="", layers=layers,
                     loss="cross_entropy", optimizer=opt, dataset="xor", init="he", epochs=1)


LARGE = [
    pytest.param(_large((Linear(64, 512), BatchNorm1d(512), ReLU(), Dropout(0.5),
                         Linear(512, 512), BatchNorm1d(512), ReLU(), Dropout(0.5),
                         Linear(512, 10)), OptimSpec("adam", 1e-3)), 128,
                 id="64-512-512-10-bn-dropout"),
    pytest.param(_large((Linear(784, 1024), ReLU(), Linear(1024, 10)),
                        OptimSpec("sgd", 0.1, {"momentum": 0.9})), 64, id="784-1024-10"),
]


@pytest.mark.parametrize("spec,n", LARGE)
def test_large_float32_nets_pass_compare(spec, n):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, spec.layers[0].in_features))
    y = rng.integers(0, 10, n)
    result = compare(spec, "float32", 0, batch=(X, y))
    assert result.passed, result.report()


# ---- the eval-mode output: an error planted there must fail --------------------------------
class _OffEvalSequential(reference.Sequential):
    """A NumPy model whose eval-mode ``predict`` is off by a relative ``rel`` on its
    largest-magnitude entry; training mode is untouched."""

    rel = 0.0

    def predict(self, x):
        out = super().predict(x).copy()
        i = np.unravel_index(int(np.argmax(np.abs(out))), out.shape)
        out[i] = out[i] * (1 + self.rel)
        return out


def _eval_twins(dtype, rel):
    torch.manual_seed(7)
    t = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Dropout(0.3), nn.Linear(12, 3))
    t = t.to({"float64": torch.float64, "float32": torch.float32}[dtype])
    m = parity.from_torch(t)
    n = _OffEvalSequential(*m.layers)
    n.rel = rel
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((10, 5)).astype(dtype), rng.integers(0, 3, 10)
    return parity.compare_models(n, t, X, y, loss="cross_entropy", optimizer="adam", steps=2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_error_planted_in_the_eval_output_fails(dtype):
    """REL[dtype] (float64: 100× the table's rtol; float32: 1e-4) on one eval-output entry:
    the training steps all pass, the "eval output" check fails — beyond the table, decided by
    the rule that judges what the table cannot settle (float64: the rounding spread of the
    eval forward; float32: the float64 evaluation). Without the error it passes."""
    clean = _eval_twins(dtype, 0.0)
    assert clean.passed, clean.report()
    assert [c.label for c in clean.checks].count("eval output") == 1
    r = _eval_twins(dtype, REL[dtype])
    (check,) = r.failures()
    assert check.label == "eval output", r.report()
    assert check.rule == ("rounding" if dtype == "float64" else "precision"), check
    assert check.noise is not None and check.max_abs > 2 * check.noise, check


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_judging_reads_every_slice_and_writes_nothing(dtype):
    """``judge`` scans a tensor a slice (``distance.CHUNK`` elements) at a time: an error in the
    last element of the last slice still fails and is the reported maximum, a transposed
    (non-contiguous) view is judged like its copy, and neither twin's array is written (the
    bound is formed in a slice of its own, never in torch's values)."""
    from parity.distance import CHUNK
    rng = np.random.default_rng(0)
    theirs = rng.standard_normal((3, CHUNK + 7)).astype(dtype)
    mine = theirs.copy()
    mine[-1, -1] *= 1 + 10 * REL[dtype]
    kept = mine.copy(), theirs.copy()
    (check,) = judge([Pair("step 1 grad w", "grad", "grad", 1, mine, theirs)], dtype)
    whole = float(np.abs(mine.astype(np.float64) - theirs.astype(np.float64)).max())
    assert not check.passed and check.rule == "table" and check.max_abs == whole, check
    assert "at index (2, 65542)" in check.detail, check.detail
    assert np.array_equal(mine, kept[0]) and np.array_equal(theirs, kept[1])
    (view,) = judge([Pair("step 1 grad w", "grad", "grad", 1, mine.T, theirs.T)], dtype)
    assert not view.passed and view.max_abs == whole
    assert judge([Pair("step 1 grad w", "grad", "grad", 1, theirs, theirs.copy())],
                 dtype)[0].passed
    for bad in (np.nan, -np.inf):                  # beyond one slice |v|'s max is max(v, −min v)
        mine[-1, -1] = bad
        (check,) = judge([Pair("step 1 grad w", "grad", "grad", 1, mine, theirs)], dtype)
        assert not check.passed and check.rule == "finite", check


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_failure_read_in_slices_reports_what_the_whole_arrays_show(dtype):
    """Errors in three slices, the two largest equal and the later one in a later slice: the
    message counts every element outside the table and names the first of the worst, as the
    whole arrays say; the precision rule's distances to the float64 evaluation are the
    whole arrays' maxima."""
    from parity.distance import CHUNK
    rng = np.random.default_rng(1)
    theirs = rng.uniform(1.0, 2.0, 3 * CHUNK).astype(dtype)
    mine = theirs.copy()
    worst = [(10, 0.5), (CHUNK + 5, 0.5), (2 * CHUNK + 9, 0.25)]
    for i, err in worst:
        theirs[i] = 1.5                      # equal bounds: equal errors, equal excesses
        mine[i] = theirs[i] + err
    rtol, atol = tolerance(dtype, "grad")
    a, b = mine.astype(np.float64), theirs.astype(np.float64)
    diff, bound = np.abs(a - b), rtol * np.abs(b) + atol * max(np.abs(a).max(), np.abs(b).max())
    first = int(np.argmax(np.where(diff > bound, diff - bound, -np.inf)))
    assert first == worst[0][0]
    (check,) = judge([Pair("step 1 grad w", "grad", "grad", 1, mine, theirs)], dtype)
    assert f"{int((diff > bound).sum())}/{mine.size} elements outside the table" in check.detail
    assert (f"at index ({first},): NumPy {float(a[first])!r} vs torch {float(b[first])!r} "
            f"(|diff| {diff[first]:.3g} > {bound[first]:.3g})") in check.detail, check.detail
    r = (a + b) / 2
    r[-1] -= 1.0                             # both distances are largest in the last slice
    (check,) = judge([Pair("step 1 grad w", "grad", "grad", 1, mine, theirs, r, 0.0)], dtype)
    assert check.rule == "precision" and check.err_numpy == np.abs(a - r).max()
    assert check.err_torch == np.abs(b - r).max()


def test_pairs_that_passed_give_up_their_arrays_before_evidence_is_computed():
    """``judge_lazily``: once the table has judged a step, a pair that passed drops its
    arrays before the evidence function runs (the step's memory peaks in the evidence); a
    failed pair, the one the evidence is for and one that failed on its shape, keep theirs."""
    from parity.judge import judge_lazily
    ok = Pair("step 1 grad a", "grad", "grad", 1, np.ones(4), np.ones(4))
    off = Pair("step 1 grad b", "grad", "grad", 1, np.ones(3) + 1e-3, np.ones(3))
    shape = Pair("step 1 grad c", "grad", "grad", 1, np.ones(2), np.ones(5))
    seen = []

    def evidence(pairs, sigma):
        seen.append((ok.mine.size, [p.mine.size for p in pairs]))
    checks = judge_lazily([ok, off, shape], "float64", evidence)
    assert [c.passed for c in checks] == [True, False, False]
    assert seen == [(0, [3])], seen
    assert off.mine.shape == (3,) and shape.mine.shape == (2,) and shape.theirs.shape == (5,)
