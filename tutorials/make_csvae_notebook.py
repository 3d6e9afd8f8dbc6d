"""Write tutorials/csvae.ipynb (run: python tutorials/make_csvae_notebook.py [--execute] [--out DIR])."""

from notebook_cells import Notebook

nb = Notebook("csvae")
md, code = nb.md, nb.code

md(r"""
# CSVAE: label-correlated subspaces, from a mutual-information condition to a two-part objective

Klys, Snell & Zemel, *Learning Latent Subspaces in Variational Autoencoders* (NeurIPS 2018).

A conditional VAE feeds a label $y$ to its decoder, so flipping $y$ changes an attribute — but only in one
way: the label is a single bit. CSVAE instead learns, for each binary label $y_i$, a small latent subspace
$W_i$ that holds **everything correlated with that label** (the style of a pair of glasses, the shape of a
beard), and a subspace $Z$ that holds **nothing** about the labels. Changing an attribute is then choosing a
point in $W_i$ while keeping $z$.

This notebook derives the objective, lands on the Pyro code of `pyro_vaes` (`models/csvae.py`,
`guides/csvae.py`, `pyro_vaes/objectives/csvae.py`, `pyro_vaes/analysis/switch.py`), fits the paper's Swiss roll and
switches an attribute. Set `PYRO_VAES_SMOKE=1` to run everything with tiny settings (about half a minute).
""")

code(r"""
import inspect
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch

import pyro_vaes
from pyro_vaes.objectives.csvae import negative_entropy
from pyro_vaes.registry import GUIDES, MODELS, OBJECTIVES
from pyro_vaes.analysis.switch import encode_means, switch_attribute

SMOKE = os.environ.get("PYRO_VAES_SMOKE", "0") == "1"
pyro.set_rng_seed(0)
print("smoke mode" if SMOKE else "full mode")
""")

md(r"""
## 1. The graphical model and its bound

Data come as pairs $(x, y)$ with $y \in \{0,1\}^k$ (several labels, not mutually exclusive). The latent space
is $Z \times W$ with $W = W_1 \times \dots \times W_k$, and the model (paper §4.1) assumes $Z$ independent of
$(W, Y)$ and $X$ independent of $Y$ given $W$:

$$
p(x, y, w, z) = p(y)\, p(z) \prod_{i=1}^k p(w_i \mid y_i)\; p_\theta(x \mid w, z),\qquad p(z) = \mathcal N(0, I).
$$

$p(w_i\mid y_i)$ are two fixed Gaussians per subspace (§4.2): one for $y_i = 1$, one for $y_i = 0$. The
text we work from lost the numbers; `pyro_vaes` takes those of the re-implementation that states them —
$y_i = 1 \to \mathcal N(0, 0.1^2 I)$ ("label-1 points map near the origin", §5.1), $y_i = 0 \to
\mathcal N(3\cdot\mathbf 1, I)$ — and exposes them (`w_prior_loc`, `w_prior_scale`, or `w_prior="learned"`).

With $q_\phi(z, w \mid x, y) = q_{\phi_1}(z\mid x)\, q_{\phi_2}(w \mid x, y)$, Jensen's inequality gives

$$
\log p(x, y) \ge \mathbb E_q[\log p_\theta(x\mid w, z)] - \mathrm{KL}(q_{\phi_2}(w\mid x,y)\,\|\,p(w\mid y))
- \mathrm{KL}(q_{\phi_1}(z\mid x)\,\|\,p(z)) + \log p(y).
$$

$\log p(y)$ is a constant, so the Pyro model leaves $y$ as an input rather than a site. Here is the model:
""")

code(r"""
print(inspect.getsource(MODELS.get("csvae").model))
print(inspect.getsource(GUIDES.get("csvae-mean-field").guide))
""")

md(r"""
## 2. The mutual-information condition and the two-part objective

The bound was derived **assuming** $Z \perp Y$, but maximising it does not make it so: nothing stops the
encoder from putting label information into $z$ as well. So CSVAE also minimises

$$
I(Z; Y) = \mathcal H(Y) - \mathcal H(Y \mid Z).
$$

$p(y)$ is fixed, so this is **maximising the conditional entropy** $\mathcal H(Y\mid Z)$. It is intractable;
the paper approximates $p(y\mid z)$ by an adversary $q_\delta(y \mid z)$ and averages over the data's codes:

$$
-\mathcal H(Y\mid Z) \approx \mathbb E_{\text{data}}\,\mathbb E_{q_{\phi_1}(z\mid x)} \sum_y q_\delta(y\mid z)\log q_\delta(y\mid z).
$$

The complete objective has two parts, trained jointly (paper §4.1, weights from the appendix):

$$
\min_{\theta,\phi}\; \beta_1 \big(-\mathbb E_q\log p_\theta(x\mid w,z)\big) + \beta_2\,\mathrm{KL}_w + \beta_3\,\mathrm{KL}_z
+ \beta_4\, \mathbb E_q\Big[\sum_y q_\delta(y\mid z)\log q_\delta(y\mid z)\Big],
\qquad
\min_\delta\; \beta_5\, \mathbb E_q\big[-\log q_\delta(y\mid z)\big],
$$

with $\beta = (20, 1, 0.2, 10, 1)$. The adversary tries to predict $y$ from $z$; the encoder tries to leave it
maximally uncertain. For $k$ labels the adversary outputs $k$ logits, $q_\delta(y\mid z) = \prod_i
\mathrm{Bernoulli}(y_i;\sigma(l_i))$, and the negative entropy is $\sum_i p_i\log p_i + (1-p_i)\log(1-p_i)$ —
smallest, $-k\log 2$, when every $p_i = \tfrac12$:
""")

code(r"""
logits = torch.linspace(-6, 6, 201)[:, None]
plt.figure(figsize=(4.5, 3))
plt.plot(torch.sigmoid(logits).squeeze(), negative_entropy(logits))
plt.axhline(-math.log(2), ls=":", c="grey")
plt.xlabel("adversary's p(y = 1 | z)"); plt.ylabel("negative entropy (nats)")
plt.title("the β4 term is smallest for a uniform prediction"); plt.show()
print("at p = 1/2:", float(negative_entropy(torch.zeros(1))), "= -log 2 =", -math.log(2))
""")

md(r"""
### In Pyro

The objective `csvae` is a few lines on the project's shared term computation
(`pyro_vaes/objectives/terms.py`): one traced pass of the guide, replayed through the model, gives the
reconstruction term, the KL of every site and the sampled codes.

* **β1–β3** are `ScaleSites({"x": β1, "w": β2, "z": β3})`, a `poutine.scale` per named site applied to the
  model **and** the guide, so the analytic KLs (which read the guide-side scale) and the likelihood carry them;
* **β4** is the regulariser hook: the adversary is evaluated on the sampled $z$ with **detached parameters**
  (`torch.func.functional_call`), so this term moves the encoder and never writes into the adversary;
* **β5** is the adversary's own loss, `network_loss("adversary")`, on **detached** codes, stepped by its own
  Adam after every main step (the engine's `networks()` / `step_order`).
""")

code(r"""
print(inspect.getsource(OBJECTIVES.get("csvae").site_weights))
print(inspect.getsource(OBJECTIVES.get("csvae").__mro__[1].regularizer))
print(inspect.getsource(OBJECTIVES.get("csvae").__mro__[1].network_loss))
""")

md(r"""
A check by hand on four points: the loss equals $-\beta_1\log p(x\mid w,z) + \beta_2 \mathrm{KL}_w +
\beta_3\mathrm{KL}_z + \beta_4(-\mathcal H)$ written out with the Gaussian KL formula.
""")

code(r"""
model = MODELS.get("csvae")((3,), num_labels=1, latent_dim=2, w_dim=2, hidden=16, likelihood="gaussian")
guide = GUIDES.get("csvae-mean-field")(model, hidden=16)
objective = OBJECTIVES.get("csvae")().bind(model, guide)
x, y = torch.randn(4, 3), torch.tensor([[0], [1], [1], [0]])
loss = objective.loss(x, y).item()
t = objective.last_terms
with torch.no_grad():
    q = guide.encode(x, y)
    mean = model.decoder(torch.cat([t.codes["w"], t.codes["z"]], -1))
    recon = torch.distributions.Normal(mean, 1.0).log_prob(x).sum()
    kl = lambda m, s, m0, s0: (torch.log(s0 / s) + (s**2 + (m - m0) ** 2) / (2 * s0**2) - 0.5).sum()
    prior_loc = torch.where(y == 1, 0.0, 3.0).expand(4, 2)
    prior_scale = torch.where(y == 1, 0.1, 1.0).expand(4, 2)
    kl_w = kl(q["w"]["loc"], q["w"]["scale"], prior_loc, prior_scale)
    kl_z = kl(q["z"]["loc"], q["z"]["scale"], 0.0, 1.0)
    negent = negative_entropy(objective.adversary(t.codes["z"])).sum()
hand = -20 * recon + 1 * kl_w + 0.2 * kl_z + 10 * negent
print(f"objective {loss:.4f}   by hand {hand.item():.4f}")
""")

md(r"""
## 3. The Swiss roll (paper §5.1, Fig. 2)

3-D points on a rolled sheet, with one binary label: whether $x_0 \ge 10$ (the paper does not state its rule;
this is one public re-implementation's). $z$ and $w$ are both 2-D. `pyro_vaes.fit` trains the model and
guide with one Adam and the adversary with its own, alternating every step.
""")

code(r"""
n_train, steps = (512, 150) if SMOKE else (10000, 3000)
run = pyro_vaes.fit(model="csvae", data="swissroll", data_args={"n_train": n_train, "n_test": 500},
                    model_args={"latent_dim": 2, "w_dim": 2, "hidden": 64}, guide_args={"hidden": 64},
                    steps=steps, batch_size=64, lr=1e-3, aux_lr=1e-3, eval_every=steps, checkpoint_every=steps,
                    out="runs/csvae-swissroll", overwrite=True, progress=False, figures=False)
data = run.data
test = encode_means(run.model, run.guide, data.test.x, data.test.y)
codes = torch.cat([test["z"], test["w"]], 1).numpy()
lab = data.test.y[:, 0].numpy()
names = ["z1", "z2", "w1", "w2"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
for ax, (i, j) in zip(axes, [(0, 1), (2, 3), (1, 2)]):
    for v, c in ((0, "tab:blue"), (1, "tab:orange")):
        ax.scatter(codes[lab == v, i], codes[lab == v, j], s=3, c=c, label=f"y = {v}")
    ax.set_xlabel(names[i]); ax.set_ylabel(names[j])
axes[0].legend(markerscale=4); fig.suptitle("posterior means of the test points: Z, W and (z2, w1)"); plt.show()
""")

md(r"""
In $Z$ the two labels should overlap; in $W$ they should separate, the label-1 points near the origin. A fresh
classifier — the project's one fixed recipe, trained on the codes of the training points — measures it
(`pyro-vaes reproduce csvae-swissroll` does this for several seeds; the documentation's CSVAE page, `docs/papers/csvae.md`, has the numbers):
""")

code(r"""
from pyro_vaes.experiments.csvae import fresh_classifier_accuracy

train = encode_means(run.model, run.guide, data.train.x, data.train.y)
for site in ("z", "w"):
    acc = fresh_classifier_accuracy(train[site], data.train.y, test[site], data.test.y, 200 if SMOKE else 1000, 0)
    print(f"y from {site}: accuracy {acc['accuracy']:.3f}, balanced {acc['balanced_accuracy']:.3f} "
          f"(a constant guess: {acc['majority_rate']:.3f} / 0.5)")
""")

md(r"""
## 4. Switching an attribute (paper §4.3)

CSVAE changes attribute $j$ of $x$ by keeping $\mu_{\phi_1}(x)$ and putting a chosen point $p$ in $W_j$:
$G(x, p) = \mathbb E[x \mid z = \mu_{\phi_1}(x), w_j = p]$. `pyro_vaes.analysis.switch` does it through the model/guide
contract for every model — latent arithmetic for a VAE, a label swap for CondVAE — and, for a 2-D subspace,
proposes a grid of points centred at the prior mean of the target label. Below: test points with $y = 0$
switched to $y = 1$ at the centre of that grid, drawn in data space.
""")

code(r"""
idx = torch.nonzero(data.test.y[:, 0] == 0).flatten()[:200]
x0, y0 = data.test.x[idx], data.test.y[idx]
centre = torch.zeros(1, 2)  # the prior mean of p(w | y = 1)
out = switch_attribute(run.model, run.guide, x0, y0, attribute=0, to=1, points=centre)
moved = out.images[:, 0]
plt.figure(figsize=(4.5, 4))
plt.scatter(data.test.x[:, 0], data.test.x[:, 2], s=2, c="lightgrey", label="test data")
plt.scatter(x0[:, 0], x0[:, 2], s=4, label="y = 0 points")
plt.scatter(moved[:, 0], moved[:, 2], s=4, label="switched to y = 1")
plt.axvline(10, ls=":", c="k"); plt.xlabel("x0"); plt.ylabel("x2"); plt.legend(markerscale=3); plt.show()
print("switched points with x0 >= 10:", float((moved[:, 0] >= 10).float().mean()))
""")

md(r"""
Switching to each point's **own** posterior mean in $W$ gives back the plain reconstruction — the identity the
tests check for every model:
""")

code(r"""
from pyro_vaes.guides.base import posterior_means
from pyro_vaes.metrics.reconstruction import reconstruct

own = posterior_means(run.guide.encode(x0, y0))["w"][:, None]  # (B, 1, 2): one point per item
same = switch_attribute(run.model, run.guide, x0, y0, 0, 0, points=own).images[:, 0]
print("max difference from the reconstruction:", float((same - reconstruct(run.model, run.guide, x0, y0)).abs().max()))
""")

md(r"""
## 5. Baselines and the command line

* `condvae` (CondVAE, §3.2): z ~ N(0, I), x ~ p(x | decoder([z, y])), guide `condvae-labelled` (q(z | x, y));
* CondVAE-info (§3.3): `condvae` with guide `condvae-unlabelled` (q(z | x)) and objective `condvae-info`, the
  ELBO minus γ times the cross-entropy of an adversary predicting y from z (the encoder maximises it);
* the VAE (`vae`): switched by latent arithmetic with the mean codes of each label value.

```
pyro-vaes fit csvae --data swissroll --model-arg latent_dim=2 --model-arg w_dim=2
pyro-vaes fit condvae --guide condvae-unlabelled --data celeba-csvae --data-arg subset=glasses   # CondVAE-info
pyro-vaes switch runs/csvae-swissroll-seed0 --attribute "x0>=10" --to 1 --out switched.pt
pyro-vaes reproduce csvae-swissroll --scale small
pyro-vaes reproduce csvae-celeba --scale small --data-root ../shared/data
```
""")


nb.write()
