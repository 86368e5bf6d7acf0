"""fastnn: a small, fast multilayer perceptron with typed Cython kernels.

    net = fastnn.MLP([2, 10, 5, 1], activation="relu", output="sigmoid", seed=3)
    net.fit(X, y, epochs=100, lr=0.1)

fastnn.kernels holds the checked compiled kernels and fastnn.reference their
plain-NumPy twins (same names, same arguments). fastnn.MLPClassifier and
fastnn.MLPRegressor, scikit-learn estimators (fastnn.sklearn), are imported on first
use, so that importing fastnn never imports scikit-learn.
"""
import importlib.machinery
import os
import warnings


def _check_built():
    """One clear ImportError when the compiled core is missing here (an unbuilt
    checkout on sys.path), instead of a confusing partial-import error."""
    folder = os.path.dirname(os.path.abspath(__file__))
    for module in ("_kernels", "_gate", "_engine"):
        if not any(os.path.exists(os.path.join(folder, module + suffix))
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            raise ImportError(
                f"fastnn's compiled core is not built in {folder} (no {module} extension "
                f"there): this is an unbuilt source checkout. Either install fastnn "
                f"(`pip install .`) and run Python from another folder, so that the "
                f"installed package is imported, or build it in place with "
                f"`pip install -e .`.")


def _check_environment():
    """A RuntimeWarning for each of the compiled core's environment variables
    (fastnn._kernels.ENVIRONMENT) set to a value it does not know, instead of
    ignoring it in silence."""
    from fastnn._kernels import ENVIRONMENT
    for name, known in ENVIRONMENT.items():
        value = os.environ.get(name)
        if value is not None and value not in known:
            warnings.warn(f"{name}={value!r} is not one of {', '.join(known)}: ignored "
                          f"(fastnn chooses for this CPU)", RuntimeWarning, stacklevel=3)


_check_built()
_check_environment()

from fastnn import datasets, init, kernels, optim, reference  # noqa: E402
from fastnn._version import __version__  # noqa: E402
from fastnn.activations import ACTIVATIONS, gain  # noqa: E402
from fastnn.model import MLP, DivergenceError, Layer, load  # noqa: E402
from fastnn import diagnostics  # noqa: E402  (it needs MLP)

__all__ = ["__version__", "MLP", "Layer", "DivergenceError", "load", "ACTIVATIONS", "gain",
           "datasets", "diagnostics", "init", "kernels", "optim", "reference"]

#: Names served by fastnn.sklearn, imported on first access (they need scikit-learn);
#: left out of __all__ so that `from fastnn import *` does not import scikit-learn.
_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):
    """fastnn.MLPClassifier and fastnn.MLPRegressor, from fastnn.sklearn (PEP 562),
    kept in the module's namespace once imported: later lookups find them there
    without this call (whose import statement took 50-60 us just after a fit)."""
    if name in _ESTIMATORS:
        from fastnn import sklearn
        globals().update({estimator: getattr(sklearn, estimator)
                          for estimator in _ESTIMATORS})
        return globals()[name]
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ESTIMATORS))
