"""Step time of UG-VAE under TraceEnum_ELBO against a hand-written PyTorch closed-form loss, side by side.

Both fit the same model and guide networks (MNIST-size k_vae MLP, the paper's MNIST setting z_dim=10,
beta_dim=20, K=10, batch 128, Gaussian likelihood var 0.2) with one torch Adam each; blocks of steps
alternate between the implementations in one process, and the script prints the median step time of each and
their ratio (Pyro / PyTorch). Implementations:

* ``torch``      ``hand_loss`` below: the authors' closed form (analytic KLs, Σ_k over d in tensors), plain
                 PyTorch on the same networks, no Pyro machinery;
* ``enum``       ``TraceEnum_ELBO.differentiable_loss`` on model/guide (parallel enumeration of d), torch Adam
                 (the engine's default backend before its fast paths);
* ``engine``     the same through the engine's fast paths (``fastpaths.LeanTraceEnum_ELBO``, the plate fast paths),
                 as ``pyro-vaes fit`` steps it after its first step;
* ``enum-svi``   ``pyro.infer.SVI`` + ``TraceEnum_ELBO`` + ``pyro.optim.Adam`` (classic Pyro).

    python benchmarks/ugvae_speed.py --threads 1 --blocks 7 --steps 20
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, TraceEnum_ELBO
from torch.distributions import Normal, kl_divergence

from pyro_vaes.guides.ugvae import UGVAEStructuredGuide
from pyro_vaes.models.ugvae import UGVAE
from pyro_vaes.plumbing import fastpaths
from pyro_vaes.plumbing.params import param_registration


def hand_loss(model, guide, x):
    """The authors' closed-form loss written by hand on the networks (plain PyTorch, no Pyro): reconstruction,
    Σ_i Σ_k π_ik KL(q(z_i) ‖ p(z_i | k, β)), KL(q(d | z) ‖ U(K)) and KL(q(β) ‖ N(0, I))."""
    h, z_loc, z_scale = guide.local(x)
    z = z_loc + z_scale * torch.randn_like(z_loc)
    log_pi = guide.d_logits(h, z)
    pi = log_pi.exp()
    b_loc, b_scale = guide.beta_params(h, pi)
    beta = b_loc + b_scale * torch.randn_like(b_loc)
    p_loc, p_scale = model.prior_z(beta)
    recon = -model.observation(model.decoder(torch.cat([z, beta.expand(z.shape[0], -1)], -1))).log_prob(x).sum()
    kl_z = (
        pi * kl_divergence(Normal(z_loc.unsqueeze(-2), z_scale.unsqueeze(-2)), Normal(p_loc, p_scale)).sum(-1)
    ).sum()
    kl_d = (pi * (log_pi + math.log(model.K))).sum()
    kl_beta = kl_divergence(Normal(b_loc, b_scale), Normal(torch.zeros_like(b_loc), torch.ones_like(b_scale))).sum()
    return recon + kl_z + kl_d + kl_beta


def make(seed: int, args):
    torch.manual_seed(seed)
    model = UGVAE((1, 28, 28), latent_dim=args.z_dim, beta_dim=args.beta_dim, K=args.K, arch="k_vae")
    guide = UGVAEStructuredGuide(model)
    return model, guide


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=10)
    p.add_argument("--beta-dim", type=int, default=20)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--steps", type=int, default=20, help="steps per block")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--validation", action="store_true", help="keep Pyro's distribution validation on")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pyro.enable_validation(args.validation)
    x = torch.rand(args.batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    pyro.clear_param_store()
    m_t, g_t = make(0, args)
    opt_t = torch.optim.Adam(list(m_t.parameters()) + list(g_t.parameters()), lr=5e-3)
    m_e, g_e = make(0, args)
    m_e.pyro_name, g_e.pyro_name = "enum_model", "enum_guide"
    opt_e = torch.optim.Adam(list(m_e.parameters()) + list(g_e.parameters()), lr=5e-3)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    m_l, g_l = make(0, args)
    m_l.pyro_name, g_l.pyro_name = "lean_model", "lean_guide"
    opt_l = torch.optim.Adam(list(m_l.parameters()) + list(g_l.parameters()), lr=5e-3)
    lean = fastpaths.LeanTraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    m_s, g_s = make(0, args)
    m_s.pyro_name, g_s.pyro_name = "svi_model", "svi_guide"
    svi = SVI(
        m_s.model,
        g_s.guide,
        pyro.optim.Adam({"lr": 5e-3}),
        TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False),
    )

    def step_torch():
        opt_t.zero_grad(set_to_none=True)
        loss = hand_loss(m_t, g_t, x)
        loss.backward()
        opt_t.step()

    def step_enum():  # as the engine's torch backend runs a step: no param-store registration
        opt_e.zero_grad(set_to_none=True)
        with param_registration(False):
            loss = elbo.differentiable_loss(m_e.model, g_e.guide, x)
        loss.backward()
        opt_e.step()

    def step_engine():
        opt_l.zero_grad(set_to_none=True)
        with param_registration(False), fastpaths.plate_fastpaths(not args.validation):
            loss = lean.differentiable_loss(m_l.model, g_l.guide, x)
        loss.backward()
        opt_l.step()

    def step_svi():
        svi.step(x)

    impls = {"torch": step_torch, "enum": step_enum, "engine": step_engine, "enum-svi": step_svi}
    for fn in impls.values():  # warm-up
        for _ in range(3):
            fn()
    times = {k: [] for k in impls}
    for _ in range(args.blocks):
        for name, fn in impls.items():  # alternate blocks
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {
        "setting": {
            k: getattr(args, k)
            for k in ("batch_size", "z_dim", "beta_dim", "K", "blocks", "steps", "threads", "validation")
        },
        "torch_version": torch.__version__,
        "pyro_version": pyro.__version__,
        "median_ms_per_step": med,
        "min_ms_per_step": {k: min(v) for k, v in times.items()},
        "ratio_enum_over_torch": med["enum"] / med["torch"],
        "ratio_engine_over_torch": med["engine"] / med["torch"],
        "ratio_svi_over_torch": med["enum-svi"] / med["torch"],
    }
    for k in impls:
        print(f"{k:9s} median {med[k]:7.2f} ms/step   min {res['min_ms_per_step'][k]:7.2f}")
    print(f"TraceEnum_ELBO + torch Adam / hand-written PyTorch: x{res['ratio_enum_over_torch']:.2f}")
    print(
        f"the engine (LeanTraceEnum_ELBO, fast paths) + torch Adam / hand-written PyTorch: "
        f"x{res['ratio_engine_over_torch']:.2f}"
    )
    print(f"SVI(TraceEnum_ELBO) + pyro Adam / hand-written PyTorch: x{res['ratio_svi_over_torch']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
