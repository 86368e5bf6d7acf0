"""fastnn: a small, fast multilayer perceptron with typed Cython kernels.

    net = fastnn.MLP([2, 10, 5, 1], activation="relu", output="sigmoid", seed=3)
    net.fit(X, y, epochs=100, lr=0.1)

fastnn.kernels holds the checked compiled kernels and fastnn.reference their
plain-NumPy twins (same names, same arguments).
"""
from fastnn import datasets, init, kernels, optim, reference
from fastnn._version import __version__
from fastnn.activations import ACTIVATIONS, gain
from fastnn.model import MLP, DivergenceError, Layer, load
from fastnn import diagnostics  # noqa: E402  (it needs MLP)

__all__ = ["__version__", "MLP", "Layer", "DivergenceError", "load", "ACTIVATIONS", "gain",
           "datasets", "diagnostics", "init", "kernels", "optim", "reference"]
