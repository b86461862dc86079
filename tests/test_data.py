"""sdeml.data: i.i.d. toys, exact mixtures, digits, minibatching."""

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

from sdeml import data


@pytest.mark.parametrize("name", list(data.TOYS))
def test_toys_shape_dtype_and_determinism(name):
    x = data.toy(name, 500, key=jr.key(0), dtype=jnp.float64)
    assert x.shape == (500, 2) and x.dtype == jnp.float64
    assert jnp.all(jnp.isfinite(x))
    assert jnp.array_equal(x, data.toy(name, 500, key=jr.key(0), dtype=jnp.float64))
    assert not jnp.array_equal(x, data.toy(name, 500, key=jr.key(1), dtype=jnp.float64))


def test_moons_split_is_random_not_exact_half():
    # i.i.d.: the upper-moon count over 41 draws of n=1000 is Binomial(1000, 1/2) (sd 15.8);
    # sklearn's make_moons would give exactly 500 every time.
    def n_upper(x):  # undo the centring/scaling; with noise 0 the upper moon is on |p| = 1
        p = x / 2 + jnp.array([0.5, 0.25])
        return jnp.sum(jnp.abs(jnp.linalg.norm(p, axis=1) - 1.0) < 1e-9)

    counts = jnp.array(
        [
            n_upper(data.two_moons(1000, key=jr.key(i), noise=0.0, dtype=jnp.float64))
            for i in range(41)
        ]
    )
    assert jnp.std(counts) > 5.0
    assert abs(float(jnp.mean(counts)) - 500) < 4 * 15.8 / jnp.sqrt(41)


@pytest.mark.slow  # ~5 s
def test_mixture_score_is_gradient_of_log_prob_and_density_normalised():
    gm = data.gaussian_mixture_2d(jnp.float64)
    x = jnp.array([0.3, -0.7])
    assert jnp.allclose(gm.score(x), jax.grad(gm.log_prob)(x), rtol=1e-12, atol=1e-12)
    # Riemann sum of p on a wide grid: 1 up to quadrature error (~1e-6 at h = 0.02)
    g = jnp.linspace(-5, 5, 501, dtype=jnp.float64)
    pts = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
    total = jnp.sum(jnp.exp(jax.vmap(gm.log_prob)(pts))) * (g[1] - g[0]) ** 2
    assert abs(float(total) - 1.0) < 1e-4


def test_mixture_sampling_moments():
    gm = data.eight_gaussians_mixture(dtype=jnp.float64)
    x = gm.sample(20000, key=jr.key(3))
    # E|x|^2 = r^2 + 2 s^2 = 4.08; the sd of the mean of |x|^2 is ~0.006 at n = 20000
    assert abs(float(jnp.mean(jnp.sum(x**2, 1))) - 4.08) < 0.03
    assert jnp.allclose(jnp.mean(x, 0), 0.0, atol=0.05)  # sd of each mean coordinate ~0.01


def test_minibatch_pytree_and_errors():
    x = jnp.arange(20.0).reshape(10, 2)
    y = jnp.arange(10)
    bx, by = data.minibatch((x, y), jr.key(0), 7)
    assert bx.shape == (7, 2) and by.shape == (7,)
    assert jnp.array_equal(bx[:, 0], 2.0 * by.astype(bx.dtype))  # rows stay aligned across leaves
    bj = jax.jit(lambda k: data.minibatch(x, k, 4))(jr.key(1))
    assert bj.shape == (4, 2)
    with pytest.raises(ValueError, match="leading dimension"):
        data.minibatch((x, jnp.arange(3)), jr.key(0), 2)
    with pytest.raises(ValueError, match="batch_size"):
        data.minibatch(x, jr.key(0), 0)


def test_digits_split_and_scale():
    d = data.load_digits(dtype=jnp.float64)
    assert d.x_train.shape == (1438, 1, 8, 8) and d.x_test.shape == (359, 1, 8, 8)
    assert float(d.x_train.min()) == -1.0 and float(d.x_train.max()) == 1.0
    assert set(map(int, jnp.unique(d.y_test))) == set(range(10))


def test_bad_toy_arguments():
    with pytest.raises(ValueError, match="valid: 8gaussians, moons"):
        data.toy("spiral", 10, key=jr.key(0))
    with pytest.raises(ValueError, match="`n`"):
        data.two_moons(0, key=jr.key(0))


def test_breast_cancer_split():
    d = data.load_breast_cancer(0.2, seed=0, dtype=jnp.float64)
    assert d.x_train.shape == (455, 31) and d.x_test.shape == (114, 31)
    assert d.x_train.shape[0] + d.x_test.shape[0] == data.BREAST_CANCER_SIZE
    assert jnp.all(d.x_train[:, -1] == 1.0) and jnp.all(d.x_test[:, -1] == 1.0)  # intercept
    # standardised with the training split's own mean and sd
    assert jnp.allclose(jnp.mean(d.x_train[:, :-1], 0), 0.0, atol=1e-12)
    assert jnp.allclose(jnp.std(d.x_train[:, :-1], 0), 1.0, atol=1e-12)
    # stratified: the class balance (212 malignant of 569) is kept in both splits
    assert abs(float(jnp.mean(d.y_train)) - 357 / 569) < 0.01
    assert abs(float(jnp.mean(d.y_test)) - 357 / 569) < 0.01
    again = data.load_breast_cancer(0.2, seed=0, dtype=jnp.float64)
    assert jnp.array_equal(again.x_test, d.x_test)
    assert not jnp.array_equal(data.load_breast_cancer(0.2, seed=1).y_test, d.y_test)
    with pytest.raises(ValueError, match="test_fraction"):
        data.load_breast_cancer(1.0)


def test_mixture_with_integer_means_keeps_its_stds():
    # integer means used to set the dtype of everything: stds 0.3 became 0 and log_prob NaN
    gm = data.GaussianMixture(jnp.ones(2), jnp.array([[-1], [1]]), jnp.array([0.3, 0.3]))
    assert jnp.issubdtype(gm.means.dtype, jnp.floating)
    assert jnp.allclose(gm.stds, 0.3)
    # at a mean the other component is negligible: log(0.5 / (0.3 sqrt(2 pi)))
    expected = jnp.log(0.5 / (0.3 * jnp.sqrt(2 * jnp.pi)))
    assert jnp.isclose(gm.log_prob(jnp.array([1.0])), expected, atol=1e-9)
    assert gm.sample(4, key=jr.key(0)).shape == (4, 1)


@pytest.mark.parametrize(
    ("weights", "stds", "match"),
    [
        ([1.0, -1.0], [0.3, 0.3], "weights"),
        ([0.0, 0.0], [0.3, 0.3], "weights"),
        ([1.0, 1.0], [0.3, -0.3], "stds"),
        ([1.0, 1.0], [0.3, 0.0], "stds"),
    ],
)
def test_mixture_refuses_weights_and_stds_that_make_it_nan(weights, stds, match):
    # each of these used to build a mixture whose log_prob was NaN everywhere
    with pytest.raises(ValueError, match=match):
        data.GaussianMixture(jnp.array(weights), jnp.array([[-1.0], [1.0]]), jnp.array(stds))


def test_mixture_built_under_jit_is_not_checked_on_the_host():
    # traced parameters (as in sdeml.diffusion.mixture_marginal) cannot be read on the host
    def logp(s):
        return data.GaussianMixture(jnp.ones(2), jnp.array([[-1.0], [1.0]]), s).log_prob(
            jnp.array([1.0])
        )

    s = jnp.array([0.3, 0.3])
    assert jnp.isclose(jax.jit(logp)(s), logp(s))
    assert jnp.isfinite(jax.grad(logp)(s)).all()
