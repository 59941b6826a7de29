"""Optional dependencies: which extra of ``pip install 'nn-parity[...]'`` brings which
package, and the one line that says which extra to install when one is missing.

``pip install nn-parity`` brings numpy, torch and threadpoolctl: the API (``parity.__all__``),
the ``twins`` pytest fixture, and ``nn-parity list/check/train/diverge/export/import-check``
on the catalogue's generated datasets. Everything else is an extra (pyproject.toml
``[project.optional-dependencies]``, which must list the same packages: tests/test_extras.py):

    datasets     scikit-learn: the digits datasets (the catalogue's digits-* models)
    safetensors  safetensors: checkpoints in .safetensors format (export/import-check)
    study        matplotlib, pillow, scipy, scikit-learn, tqdm: ``nn-parity study``, the
                 claims audit, Bayes ceilings, drift, selftest, bench, progress bars
    all          every extra above
"""

from __future__ import annotations

import importlib.util

# extra → the import names of the packages it brings (pyproject.toml holds the distributions).
EXTRAS: dict[str, tuple[str, ...]] = {
    "datasets": ("sklearn",),
    "safetensors": ("safetensors",),
    "study": ("matplotlib", "PIL", "scipy", "sklearn", "tqdm"),
}

# import name → the distribution pip installs it from, where the two differ.
DISTRIBUTION: dict[str, str] = {"sklearn": "scikit-learn", "PIL": "pillow"}

# import name → the smallest extra that brings it (for a module found missing mid-run).
MODULE_EXTRA: dict[str, str] = {"sklearn": "datasets", "safetensors": "safetensors",
                                "matplotlib": "study", "PIL": "study", "scipy": "study",
                                "tqdm": "study"}

# Commands that need an extra whatever their arguments: command → (the extra, the packages of it
# the command imports). Checked before any work starts, so that a long run never stops at its
# last stage for a missing package.
COMMAND_EXTRA: dict[str, tuple[str, tuple[str, ...]]] = {
    "study": ("study", EXTRAS["study"]),
    "claims": ("study", ("scipy", "sklearn")),     # scipy.stats, and the digits models
    "bayes": ("study", ("scipy",)),
    "drift": ("datasets", ("sklearn",)),           # every catalogue model, digits included
    "selftest": ("datasets", ("sklearn",)),
    "bench": ("datasets", ("sklearn",)),           # the catalogue's convnets learn the digits
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that brings it:
    ``needs the 'study' extra (matplotlib is not installed): pip install 'nn-parity[study]'``.
    """

    def __init__(self, extra: str, module: str):
        self.extra = extra
        super().__init__(f"needs the '{extra}' extra ({DISTRIBUTION.get(module, module)} is "
                         f"not installed): pip install 'nn-parity[{extra}]'", name=module)


def _top(name: str | None) -> str:
    return (name or "").partition(".")[0]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it."""
    return importlib.util.find_spec(module) is not None


def require(extra: str, modules: tuple[str, ...] | None = None) -> None:
    """:class:`MissingExtra` naming the first package of ``extra`` (or of ``modules``, those of
    it a caller needs) that is not installed; found without importing it. Example:
    ``require("study")`` before a study starts."""
    for module in EXTRAS[extra] if modules is None else modules:
        if not installed(module):
            raise MissingExtra(extra, module)


def missing_extra(error: ImportError) -> MissingExtra | None:
    """The :class:`MissingExtra` an ``ImportError`` stands for (a package of an extra is
    absent), else None. Example: ``missing_extra(ModuleNotFoundError(name="sklearn"))``
    names the 'datasets' extra."""
    if isinstance(error, MissingExtra):
        return error
    top = _top(error.name)
    return MissingExtra(MODULE_EXTRA[top], top) if top in MODULE_EXTRA else None
