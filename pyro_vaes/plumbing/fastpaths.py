"""Fast paths for the training step: the same numbers with less of Pyro's bookkeeping.

A Pyro VAE step spends ~1 ms more than the same loss written in plain PyTorch, all of it in Python: plates, trace
and replay messengers, distribution objects, the ELBO's bookkeeping (``benchmarks/suite.py`` measures it per
model). Three pieces of it do nothing for the engine's steps and are skipped here, each **exact**: the gradients
are bitwise those of Pyro's own path, so parameters after any number of steps are bit for bit the same
(``tests/test_fastpaths.py`` checks every registered model, guide and objective):

* :func:`plate_fastpaths` (a context manager the trainer enters around each step once Pyro's validation is off):

  - ``pyro.plate`` re-expands every sample site's distribution to the plate's batch shape even when it already has
    it (``BroadcastMessenger._pyro_sample``: a new distribution object and two ``expand`` views per site, and their
    backward nodes); the no-op expand is skipped, any real one (or shape error) is left to Pyro;
  - a plate without subsampling still sends a ``_Subsample`` sample message through every handler (recorded by the
    trace, replayed, pruned by the ELBO); it is skipped when its indices would be ``arange(size)`` (they are made on
    demand, as Pyro's plate does when it is given no subsample).

  They swap two of Pyro's static methods for the duration of the ``with`` block and restore them after, only on the
  Pyro versions they were checked on (:data:`CHECKED_PYRO`); elsewhere the block changes nothing.
* :class:`FixedScaleNormal`: the Gaussian likelihood with a fixed standard deviation keeps it a 0-dim tensor
  (``Normal(loc, 0.45)`` broadcasts the scale to the observations' shape, so every log-density computes ``log σ``
  and ``σ²`` over all 128 × 784 entries, and their backward). Bitwise the same log-densities and gradients; ~1 ms
  of a UG-VAE step.
* :class:`LeanTrace_ELBO`: ``Trace_ELBO`` whose ``differentiable_loss`` reads Σ log p − Σ log q off the two traces
  (no pruned trace copies, no ``compute_log_prob``/``compute_score_parts``, no ``.item()`` per site, no backward NaN
  hook). Its gradients are bitwise Trace_ELBO's; its value the same sum taken in float32 rather than Trace_ELBO's
  float64 Python sum of per-site values (a difference of float32 rounding). A guide with a non-reparameterised site
  gets Trace_ELBO's own surrogate on the same traces; with Pyro's validation on, the traces come through Trace_ELBO's
  path with every check and the value is summed the same lean way (a resumed run logs the same losses bit for bit).

One more, exact in value but **not bitwise** in its gradients:

* :class:`LeanTraceEnum_ELBO`: ``TraceEnum_ELBO`` for the common case where the guide enumerates one discrete site
  that no other guide site depends on (UG-VAE's and GMVAE's d), the model enumerates nothing of its own, every other
  guide site is reparameterised and there is one particle. Then TraceEnum_ELBO's Dice contraction reduces to one
  weighted sum, −Σ_sites E_{q(d)}[scaled log p − scaled log q] with the weights q(d = k | ·) (its Dice factors), and
  the step skips the log-prob packing, the score parts and the ``einsum`` machinery. Same traces and draws, same
  estimator; gradients differ from TraceEnum_ELBO's by float32 rounding (a product and a sum instead of a
  contraction; in float64 they agree to 1e-10, ``tests/test_fastpaths.py``), so runs are not bit for bit those of
  Pyro's path. Whether the case applies is decided on the first call, whose traces come through TraceEnum_ELBO's
  own path (with Pyro's checks on the engine's first step); its value is summed the same way, so a resumed run
  repeats the uninterrupted one bit for bit. Anything else (d summed out by the model, several enumerated sites,
  sequential enumeration) is TraceEnum_ELBO's own computation.

What stays (measured, README "Speed"): Pyro's distribution objects and the trace/replay messengers; ``torch.compile``
of the Pyro loss was slower, not faster.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pyro
import pyro.distributions
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.infer.traceenum_elbo import _compute_dice_elbo
from pyro.infer.util import is_validation_enabled
from pyro.poutine.broadcast_messenger import BroadcastMessenger
from pyro.poutine.enum_messenger import EnumMessenger
from pyro.poutine.subsample_messenger import SubsampleMessenger
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from pyro.util import warn_if_nan

#: the Pyro versions whose plate internals the fast paths were checked against (major, minor)
CHECKED_PYRO = ("1.9",)
_ENABLED = True


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Every fast path off inside the block (Pyro's own paths throughout): what the tests compare against."""
    global _ENABLED
    previous, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = previous


def active() -> bool:
    """Whether the fast paths are in use (not inside :func:`disabled`)."""
    return _ENABLED


_PYRO_OK = any(pyro.__version__.startswith(v + ".") or pyro.__version__ == v for v in CHECKED_PYRO)
_ORIG_BROADCAST = BroadcastMessenger.__dict__["_pyro_sample"]
_ORIG_SUBSAMPLE = SubsampleMessenger.__dict__["_subsample"]


def _broadcast_unless_noop(msg) -> None:
    """``BroadcastMessenger._pyro_sample``, returning early when the expand would not change the batch shape."""
    if msg["done"] or msg["type"] != "sample" or not isinstance(msg["fn"], TorchDistributionMixin):
        return
    actual = msg["fn"].batch_shape
    target = [None if size == 1 else size for size in actual]
    for f in msg["cond_indep_stack"]:
        if f.dim is None or f.size == -1:
            continue
        target = [None] * (-f.dim - len(target)) + target
        if target[f.dim] is not None and target[f.dim] != f.size:
            return _ORIG_BROADCAST.__func__(msg)  # Pyro's own shape error
        target[f.dim] = f.size
    for i in range(-len(target) + 1, 1):
        if target[i] is None:
            target[i] = actual[i] if len(actual) >= -i else 1
    if tuple(target) != tuple(actual):
        return _ORIG_BROADCAST.__func__(msg)


def _subsample_unless_full(name, size=None, subsample_size=None, subsample=None, use_cuda=None, device=None):
    """``SubsampleMessenger._subsample`` without the ``_Subsample`` message when nothing is subsampled."""
    if size is not None and subsample is None and (subsample_size is None or subsample_size == size):
        return size, size, None  # the indices, arange(size), are made on demand (IndepMessenger.indices)
    return _ORIG_SUBSAMPLE.__func__(name, size, subsample_size, subsample, use_cuda, device)


@contextlib.contextmanager
def plate_fastpaths(enabled: bool = True) -> Iterator[None]:
    """Inside the block, plates skip the no-op re-expand and the unsubsampled ``_Subsample`` message (see the module
    docstring). Not re-entrant across threads: it swaps class attributes for the block's duration."""
    if not (enabled and _PYRO_OK and _ENABLED):
        yield
        return
    BroadcastMessenger._pyro_sample = staticmethod(_broadcast_unless_noop)
    SubsampleMessenger._subsample = staticmethod(_subsample_unless_full)
    try:
        yield
    finally:
        BroadcastMessenger._pyro_sample = _ORIG_BROADCAST
        SubsampleMessenger._subsample = _ORIG_SUBSAMPLE


class LeanTrace_ELBO(Trace_ELBO):
    """``Trace_ELBO`` with less bookkeeping and the same gradients (see the module docstring)."""

    def _lean_traces(self, model, guide, args, kwargs):
        """(model trace, guide trace) of each particle, or of all of them at once when vectorized: plain traces,
        without Pyro's checks."""
        if self.vectorize_particles:
            if self.max_plate_nesting == float("inf"):
                self._guess_max_plate_nesting(model, guide, args, kwargs)
            model, guide = self._vectorized_num_particles(model), self._vectorized_num_particles(guide)
        for _ in range(1 if self.vectorize_particles else self.num_particles):
            guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(
                *args, **kwargs
            )
            yield model_trace, guide_trace

    def _loss(self, model_trace, guide_trace):
        """−(Σ log p − Σ log q) of one particle's traces, summed in float32 site by site (model sites, then guide)."""
        g_sites = _sample_sites(guide_trace)
        if not all(s["fn"].has_rsample for s in g_sites):  # score-function terms: Trace_ELBO's surrogate
            model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
            model_trace.compute_log_prob()
            guide_trace.compute_score_parts()
            elbo = sum(s["log_prob_sum"].detach() for s in model_trace.nodes.values() if s["type"] == "sample") - sum(
                s["log_prob_sum"].detach() for s in guide_trace.nodes.values() if s["type"] == "sample"
            )
            _, surrogate_loss = self._differentiable_loss_particle(model_trace, guide_trace)
            return -elbo + (surrogate_loss - surrogate_loss.detach())
        elbo = 0.0
        for s in _sample_sites(model_trace):
            elbo = elbo + _log_prob_sum(s)
        for s in g_sites:
            elbo = elbo - _log_prob_sum(s)
        return -elbo

    def differentiable_loss(self, model, guide, *args, **kwargs):
        if not _ENABLED:
            return super().differentiable_loss(model, guide, *args, **kwargs)
        # the first step (Pyro's validation on): the traces come through Pyro's checked path (shapes, supports,
        # model/guide match); either way the value is summed alike, so a run resumed mid-way logs the same losses
        checked = is_validation_enabled()
        traces = (
            self._get_traces(model, guide, args, kwargs) if checked else self._lean_traces(model, guide, args, kwargs)
        )
        losses = [self._loss(m, g) for m, g in traces]  # one particle traced, then its loss, then the next
        if self.vectorize_particles:
            loss = losses[0] / self.num_particles  # one trace holds every particle
        elif self.num_particles == 1:
            loss = losses[0]
        else:
            loss = sum(lp / self.num_particles for lp in losses)
        if checked:
            warn_if_nan(loss, "loss")
        return loss


class LeanTraceEnum_ELBO(TraceEnum_ELBO):
    """``TraceEnum_ELBO`` without its contraction machinery where the sum it computes is one weighted sum (see the
    module docstring): the same traces, the same estimator, gradients equal to float32 rounding."""

    #: whether the lean sum applies to this model and guide: decided on the first call, whose traces come through
    #: Pyro's own path (with its checks when validation is on), and again on every checked call (None: not yet)
    _lean: bool | None = None

    def _lean_loss(self, model_trace, guide_trace) -> torch.Tensor | None:
        """−Σ_sites E_{q(d)}[scaled log p − scaled log q] with d the guide's one enumerated site, or None when the
        traces have another structure: more or fewer enumerated guide sites, a site the model enumerates itself, a
        guide site that depends on d (d not a leaf), a non-reparameterised guide site."""
        enumerated = [s for s in _sample_sites(guide_trace) if s["infer"].get("_enumerate_dim") is not None]
        if len(enumerated) != 1 or self.num_particles != 1 or self.vectorize_particles:
            return None
        d = enumerated[0]
        dim = d["infer"]["_enumerate_dim"]
        q_d = d["fn"].log_prob(d["value"]).exp()  # q(d = k | ·): TraceEnum's Dice factor (unscaled)

        def expected(site, may_depend: bool) -> torch.Tensor | None:
            lp = _scaled_log_prob(site)
            left = lp.dim() - self.max_plate_nesting  # the dims left of the plates hold enumerated values
            enum_dims = [i - lp.dim() for i in range(max(0, left)) if lp.shape[i] > 1]
            if not enum_dims:
                return lp.sum()
            if enum_dims != [dim] or not may_depend or torch.broadcast_shapes(q_d.shape, lp.shape) != lp.shape:
                return None
            return (q_d * lp).sum()

        elbo = 0.0
        for site in _sample_sites(model_trace):
            term = expected(site, True)
            if term is None:
                return None
            elbo = elbo + term
        for site in _sample_sites(guide_trace):
            term = expected(site, site is d) if (site is d or site["fn"].has_rsample) else None
            if term is None:
                return None
            elbo = elbo - term
        return -elbo

    def _lean_traces(self, model, guide, args, kwargs):
        """The guide traced with its discrete sites enumerated, the model replayed on it, as ``_get_traces`` draws
        them (the same enumeration dimensions), without Pyro's checks, log-prob packing or the sequential queue."""
        guide_trace = poutine.trace(
            EnumMessenger(first_available_dim=-1 - self.max_plate_nesting)(guide), graph_type="flat"
        ).get_trace(*args, **kwargs)
        model_trace = poutine.trace(
            poutine.replay(EnumMessenger()(model), trace=guide_trace), graph_type="flat"
        ).get_trace(*args, **kwargs)
        return model_trace, guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs):
        if not _ENABLED or self.max_plate_nesting == float("inf"):
            return super().differentiable_loss(model, guide, *args, **kwargs)
        if self._lean is None or is_validation_enabled():  # Pyro's own (checked) traces; does the lean sum apply?
            traces = list(self._get_traces(model, guide, args, kwargs))
            loss = self._lean_loss(*traces[0]) if len(traces) == 1 else None
            self._lean = loss is not None
            if loss is None:  # TraceEnum_ELBO's own sum on the same traces
                loss = -sum(_compute_dice_elbo(m, g) for m, g in traces) / self.num_particles
            warn_if_nan(loss, "loss")
            return loss
        if not self._lean:
            return super().differentiable_loss(model, guide, *args, **kwargs)
        loss = self._lean_loss(*self._lean_traces(model, guide, args, kwargs))
        if loss is None:
            raise RuntimeError("the model's or guide's enumerated structure changed after the first step")
        return loss


def _sample_sites(trace) -> list:
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def _scaled_log_prob(site) -> torch.Tensor:
    lp = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    return scale_and_mask(lp, site["scale"], site["mask"])


def _log_prob_sum(site):
    return _scaled_log_prob(site).sum()


class FixedScaleNormal(pyro.distributions.Normal):
    """N(loc, scale²) with one fixed ``scale`` for every entry, kept a 0-dim tensor (see the module docstring):
    log-densities, draws and gradients with respect to ``loc`` are bitwise those of ``Normal(loc, scale)``."""

    def __init__(self, loc: torch.Tensor, scale: float, validate_args=None) -> None:
        self.loc = loc
        self.scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        torch.distributions.Distribution.__init__(self, loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(FixedScaleNormal, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale
        torch.distributions.Distribution.__init__(new, torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale.expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.stddev.pow(2)

    def entropy(self) -> torch.Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.stddev)


def gaussian(loc: torch.Tensor, scale: float) -> pyro.distributions.Normal:
    """The Gaussian likelihood N(loc, scale²) with a fixed ``scale``: :class:`FixedScaleNormal` unless the fast paths
    are :func:`disabled`."""
    return FixedScaleNormal(loc, scale) if _ENABLED else pyro.distributions.Normal(loc, scale)
