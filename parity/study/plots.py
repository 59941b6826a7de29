"""The study's pictures, drawn only from measured results (``parity.study`` computes them).

Every function takes arrays and numbers the study measured and returns a matplotlib
``Figure``; ``save_png`` writes it (PNG, ``DPI``) and closes it. The Agg backend is selected
before pyplot is imported, so nothing here needs a display.

Conventions in every figure: NumPy solid, torch dashed (same colour), so identical curves
show as one dashed-over-solid line; float64 blue, float32 orange. Every axis that carries a
scale is labelled; text is sized for the report at 100 % zoom (``STYLE``). A log axis cannot
show 0, so where two twins agree exactly the value is marked by a tick on the bottom edge
(``_mark_zeros``), never silently dropped.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogFormatter  # noqa: E402

DPI = 100
# Text sizes for 100 % zoom: at DPI 100 a 9.5 pt label is 13 px high, the size of the page's
# own small print. Every figure is at most 11.8 in wide (1180 px), inside the page's column,
# so the browser shows it unscaled.
STYLE = {"font.size": 10.5, "axes.titlesize": 10.5, "axes.labelsize": 10.5,
         "xtick.labelsize": 9.5, "ytick.labelsize": 9.5, "legend.fontsize": 9.5,
         "figure.titlesize": 11}
SMALL = 9.5   # the smallest text drawn (legends, annotations)
IMPL_STYLE: dict[str, dict[str, Any]] = {"numpy": {"ls": "-", "lw": 2.2, "alpha": 0.75},
              "torch": {"ls": "--", "lw": 1.4, "alpha": 1.0}}
IMPL_COLOUR = {"numpy": "k", "torch": "tab:red"}
DTYPE_COLOUR = {"float64": "tab:blue", "float32": "tab:orange"}
CLASS_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown",
                 "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
# light backgrounds for predicted regions, one per class (same order as CLASS_COLOURS)
REGION_COLOURS = ("#f6c9c9", "#c9d9f6", "#cdeccd", "#e3d3f0", "#fde2c4", "#e6d5cc",
                  "#f8d6ec", "#dedede", "#ececc6", "#c9eef3")


def _styled(draw):
    """Draw under ``STYLE`` (matplotlib's global rcParams stay as the caller set them)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def save_png(fig, path: str | None = None) -> bytes:
    """Render ``fig`` as PNG at ``DPI`` with a 256-colour palette (a third of the RGBA size for
    ~50 pictures); write it to ``path`` if given; close the figure; return the bytes. Figures
    are laid out by ``tight_layout`` or fixed margins (the per-model figures, drawn ~50 times,
    whose layout pass cost a third of the rendering time); ``bbox_inches="tight"`` would draw
    every figure twice."""
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


def _zero_strip(strip, series: list[tuple[np.ndarray, str]]) -> list[int]:
    """The "= 0" strip under a log panel: a log axis cannot show 0, so each exact 0 of
    ``series`` — ``(values at x = 1, 2, …, colour)``, one row each — is a tick here.
    Returns the number of zeros per row (for the panel's legend)."""
    counts = []
    for row, (values, colour) in enumerate(series):
        zero = np.flatnonzero(np.asarray(values, dtype=float) == 0)
        counts.append(len(zero))
        strip.plot(zero + 1, np.full(len(zero), row), ls="none", marker="|", ms=8, mew=1.4,
                   color=colour)
    if not any(counts):
        strip.text(0.5, 0.5, "none", transform=strip.transAxes, ha="center", va="center",
                   fontsize=SMALL, color="0.4")
    strip.set_ylim(-0.8, len(series) - 0.2)
    strip.set_yticks([(len(series) - 1) / 2], ["= 0"])
    strip.tick_params(axis="y", length=0)
    return counts


def _log_unless_empty(ax, series: list[np.ndarray]) -> None:
    """Log y when some value is positive; else (every value 0: all in the strip) no scale."""
    if any(np.isfinite(_positive(v)).any() for v in series):
        _log(ax)
    else:
        ax.set_yticks([])


def _scatter_classes(ax, X, y, size=10):
    size = 80 if len(X) < 20 else size      # XOR's four points must be visible
    for k in np.unique(y):
        m = y == k
        ax.scatter(X[m, 0], X[m, 1], s=size, c=CLASS_COLOURS[int(k) % 10], edgecolors="k",
                   linewidths=0.3, label=str(int(k)), zorder=3)


@_styled
def model_curves(name: str, loss: dict, divergence: dict | None, epochs_note: str = ""):
    """One model's row: loss per epoch of both twins | |L_numpy − L_torch| per epoch |
    lockstep parameter divergence (max normwise relative difference per step, per dtype).
    The two difference panels are log scale with an "= 0" strip underneath (``_zero_strip``).

    ``loss``: ``{impl: [per-epoch loss]}``; ``divergence``: ``{dtype: [param_rel per step]}``.
    """
    mosaic: list[Any] = [["loss", "diff", "div"], ["loss", "diff0", "div0"]]
    if not divergence:
        mosaic = [row[:2] for row in mosaic]
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(3.93 * len(mosaic[0]), 3.5),
                                   height_ratios=[5, 1], gridspec_kw={"hspace": 0.06})
    ax = axes["loss"]
    for impl, curve in loss.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=impl, color=IMPL_COLOUR[impl],
                **IMPL_STYLE[impl])
    _log_if_wide(ax, list(loss.values()))
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{name}: loss{epochs_note}")
    ax.legend()
    _loss_difference_panel(axes["diff"], axes["diff0"], loss)
    if divergence:
        _divergence_panel(axes["div"], axes["div0"], divergence)
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.14, top=0.91, wspace=0.32)
    return fig


def _loss_difference_panel(ax, strip, loss: dict) -> None:
    """|loss numpy − loss torch| per epoch on a log axis; its exact zeros in ``strip``."""
    a, b = (np.asarray(loss[k], dtype=float) for k in ("numpy", "torch"))
    n = min(len(a), len(b))
    diff = np.abs(a[:n] - b[:n])
    ax.sharex(strip)
    zeros = _zero_strip(strip, [(diff, "tab:green")])[0]
    ax.plot(np.arange(1, n + 1), _positive(diff), color="tab:gray", lw=0.8, marker=".", ms=3,
            label=f"> 0 at {n - zeros} of {n} epochs")
    if zeros:
        ax.plot([], [], ls="none", marker="|", ms=8, mew=1.4, color="tab:green",
                label=f"= 0 at {zeros} (ticks below)")
    _log_unless_empty(ax, [diff])
    ax.set(ylabel="|loss numpy − loss torch|", title="loss difference"
           + (f" (max {diff.max():.1e})" if diff.max() > 0 else ": none"))
    ax.tick_params(labelbottom=False)
    ax.legend(fontsize=SMALL, loc="best")
    strip.set_xlabel("epoch")
    if len(a) != len(b):
        ax.text(0.02, 0.95, f"numpy ran {len(a)} epochs, torch {len(b)}",
                transform=ax.transAxes, fontsize=SMALL, va="top")


def _divergence_panel(ax, strip, divergence: dict) -> None:
    """Max normwise relative parameter difference per lockstep step, one line per dtype on a
    log axis; steps where it is exactly 0 in ``strip``, one row per dtype."""
    ax.sharex(strip)
    values = [np.asarray(rel, dtype=float) for rel in divergence.values()]
    zeros = _zero_strip(strip, [(v, DTYPE_COLOUR[dt]) for v, dt in zip(values, divergence)])
    for dtype, v, z in zip(divergence, values, zeros):
        ax.plot(np.arange(1, len(v) + 1), _positive(v), color=DTYPE_COLOUR[dtype], lw=1.2,
                marker=".", ms=3, label=f"{dtype}: last {fmt_e(v[-1]) if len(v) else '-'}"
                + (f", = 0 at {z}" if z else ""))
    _log_unless_empty(ax, values)
    ax.set(ylabel="max rel. param. difference", title="parameter divergence")
    ax.tick_params(labelbottom=False)
    ax.legend(fontsize=SMALL)
    strip.set_xlabel("lockstep step")


def fmt_e(x: float) -> str:
    """``0`` for an exact 0, else one significant decimal in e-notation."""
    return "0" if x == 0 else f"{x:.1e}"


@_styled
def decision_boundaries(name: str, extent: tuple, pred_numpy: np.ndarray,
                        pred_torch: np.ndarray, X: np.ndarray, y: np.ndarray,
                        accuracies: dict | None = None):
    """NumPy | torch | where they disagree: predicted class on a grid (``pred_*``: ``(ny, nx)``
    ints, row 0 at ``extent[2]``), the points ``X: (N, 2)`` coloured by label ``y`` on top.
    The third panel marks grid cells whose predicted classes differ; the title gives the
    fraction of such cells."""
    k = int(max(pred_numpy.max(), pred_torch.max(), y.max())) + 1
    cmap = ListedColormap(REGION_COLOURS[:max(k, 2)])
    disagree = pred_numpy != pred_torch
    fig, axes = plt.subplots(1, 3, figsize=(11.6, 4.1), sharex=True, sharey=True)
    acc = accuracies or {}
    for ax, pred, impl in ((axes[0], pred_numpy, "numpy"), (axes[1], pred_torch, "torch")):
        ax.imshow(pred, origin="lower", extent=extent, cmap=cmap, vmin=-0.5,
                  vmax=max(k, 2) - 0.5, interpolation="nearest", aspect="auto")
        _scatter_classes(ax, X, y, size=9)
        title = f"{name} — {impl}"
        if impl in acc:
            title += f"\ntrain {acc[impl][0]:.3f}, held-out {acc[impl][1]:.3f}"
        ax.set_title(title)
    ax = axes[2]
    ax.imshow(disagree.astype(float), origin="lower", extent=extent,
              cmap=ListedColormap(["white", "crimson"]), vmin=0, vmax=1,
              interpolation="nearest", aspect="auto")
    ax.scatter(X[:, 0], X[:, 1], s=40 if len(X) < 20 else 4, c="0.6", zorder=3)
    ax.set_title(f"predicted class differs (red):\n{disagree.sum()} of {disagree.size} cells "
                 f"= {float(disagree.mean()):.2%}")
    for ax in axes:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel("x₁ (input 1)")
    axes[0].set_ylabel("x₂ (input 2)")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.13, top=0.86, wspace=0.06)
    return fig


@_styled
def hidden_tiles(units: list[int], tiles: np.ndarray, extent: tuple, X: np.ndarray,
                 y: np.ndarray, title: str):
    """Activation maps ``tiles: (U, ny, nx)`` of hidden units ``units`` over the plane
    (x₁ across, x₂ up, as in the decision boundaries), the data points faintly on top."""
    n = len(units)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        ax.set_xticks([])
        ax.set_yticks([])
        if i % cols == 0:
            ax.set_ylabel("x₂")
        if i + cols >= n:
            ax.set_xlabel("x₁")
    for ax, u, t in zip(axes.ravel(), units, tiles):
        ax.imshow(t, origin="lower", extent=extent, cmap="viridis", interpolation="nearest",
                  aspect="auto")
        ax.scatter(X[:, 0], X[:, 1], s=0.6, c=[CLASS_COLOURS[int(k) % 10] for k in y],
                   alpha=0.5)
        ax.set_title(f"unit {u} (max {t.max():.2f})", fontsize=SMALL)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def digit_grid(images: np.ndarray, true: np.ndarray, pred_numpy: np.ndarray,
               pred_torch: np.ndarray, title: str):
    """``images: (10, 64)`` shown as 8×8 pictures (no scale, so no axes); title
    ``pred p / true t`` green when right, red when wrong (NumPy's prediction; torch's is
    added when it differs)."""
    fig, axes = plt.subplots(2, 5, figsize=(8.2, 4.2))
    for ax, img, t, pn, pt in zip(axes.ravel(), images, true, pred_numpy, pred_torch):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", interpolation="nearest")
        label = f"pred {pn} / true {t}" + ("" if pn == pt else f"\n(torch: {pt})")
        ax.set_title(label, color="green" if pn == t else "red")
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def pca_panels(coords: dict, var: dict, y: np.ndarray, title: str):
    """Hidden representation on its top two principal axes, NumPy | torch, coloured by class.
    ``coords``: ``{impl: (N, 2)}``; ``var``: ``{impl: (2,)}`` explained-variance fractions."""
    fig, axes = plt.subplots(1, len(coords), figsize=(5.2 * len(coords), 4.4), squeeze=False)
    for ax, (impl, c) in zip(axes[0], coords.items()):
        for k in np.unique(y):
            m = y == k
            ax.scatter(c[m, 0], c[m, 1], s=7, c=CLASS_COLOURS[int(k) % 10], label=str(int(k)))
        v = var[impl]
        ax.set_xlabel(f"PC1 ({v[0]:.1%} of variance)")
        ax.set_ylabel(f"PC2 ({v[1]:.1%})")
        ax.set_title(f"{impl}")
    axes[0][-1].legend(title="digit", markerscale=1.5, loc="center left",
                       bbox_to_anchor=(1, 0.5))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def lr_finder_curves(curves: dict, suggestions: dict, title: str):
    """Loss per step against its learning rate (log x), both twins; each suggestion marked."""
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    for impl, c in curves.items():
        ax.plot(c["lr"], c["loss"], color=IMPL_COLOUR[impl],
                label=f"{impl} ({len(c['loss'])} steps)", **IMPL_STYLE[impl])
    marked = {s for s in suggestions.values() if s is not None}
    for k, s in enumerate(sorted(marked)):
        who = [i for i, v in suggestions.items() if v == s]
        colour = "k" if who == ["numpy"] else "tab:red" if who == ["torch"] else "tab:green"
        ax.axvline(s, color=colour, ls=":", lw=1.2)
        ax.text(s, 0.97 - 0.3 * k, f" suggest ({' = '.join(who)}): {s:.3g}", color=colour,
                fontsize=SMALL, va="top", transform=ax.get_xaxis_transform())
    _log(ax, "x")
    ax.set(xlabel="learning rate", ylabel="batch loss (before the step)", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


@_styled
def overlaid_curves(series: list[tuple[str, str, list]], title: str, ylabel: str = "loss",
                    log: bool = True, marks: Sequence[tuple[float, str, str]] = ()):
    """Several runs' per-epoch curves: ``series`` of (label, impl, values); NumPy solid,
    torch dashed; the colour is the label without its impl. ``marks``: vertical lines
    (x, label, colour)."""
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    colours: dict = {}
    palette = iter(("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                    "tab:brown", "tab:pink", "tab:olive"))
    for label, impl, values in series:
        c = colours.setdefault(label, next(palette))
        ax.plot(np.arange(1, len(values) + 1), values, color=c, label=f"{label} · {impl}",
                **IMPL_STYLE[impl])
    for x, label, colour in marks:
        ax.axvline(x, color=colour, lw=1, ls=":")
        ax.text(x, 0.98, f" {label}", color=colour, fontsize=SMALL, va="top", rotation=90,
                transform=ax.get_xaxis_transform())
    if log:
        _log_if_wide(ax, [v for _, _, v in series])
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend(ncol=2)
    fig.tight_layout()
    return fig


@_styled
def size_sweep(sizes: list[int], acc: dict, loss: dict, title: str):
    """Held-out accuracy and held-out loss against hidden size ``h`` (log2 x), both twins.
    ``acc``/``loss``: ``{impl: [per size]}``."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for impl in acc:
        for ax, values in zip(axes, (acc[impl], loss[impl])):
            ax.plot(sizes, values, marker="o", color=IMPL_COLOUR[impl], label=impl,
                    **IMPL_STYLE[impl])
    for ax, lab in zip(axes, ("held-out accuracy", "held-out loss")):
        _log(ax, "x", 2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.set(xlabel="hidden size h (layers h, h, h/2)", ylabel=lab)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def bench_sweep(rows: list[dict], title: str):
    """Milliseconds per training step against hidden width, NumPy and torch, one line pair
    per batch size (log–log)."""
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
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
    ax.set(xlabel="hidden width W (2→W→W→3)", ylabel="ms per step", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


@_styled
def filter_grid(filters: dict, title: str):
    """A convolution's filters ``{impl: (F, C, KH, KW)}`` as small images: the twins side by
    side on one symmetric colour scale (blue negative, red positive; the colour bar gives the
    weight), then ``|numpy − torch|`` on its own scale. Tile ``f`` (``f.c`` when C > 1) is
    filter f's weights on input channel c, row 0 at the top as in the image."""
    tiles = {impl: np.asarray(w, dtype=float).reshape(-1, *np.shape(w)[2:])
             for impl, w in filters.items()}
    channels = np.shape(filters["numpy"])[1]
    n = len(tiles["numpy"])
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    diff = np.abs(tiles["numpy"] - tiles["torch"])
    vmax = max(float(np.abs(t).max()) for t in tiles.values()) or 1.0
    dmax = float(diff.max())
    # column blocks: numpy | gap | torch | colour bar | gap | difference | colour bar
    widths = [1.0] * cols + [0.35] + [1.0] * cols + [0.2, 1.6] + [1.0] * cols + [0.2]
    fig = plt.figure(figsize=(11.6, 0.7 * rows + 1.5))
    grid = fig.add_gridspec(rows, len(widths), width_ratios=widths, left=0.01, right=0.92,
                            top=1 - 1.05 / (0.7 * rows + 1.5), bottom=0.03, wspace=0.12,
                            hspace=0.35)
    starts = {"numpy": 0, "torch": cols + 1, "diff": 2 * cols + 3}
    kh, kw = tiles["numpy"].shape[1:]
    for key, data, cmap, lo, hi in (("numpy", tiles["numpy"], "RdBu_r", -vmax, vmax),
                                    ("torch", tiles["torch"], "RdBu_r", -vmax, vmax),
                                    ("diff", diff, "Greys", 0.0, dmax or 1.0)):
        image = _tile_block(fig, grid, starts[key], data, rows, cols, channels, cmap, lo, hi)
        label = (f"|numpy − torch| (max {fmt_e(dmax)})" if key == "diff"
                 else f"{key}: {n // channels} filters {kh}×{kw}")
        centre = fig.add_subplot(grid[0, starts[key]:starts[key] + cols], frameon=False)
        centre.set_axis_off()
        centre.set_title(label, pad=16)
        if key != "numpy":
            bar = fig.colorbar(image, cax=fig.add_subplot(grid[:, starts[key] + cols]))
            bar.set_label("weight" if key == "torch" else "|difference|")
            if key == "diff":   # its values, not a "1e-16" multiplier over the tiles' titles
                bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.1e"))
    fig.suptitle(title)
    return fig


def _tile_block(fig, grid, start: int, tiles: np.ndarray, rows: int, cols: int,
                channels: int, cmap: str, vmin: float, vmax: float):
    """``tiles: (T, KH, KW)`` in the grid's columns ``start … start + cols − 1``, one axes
    without scales per tile, titled by its filter (and channel); returns the last image."""
    image = None
    for i in range(rows * cols):
        ax = fig.add_subplot(grid[i // cols, start + i % cols])
        ax.axis("off")
        if i < len(tiles):
            image = ax.imshow(tiles[i], cmap=cmap, vmin=vmin, vmax=vmax,
                              interpolation="nearest")
            label = str(i // channels) + (f".{i % channels}" if channels > 1 else "")
            ax.set_title(label, fontsize=SMALL, pad=2)
    return image


@_styled
def bench_convnets(rows: list[dict], profile: dict, title: str):
    """Left: ms per training step of each convnet, NumPy and torch bars side by side (the
    ratio written above). Right: the NumPy step of ``profile['model']`` by layer, forward and
    backward ms as horizontal bars."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11.2, 4.2),
                                  gridspec_kw={"width_ratios": [1, 1.2]})
    x = np.arange(len(rows))
    for k, impl in enumerate(("numpy", "torch")):
        ms = [1e3 * r[f"{impl}_s_per_step"] for r in rows]
        ax.bar(x + (k - 0.5) * 0.38, ms, 0.38, color=IMPL_COLOUR[impl], label=impl,
               alpha=0.8 if impl == "numpy" else 0.6)
    for i, r in enumerate(rows):
        top = 1e3 * max(r["numpy_s_per_step"], r["torch_s_per_step"])
        ax.text(i, top, f"numpy/torch {r['numpy_over_torch']:.2f}", ha="center", va="bottom",
                fontsize=SMALL)
    ax.set_xticks(x, [f"{r['model']}\n(batch {r['batch']})" for r in rows])
    ax.set(xlabel="model", ylabel="ms per training step", title="time per step")
    ax.margins(y=0.15)
    ax.legend()
    layers = profile["layers"]
    y = np.arange(len(layers))[::-1]
    fwd = [1e3 * r["forward_s"] for r in layers]
    bwd = [1e3 * r["backward_s"] for r in layers]
    ax2.barh(y, fwd, color="tab:blue", label="forward")
    ax2.barh(y, bwd, left=fwd, color="tab:orange", label="backward")
    ax2.set_yticks(y, [f"{i} {r['layer']}" for i, r in enumerate(layers)])
    ax2.set(xlabel="ms (best of repeats)", ylabel="layer",
            title=f"NumPy step of {profile['model']} by layer")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def layer_digits(panels: dict, title: str, highlight: int | None = None,
                 full: dict | None = None):
    """Digits of agreement per layer at step 1, one panel per dtype: for each layer a bar for
    the forward pass (its output, solid) and one for the backward pass (the worst of its input
    and parameter gradients, hatched). ``panels``: ``{dtype: parity.study.layer_agreement
    .by_layer(...)}``; ``full``: each dtype's cap (a dashed line, "all digits"). An exact
    agreement (difference 0) is a bar to the cap with a star on top; a tensor that is only
    rounding noise of its group is a hollow circle at 0; a check that fails is red.
    ``highlight``: the layer to shade (the first that disagrees)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(5.8 * len(panels), 9.0), 4.9),
                             sharey=True,
                             squeeze=False)
    for ax, (dtype, layers) in zip(axes[0], panels.items()):
        _digit_bars(ax, dtype, layers, (full or {}).get(dtype))
        if highlight is not None:
            ax.axvspan(highlight - 0.5, highlight + 0.5, color="tab:red", alpha=0.12, lw=0)
            ax.text(highlight, 17.7, f"layer {highlight}: first to disagree", ha="center",
                    va="top", fontsize=SMALL, color="tab:red")
    axes[0][0].set_ylabel("digits of agreement\n−log10(max rel. difference)")
    axes[0][0].set_ylim(0, 18)
    fig.suptitle(title)
    fig.legend(handles=_digit_legend(), fontsize=SMALL, loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return fig


def _digit_bars(ax, dtype: str, layers: list, cap: float | None) -> None:
    colour = DTYPE_COLOUR.get(dtype, "tab:gray")
    for k, (direction, dx, hatch) in enumerate((("forward", -0.2, None),
                                                 ("backward", 0.2, "///"))):
        for entry in layers:
            got = entry[direction]
            if got is None:
                continue
            x, (d, state, passed) = entry["layer"] + dx, got
            ax.bar(x, d, width=0.38, color=colour if passed else "tab:red",
                   alpha=1.0 if k == 0 else 0.55, hatch=hatch, edgecolor="0.25", lw=0.5)
            if state == "exact":
                ax.plot(x, d + 0.45, marker="*", ms=9, color="k", ls="none")
            elif state == "noise":
                ax.plot(x, 0.35, marker="o", ms=6, mfc="none", mec="0.3", ls="none")
    if cap is not None:
        ax.axhline(cap, color="0.4", ls="--", lw=0.9)
        ax.text(max((e["layer"] for e in layers), default=0) + 0.5, cap + 0.15,
                f"{dtype}: all {cap:.2f} digits", ha="right", fontsize=SMALL,
                color="0.3")
    ax.set_xticks([e["layer"] for e in layers],
                  [f"{e['layer']} {e['kind']}" for e in layers], rotation=55, ha="right",
                  rotation_mode="anchor")
    ax.set_xlim(-0.6, max((e["layer"] for e in layers), default=0) + 0.6)
    ax.set(xlabel="layer (forward order)", title=dtype)


def _digit_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    return [Patch(facecolor="0.55", edgecolor="0.25", label="forward: output"),
            Patch(facecolor="0.8", edgecolor="0.25", hatch="///",
                  label="backward: input/param. grads"),
            Patch(facecolor="tab:red", label="check fails"),
            Line2D([], [], marker="*", ms=9, color="k", ls="none", label="exact (difference 0)"),
            Line2D([], [], marker="o", ms=6, mfc="none", mec="0.3", ls="none",
                   label="rounding noise of its group")]
