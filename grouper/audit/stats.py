"""Tail probabilities for the screens, without SciPy: the normal upper tail and the Poisson upper
tail through the Wilson-Hilferty approximation of the gamma distribution (accurate to a few per
cent of the p-value far into the tail, which is what a flag at alpha / hospitals needs)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normal_upper", "peer_percentile", "poisson_upper"]


def normal_upper(z: np.ndarray) -> np.ndarray:
    """P(Z >= z) for a standard normal Z."""
    z = np.asarray(z, float)
    return np.array([0.5 * math.erfc(v / math.sqrt(2)) if np.isfinite(v) else (0.0 if v > 0 else 1.0)
                     for v in z.ravel()]).reshape(z.shape)


def poisson_upper(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """P(X >= observed) for X ~ Poisson(expected): P(Gamma(k) <= lambda), Wilson-Hilferty."""
    k = np.asarray(observed, float)
    lam = np.asarray(expected, float)
    out = np.ones_like(k)
    ok = k > 0
    kk, ll = k[ok], np.maximum(lam[ok], 1e-300)
    z = ((ll / kk) ** (1 / 3) - (1 - 1 / (9 * kk))) / np.sqrt(1 / (9 * kk))
    out[ok] = 1 - normal_upper(z)
    return np.clip(out, 0.0, 1.0)


def peer_percentile(values: np.ndarray, peers: np.ndarray) -> np.ndarray:
    """Per hospital: the share of its peers (same peer id, itself included) with a value at or
    below its own, in per cent (a PEPPER-style percentile)."""
    out = np.full(len(values), np.nan)
    for p in np.unique(peers):
        idx = np.flatnonzero(peers == p)
        v = values[idx]
        out[idx] = 100.0 * (v[None, :] <= v[:, None]).sum(axis=1) / len(idx)
    return out
