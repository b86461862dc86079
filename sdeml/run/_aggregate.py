"""What a sweep's grid points say together: metrics over seeds per hyper-parameter point.

A sweep's ``summary.json`` holds one value per grid point for each metric (the order of
``sweep.labels``). Here the points that differ only in ``seed`` are grouped, and each metric is
reduced to its mean, sample standard deviation and standard error over those seeds; the sweep
plot draws each metric against each swept hyper-parameter, mean ± standard error over seeds.
JAX-free (NumPy and matplotlib), so ``sdeml show`` stays instant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEED = "seed"


def _numeric(values: Any, n: int) -> bool:
    return (
        isinstance(values, list)
        and len(values) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    )


def aggregate(points: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]) -> list[dict]:
    """Per non-seed point: each numeric metric's mean, standard deviation and error over seeds.

    Args:
        points: the grid, one mapping of swept key to value per point (``summary["sweep"]
            ["points"]``).
        metrics: metric name -> one value per point (``summary["metrics"]`` of a sweep run);
            entries that are not one number per point are left out.

    Returns:
        One row per distinct setting of the non-seed keys, in the order of first appearance:
        ``{"point": {key: value}, "label": str, "n": seeds, "metrics": {name: {"mean", "std",
        "se"}}}``. ``std`` is the sample standard deviation (``ddof=1``) and ``se = std /
        sqrt(n)``; both are None for a single seed. Non-finite values are kept, so a diverged
        seed shows as an infinite or NaN mean (and a NaN spread) instead of vanishing from the
        average.

    Examples:
        >>> aggregate([{"seed": 0, "lr": 0.1}, {"seed": 1, "lr": 0.1}], {"loss": [1.0, 3.0]})
        [{'point': {'lr': 0.1}, 'label': 'lr=0.1', 'n': 2, 'metrics': {'loss': {'mean': 2.0,
          'std': 1.414..., 'se': 1.0}}}]
    """
    n = len(points)
    names = [k for k, v in metrics.items() if _numeric(v, n)]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        key = tuple((k, repr(v)) for k, v in p.items() if k != SEED)
        groups.setdefault(key, []).append(i)
    rows = []
    for idx in groups.values():
        point = {k: v for k, v in points[idx[0]].items() if k != SEED}
        stats: dict[str, dict[str, float | None]] = {}
        for name in names:
            x = np.asarray([metrics[name][i] for i in idx], dtype=float)
            # an infinite or NaN seed makes the statistics non-finite without a numpy warning
            # (inf - inf inside the variance); the value that was infinite stays visible
            with np.errstate(invalid="ignore", over="ignore"):
                mean = float(np.mean(x))
                std = float(np.std(x, ddof=1)) if len(x) > 1 else None
            if std is not None and not np.all(np.isfinite(x)):
                std = float("nan")
            se = std / math.sqrt(len(x)) if std is not None else None
            stats[name] = {"mean": mean, "std": std, "se": se}
        label = ",".join(f"{k}={v}" for k, v in point.items()) or "all points"
        rows.append({"point": point, "label": label, "n": len(idx), "metrics": stats})
    return rows


def format_aggregate(rows: Sequence[Mapping[str, Any]]) -> str:
    """The aggregated table as text: one line per point, ``mean ± se`` per metric."""
    if not rows:
        return ""
    names = list(rows[0]["metrics"])

    def cell(m: Mapping[str, Any]) -> str:
        if m["se"] is None:
            return f"{m['mean']:.6g}"
        return f"{m['mean']:.4g} ± {m['se']:.2g}"

    cells = [[cell(r["metrics"][k]) for k in names] for r in rows]
    lw = max(len(x) for x in [*(r["label"] for r in rows), "point"])
    widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(names)]
    head = (
        "  "
        + "point".ljust(lw)
        + "  seeds"
        + "".join(f"  {k:>{w}}" for k, w in zip(names, widths, strict=True))
    )
    lines = ["over seeds (mean ± standard error):", head]
    for r, c in zip(rows, cells, strict=True):
        body = "".join(f"  {x:>{w}}" for x, w in zip(c, widths, strict=True))
        lines.append("  " + r["label"].ljust(lw) + f"  {r['n']:>5}" + body)
    return "\n".join(lines)


def log_spaced(values: Sequence[float] | np.ndarray) -> bool:
    """Whether positive `values` span a decade or more (then the axis is logarithmic)."""
    v = np.asarray([float(x) for x in values])
    return bool(len(v) > 1 and np.all(v > 0) and v.max() / v.min() >= 10.0)


def sweep_plot(
    points: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any], path: str | Path
) -> Path | None:
    """Each metric against each swept hyper-parameter, mean ± standard error over seeds.

    One panel per (metric, hyper-parameter); points that differ in other hyper-parameters are
    separate lines. With `seed` the only swept key, each panel shows the per-seed values, their
    mean and a ±1 standard-error band. Log axes where the values span a decade or more.

    Returns:
        The written PNG's path, or None when no metric has one number per point.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = aggregate(points, metrics)
    if not rows or not rows[0]["metrics"]:
        return None
    names = list(rows[0]["metrics"])
    hypers = [k for k in rows[0]["point"] if _numeric([r["point"][k] for r in rows], len(rows))]
    ncols = max(1, len(hypers))
    fig, axes = plt.subplots(
        len(names), ncols, figsize=(4.2 * ncols, 3.0 * len(names)), squeeze=False
    )
    for i, name in enumerate(names):
        vals = np.asarray(metrics[name], dtype=float)
        if not hypers:  # seeds only
            a = axes[i, 0]
            seeds = [p.get(SEED, j) for j, p in enumerate(points)]
            m = rows[0]["metrics"][name]
            a.plot(seeds, vals, "ko", ms=4, label="per seed")
            if not np.isfinite(m["mean"]):  # a diverged seed: show the finite ones only
                a.set(xlabel=SEED, ylabel=name, title=f"{name}: non-finite for some seeds")
                continue
            a.axhline(m["mean"], color="C0", label="mean")
            if m["se"] is not None:
                lo, hi = m["mean"] - m["se"], m["mean"] + m["se"]
                a.axhspan(lo, hi, color="C0", alpha=0.2, label="± 1 SE")
            a.set(xlabel=SEED, ylabel=name, title=f"{name} over {len(seeds)} seeds")
            a.legend(fontsize=7)
            continue
        for j, h in enumerate(hypers):
            a = axes[i, j]
            others = [k for k in hypers if k != h]
            lines: dict[tuple, list[dict]] = {}
            for r in rows:
                lines.setdefault(tuple((k, r["point"][k]) for k in others), []).append(r)
            for key, group in lines.items():
                group = sorted(group, key=lambda r: r["point"][h])
                x = [r["point"][h] for r in group]
                y = [r["metrics"][name]["mean"] for r in group]
                se = [r["metrics"][name]["se"] or 0.0 for r in group]
                label = ",".join(f"{k}={v}" for k, v in key) or None
                a.errorbar(x, y, yerr=se, fmt="o-", ms=4, capsize=3, label=label)
            if log_spaced([r["point"][h] for r in rows]):
                a.set_xscale("log")
            y_all = vals[np.isfinite(vals)]
            if len(y_all) and log_spaced(y_all):
                a.set_yscale("log")
            n = rows[0]["n"]
            a.set(xlabel=h, ylabel=name, title=f"{name} vs {h} (mean ± SE, {n} seeds)")
            if len(lines) > 1:
                a.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
