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
    """Two concentric circles (radius 1 and factor), class 1 inside, as scikit-learn's.

    Parameters
    ----------
    n_samples : int, default=300
        Number of points, >= 2: n_samples // 2 on the outer circle, the rest inside.
    noise : float, default=0.05
        Standard deviation of the Gaussian noise added to every coordinate, >= 0.
    factor : float, default=0.5
        Radius of the inner circle, in (0, 1).
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Randomness for the order of the points and the noise.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2)
        The points (float64), shuffled.
    y : numpy.ndarray of shape (n_samples,)
        Integer labels: 0 on the outer circle, 1 on the inner one.

    Raises
    ------
    TypeError
        If n_samples is not an integer, factor or noise is not a real number, or
        seed is not a seed or generator.
    ValueError
        If n_samples < 2, factor is not in (0, 1), noise is negative or not finite, or
        seed is a negative int.
    """
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
    """Two interleaving half circles, as scikit-learn's.

    Parameters
    ----------
    n_samples : int, default=300
        How many points, at least 2; the upper moon gets n_samples // 2.
    noise : float, default=0.1
        Std of the Gaussian noise on each coordinate (>= 0).
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator for the shuffle and the noise.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2)
        The float64 points, in random order.
    y : numpy.ndarray of shape (n_samples,)
        Labels, 0 for the upper moon and 1 for the lower.

    Raises
    ------
    TypeError
        If n_samples is no integer, noise no real number, or seed of an unsupported
        type.
    ValueError
        If n_samples is below 2, noise is below 0 or infinite, or seed is below 0.
    """
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
    """Interleaved spiral arms, one per class (the CS231n spiral).

    Arm c has radius r in [0, 1] and angle 4 r + 2 pi c / n_classes, the angle
    blurred by noise.

    Parameters
    ----------
    n_samples : int, default=300
        Total number of points (>= 2), shared as evenly as possible between arms.
    n_classes : int, default=3
        Number of arms, >= 2.
    noise : float, default=0.2
        Std of the Gaussian noise on the angle, >= 0.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator (noise, then order).

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2)
        Points in float64, shuffled.
    y : numpy.ndarray of shape (n_samples,)
        The arm of each point, 0 to n_classes - 1.

    Raises
    ------
    TypeError
        If n_samples or n_classes is not an integer, noise is not a real number, or
        seed has the wrong type.
    ValueError
        If n_samples or n_classes is below 2, noise is negative or not finite, or seed
        is negative.
    """
    n, rng = _count(n_samples), as_rng(seed)
    k = check.integer("n_classes", n_classes, 2)
    y = np.arange(n) * k // n
    r = np.concatenate([np.linspace(0, 1, np.count_nonzero(y == c)) for c in range(k)])
    angle = 4 * r + 2 * math.pi * y / k + check.real("noise", noise, 0) * rng.standard_normal(n)
    X = np.c_[r * np.sin(angle), r * np.cos(angle)]
    order = rng.permutation(n)
    return X[order], y[order]


def make_xor(n_samples=300, noise=0.0, seed=None):
    """Points uniform in [-1, 1]^2, class 1 where x0 x1 > 0 (not linearly separable).

    Parameters
    ----------
    n_samples : int, default=300
        Number of points, >= 2.
    noise : float, default=0.0
        Std of Gaussian noise added to the points after labelling, >= 0.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Seed or generator of the points and the noise.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2)
        Points, float64.
    y : numpy.ndarray of shape (n_samples,)
        Labels (np.intp): 1 in the first and third quadrants, else 0.

    Raises
    ------
    TypeError
        If n_samples is not an int, noise is not real, or seed is no seed or
        generator.
    ValueError
        If n_samples < 2, noise < 0 or not finite, or seed < 0.
    """
    n, rng = _count(n_samples), as_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.intp)
    return _noisy(X, noise, rng), y
