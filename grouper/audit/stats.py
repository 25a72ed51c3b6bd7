"""Tail probabilities for the screens, without SciPy: the normal upper tail and the Poisson upper
tail through the Wilson-Hilferty approximation of the gamma distribution (accurate to a few per
cent of the p-value far into the tail, which is what a flag at alpha / hospitals needs)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normal_upper", "peer_percentile", "poisson_upper"]

_ERFC = np.frompyfunc(math.erfc, 1, 1)  # the standard library's erfc over an array (C loop)


def normal_upper(z: np.ndarray) -> np.ndarray:
    """P(Z >= z) for a standard normal Z (vectorised: thousands of department and code rows)."""
    z = np.asarray(z, float)
    tail = 0.5 * _ERFC(np.nan_to_num(z, posinf=0.0, neginf=0.0) / math.sqrt(2)).astype(float)
    out = np.where(np.isfinite(z), tail, np.where(z > 0, 0.0, 1.0))
    return out.reshape(z.shape)


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
