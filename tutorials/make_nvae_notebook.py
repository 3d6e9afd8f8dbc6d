"""Write tutorials/nvae.ipynb (run: python tutorials/make_nvae_notebook.py [--execute] [--out DIR])."""

from notebook_cells import DATA_CELL, FIGURE_CELL, Notebook

nb = Notebook("nvae")
md, code = nb.md, nb.code

md(r"""
# N-VAE: class-dependent and shared factors, from the bound on log p(x, y) to the masked decoder

Antorán & Miguel, *Disentangling and Learning Robust Representations with Natural Clustering* (ICMLA 2019).

When data come in classes, some factors of variation belong to one class only (the bar across a 7, the loop at
the base of a 2) and others are shared by all (stroke width, slant). N-VAE gives each class its own block of
latents, z_c = [z_c¹, …, z_cᴷ], and keeps a shared block z_s; the one-hot label masks out every class block but its
own before the decoder. Trained on labelled data, the KL of each block to the prior then says where the
class-dependent information is.

This notebook derives the bound the paper maximises, lands on the Pyro code of `pyro_vaes` (`models/nvae.py`,
`guides/nvae.py`, `pyro_vaes/objectives/nvae.py`), compares the paper's Dirichlet posterior with an enumerated
categorical one, fits a small model, and reads the KL detector and the traversals off it.
Set `PYRO_VAES_SMOKE=1` to run everything at tiny settings (about 30 s on a CPU).
""")

code(r"""
import inspect
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pyro
import pyro.poutine as poutine
import torch
from torch.nn import functional as F

import pyro_vaes
from pyro_vaes.guides.nvae import NVAEDirichletGuide, NVAEEnumGuide
from pyro_vaes.models.nvae import NVAE
from pyro_vaes.objectives.nvae import NVAEBound, NVAEEnum, dirichlet_kl, nvae_terms

SMOKE = os.environ.get("PYRO_VAES_SMOKE", "0") == "1"
torch.set_num_threads(1)
pyro.set_rng_seed(0)
print("smoke mode" if SMOKE else "full mode")
""")

md(r"""
## 1. A lower bound on log p(x, y)

The generative story for one datum with K classes (paper §III-B):

$$
z = [z_c, z_s] \sim \mathcal N(0, I), \qquad \pi \sim \mathrm{Dir}(\alpha \mathbf 1_K), \qquad y \mid \pi \sim \mathrm{Cat}(\pi),
\qquad x \mid z, y \sim p_\theta(x \mid h), \quad h = [\mathrm{vec}(z_c \odot y),\; z_s,\; y].
$$

π is a latent the paper infers: the guide is $q(z, \pi \mid x) = q(z \mid x)\, q(\pi \mid x)$, a diagonal Gaussian and
a Dirichlet on one shared encoder. With y observed, Jensen's inequality gives (paper eq. 2)

$$
\log p(x, y) \ge \mathbb E_q[\log p(x \mid z, y)] + \mathbb E_q[\log p(y \mid \pi)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z)) - \mathrm{KL}(q(\pi\mid x)\,\|\,p(\pi)).
$$

The Dirichlet is conjugate to the categorical, $p(y \mid \pi)\,p(\pi) = p(\pi \mid y)\, p(y)$ with
$p(\pi \mid y) = \mathrm{Dir}(\alpha \mathbf 1 + y)$ and $p(y) = 1/K$, so the two π-terms collapse (paper eq. 3):

$$
\log p(x, y) \ge \underbrace{\mathbb E_q[\log p(x \mid z, y)]}_{\text{reconstruction}} - \mathrm{KL}(q(z\mid x)\,\|\,p(z))
- \underbrace{\mathrm{KL}(q(\pi\mid x)\,\|\,\mathrm{Dir}(\alpha\mathbf 1 + y))}_{\text{"classification"}} + \log\tfrac1K .
$$

Both sides of that rewrite can be computed in closed form, with $\mathbb E_{\mathrm{Dir}(\hat\alpha)}[\log \pi_y] =
\psi(\hat\alpha_y) - \psi(\hat\alpha_0)$ and the Dirichlet KL
$\ln\Gamma(a_0) - \sum\ln\Gamma(a_k) - \ln\Gamma(b_0) + \sum\ln\Gamma(b_k) + \sum (a_k - b_k)(\psi(a_k) - \psi(a_0))$:
""")

code(r"""
K, alpha = 4, 0.7
a_hat = torch.tensor([3.0, 0.4, 1.2, 0.8], dtype=torch.float64)    # some q(π | x) = Dir(α̂)
y = 2
prior = torch.full((K,), alpha, dtype=torch.float64)
onehot = F.one_hot(torch.tensor(y), K).double()
left = (torch.digamma(a_hat[y]) - torch.digamma(a_hat.sum())) - dirichlet_kl(a_hat, prior)
right = math.log(1 / K) - dirichlet_kl(a_hat, prior + onehot)
print(f"E_q[log π_y] − KL(q ‖ Dir(α)) = {left:.10f}")
print(f"log p(y) − KL(q ‖ Dir(α + y))  = {right:.10f}")
print("dirichlet_kl == torch's:", torch.allclose(dirichlet_kl(a_hat, prior),
      torch.distributions.kl_divergence(torch.distributions.Dirichlet(a_hat), torch.distributions.Dirichlet(prior))))
""")

md(r"""
**The paper's surrogate.** §III-C replaces the Dirichlet KL by the encoder's negative log-likelihood as a classifier,
$-\log q(y \mid x) + C$ with $q(y \mid x) = \mathbb E_{q(\pi|x)}[\pi_y] = \hat\alpha_y / \hat\alpha_0$, "an upper bound". It is a
convenient loss, but not a bound in general: at a fixed mean (so a fixed $-\log q(y\mid x)$) the KL grows without
limit with the concentration $\hat\alpha_0$. And the exact term is smallest at $q = \mathrm{Dir}(\alpha \mathbf 1 + y)$,
whose mean gives the true class only $(1+\alpha)/(K\alpha + 1)$: the exact bound wants a calibrated Dirichlet, the
surrogate a confident classifier. `pyro_vaes` offers both (`dirichlet="nll-bound"`, the paper's and the default, or
`"exact"`), and the paper's reweighting λ of that term (`class_weight`).
""")

code(r"""
m = torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)           # the mean of q(π | x): −log q(y=0 | x) fixed
post = prior + F.one_hot(torch.tensor(0), K).double()
for c in (1.0, 10.0, 100.0, 1000.0):
    print(f"concentration {c:7.0f}: −log q(y | x) = {-math.log(m[0]):.3f}, KL(q ‖ p(π | y)) = {float(dirichlet_kl(c * m, post)):.3f}")
""")

md(r"""
## 2. The masked decoder in Pyro

The model is the story above, one `pyro.sample` per line, inside the `data` plate; y is observed when labels are
given and drawn from Cat(π) otherwise:
""")

code(r"""
print(inspect.getsource(NVAE.model))
print(inspect.getsource(NVAE.decoder_input))
""")

md(r"""
`vec(z_c ⊙ y)` multiplies class k's block by the k-th entry of the one-hot label: only the label's block reaches
the decoder, and the trailing y adds a class-dependent bias to the decoder's first layer (paper appendix B). So
moving another class's block must leave the decoded image unchanged, and moving the label's own block must not:
""")

code(r"""
torch.manual_seed(0)
tiny = NVAE((1, 28, 28), num_classes=3, class_dim=2, shared_dim=2, hidden=32, likelihood="bernoulli", arch="mlp")
z = torch.randn(1, tiny.latent_dim)
label = torch.tensor([1])
base = tiny.decode({"z": z}, label)
for k in range(3):
    moved = z.clone()
    moved[:, tiny.class_slice(k)] += 3.0
    change = (tiny.decode({"z": moved}, label) - base).abs().max().item()
    print(f"move block of class {k} (label 1): max change of the image {change:.4f}")
""")

md(r"""
## 3. The Dirichlet posterior, and an enumerated alternative

The paper's guide (`nvae-dirichlet`, the default) puts a Gaussian head and a Dirichlet head on one encoder; its
classifier is the Dirichlet's mean. The variant `nvae-enum` replaces the Dirichlet by a categorical q(y | x), which
Pyro **enumerates** when the label is not given: `TraceEnum_ELBO` sums the bound over the K classes exactly, a bound
on log p(x), and the objective `nvae-enum` adds λ·(−log q(y | x)) on the observed labels (the semi-supervised M2
recipe applied to labelled data). Its q(π | x) = Dir(α 1 + q(· | x)) has no parameters: it is the best Dirichlet given
q(y | x), and the exact p(π | y) when y is given.
""")

code(r"""
print(inspect.getsource(NVAEDirichletGuide.guide))
print(inspect.getsource(NVAEEnumGuide.guide))
""")

md(r"""
Under enumeration y takes all K values at once in a dimension left of the data plate: the decoder sees every class
for every datum, and each class's log-likelihood is weighted by q(y | x). With z and π fixed, that sum is what
`TraceEnum_ELBO` computes (the test suite checks it to 1e-10 against a hand-written sum over classes):
""")

code(r"""
guide = NVAEEnumGuide(tiny, hidden=32)
x = (torch.rand(5, 1, 28, 28) < 0.3).float()
trace = poutine.trace(poutine.enum(guide.guide, first_available_dim=-2)).get_trace(x, None)
print("y under enumeration:", tuple(trace.nodes["y"]["value"].shape), " z:", tuple(trace.nodes["z"]["value"].shape),
      " π:", tuple(trace.nodes["pi"]["value"].shape))
trace.remove_node("y")
fixed = poutine.replay(guide.guide, trace=trace)
enum_loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False).differentiable_loss(
    tiny.model, fixed, x, None)
zd, pid, q = trace.nodes["z"]["value"], trace.nodes["pi"]["value"], guide.class_probs(x)
enc = guide.encode(x)["z"]
hand = 0.0
for k in range(3):
    log_px = -F.binary_cross_entropy_with_logits(tiny.params(zd, torch.full((5,), k)), x, reduction="none").flatten(1).sum(1)
    hand = hand + q[:, k] * (log_px + pid[:, k].log() - q[:, k].log())
hand = hand + torch.distributions.Normal(0.0, 1.0).log_prob(zd).sum(1) - torch.distributions.Normal(enc["loc"], enc["scale"]).log_prob(zd).sum(1)
a = torch.full((3,), tiny.alpha)
hand = hand + torch.distributions.Dirichlet(a).log_prob(pid) - torch.distributions.Dirichlet(a + q).log_prob(pid)
print(f"TraceEnum_ELBO loss {enum_loss.item():.4f}   hand sum over classes {-hand.sum().item():.4f}")
""")

md(r"""
## 4. A small fit on MNIST, both guides

MNIST binarized once with a seeded Bernoulli draw (the project's default; Bernoulli likelihood, picked from the
data), 10 classes × 2 class-dependent dimensions and 8 shared ones, MLP networks of 400 units (sizes the paper does
not give: our choices, each an argument).
""")

code(DATA_CELL)
code(FIGURE_CELL)
code(r"""
root = DATA_ROOT
try:
    data = load_dataset("mnist", root=root, n_train=2000 if SMOKE else 10000, n_test=500)
    print("MNIST from", root, tuple(data.train.x.shape))
except MissingDataError as err:
    notice(f"MNIST is not here, so everything below runs on random binary images: the fits, the KL detector and "
           f"the traversals of this notebook say nothing about N-VAE on MNIST. Set PYRO_VAES_DATA to a folder "
           f"holding MNIST/raw and rerun. ({err})")
    from pyro_vaes.data import ArraySplit, VAEData
    g = torch.Generator().manual_seed(0)
    data = VAEData("random", ArraySplit(torch.rand(2000, 1, 28, 28, generator=g).round(), torch.randint(10, (2000,), generator=g)),
                   ArraySplit(torch.rand(500, 1, 28, 28, generator=g).round(), torch.randint(10, (500,), generator=g)),
                   label_names=[str(k) for k in range(10)])
STEPS = 25 if SMOKE else 3000
common = dict(model="nvae", dataset=data, data="mnist", steps=STEPS, batch_size=100, lr=1e-3, eval_every=STEPS,
              checkpoint_every=STEPS, eval_batches=2, figures=False, progress=False, overwrite=True,
              model_args={"class_dim": 2, "shared_dim": 8, "hidden": 64 if SMOKE else 400, "arch": "mlp"})
runs = {
    "nvae-dirichlet": pyro_vaes.fit(guide="nvae-dirichlet", objective="nvae", out="runs/nvae-dirichlet",
                                    guide_args={"hidden": 64 if SMOKE else 400}, **common),
    "nvae-enum": pyro_vaes.fit(guide="nvae-enum", objective="nvae-enum", out="runs/nvae-enum",
                               guide_args={"hidden": 64 if SMOKE else 400}, **common),
}
for name, run in runs.items():
    with torch.no_grad():
        acc = (run.guide.class_probs(data.test.x).argmax(-1) == data.test.y).float().mean().item()
    print(f"{name}: held-out loss {run.history[-1]['test_loss']:.1f} nats/image, encoder as a classifier {acc:.3f}")
""")

md(r"""
The two held-out losses are different quantities: `nvae` is the paper's objective on log p(x, y) (with the
surrogate), `nvae-enum` a bound on log p(x) plus the classification term. `pyro-vaes evaluate` gives both runs the
same importance-sampled estimate of log p(x, y) (the labels are passed to model and guide).

## 5. The KL detector

The KL of q(z | x, y) to the prior per dimension, summed over the label's own block of z_c, over the K − 1 masked
blocks, and over z_s. Masked blocks never reach the decoder, so the encoder can only lose by moving them off the
prior: their KL should go to zero, and what is left in the own block is class-dependent information (paper Fig. 5).
""")

code(r"""
from pyro_vaes.experiments.nvae import kl_detector

fig, axes = plt.subplots(1, 2, figsize=(11, 3))
for ax, (name, run) in zip(axes, runs.items()):
    kl = kl_detector(run.model, run.guide, data.test.x, data.test.y)
    print(f"{name}: KL z_c own block {kl['class_own']:.2f}, masked blocks {kl['class_other']:.2f}, z_s {kl['shared']:.2f} nats")
    K, dc = run.model.num_classes, run.model.class_dim
    colours = ["tab:red"] * (K * dc) + ["tab:blue"] * run.model.shared_dim
    ax.bar(range(len(kl["per_dim"])), kl["per_dim"], color=colours)
    ax.set_title(f"{name}: KL per dimension (red: z_c blocks, blue: z_s)", fontsize=9)
    ax.set_xlabel("dimension of z"), ax.set_ylabel("nats (test mean)")
plt.tight_layout()
""")

md(r"""
## 6. Traversals

Each dimension of a class's own block, for a test digit of that class, and the most informative shared dimensions
across classes, over [−3, 3] (paper Figs. 6–8), every other latent at its posterior mean.
""")

code(r"""
from pyro_vaes.experiments.nvae import traversal_figures

run = runs["nvae-dirichlet"]
kl = kl_detector(run.model, run.guide, data.test.x, data.test.y)
paths = traversal_figures(run, Path("figures"), "mnist", n_classes=3 if SMOKE else 10, n_shared=2 if SMOKE else 5,
                          per_dim_kl=kl["per_dim"])
for p in paths:
    show(p, width=400)
""")

md(r"""
## 7. From the command line

```
pyro-vaes fit nvae --data mnist                                         # the paper's guide and objective
pyro-vaes fit nvae --data mnist --objective-arg dirichlet=exact          # the exact bound
pyro-vaes fit nvae --data mnist --objective-arg class_weight=10          # the paper's reweighting of the classification term
pyro-vaes fit nvae --guide nvae-enum --data mnist                        # y enumerated (objective nvae-enum)
pyro-vaes fit cvae --data mnist                                         # the baselines
pyro-vaes fit cgan --data mnist --data-arg binarize=none --lr 2e-4
pyro-vaes fit acgan --data mnist --data-arg binarize=none --lr 2e-4
pyro-vaes reproduce nvae-kl --scale small                                                 # the KL table, traversals
pyro-vaes reproduce nvae-kl --scale small --set data=fashion-mnist                        # any labelled dataset
pyro-vaes reproduce nvae-augmentation --scale small                                       # generated data for a classifier
```
""")


nb.write()
