"""The report's section for ``--seeds``: success rates per model and twin over many seeds,
each with its Wilson 95% interval (``parity.study.success_rates``)."""

from __future__ import annotations

FAILED_SHOWN = 12             # failing seeds listed per cell; more are counted


def seed_sweep_section(doc, R: dict) -> None:
    """Add "Success rates over seeds" to ``doc`` (a ``document.Doc``) when results ``R``
    carry ``seed_sweep``; nothing otherwise."""
    sweep = R.get("seed_sweep")
    if not sweep:
        return
    doc.h(2, "Success rates over seeds")
    rows = [_row(name, e) for name, e in sweep["models"].items()]
    doc.table(["model", "target", "epochs", "numpy: met / seeds, 95% interval",
               "torch: met / seeds, 95% interval", "both met", "seeds where one twin failed",
               "failing seeds numpy", "failing seeds torch"], rows)
    doc.p(f"Each model with a target, trained in both twins once per seed "
          f"({seed_text(sweep['seeds'])}; data, initial weights and batch order all come from "
          f"the seed). A seed succeeds when its run met the target. Intervals: Wilson score, "
          f"95% — at the rates 0/n and n/n that sweeps often give it still has width (Wald's "
          f"p ± 1.96·√(p(1−p)/n) would claim certainty), and its coverage stays near 95% at "
          f"small n. An epoch count with a recipe beside it is capped (--quick): the rate is "
          f"of the capped runs.")
    if sweep["left_out"]:
        doc.p("No target, so no success rate: " + ", ".join(sweep["left_out"]) + ".")


def _row(name: str, e: dict) -> list:
    ep = str(e["epochs"]) + ("" if e["epochs"] == e["recipe_epochs"]
                             else f" (recipe {e['recipe_epochs']})")
    return [name, e["target"], ep, rate_text(e["numpy"]), rate_text(e["torch"]),
            rate_text(e["both"]), seeds_text(e["both"]["split"]),
            seeds_text(e["numpy"]["failed"]), seeds_text(e["torch"]["failed"])]


def rate_text(r: dict) -> str:
    """``"17/20 = 85% [64%, 95%]"``: successes over seeds, the rate, the interval."""
    return (f"{r['successes']}/{r['n']} = {100 * r['rate']:.0f}% "
            f"[{100 * r['low']:.0f}%, {100 * r['high']:.0f}%]")


def seeds_text(seeds: list) -> str:
    if not seeds:
        return "none"
    shown = ", ".join(map(str, seeds[:FAILED_SHOWN]))
    return shown + (f" and {len(seeds) - FAILED_SHOWN} more" if len(seeds) > FAILED_SHOWN else "")


def seed_text(seeds: list) -> str:
    """``"0–99"`` for a contiguous range, else the list (long lists shortened)."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + seeds_text(seeds)
