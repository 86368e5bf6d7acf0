"""Seeded toy data sets: X (n, 2) float64 and integer labels y (n,).

All take ``seed`` (int, Generator, RandomState or None), like the rest of fastnn, except
make_sklearn_circles, which reproduces scikit-learn's legacy RandomState draws and takes
an int or a RandomState (or None).
"""
import math
import numbers

import numpy as np

from fastnn import _checks as check
from fastnn.init import as_rng

__all__ = ["make_circles", "make_sklearn_circles", "make_moons", "make_spiral",
           "make_xor"]


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


def make_sklearn_circles(n_samples=100, noise=None, factor=0.8, seed=None):
    """scikit-learn's make_circles, point for point, without scikit-learn.

    The same points, the same legacy RandomState draws (the shuffle, then the noise)
    in the same order and the same arithmetic as ``sklearn.datasets.make_circles(
    n_samples, noise=noise, factor=factor, random_state=seed)``: equal bit for bit.
    The course's ``np.random.seed(1); make_circles(n_samples=300, noise=.05)`` draws
    from numpy's global RandomState, which ``np.random.seed(1)`` puts in the state of
    a new ``RandomState(1)``: ``make_sklearn_circles(300, noise=0.05, seed=1)`` gives
    its points, and leaves numpy's global state alone.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points, >= 2: n_samples // 2 on the outer circle (radius 1), the
        rest on the inner one.
    noise : float or None, default=None
        Standard deviation of the Gaussian noise added to every coordinate, >= 0;
        None adds none and draws none.
    factor : float, default=0.8
        Radius of the inner circle, in [0, 1).
    seed : int, numpy.random.RandomState or None, default=None
        An int from 0 to 2**32 - 1 seeds a new RandomState; a RandomState is drawn
        from (and advanced); None draws from a new RandomState seeded from the OS,
        never from numpy's global one (which scikit-learn uses for None).

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2)
        The points (float64, C-contiguous), shuffled.
    y : numpy.ndarray of shape (n_samples,)
        Labels (np.intp): 0 on the outer circle, 1 on the inner one.

    Raises
    ------
    TypeError
        If n_samples is not an integer, noise or factor is not a real number, or seed
        is not an int, a RandomState or None (a Generator draws differently).
    ValueError
        If n_samples < 2, noise is negative or not finite, factor is not in [0, 1),
        or seed is an int outside [0, 2**32).
    """
    n, rng = _count(n_samples), _random_state(seed)
    factor = check.real("factor", factor, 0, 1, high_open=True)
    noise = None if noise is None else check.real("noise", noise, 0)
    n_out = n // 2
    outer = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    inner = np.linspace(0, 2 * np.pi, n - n_out, endpoint=False)
    X = np.vstack([np.append(np.cos(outer), np.cos(inner) * factor),
                   np.append(np.sin(outer), np.sin(inner) * factor)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n - n_out, dtype=np.intp)])
    order = np.arange(n)
    rng.shuffle(order)  # sklearn.utils.shuffle
    X, y = np.ascontiguousarray(X[order]), y[order]
    if noise is not None:
        X += rng.normal(scale=noise, size=X.shape)
    return X, y


def _random_state(seed):
    """seed as a legacy RandomState: itself, or a new one seeded with it."""
    if isinstance(seed, np.random.RandomState):
        return seed
    if seed is not None and (isinstance(seed, (bool, np.bool_))
                             or not isinstance(seed, numbers.Integral)):
        raise TypeError("seed must be None, an int or a numpy.random.RandomState (the "
                        f"legacy draws of scikit-learn); got {type(seed).__name__}")
    if seed is not None and not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 1; got {seed}")
    return np.random.RandomState(seed)


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
