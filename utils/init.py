"""Weight initialisations, written out (they fill a tensor in place and return it)."""
import math

import torch


@torch.no_grad()
def uniform_(w, a):
    """U(-a, a); the caller chooses a.

    Chosen by this project, not taken from the early language-model papers: Bengio et al.
    2003 name no distribution (§4.2: "Random initialization of the word features was done
    (similarly to initialization of neural network weights)"), and Mikolov et al. 2010
    ("Recurrent neural network based language model", §2) draw Gaussians: "Weights are
    initialized to small values (random Gaussian noise with zero mean and 0.1 variance)"."""
    return w.uniform_(-a, a)


@torch.no_grad()
def xavier_uniform_(w, gain=1.0):
    """Glorot & Bengio 2010: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), so the
    variance 2 / (fan_in + fan_out) keeps activations and gradients at one scale.
    Weights here are stored (fan_in, fan_out) and used as x @ W."""
    fan_in, fan_out = w.shape[0], w.shape[-1]
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return w.uniform_(-a, a)


@torch.no_grad()
def orthogonal_(w, gain=1.0, generator=None):
    """Saxe et al. 2014: a random orthogonal matrix (QR of a Gaussian, signs fixed so the
    distribution is uniform). For recurrent matrices: all singular values 1, so repeated
    products neither explode nor vanish at the start of training."""
    rows, cols = w.shape
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))                      # (max, min) orthonormal columns
    if rows < cols:
        q = q.T
    return w.copy_(gain * q[:rows, :cols])
