"""The study's pictures, drawn only from measured results (``parity.study`` computes them).

Every function takes arrays and numbers the study measured and returns a matplotlib
``Figure``; ``save_png`` writes it (PNG, ``DPI``) and closes it. The Agg backend is selected
before pyplot is imported, so nothing here needs a display.

Conventions in every figure: NumPy solid, torch dashed (same colour), so identical curves
show as one dashed-over-solid line; float64 blue, float32 orange.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

DPI = 80
IMPL_STYLE = {"numpy": {"ls": "-", "lw": 2.2, "alpha": 0.75},
              "torch": {"ls": "--", "lw": 1.4, "alpha": 1.0}}
DTYPE_COLOUR = {"float64": "tab:blue", "float32": "tab:orange"}
CLASS_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown",
                 "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
# light backgrounds for predicted regions, one per class (same order as CLASS_COLOURS)
REGION_COLOURS = ("#f6c9c9", "#c9d9f6", "#cdeccd", "#e3d3f0", "#fde2c4", "#e6d5cc",
                  "#f8d6ec", "#dedede", "#ececc6", "#c9eef3")


def save_png(fig, path: str | None = None) -> bytes:
    """Render ``fig`` as PNG at ``DPI`` with a 256-colour palette (the report embeds ~50
    pictures: 3.2 MB of HTML as RGBA, ~1 MB quantized); write it to ``path`` if given; close
    the figure; return the bytes. Figures are laid out by ``tight_layout`` or fixed margins
    (the per-model figures, drawn ~50 times, whose layout pass cost a third of the rendering
    time); ``bbox_inches="tight"`` would draw every figure twice."""
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def _log(ax, axis: str = "y", base: float = 10) -> None:
    """Log scale with plain-text tick labels ("1e-14", minor ticks labelled when the axis spans
    under a decade): matplotlib's default mathtext labels cost ~5 ms each to lay out, which
    made rendering the report take tens of seconds."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log", base=base)
    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_formatter(LogFormatter(base))
    a.set_minor_formatter(LogFormatter(base, labelOnlyBase=False))


def _log_if_wide(ax, curves) -> None:
    """Log y when every value is positive and they span more than 1.5 decades."""
    v = np.concatenate([np.asarray(c, dtype=float) for c in curves if len(c)])
    v = v[np.isfinite(v)]
    if len(v) and v.min() > 0 and v.max() / v.min() > 10**1.5:
        _log(ax)


def _positive(values) -> np.ndarray:
    """Values for a log axis: exact zeros (bit-identical) and non-finite become NaN (gaps)."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _scatter_classes(ax, X, y, size=10):
    size = 80 if len(X) < 20 else size      # XOR's four points must be visible
    for k in np.unique(y):
        m = y == k
        ax.scatter(X[m, 0], X[m, 1], s=size, c=CLASS_COLOURS[int(k) % 10], edgecolors="k",
                   linewidths=0.3, label=str(int(k)), zorder=3)


def model_curves(name: str, loss: dict, divergence: dict | None, epochs_note: str = ""):
    """One model's row: loss per epoch of both twins | |L_numpy − L_torch| per epoch |
    lockstep parameter divergence (max normwise relative difference per step, per dtype).

    ``loss``: ``{impl: [per-epoch loss]}``; ``divergence``: ``{dtype: [param_rel per step]}``.
    """
    ncols = 3 if divergence else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 2.9))
    ax = axes[0]
    for impl, curve in loss.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=impl, color="k" if impl == "numpy"
                else "tab:red", **IMPL_STYLE[impl])
    _log_if_wide(ax, list(loss.values()))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{name}: loss{epochs_note}", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    a, b = (np.asarray(loss[k], dtype=float) for k in ("numpy", "torch"))
    n = min(len(a), len(b))
    diff = np.abs(a[:n] - b[:n])
    ax.plot(np.arange(1, n + 1), _positive(diff), color="tab:gray", lw=1)
    zeros = int(np.sum(diff == 0))
    if np.isfinite(_positive(diff)).any():
        _log(ax)
    ax.set_xlabel("epoch")
    ax.set_title(f"|loss numpy − loss torch| (max {diff.max():.1e}"
                 + (f"; {zeros} epochs exactly 0" if zeros else "") + ")", fontsize=9)
    if len(a) != len(b):
        ax.text(0.02, 0.95, f"numpy ran {len(a)} epochs, torch {len(b)}",
                transform=ax.transAxes, fontsize=8, va="top")
    if divergence:
        ax = axes[2]
        drawn = False
        for dtype, rel in divergence.items():
            v = _positive(rel)
            if np.isfinite(v).any():
                drawn = True
            ax.plot(np.arange(1, len(v) + 1), v, color=DTYPE_COLOUR[dtype], lw=1.2,
                    label=f"{dtype} (last {rel[-1]:.1e})")
        if drawn:
            _log(ax)
        ax.set_xlabel("lockstep step")
        ax.set_title("parameter divergence (max rel)", fontsize=9)
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.89, wspace=0.22)
    return fig


def decision_boundaries(name: str, extent: tuple, pred_numpy: np.ndarray,
                        pred_torch: np.ndarray, X: np.ndarray, y: np.ndarray,
                        accuracies: dict | None = None):
    """NumPy | torch | where they disagree: predicted class on a grid (``pred_*``: ``(ny, nx)``
    ints, row 0 at ``extent[2]``), the points ``X: (N, 2)`` coloured by label ``y`` on top.
    The third panel marks grid cells whose predicted classes differ; the title gives the
    fraction of such cells."""
    xmin, xmax, ymin, ymax = extent
    k = int(max(pred_numpy.max(), pred_torch.max(), y.max())) + 1
    cmap = ListedColormap(REGION_COLOURS[:max(k, 2)])
    disagree = pred_numpy != pred_torch
    frac = float(disagree.mean())
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.8))
    acc = accuracies or {}
    for ax, pred, impl in ((axes[0], pred_numpy, "numpy"), (axes[1], pred_torch, "torch")):
        ax.imshow(pred, origin="lower", extent=extent, cmap=cmap, vmin=-0.5,
                  vmax=max(k, 2) - 0.5, interpolation="nearest", aspect="auto")
        _scatter_classes(ax, X, y, size=9)
        title = f"{name} — {impl}"
        if impl in acc:
            title += f"\ntrain {acc[impl][0]:.3f}, held-out {acc[impl][1]:.3f}"
        ax.set_title(title, fontsize=9)
    ax = axes[2]
    ax.imshow(disagree.astype(float), origin="lower", extent=extent,
              cmap=ListedColormap(["white", "crimson"]), vmin=0, vmax=1,
              interpolation="nearest", aspect="auto")
    ax.scatter(X[:, 0], X[:, 1], s=40 if len(X) < 20 else 4, c="0.6", zorder=3)
    ax.set_title(f"predicted class differs (red): {disagree.sum()} of {disagree.size} cells "
                 f"= {frac:.2%}", fontsize=9)
    for ax in axes:
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.88, wspace=0.04)
    return fig


def hidden_tiles(units: list[int], tiles: np.ndarray, extent: tuple, X: np.ndarray,
                 y: np.ndarray, title: str):
    """Activation maps ``tiles: (U, ny, nx)`` of hidden units ``units`` over the plane, the
    data points faintly on top."""
    n = len(units)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, u, t in zip(axes.ravel(), units, tiles):
        ax.imshow(t, origin="lower", extent=extent, cmap="viridis", interpolation="nearest",
                  aspect="auto")
        ax.scatter(X[:, 0], X[:, 1], s=0.6, c=[CLASS_COLOURS[int(k) % 10] for k in y],
                   alpha=0.5)
        ax.set_title(f"unit {u} (max {t.max():.2f})", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def digit_grid(images: np.ndarray, true: np.ndarray, pred_numpy: np.ndarray,
               pred_torch: np.ndarray, title: str):
    """``images: (10, 64)`` shown as 8×8; title ``pred p / true t`` green when right, red when
    wrong (NumPy's prediction; torch's is added when it differs)."""
    fig, axes = plt.subplots(2, 5, figsize=(7.5, 3.6))
    for ax, img, t, pn, pt in zip(axes.ravel(), images, true, pred_numpy, pred_torch):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", interpolation="nearest")
        label = f"pred {pn} / true {t}" + ("" if pn == pt else f"\n(torch: {pt})")
        ax.set_title(label, fontsize=9, color="green" if pn == t else "red")
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def pca_panels(coords: dict, var: dict, y: np.ndarray, title: str):
    """Hidden representation on its top two principal axes, NumPy | torch, coloured by class.
    ``coords``: ``{impl: (N, 2)}``; ``var``: ``{impl: (2,)}`` explained-variance fractions."""
    fig, axes = plt.subplots(1, len(coords), figsize=(4.6 * len(coords), 4.0), squeeze=False)
    for ax, (impl, c) in zip(axes[0], coords.items()):
        for k in np.unique(y):
            m = y == k
            ax.scatter(c[m, 0], c[m, 1], s=7, c=CLASS_COLOURS[int(k) % 10], label=str(int(k)))
        v = var[impl]
        ax.set_xlabel(f"PC1 ({v[0]:.1%} of variance)")
        ax.set_ylabel(f"PC2 ({v[1]:.1%})")
        ax.set_title(f"{impl}", fontsize=9)
    axes[0][-1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def lr_finder_curves(curves: dict, suggestions: dict, title: str):
    """Loss per step against its learning rate (log x), both twins; each suggestion marked."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for impl, c in curves.items():
        colour = "k" if impl == "numpy" else "tab:red"
        ax.plot(c["lr"], c["loss"], color=colour, label=f"{impl} ({len(c['loss'])} steps)",
                **IMPL_STYLE[impl])
    marked = {s for s in suggestions.values() if s is not None}
    for k, s in enumerate(sorted(marked)):
        who = [i for i, v in suggestions.items() if v == s]
        colour = "k" if who == ["numpy"] else "tab:red" if who == ["torch"] else "tab:green"
        ax.axvline(s, color=colour, ls=":", lw=1.2)
        ax.text(s, 0.97 - 0.3 * k, f" suggest ({' = '.join(who)}): {s:.3g}", color=colour,
                fontsize=8, va="top", transform=ax.get_xaxis_transform())
    _log(ax, "x")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("batch loss (before the step)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def overlaid_curves(series: list[tuple[str, str, list]], title: str, ylabel: str = "loss",
                    log: bool = True, marks: list[tuple[float, str, str]] = ()):
    """Several runs' per-epoch curves: ``series`` of (label, impl, values); NumPy solid,
    torch dashed; the colour is the label without its impl. ``marks``: vertical lines
    (x, label, colour)."""
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    colours: dict = {}
    palette = iter(("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                    "tab:brown", "tab:pink", "tab:olive"))
    for label, impl, values in series:
        c = colours.setdefault(label, next(palette))
        ax.plot(np.arange(1, len(values) + 1), values, color=c, label=f"{label} · {impl}",
                **IMPL_STYLE[impl])
    for x, label, colour in marks:
        ax.axvline(x, color=colour, lw=1, ls=":")
        ax.text(x, 0.98, f" {label}", color=colour, fontsize=7, va="top", rotation=90,
                transform=ax.get_xaxis_transform())
    if log:
        _log_if_wide(ax, [v for _, _, v in series])
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def size_sweep(sizes: list[int], acc: dict, loss: dict, title: str):
    """Held-out accuracy and held-out loss against hidden size ``h`` (log2 x), both twins.
    ``acc``/``loss``: ``{impl: [per size]}``."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for impl in acc:
        colour = "k" if impl == "numpy" else "tab:red"
        axes[0].plot(sizes, acc[impl], marker="o", color=colour, label=impl, **IMPL_STYLE[impl])
        axes[1].plot(sizes, loss[impl], marker="o", color=colour, label=impl, **IMPL_STYLE[impl])
    for ax, lab in zip(axes, ("held-out accuracy", "held-out loss")):
        _log(ax, "x", 2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.set_xlabel("hidden size h (layers h, h, h/2)")
        ax.set_ylabel(lab)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def bench_sweep(rows: list[dict], title: str):
    """Seconds per training step against hidden width, NumPy and torch, one line pair per
    batch size (log–log)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, batch in enumerate(sorted({r["batch"] for r in rows})):
        rs = sorted((r for r in rows if r["batch"] == batch), key=lambda r: r["width"])
        w = [r["width"] for r in rs]
        colour = ("tab:blue", "tab:green", "tab:purple")[i % 3]
        ax.plot(w, [1e3 * r["numpy_s_per_step"] for r in rs], marker="o", color=colour,
                label=f"numpy, batch {batch}", **IMPL_STYLE["numpy"])
        ax.plot(w, [1e3 * r["torch_s_per_step"] for r in rs], marker="s", color=colour,
                label=f"torch, batch {batch}", **IMPL_STYLE["torch"])
    _log(ax, "x", 2)
    _log(ax)
    ax.set_xlabel("hidden width W (2→W→W→3)")
    ax.set_ylabel("ms per step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
