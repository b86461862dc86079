"""Phase portraits of planar systems: vector field, trajectories, nullclines and equilibria."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Real

from ..core._checks import as_float, check_int, check_positive
from ..ode import solve_ode
from ._analysis import STABILITY_CLASSES, find_equilibrium

__all__ = ["phase_portrait", "portrait_note"]


def portrait_note(n_failed_equilibria: int, n_failed_trajectories: int) -> str:
    """What a portrait left out, e.g. ``"2 equilibria not converged, 1 trajectory failed"``."""
    parts = []
    if n_failed_equilibria:
        noun = "equilibrium" if n_failed_equilibria == 1 else "equilibria"
        parts.append(f"{n_failed_equilibria} {noun} not converged (not drawn)")
    if n_failed_trajectories:
        noun = "trajectory" if n_failed_trajectories == 1 else "trajectories"
        parts.append(f"{n_failed_trajectories} {noun} failed (drawn up to the failure)")
    return ", ".join(parts)


_MARKERS = {  # filled = stable, open = unstable or undecided
    "stable node": ("o", "tab:blue", True),
    "stable spiral": ("o", "tab:blue", True),
    "unstable node": ("o", "tab:red", False),
    "unstable spiral": ("o", "tab:red", False),
    "saddle": ("X", "tab:purple", True),
    "saddle-focus": ("X", "tab:purple", True),
    "centre": ("s", "tab:green", False),
    "unstable non-hyperbolic": ("D", "tab:red", False),
    "non-hyperbolic": ("D", "0.3", False),
    "non-finite": ("P", "0.3", False),
}


def phase_portrait(
    f: Callable[..., Any],
    xlim: tuple[float | int, float | int],
    ylim: tuple[float | int, float | int],
    *,
    x0s: Real[ArrayLike, "n 2"] | None = None,
    t1: float | int = 10.0,
    args: Any = None,
    n_grid: int = 21,
    n_save: int = 400,
    nullclines: bool = True,
    equilibrium_guesses: Real[ArrayLike, "k 2"] | None = None,
    solver: str = "tsit5",
    labels: Sequence[str] = ("x", "y"),
    title: str | None = None,
    ax: Any = None,
    path: str | Path | None = None,
) -> Any:
    r"""Draw the phase portrait of a planar system $\dot y = f(y)$, $y \in \mathbb R^2$.

    Normalised arrows of $f$ on an ``n_grid``² grid coloured by $|f|$; trajectories from ``x0s``
    integrated with `sdeml.solve_ode` on $[0, t_1]$ (batched with ``jax.vmap``);
    nullclines $\dot x = 0$ (dashed) and $\dot y = 0$ (dotted) as zero contours on a fine grid;
    equilibria found from ``equilibrium_guesses`` by Newton, marked by stability class.

    Args:
        f: vector field ``f(t, y, args)`` of a 2-D state, shape ``(2,)`` to ``(2,)``.
        xlim, ylim: the window, each ``(low, high)``.
        x0s: initial states of trajectories, shape ``(n, 2)``; default none.
        t1: integration time of the trajectories, finite and > 0.
        args: passed to ``f``.
        n_grid: arrows per axis, an int >= 2.
        n_save: points per trajectory, an int >= 2.
        nullclines: draw the nullclines.
        equilibrium_guesses: starting points for `sdeml.dynamics.find_equilibrium`, shape
            ``(k, 2)``.
        solver: solver name for the trajectories (use ``"kvaerno5"`` for stiff fields).
        labels: axis labels.
        title: the axes title. What the portrait left out is added below it: equilibria whose
            Newton iteration did not converge (not drawn) and trajectories whose solve failed
            (drawn up to the failure), e.g. "1 equilibrium not converged (not drawn), 1
            trajectory failed (drawn up to the failure)".
        ax: a matplotlib axes to draw on; default a new figure.
        path: if given, the figure is saved there as PNG.

    Returns:
        The matplotlib figure.

    Examples:
        Van der Pol's limit cycle, approached from inside and outside, around its unstable
        spiral at the origin:

        >>> import os
        >>> fig = sdeml.dynamics.phase_portrait(
        ...     sdeml.dynamics.VanDerPol(1.0), (-3, 3), (-3, 3),
        ...     x0s=jnp.array([[0.1, 0.0], [3.0, 3.0]]),
        ...     equilibrium_guesses=jnp.zeros((1, 2)), path="vdp.png")
        >>> os.path.exists("vdp.png"), len(fig.axes)
        (True, 1)

    References:
        Strogatz, Nonlinear Dynamics and Chaos, 2nd ed., ch. 6.
    """
    import matplotlib.pyplot as plt

    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        try:
            arr = np.asarray(lim, dtype=float)
        except (TypeError, ValueError):
            arr = np.full(3, np.nan)  # not two numbers: refused below
        if arr.shape != (2,) or not np.all(np.isfinite(arr)) or not arr[1] > arr[0]:
            raise ValueError(f"`{name}` must be finite (low, high) with high > low, got {lim!r}.")
    n_grid = check_int("n_grid", n_grid, 2)
    n_save = check_int("n_save", n_save, 2)  # one saved time draws no line
    check_positive("t1", t1)  # the trajectories run on [0, t1]
    try:
        probe = jax.eval_shape(lambda y: jnp.asarray(f(0.0, y, args)), jnp.zeros(2))
    except (ValueError, TypeError, IndexError) as e:  # a zoo field refuses a state of (2,)
        raise ValueError(
            f"phase_portrait needs a planar field: `f` must map shape (2,) to (2,); it refused "
            f"a state of shape (2,): {e}"
        ) from None
    if probe.shape != (2,):
        raise ValueError(
            "phase_portrait needs a planar field: `f` must map shape (2,) to (2,), "
            f"got {probe.shape}."
        )

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5.5))
    else:
        fig = ax.figure
    field = jax.jit(jax.vmap(lambda y: jnp.asarray(f(0.0, y, args))))

    gx, gy = np.meshgrid(np.linspace(*xlim, n_grid), np.linspace(*ylim, n_grid))
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], -1))
    v = np.asarray(field(pts))
    speed = np.linalg.norm(v, axis=-1)
    unit = np.divide(v, speed[:, None], out=np.zeros_like(v), where=speed[:, None] > 0)
    ax.quiver(
        gx.ravel(),
        gy.ravel(),
        unit[:, 0],
        unit[:, 1],
        np.log1p(speed),
        cmap="Greys",
        alpha=0.7,
        angles="xy",
        pivot="mid",
    )

    if nullclines:
        fx, fy = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
        fine = np.asarray(field(jnp.asarray(np.stack([fx.ravel(), fy.ravel()], -1))))
        for k, style in ((0, "--"), (1, ":")):
            comp = fine[:, k].reshape(fx.shape)
            if np.nanmin(comp) < 0 < np.nanmax(comp):
                ax.contour(fx, fy, comp, levels=[0.0], colors=["tab:orange"], linestyles=style)
        ax.plot([], [], "--", color="tab:orange", label=f"{labels[0]}-nullcline")
        ax.plot([], [], ":", color="tab:orange", label=f"{labels[1]}-nullcline")

    n_failed_traj = n_failed_eq = 0
    if x0s is not None:
        # integer starts ([[1, 0]]): a float dtype, else the saved times below were integers
        x0s = as_float(x0s)
        if x0s.ndim != 2 or x0s.shape[1] != 2:
            raise ValueError(f"`x0s` must have shape (n, 2), got {x0s.shape}.")
        ts = jnp.linspace(0.0, t1, n_save, dtype=x0s.dtype)

        def solve(y0):
            sol = solve_ode(
                f, y0, 0.0, t1, solver=solver, ts=ts, args=args, throw=False, max_steps=100_000
            )
            return sol.ys, sol.ok

        sols = jax.jit(jax.vmap(solve))(x0s)
        paths, ok_solve = np.asarray(sols[0]), np.asarray(sols[1])
        for i, p in enumerate(paths):
            ok = np.all(np.isfinite(p), axis=-1)
            if not ok_solve[i] or not ok.all():
                n_failed_traj += 1  # drawn up to where it failed, and said so in the title
            ax.plot(
                p[ok, 0],
                p[ok, 1],
                "-",
                color="tab:blue",
                lw=1.2,
                label="trajectories" if i == 0 else None,
            )
            ax.plot(p[0, 0], p[0, 1], ".", color="tab:blue")

    if equilibrium_guesses is not None:
        guesses = as_float(equilibrium_guesses)  # integer guesses: Newton needs floats
        if guesses.ndim != 2 or guesses.shape[1] != 2:  # a single (2,) guess: give it as (1, 2)
            raise ValueError(
                f"`equilibrium_guesses` must have shape (k, 2), got {guesses.shape}; one guess "
                "is jnp.array([[x, y]])."
            )
        eqs = jax.vmap(lambda g: find_equilibrium(f, g, args=args))(guesses)
        seen: set[str] = set()
        for y, code, conv in zip(
            np.asarray(eqs.y), np.asarray(eqs.stability), np.asarray(eqs.converged), strict=True
        ):
            if not conv:
                n_failed_eq += 1  # not drawn (Newton did not converge), said so in the title
                continue
            name = STABILITY_CLASSES[int(code)]
            marker, colour, filled = _MARKERS[name]
            ax.plot(
                y[0],
                y[1],
                marker,
                ms=10,
                mec=colour,
                mfc=colour if filled else "white",
                mew=2,
                label=name if name not in seen else None,
                zorder=5,
            )
            seen.add(name)

    ax.set(xlim=xlim, ylim=ylim, xlabel=labels[0], ylabel=labels[1])
    note = portrait_note(n_failed_eq, n_failed_traj)
    if title or note:
        ax.set_title("\n".join(x for x in (title, note) if x), fontsize=10)
    ax.legend(loc="upper right", fontsize=7)
    if path is not None:
        fig.savefig(path, dpi=120, format="png")
    return fig
