"""fastnn: a small, fast multilayer perceptron with typed Cython kernels.

fastnn.kernels holds the checked compiled kernels and fastnn.reference their
plain-NumPy twins (same names, same arguments).
"""
from fastnn import kernels, reference
from fastnn._version import __version__
from fastnn.activations import ACTIVATIONS, gain

__all__ = ["__version__", "kernels", "reference", "ACTIVATIONS", "gain"]
