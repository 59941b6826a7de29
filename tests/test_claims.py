"""The claims audit: claim list coverage, verdict rules, the cheap measurements, the full run."""

import json
import os
import stat

import numpy as np
import pytest

from parity.audit import claims
from parity.audit.claims import Check, judge
from parity.catalogue import zoo
from parity.catalogue.train import run

SEEDS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "seeds")
DOCUMENTS = {zoo.SEED_000, zoo.SEED_001, zoo.SEED_002, zoo.SEED_003, zoo.SEED_004}
WORKED = [c for c in claims.CLAIMS if c.measure[0] == "worked"]


# ── the claim list ──────────────────────────────────────────────────────────────────────

def test_claims_cover_every_document():
    assert {c.source for c in claims.CLAIMS} == DOCUMENTS
    if os.path.isdir(SEEDS_DIR):
        assert DOCUMENTS == set(os.listdir(SEEDS_DIR))


def test_claims_are_well_formed():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) and all(ids)
    for c in claims.CLAIMS:
        assert isinstance(c.check, Check), c.id
        assert c.measure[0] in ("run", "parameters", "xor_stable_epoch", "worked"), c.id
        if c.measure[0] in ("run", "parameters"):
            zoo.get(c.measure[1])          # raises for a name not in the catalogue
        if c.corrected:
            assert zoo.get(c.corrected).target is not None, c.id
        if c.bounded:
            assert c.split == "test", f"{c.id}: only held-out claims are bounded by Bayes"


def test_required_figures_are_claimed():
    stated = {c.id: c.check.value for c in claims.CLAIMS}
    assert stated["000-linear"] == 0.49 and stated["000-2layer"] == 0.98
    assert stated["001-loss-start"] == 1.098386 and stated["001-loss-9000"] == 0.020325
    assert stated["001-train-acc"] == 0.99 and stated["002-digits"] == 0.95
    assert stated["003-heldout"] == 0.95 and stated["004-params"] == 193
    assert stated["004-loss-start"] == 0.7 and stated["004-loss-end"] == 0.1
    assert stated["004-xor-document"] == 5000
    assert {c.measure[1] for c in WORKED} >= {"h", "y_hat", "dL/dz_out", "dL/dv", "dL/dh",
                                             "dL/dz", "dL/dw11", "dL/dw21"}


# ── verdict rules on synthetic inputs ───────────────────────────────────────────────────

@pytest.mark.parametrize("check,numpy_,torch_,upper,bounded,expected", [
    (Check("approx", 0.98, 0.02), 0.97, 0.99, None, False, "reproduced"),
    (Check("approx", 0.98, 0.02), 0.95, 0.95, None, False, "refuted"),
    (Check("approx", 0.98, 0.02), 0.97, 0.95, None, False, "refuted"),          # split twins
    (Check("above", 0.95), 0.95, 0.95, None, False, "refuted"),                 # strictly
    (Check("above", 0.95), 0.951, 0.96, None, False, "reproduced"),
    (Check("above", 0.95), 0.60, 0.61, 0.65, True, "unreachable as written"),
    (Check("above", 0.95), 0.96, 0.96, 0.95, True, "unreachable as written"),  # lucky test set
    (Check("above", 0.95), 0.90, 0.90, 0.99, True, "refuted"),                 # reachable
    (Check("at_least", 0.95, 0.02), 0.94, 0.94, 0.925, True, "unreachable as written"),
    (Check("at_least", 0.95, 0.02), 0.94, 0.94, 0.931, False, "reproduced"),   # train: no bound
    (Check("at_most", 5000, 2500), 232, 232, None, False, "reproduced"),
    (Check("at_most", 5000, 2500), None, None, None, False, "refuted"),         # never
    (Check("at_most", 5000, 2500), None, 7000, None, False, "refuted"),
    (Check("approx", (-0.028, -0.002), 0.0005), [-0.02754, -0.00226], [-0.02754, -0.00226],
     None, False, "reproduced"),
    (Check("approx", (-0.028, -0.002), 0.0005), [-0.02754, -0.0026], [-0.02754, -0.0026],
     None, False, "refuted"),
    (Check("equal", 193), 193, 193, None, False, "reproduced"),
    (Check("equal", 193), 193, 194, None, False, "refuted"),
])
def test_verdict_rules(check, numpy_, torch_, upper, bounded, expected):
    verdict, note = judge(check, numpy_, torch_, upper, bounded)
    assert verdict == expected, note
    if expected == "refuted" and check.passes(numpy_) != check.passes(torch_):
        assert "twins split" in note


def test_a_capped_run_gets_no_verdict_whatever_was_measured():
    """measurable=False (quick mode cut what the claim needs) is never judged: not on a
    missing value, not on a passing one, not as unreachable (its ceiling may be capped)."""
    check = Check("at_most", 5000, 2500)
    for m_np, m_t in ((None, None), (232, None), (232, 232), (9000, 9000)):
        assert judge(check, m_np, m_t, measurable=False)[0] == claims.NOT_MEASURED
    assert judge(Check("above", 0.95), 0.6, 0.6, 0.65, True,
                 measurable=False)[0] == claims.NOT_MEASURED
    assert judge(check, None, None, measurable=True)[0] == "refuted"
    assert claims.NOT_MEASURED not in claims.VERDICTS


def test_check_rejects_a_bad_op_and_mismatched_vectors():
    with pytest.raises(ValueError, match="op must be"):
        Check("roughly", 1.0)
    with pytest.raises(ValueError, match="2 values, stated 1"):
        Check("approx", 1.0, 0.1).passes([1.0, 1.0])
    assert not Check("at_least", 0.5).passes(float("nan"))


# ── cheap measurements ──────────────────────────────────────────────────────────────────

@pytest.fixture(scope="module")
def worked():
    return claims.measure_worked_example()


@pytest.mark.parametrize("claim", WORKED, ids=[c.id for c in WORKED])
def test_worked_example_reproduced_on_both_sides(claim, worked):
    q = claim.measure[1]
    verdict, note = judge(claim.check, worked["numpy"][q], worked["torch"][q])
    assert verdict == "reproduced", (q, worked["numpy"][q], worked["torch"][q], note)
    np.testing.assert_allclose(worked["numpy"][q], worked["torch"][q], rtol=1e-14, atol=1e-16)


def test_document_xor_init_is_randomstate_42_and_leaves_the_global_rng_alone():
    before = np.random.get_state()[1].copy()
    state = claims._xor_document_state()
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    rs = np.random.RandomState(42)
    np.testing.assert_array_equal(state["0.weight"], rs.randn(2, 2) * 0.5)
    np.testing.assert_array_equal(state["2.weight"], rs.randn(2, 1) * 0.5)
    assert state["0.bias"].shape == (2,) and state["2.bias"].shape == (1,)


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_xor_measurement_is_the_catalogue_run(impl):
    """The per-epoch-accuracy loop trains exactly like parity.catalogue.train.run (same final
    loss)."""
    m = claims.measure_xor_stable_epoch(impl, "catalogue", seed=0, epochs=60)
    r, _ = run(zoo.get("xor-sigmoid"), impl, seed=0, epochs=60)
    assert m["final_loss"] == r.final_loss and m["final_accuracy"] == r.train_accuracy


def test_write_claims_is_atomic_json(tmp_path):
    rows = [{"id": "x", "verdict": "reproduced", "measured_numpy": 0.5, "bayes_ceiling": None}]
    path = tmp_path / "claims.json"
    path.write_text("old")
    claims.write_claims(rows, path)
    assert json.loads(path.read_text()) == rows
    assert os.listdir(tmp_path) == ["claims.json"]
    with pytest.raises(TypeError):
        claims.write_claims([{"x": object()}], path)
    assert json.loads(path.read_text()) == rows and os.listdir(tmp_path) == ["claims.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_write_claims_mode_comes_from_the_umask(tmp_path, umask):
    """Through ``parity.fileio.atomic_write`` (``open(tmp, "xb")``): 0o666 & ~umask, never
    mkstemp's 0o600 whatever the umask; a replaced file gets the new mode too."""
    path = tmp_path / "claims.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    old = os.umask(umask)
    try:
        claims.write_claims([{"id": "x"}], path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


# ── the quick audit: capped rows carry no verdict ────────────────────────────────────────

# 000-2layer and 001-train-acc read "refuted" in quick mode before (reproduced in full);
# 004-heldout is capped in epochs and in Monte Carlo points; 002-xor has a seed spread; the
# rest need nothing quick mode cuts (cs231n-linear's 200 epochs are within the cap; a first
# loss needs one epoch).
QUICK_IDS = ["000-linear", "000-2layer", "001-loss-start", "001-train-acc", "002-xor",
             "004-params", "004-loss-start", "004-heldout", "004-xor-document"]
CAPPED = {"000-2layer", "001-train-acc", "002-xor", "004-heldout", "004-xor-document"}


@pytest.fixture(scope="module")
def quick_audit():
    """``(the audit, its rows by id)`` of the quick audit of ``QUICK_IDS``, measuring lazily."""
    audit = claims._Audit(0, True, lambda m: None)
    return audit, {c.id: claims._claim_row(audit, c) for c in claims.select(QUICK_IDS)}


@pytest.fixture(scope="module")
def quick_rows(quick_audit):
    return quick_audit[1]


def test_quick_audit_runs_the_selected_claims(quick_rows):
    assert list(quick_rows) == QUICK_IDS
    assert all(r["quick"] for r in quick_rows.values())
    with pytest.raises(ValueError, match="unknown claim ids"):
        claims.run_audit(quick=True, ids=["no-such-claim"])
    rows = claims.run_audit(quick=True, log=lambda m: None, ids=["004-params"])
    assert [r["id"] for r in rows] == ["004-params"] and rows[0]["verdict"] == "reproduced"


def test_needs_cover_what_the_audit_measures(quick_audit):
    """``needs`` (what the study plans as jobs) holds every run, ceiling and XOR measurement
    the audit made; beyond that only corrected settings (planned whatever the verdict)."""
    audit, _ = quick_audit
    selected = claims.select(QUICK_IDS)
    need = claims.needs(selected, 0, True)
    assert set(audit.got.runs) <= need.runs
    assert set(audit.got.ceilings) <= need.ceilings
    assert {(i, impl) for i, impl, *_ in need.xor} == set(audit.got.xor)
    corrected = {c.corrected for c in selected if c.corrected}
    assert {k[0] for k in need.runs - set(audit.got.runs)} <= corrected
    assert need.n_samples == claims.QUICK_SAMPLES


def test_select_by_model():
    assert [c.id for c in claims.select(models=["xor-sigmoid"])] == [
        c.id for c in claims.CLAIMS if c.measure[0] in ("xor_stable_epoch", "worked")]
    assert claims.select(models=["digits-3layer"]) == []
    assert [c.id for c in claims.select(["000-linear", "004-params"], ["spiral004"])] == [
        "004-params"]
    with pytest.raises(ValueError, match="unknown model"):
        claims.select(models=["nope"])


@pytest.mark.parametrize("cid", QUICK_IDS)
def test_quick_audit_judges_only_what_it_measured_in_full(cid, quick_rows):
    r = quick_rows[cid]
    if cid in CAPPED:
        assert r["verdict"] == claims.NOT_MEASURED, (cid, r["verdict"], r["note"])
        assert r["capped"] and r["sides_agree"] is None, cid
        assert r["corrected"] is None, cid
        if r["measure"][0] == "run":
            assert r["epochs"] < zoo.get(r["model"]).epochs, cid
        if "seed_spread" in r:
            assert r["seed_spread"]["pass_fraction"] is None, cid
    else:
        assert r["verdict"] in claims.VERDICTS, (cid, r["verdict"], r["note"])
        assert "capped" not in r, cid


def test_quick_audit_caps_the_ceiling_of_a_bounded_claim(quick_rows):
    assert "Monte Carlo" in quick_rows["004-heldout"]["capped"]
    assert "Monte Carlo" not in (quick_rows["000-2layer"]["capped"])


def test_a_full_audit_caps_nothing():
    audit = claims._Audit(0, quick=False, log=lambda m: None)
    assert all(audit.capped(c.measure, c.bounded) is None for c in claims.CLAIMS)


# ── the full audit ──────────────────────────────────────────────────────────────────────

@pytest.mark.slow
def test_full_audit(tmp_path):
    rows = claims.run_audit(seed=0, quick=False, log=lambda m: None)
    assert len(rows) == len(claims.CLAIMS)
    for r in rows:
        assert r["verdict"] in claims.VERDICTS, r["id"]
        if r["measure"][0] == "xor_stable_epoch" and "not at 100%" in r["note"]:
            assert r["verdict"] == "refuted" and r["xor"]["numpy"]["final_accuracy"] < 1
        else:
            assert r["measured_numpy"] is not None and r["measured_torch"] is not None, r["id"]
        if r["verdict"] == "unreachable as written":
            assert r["corrected"] is not None and r["corrected"]["measured_numpy"] is not None
    by_id = {r["id"]: r for r in rows}
    for cid, gen, noise in (("003-heldout", "two_spirals_as_written", 0.08),
                            ("004-heldout", "two_spirals_seed004", 0.2)):
        b = by_id[cid]["bayes_ceiling"]
        assert b["generator"] == gen and b["options"]["noise"] == noise
        assert b["method"] and b["stderr"] > 0 and b["ci95"][0] < b["mean"] < b["ci95"][1]
        assert by_id[cid]["verdict"] == "unreachable as written"
    assert all(by_id[c.id]["verdict"] == "reproduced" for c in WORKED)
    claims.write_claims(rows, tmp_path / "claims.json")
