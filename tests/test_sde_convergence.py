"""Measured strong and weak orders of every SDE solver (float64, coupled Brownian paths)."""

import jax.numpy as jnp
import jax.random as jr
import pytest

import sdeml

F64 = jnp.float64
GBM = sdeml.GeometricBrownianMotion(mu=0.5, sigma=0.8)
OU = sdeml.OrnsteinUhlenbeck(theta=1.0, mu=0.5, sigma=0.7)

STEPS = (8, 16, 32, 64, 128)


def _order(kind, method, sde, x0, key, **kw):
    """`sdeml.strong_order` / `weak_order` in float64 on `STEPS` (unless given)."""
    kw = {"n_steps": STEPS, "dtype": F64, **kw}
    fn = sdeml.strong_order if kind == "strong" else sdeml.weak_order
    return fn(method, sde, x0, key=jr.key(key), **kw)


# Bands: the issue's ±0.1 (strong) and ±0.15 (weak) around the theoretical order. With the fixed
# seeds below the bootstrap 95% CIs are ~±0.03 (strong) and ~±0.1 (weak) wide, so the bands leave
# room for seed-to-seed variation without admitting a wrong order (the next order is 0.5 away).


@pytest.mark.slow
@pytest.mark.parametrize("method, expected", [("euler_maruyama", 0.5), ("milstein", 1.0)])
def test_strong_order_gbm(method, expected):
    res = _order(
        "strong", method, GBM, jnp.ones(1), 0, exact=GBM.exact_solution, n_fine=128, n_paths=500
    )
    assert abs(res.order - expected) < 0.1, (res.order, res.ci)
    assert res.ci[0] <= res.order <= res.ci[1]


@pytest.mark.slow
def test_strong_order_heun_stratonovich_gbm():
    """Stratonovich GBM dX = mu X dt + s X o dW has X_T = x0 exp(mu T + s W_T); scalar noise is
    commutative, so stochastic Heun attains strong order 1."""
    strat = sdeml.SDE(lambda t, y, a: 0.5 * y, lambda t, y, a: 0.8 * y, noise="diagonal")
    exact = lambda x0, ts, dw, dz: x0 * jnp.exp(0.5 * (ts[-1] - ts[0]) + 0.8 * dw.sum(0))
    res = _order(
        "strong", "stochastic_heun", strat, jnp.ones(1), 1, exact=exact, n_fine=128, n_paths=500
    )
    assert abs(res.order - 1.0) < 0.1, (res.order, res.ci)


@pytest.mark.slow
def test_strong_order_additive_ou():
    """On additive-noise OU: EM has strong order 1 (no g g' term), SRA1 at least 1.5.

    OU's drift is linear, so the Itô–Taylor term that limits SRA1 to order 1.5, g^2 f'' I_(1,1,0),
    vanishes and SRA1 measures ~2 here; the declared 1.5 is checked on a nonlinear drift below.
    The reference integrates exp(-theta (T - s)) dW exactly up to O(h_fine^2) (uses dZ).
    """
    ou = dict(exact=OU.exact_solution, n_fine=512, n_paths=300)
    em = _order("strong", "euler_maruyama", OU, jnp.zeros(1), 2, **ou)
    assert abs(em.order - 1.0) < 0.1, (em.order, em.ci)
    sra = _order("strong", "sra1", OU, jnp.zeros(1), 2, **ou)
    assert sra.order > 1.5 - 0.15, (sra.order, sra.ci)


@pytest.mark.slow
def test_strong_order_sra1_nonlinear_additive():
    """dX = sin(3X) dt + 2 dW: the g^2 f'' term is large, so SRA1's order 1.5 shows (fine-grid
    SRA1 reference at 8x the finest level)."""
    sde = sdeml.SDE(
        lambda t, y, a: jnp.sin(3 * y), lambda t, y, a: 2.0 * jnp.ones_like(y), noise="additive"
    )
    steps = (16, 32, 64, 128, 256)
    res = _order("strong", "sra1", sde, jnp.ones(1), 3, n_steps=steps, n_fine=2048, n_paths=300)
    assert abs(res.order - 1.5) < 0.15, (res.order, res.ci)


@pytest.mark.slow
def test_weak_order_em_gbm():
    """|E X_h - E X| for EM on GBM with the exact path as control variate.

    mu = 1, sigma = 0.5: the weak bias x0 e^mu mu^2 h / 2 is large next to the Monte Carlo noise of
    the coupled difference (~ strong error / sqrt(N)), so the slope is stable across seeds
    (0.93-0.95 over seeds 0-3 at h = 1/4..1/64; 0.950-0.956 over seeds 0, 1, 4 at h = 1/8..1/128,
    still slightly pre-asymptotic since (1 + mu h)^n has O(h^2) terms). With
    mu = 0.5, sigma = 0.8 the same fit scatters 0.84-1.34 across seeds.
    """
    gbm = sdeml.GeometricBrownianMotion(mu=1.0, sigma=0.5)
    kw = dict(exact=gbm.exact_solution, n_fine=128, n_paths=10_000)
    res = _order("weak", "euler_maruyama", gbm, jnp.ones(1), 4, **kw)
    assert abs(res.order - 1.0) < 0.15, (res.order, res.ci)


def test_order_tools_validate_and_plot():
    res = sdeml.strong_order(
        "euler_maruyama",
        GBM,
        jnp.ones(1),
        exact=GBM.exact_solution,
        n_steps=(4, 8),
        n_fine=8,
        n_paths=20,
        dtype=F64,
        key=jr.key(0),
    )
    fig = sdeml.sde.plot_orders({"EM": res}, title="strong, GBM")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="n_fine"):
        sdeml.strong_order(
            "euler_maruyama", GBM, jnp.ones(1), n_steps=(3, 8), n_fine=16, key=jr.key(0)
        )
    with pytest.raises(ValueError, match="n_steps"):
        sdeml.strong_order("euler_maruyama", GBM, jnp.ones(1), n_steps=(8,), key=jr.key(0))
    with pytest.raises(ValueError, match="unknown solver"):
        sdeml.weak_order("rk45", GBM, jnp.ones(1), key=jr.key(0))
