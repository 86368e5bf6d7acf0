"""Seeded toy data sets: X (n, 2) float64 and integer labels y (n,).

All take ``seed`` (int, Generator, RandomState or None), like the rest of fastnn.
"""
import math

import numpy as np

from fastnn import _checks as check
from fastnn.init import as_rng

__all__ = ["make_circles", "make_moons", "make_spiral", "make_xor"]


def _count(n_samples):
    return check.integer("n_samples", n_samples, 2)


def _noisy(X, noise, rng):
    noise = check.real("noise", noise, 0)
    return X + noise * rng.standard_normal(X.shape) if noise else X


def make_circles(n_samples=300, noise=0.05, factor=0.5, seed=None):
    """Two concentric circles (radius 1 and factor), class 1 inside, as scikit-learn's."""
    n, rng = _count(n_samples), as_rng(seed)
    factor = check.real("factor", factor, 0, 1, low_open=True, high_open=True)
    n_outer = n // 2
    outer = np.linspace(0, 2 * math.pi, n_outer, endpoint=False)
    inner = np.linspace(0, 2 * math.pi, n - n_outer, endpoint=False)
    X = np.concatenate([np.c_[np.cos(outer), np.sin(outer)],
                        factor * np.c_[np.cos(inner), np.sin(inner)]])
    y = np.repeat([0, 1], [n_outer, n - n_outer])
    order = rng.permutation(n)
    return _noisy(X[order], noise, rng), y[order]


def make_moons(n_samples=300, noise=0.1, seed=None):
    """Two interleaving half circles, as scikit-learn's."""
    n, rng = _count(n_samples), as_rng(seed)
    n_top = n // 2
    top = np.linspace(0, math.pi, n_top)
    bottom = np.linspace(0, math.pi, n - n_top)
    X = np.concatenate([np.c_[np.cos(top), np.sin(top)],
                        np.c_[1 - np.cos(bottom), 0.5 - np.sin(bottom)]])
    y = np.repeat([0, 1], [n_top, n - n_top])
    order = rng.permutation(n)
    return _noisy(X[order], noise, rng), y[order]


def make_spiral(n_samples=300, n_classes=3, noise=0.2, seed=None):
    """n_classes interleaved spiral arms (the CS231n spiral): arm c has radius r in
    [0, 1] and angle 4 r + 2 pi c / n_classes, the angle blurred by noise."""
    n, rng = _count(n_samples), as_rng(seed)
    k = check.integer("n_classes", n_classes, 2)
    y = np.arange(n) * k // n
    r = np.concatenate([np.linspace(0, 1, np.count_nonzero(y == c)) for c in range(k)])
    angle = 4 * r + 2 * math.pi * y / k + check.real("noise", noise, 0) * rng.standard_normal(n)
    X = np.c_[r * np.sin(angle), r * np.cos(angle)]
    order = rng.permutation(n)
    return X[order], y[order]


def make_xor(n_samples=300, noise=0.0, seed=None):
    """Points uniform in [-1, 1]^2, class 1 where x0 x1 > 0 (not linearly separable)."""
    n, rng = _count(n_samples), as_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.intp)
    return _noisy(X, noise, rng), y
