"""`simulate(..., mesh=...)` splits the paths over devices (issue #19, item 5): every path equals
the one-device run with the same key, whatever the device count, scheme or per-path inputs."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import sdeml

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    import sdeml

    cpus = jax.devices("cpu")  # four forced host devices, also on a machine with a GPU
    assert len(cpus) == 4
    mesh = Mesh(np.asarray(cpus).reshape(2, 2), ("a", "b"))
    sde = sdeml.SDE(lambda t, y, a: a * (1.0 - y), lambda t, y, a: 0.4 * y, noise="diagonal")
    additive = sdeml.SDE(lambda t, y, a: -a * y, lambda t, y, a: 0.3 * jnp.ones_like(y),
                         noise="additive")
    cases = [
        dict(method="euler_maruyama", n_paths=1000, chunk_size=64, args=1.5),
        dict(method="milstein", n_paths=1003, chunk_size=100, save_every=5, args=0.5),
        dict(method="sra1", n_paths=37, args=2.0, sde=additive),  # one chunk: padded to 4
        dict(
            method="stochastic_heun", n_paths=300, chunk_size=32,
            args=jnp.linspace(0.1, 2.0, 300), args_per_path=True,
            x0=jnp.linspace(0.5, 1.5, 600).reshape(300, 2), x0_per_path=True,
        ),
    ]
    explicit = jax.make_mesh((4,), ("paths",), devices=cpus)  # Explicit axis types by default
    cases[0]["mesh2"] = explicit
    for kw in cases:
        kw = dict(kw)
        x0 = kw.pop("x0", jnp.ones(2))
        eq = kw.pop("sde", sde)
        extra = kw.pop("mesh2", None)
        common = dict(n_steps=24, key=jr.key(3), **kw)
        one = sdeml.simulate(eq, x0, **common)
        meshes = [mesh, NamedSharding(mesh, PartitionSpec())] + ([extra] if extra else [])
        for m in meshes:
            many = sdeml.simulate(eq, x0, mesh=m, **common)
            assert many.xs.shape == one.xs.shape
            np.testing.assert_array_equal(np.asarray(many.xs), np.asarray(one.xs))
            np.testing.assert_array_equal(np.asarray(many.ts), np.asarray(one.ts))
    # under jit, the same
    f = jax.jit(lambda k: sdeml.simulate(sde, jnp.ones(2), n_steps=8, n_paths=512,
                                         chunk_size=64, args=1.0, mesh=mesh, key=k).xs)
    g = sdeml.simulate(sde, jnp.ones(2), n_steps=8, n_paths=512, chunk_size=64, args=1.0,
                       key=jr.key(9)).xs
    np.testing.assert_array_equal(np.asarray(f(jr.key(9))), np.asarray(g))
    print("ok")
    """
)


def _run_on_four_host_devices(script: str) -> None:
    """Run `script` in a process with four forced host devices; it prints "ok" when it passes."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    env.pop("JAX_NUM_CPU_DEVICES", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.device
def test_sharded_paths_equal_the_one_device_run():
    # the four devices are forced host devices: on a machine with a GPU the one-device run
    # must also be on the CPU (a GPU rounds a few results differently from a CPU)
    _run_on_four_host_devices(SCRIPT)


@pytest.mark.device
def test_a_one_device_mesh_is_the_plain_run_and_a_bad_mesh_is_refused():
    from jax.sharding import Mesh

    sde = sdeml.SDE(lambda t, y, a: -y, lambda t, y, a: jnp.ones_like(y), noise="diagonal")
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("paths",))
    a = sdeml.simulate(sde, jnp.ones(1), n_steps=10, n_paths=100, key=jr.key(0))
    b = sdeml.simulate(sde, jnp.ones(1), n_steps=10, n_paths=100, key=jr.key(0), mesh=mesh)
    np.testing.assert_array_equal(np.asarray(a.xs), np.asarray(b.xs))
    with pytest.raises(TypeError, match="`mesh` must be a jax.sharding.Mesh"):
        sdeml.simulate(sde, jnp.ones(1), n_steps=10, n_paths=100, key=jr.key(0), mesh="gpu")


SAMPLERS = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    import sdeml

    cpus = jax.devices("cpu")
    assert len(cpus) == 4
    mesh = jax.make_mesh((4,), ("paths",), devices=cpus)

    def same(a, b):
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # the diffusion EM sampler (an analytic score: N(0, I) data under the VP SDE)
    vp = sdeml.diffusion.VPSDE()
    score = lambda t, x: -x  # the VP marginal of N(0, I) data is N(0, I) at every t
    for n, kw in ((203, dict(chunk_size=16)), (200, dict(chunk_size=50, n_saves=5, denoise=False))):
        one = sdeml.diffusion.euler_maruyama_sampler(
            score, vp, (n, 2), n_steps=20, key=jr.key(1), **kw)
        many = sdeml.diffusion.euler_maruyama_sampler(
            score, vp, (n, 2), n_steps=20, key=jr.key(1), mesh=mesh, **kw)
        same(many.x, one.x)
        if n == 200:  # 4 chunks of 50 on 4 devices: the samples stay split along the batch
            assert [s.data.shape for s in many.x.addressable_shards] == [(50, 2)] * 4
        if one.path is not None:
            same(many.path, one.path)
        assert int(many.nfe) == int(one.nfe)

    # SGD as an SDE: a 2-D quadratic with a given gradient-noise covariance
    sgd = sdeml.optim_dynamics.SGDSDE(
        lambda th, x: 0.5 * jnp.sum((th - x) ** 2), jnp.zeros((8, 2)), lr=0.1,
        batch_size=4, noise_cov=jnp.eye(2))
    th0 = jnp.ones((101, 2))
    same(sgd.simulate(th0, 1.0, 20, 5, chunk_size=8, mesh=mesh, key=jr.key(2)),
         sgd.simulate(th0, 1.0, 20, 5, chunk_size=8, key=jr.key(2)))

    # the Fokker-Planck path simulator
    f = lambda t, x: -x
    g = lambda t, x: 0.5 + 0 * x
    x0 = jnp.linspace(-1.0, 1.0, 77)
    ts1, xs1 = sdeml.langevin.simulate_scalar_sde(f, g, x0, 0.0, 1.0, 20, 4, chunk_size=10,
                                                  key=jr.key(3))
    ts4, xs4 = sdeml.langevin.simulate_scalar_sde(f, g, x0, 0.0, 1.0, 20, 4, chunk_size=10,
                                                  mesh=mesh, key=jr.key(3))
    same(ts4, ts1)
    same(xs4, xs1)
    print("ok")
    """
)


@pytest.mark.slow  # 7-15 s: moved from the default run (12-05: default run < 10 min)
@pytest.mark.device
def test_samplers_on_the_engine_split_over_a_mesh_like_simulate():
    # issue #19, item 5: the samplers that run on the engine take the same `mesh`, and every
    # sample or path equals the one-device run with the same key and chunk size
    _run_on_four_host_devices(SAMPLERS)
