"""What a full and a quick study run: the plan (models, epochs, seeds, grids)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parity.catalogue import zoo
from parity.catalogue.spec import ModelSpec
from parity.study.worked_failure import MUTANT as WORKED_MUTANT

# ---- what a full and a quick study run ----------------------------------------------------------
QUICK_EPOCHS = 300            # full-batch models on small data
QUICK_EPOCHS_LARGE = 100      # full-batch models on > 1000 rows (digits: 1437 × 64 per step)
QUICK_EPOCHS_MINIBATCH = 30   # minibatch models
LARGE_ROWS = 1000
DIVERGE_STEPS, QUICK_DIVERGE_STEPS = 300, 50
XOR_SEEDS, QUICK_XOR_SEEDS = 20, 5
QUICK_XOR_EPOCHS = 1000       # quick sweep: at most this many epochs per seed (labelled)
HIDDEN_SIZES, QUICK_HIDDEN_SIZES = (16, 32, 64, 128, 256), (16, 64, 256)
GRID = 200                    # decision-boundary grid: GRID × GRID points
TILE_GRID = 60                # hidden-unit tiles: TILE_GRID × TILE_GRID points per unit
N_TILES = 25
SEED_CHUNK = 5                # XOR sweep: seeds per job



@dataclass(frozen=True)
class Plan:
    """What one study runs. ``seed`` None: each model's ``pinned_seed``."""

    models: tuple
    quick: bool = False
    seed: int | None = None
    epochs: dict = field(default_factory=dict)       # model → epochs
    diverge_steps: int = DIVERGE_STEPS
    xor_seeds: tuple = tuple(range(XOR_SEEDS))
    xor_epochs: int | None = None                    # None: the recipe's
    hidden_sizes: tuple = HIDDEN_SIZES
    hidden_epochs: int | None = None                 # None: spiral003's
    grid: int = GRID
    tile_grid: int = TILE_GRID
    claims: bool = True
    bench: bool = True
    worked_failure: str | None = WORKED_MUTANT       # a selftest mutant; None: no section
    epochs_cap: int | None = None                    # make_plan's epochs_override
    sweep_seeds: tuple = ()                          # --seeds: success rates over these

    def seed_for(self, spec: ModelSpec) -> int:
        return spec.pinned_seed if self.seed is None else self.seed

    @property
    def audit_seed(self) -> int:
        """The claims audit's seed: ``seed``, else 0 (the audit's default)."""
        return 0 if self.seed is None else self.seed

    def epochs_for(self, spec: ModelSpec) -> int:
        """The epochs of a run of ``spec``: the plan's for its models, and for any other
        catalogue model (a claim's corrected setting) the same rule (quick cap, override)."""
        if spec.name in self.epochs:
            return self.epochs[spec.name]
        return model_epochs(spec, self.quick, self.seed, self.epochs_cap)


def quick_epochs(spec: ModelSpec, n_train: int) -> int:
    cap = (QUICK_EPOCHS_MINIBATCH if spec.batch_size is not None
           else QUICK_EPOCHS_LARGE if n_train > LARGE_ROWS else QUICK_EPOCHS)
    return min(spec.epochs, cap)


def model_epochs(spec: ModelSpec, quick: bool, seed: int | None, cap: int | None) -> int:
    """The recipe's epochs; in quick mode ``quick_epochs``; at most ``cap``."""
    e = spec.epochs
    if quick:
        e = quick_epochs(spec, len(spec.data(spec.pinned_seed if seed is None else seed).X_train))
    return e if cap is None else min(e, int(cap))


def make_plan(models=None, quick: bool = False, seed: int | None = None,
              epochs_override: int | None = None, **overrides) -> Plan:
    """The full or quick plan for ``models`` (default: the whole catalogue).
    ``epochs_override`` caps every model's epochs (tests); ``overrides`` replace Plan fields."""
    names = tuple(dict.fromkeys(models or zoo.CATALOGUE))
    epochs = {name: model_epochs(zoo.get(name), quick, seed, epochs_override) for name in names}
    base: dict[str, Any] = dict(models=names, quick=quick, seed=seed, epochs=epochs,
                epochs_cap=None if epochs_override is None else int(epochs_override))
    if quick:
        base.update(diverge_steps=QUICK_DIVERGE_STEPS, xor_seeds=tuple(range(QUICK_XOR_SEEDS)),
                    xor_epochs=QUICK_XOR_EPOCHS, hidden_sizes=QUICK_HIDDEN_SIZES,
                    hidden_epochs=epochs.get("spiral003", quick_epochs(zoo.get("spiral003"), 0)))
    if epochs_override is not None:
        base.update(xor_epochs=min(base.get("xor_epochs") or 10**9, int(epochs_override)),
                    hidden_epochs=min(base.get("hidden_epochs") or 10**9, int(epochs_override)))
    base.update(overrides)
    plan = Plan(**base)
    for k in ("epochs", "diverge_steps", "xor_epochs", "hidden_epochs", "grid", "tile_grid"):
        v = getattr(plan, k)
        if any(x is not None and x < 1 for x in (v.values() if k == "epochs" else [v])):
            raise ValueError(f"study plan: {k} must be >= 1, got {v}")
    return plan
