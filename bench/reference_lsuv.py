"""The sequential LSUV baseline of the reference notebook (`shared/reference/seed_layers_notebook.txt` beside the checkout).

Re-implemented for benchmarking only: same algorithm, same numbers, plus an `ortho` flag so every implementation
in `bench_lsuv.py` can start from the same pre-initialised weights. Per covered layer, in module order, it runs
a full forward pass, reads the layer's output mean/std with a fastai `Hook`, and applies `W /= std+1e-8; b -= mean`
until |mean| <= tol (layers with a bias) and |std-1| <= tol, or `n_iter` corrections were made. That costs
(1 + corrections) forward passes per layer.
"""
import warnings
import torch
from torch import nn

with warnings.catch_warnings(): # fastai.layers calls the deprecated `torch.jit.script` at import (torch>=2.10)
    warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated', category=FutureWarning)
    from fastai.callback.hook import Hook

__all__ = ['covered_types', 'covered_layers', 'orthogonal_preinit', 'lsuv_reference']

# the layer types the reference initialises (isinstance, so subclasses count too)
covered_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def covered_layers(m: nn.Module) -> list:
    "The layers of `m` the reference initialises, in `m.modules()` order."
    return [l for l in m.modules() if isinstance(l, covered_types)]


def orthogonal_preinit(m: nn.Module) -> nn.Module:
    "The reference's pre-init: `nn.init.orthogonal_` on every covered weight, zeros on every covered bias."
    for l in covered_layers(m):
        nn.init.orthogonal_(l.weight)
        if l.bias is not None: nn.init.zeros_(l.bias)
    return m


def _mean_std(mod, inp, out):
    "Hook function: the layer output's mean and (unbiased) std as Python floats."
    return out.mean().item(), out.std().item()


def _converged(l, mean, std, tol):
    "True when the output statistics of layer `l` are within `tol` (the mean only matters if `l` has a bias)."
    return abs(std - 1.) <= tol and (l.bias is None or abs(mean) <= tol)


def lsuv_reference(m: nn.Module,         # model, initialised in place
                   xb: torch.Tensor,     # the batch the statistics are measured on
                   tol: float = 0.01,    # tolerance on |mean| and |std-1|
                   n_iter: int = 10,     # at most this many corrections per layer
                   verbose: bool = False,# print one line per layer, as the reference does
                   ortho: bool = True,   # start with `orthogonal_preinit`; False: rescale the current weights
                  ) -> nn.Module:
    "LSUV as the reference notebook does it: one full forward pass per layer per measurement. Returns `m`."
    xb = xb.cpu()
    m.to(xb.device)
    if ortho: orthogonal_preinit(m)
    m.eval()
    for l in covered_layers(m):
        n = 0
        with Hook(l, _mean_std, cpu=True) as h, torch.inference_mode():
            while True:
                m(xb)
                # like the reference, this fails with a TypeError if the forward pass never called `l`
                mean, std = h.stored
                if _converged(l, mean, std, tol) or n >= n_iter: break
                l.weight /= std + 1e-8
                if l.bias is not None: l.bias -= mean
                n += 1
        if verbose: print(f"{str(l):80}| took {n} iterations, mean={mean:7.4f}, std={std:.4f}")
    return m
