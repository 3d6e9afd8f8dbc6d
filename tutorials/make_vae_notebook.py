"""Writes tutorials/vae.ipynb (run: python tutorials/make_vae_notebook.py [--execute] [--out DIR])."""

from notebook_cells import RELIABILITY_CELL, Notebook

nb = Notebook("vae")
md, code = nb.md, nb.code

md(r"""
# The VAE in Pyro: model, guide, objective — and what the engine does with them

This notebook is the foundation the paper tutorials build on. It derives the evidence lower bound,
shows the Pyro model and guide that express it, checks the objectives against closed forms, and fits a
small model with `pyro_vaes.fit`. With `PYRO_VAES_SMOKE=1` (as the test suite runs it) every fit is tiny.
""")
code("""
import os, math
import torch, pyro
import pyro_vaes
from pyro_vaes.engine import build_component
from pyro_vaes.registry import MODELS, GUIDES, OBJECTIVES
from pyro_vaes.analysis.evaluation import site_log_probs, log_likelihood_is
SMOKE = os.environ.get("PYRO_VAES_SMOKE") == "1"
pyro.set_rng_seed(0)
""")
md(r"""
## 1. The generative model and the bound

For each datum $x_i$: $z_i \sim \mathcal N(0, I_d)$ and $x_i \sim p_\theta(x \mid z_i)$, a Bernoulli,
continuous-Bernoulli or fixed-variance Gaussian whose parameters come from a decoder network. With any
$q_\phi(z \mid x)$, Jensen's inequality gives

$$\log p_\theta(x) = \log \mathbb E_{q_\phi(z\mid x)}\Big[\tfrac{p_\theta(x, z)}{q_\phi(z\mid x)}\Big]
\;\ge\; \mathbb E_{q}\big[\log p_\theta(x\mid z)\big] - \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)
= \mathcal L(x),$$

with the gap $\mathrm{KL}(q_\phi(z\mid x) \,\|\, p_\theta(z \mid x))$. In Pyro the model is the joint
$p_\theta(x, z)$ written as a program, and the guide is $q_\phi$; `pyro.plate("data")` says the data are
conditionally independent, so the bound is a sum over $i$.
""")
code("""
import inspect
from pyro_vaes.models.vae import VAE
from pyro_vaes.guides.vae import DiagonalGaussianGuide
print(inspect.getsource(VAE.model))
print(inspect.getsource(DiagonalGaussianGuide.guide))
""")
md(r"""
## 2. A linear-Gaussian VAE, where $\log p(x)$ is exact

With a linear decoder $x = Wz + b + \sigma\varepsilon$ the marginal is $\mathcal N(b, WW^\top + \sigma^2 I)$.
That lets us check the estimators: the ELBO must lie below $\log p(x)$, and the importance-sampled
estimate $\log \frac1S\sum_s w_s$ with $w_s = p(x, z_s)/q(z_s\mid x)$ must approach it as $S$ grows.
""")
code("""
model = build_component(MODELS, "vae", (6,), latent_dim=2, likelihood="gaussian", obs_scale=0.7, arch="linear")
guide = build_component(GUIDES, "diagonal", model, hidden=16)
x = torch.randn(8, 6)
W, b = model.decoder.net.weight, model.decoder.net.bias
exact = torch.distributions.MultivariateNormal(b, W @ W.T + 0.49 * torch.eye(6)).log_prob(x).detach()
with torch.no_grad():
    elbo = site_log_probs(model, guide, x, None, 2000).log_w.mean(0)
    for S in (1, 10, 100, 1000 if SMOKE else 10000):
        est = log_likelihood_is(model, guide, x, num_particles=S)
        print(f"S={S:>5}: mean |IS estimate - exact| = {(est - exact).abs().mean():.3f}")
print("ELBO below log p(x) for every datum:", bool((elbo < exact).all()))
""")
md(r"""
## 3. Objectives are chosen independently of model and guide

`elbo` samples every term; `meanfield-elbo` uses the analytic Gaussian KL; `iwae` is
$\log\frac1K\sum_k w_k$ per datum; `beta-vae-h` multiplies the KL by β. The β-weight is applied by
`ScaleLatents`, a `poutine.scale` restricted to latent sites, in **both** model and guide — with the same
draw of $z$, $\mathcal L_\beta - \mathcal L_1 = (\beta - 1)\,\mathrm{KL}$ exactly:
""")
code("""
def loss(name, **kw):
    return build_component(OBJECTIVES, name, **kw).bind(model, guide).loss(x)

with torch.no_grad():  # values only: no gradients to keep
    pyro.set_rng_seed(1); l4 = loss("beta-vae-h", beta=4.0)
    pyro.set_rng_seed(1); l1 = loss("beta-vae-h", beta=1.0)
    q = guide.encode(x)["z"]
    kl = 0.5 * (q["scale"]**2 + q["loc"]**2 - 1 - 2 * q["scale"].log()).sum()
    print(f"loss(beta=4) - loss(beta=1) = {float(l4 - l1):.4f};  3 * KL = {float(3 * kl):.4f}")
    for name in ("elbo", "meanfield-elbo", "iwae"):
        print(f"{name:>15}: {float(loss(name, num_particles=200 if name != 'iwae' else 50)) / len(x):.3f} nats per datum")
""")
md(r"""
## 4. Fitting with the engine

`pyro_vaes.fit` builds data, model, guide and objective from names, trains with one `torch.optim.Adam`
over `differentiable_loss` (or classic `SVI` with `backend="svi"`), evaluates on held-out data, checkpoints
and writes figures. Here: binarized procedural 2D shapes (dSprites' specification, rendered locally).

The held-out log-likelihood is importance-sampled, $\log\frac1S\sum_s w_s$, and is only as good as its weights:
when one weight dominates (a small effective sample size) or the weights are heavy-tailed (Pareto $\hat k$ above
PSIS's threshold), the estimate is a loose lower bound that still rises with $S$, and its standard error
understates its error. `run.evaluate` records the verdict of `pyro_vaes.analysis.evaluation.reliability`
(`log_likelihood_reliable`, and `log_likelihood_unreliable_because` when it fails); `ll_text` below prints it as
`pyro-vaes evaluate` does.
""")
code(RELIABILITY_CELL)
code("""
steps = 30 if SMOKE else 3000
run = pyro_vaes.fit(model="vae", data="shapes2d", data_args={"n_train": 512 if SMOKE else 20000, "n_test": 128},
                    model_args={"latent_dim": 6}, steps=steps, batch_size=64, eval_every=max(steps // 3, 1),
                    out="runs/tutorial-vae", overwrite=True, progress=False)
res = run.evaluate(num_particles=20 if SMOKE else 500, max_examples=128)
print("test log-likelihood (IS):", ll_text(res))
print(f"test ELBO {res['elbo']:.2f}, reconstruction E_q[log p(x|z)] {res['reconstruction']:.2f}, "
      f"KL {res['kl_total']:.2f} nats per image; active units {res.get('active_units', '-')}")
""")
code("""
from IPython.display import Image, display
for kind in ("reconstructions", "traversals"):
    display(Image(filename=f"runs/tutorial-vae/figures/{kind}.png"))
""")
md(r"""
From the command line the same run is `pyro-vaes fit vae --data shapes2d --latent-dim 6`; `pyro-vaes
evaluate runs/vae-shapes2d-seed0` prints the table above, and `--guide full-covariance` or
`--objective iwae` swap the variational family or the bound without touching the model.
""")

nb.write()
