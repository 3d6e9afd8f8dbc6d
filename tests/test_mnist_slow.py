"""Real MNIST: a conv VAE with 20 latents reaches a sane importance-sampled test NLL (slow; needs data)."""

from __future__ import annotations

import pytest

import pyro_vaes


@pytest.mark.slow
def test_conv_vae_mnist_nll(shared_data, tmp_path):
    run = pyro_vaes.fit(
        model="vae",
        data="mnist",
        data_root=str(shared_data),
        model_args={"latent_dim": 20, "arch": "conv28"},
        steps=1000,
        batch_size=128,
        eval_every=500,
        checkpoint_every=1000,
        out=tmp_path / "r",
        progress=False,
        figures=False,
    )
    res = run.evaluate(num_particles=100, max_examples=500)
    # about two epochs: a conv VAE is well under 125 nats here (the IWAE paper's fully trained VAE: ~86)
    assert -res["log_likelihood"] < 125
    assert res["log_likelihood"] >= res["elbo"]
