"""Optimizer configurations and their state.

The arithmetic lives in the compiled kernels (fastnn.kernels.*_update and the
training step); these classes hold and check the hyper-parameters and say how the
compiled step reads them: ``code`` (its number in fastnn/_ops.pxd), ``hyper()`` (its
own settings, in the order the update reads them) and ``n_states`` (its state
arrays). Weight decay is a separate argument of MLP.fit, applied as L2
regularisation to weights, never to biases.
"""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fastnn import _checks as check
from fastnn._engine import flat_buffer

__all__ = ["SGD", "Momentum", "Adam", "OptimizerState", "make_optimizer", "OPTIMIZERS"]


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent: W -= lr dW.

    Parameters
    ----------
    lr : float, default=0.01
        The learning rate: finite and > 0, else ValueError (TypeError for a
        non-number).
    """
    lr: float = 0.01
    name: ClassVar[str] = "sgd"
    code: ClassVar[int] = 0
    n_states: ClassVar[int] = 0

    def __post_init__(self):
        object.__setattr__(self, "lr", check.real("lr", self.lr, 0, low_open=True))

    def hyper(self):
        """The settings the compiled update reads besides lr, in its order.

        Returns
        -------
        tuple of float
            Empty for SGD.
        """
        return ()

    def check_state(self, arrays):
        """Refuse state arrays that no training could have left (from a file or a
        pickle); any finite velocity is possible, so this one refuses nothing.

        Parameters
        ----------
        arrays : list of numpy.ndarray
            The n_states state arrays, finite.

        Raises
        ------
        ValueError
            If the state is impossible for this optimizer.
        """


@dataclass(frozen=True)
class Momentum(SGD):
    """Momentum in PyTorch's form: v = momentum v + dW; W -= lr v.

    nesterov=True: W -= lr (dW + momentum v). Equivalent, for a fixed lr, to the
    course's v = beta v + (1 - beta) dW with the lr rescaled by 1 / (1 - beta).

    Parameters
    ----------
    lr : float, default=0.01
        The learning rate, > 0.
    momentum : float, default=0.9
        The velocity's decay, in [0, 1].
    nesterov : bool, default=False
        Nesterov's look-ahead form.

    Raises
    ------
    TypeError
        If a setting has the wrong type.
    ValueError
        If a setting is out of range.
    """
    momentum: float = 0.9
    nesterov: bool = False
    n_states: ClassVar[int] = 1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "momentum", check.real("momentum", self.momentum, 0, 1))
        check.flag("nesterov", self.nesterov)

    @property
    def name(self):
        """"nesterov" or "momentum"."""
        return "nesterov" if self.nesterov else "momentum"

    @property
    def code(self):
        """The compiled update's number: 2 for Nesterov, 1 otherwise."""
        return 2 if self.nesterov else 1

    def hyper(self):
        """(momentum,): the setting the compiled update reads besides lr.

        Returns
        -------
        tuple of one float
            The velocity's decay, momentum; Nesterov's form reads the same.
        """
        return (self.momentum,)


@dataclass(frozen=True)
class Adam(SGD):
    """Adam (Kingma and Ba, 2015) with bias correction, PyTorch's arithmetic.

    Parameters
    ----------
    lr : float, default=0.001
        The learning rate, > 0.
    beta1, beta2 : float, default=0.9, 0.999
        The moments' decays, in [0, 1).
    eps : float, default=1e-8
        Added to the root of the second moment, > 0.

    Raises
    ------
    TypeError
        If a setting is not a real number.
    ValueError
        If a setting is out of range.
    """
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    code: ClassVar[int] = 3
    n_states: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        for name in ("beta1", "beta2"):
            object.__setattr__(self, name, check.real(name, getattr(self, name), 0, 1,
                                                      high_open=True))
        object.__setattr__(self, "eps", check.real("eps", self.eps, 0, low_open=True))

    def hyper(self):
        """(beta1, beta2, eps): the settings the compiled update reads besides lr.

        Returns
        -------
        tuple of three floats
            beta1, beta2 and eps, in that order.
        """
        return self.beta1, self.beta2, self.eps

    def check_state(self, arrays):
        """Refuse a second moment v (arrays[1]) with a negative value: a running
        mean of squared gradients never is, and sqrt(v) would make the weights NaN.

        Parameters
        ----------
        arrays : list of numpy.ndarray
            m and v, finite.

        Raises
        ------
        ValueError
            Naming the first negative value of v.
        """
        negative = np.flatnonzero(arrays[1] < 0)
        if negative.size:
            index = negative[0]
            raise ValueError(f"Adam's second moment (state array 1) holds a negative "
                             f"value, v[{index}] = {arrays[1][index]:g}, which training "
                             f"never leaves: it is a running mean of squared gradients")


#: Optimizers by name; a name picks the class and its options.
_CLASSES = {"sgd": (SGD, ()), "momentum": (Momentum, ("momentum",)),
            "nesterov": (Momentum, ("momentum",)), "adam": (Adam, ("beta1", "beta2", "eps"))}

#: The optimizer names make_optimizer and MLP.fit take.
OPTIMIZERS = tuple(_CLASSES)


class OptimizerState:
    """An optimizer with its state, as a model keeps it between fit calls.

    Parameters
    ----------
    optimizer : SGD, Momentum or Adam
        The optimizer whose state this is.
    n_params : int
        The length of the model's flat parameter buffer.
    dtype : numpy.dtype
        The model's dtype.

    Attributes
    ----------
    optimizer : SGD, Momentum or Adam
        The optimizer; fit replaces it with one of the same kind to change settings.
    arrays : list of numpy.ndarray
        optimizer.n_states arrays in the parameters' layout (the velocity; Adam's m
        and v), zeros at first.
    steps : numpy.ndarray
        The number of steps taken, an int64 array of one element that the compiled
        step increments with each update.
    """

    def __init__(self, optimizer, n_params, dtype):
        self.optimizer = optimizer
        self.arrays = [flat_buffer(n_params, dtype, zeros=True)
                       for _ in range(optimizer.n_states)]
        self.steps = np.zeros(1, np.int64)

    def __setstate__(self, state):
        """Unpickled or deep-copied: the arrays back in flat buffers (see
        fastnn._engine.flat_buffer; a pickle's arrays start where numpy puts them)."""
        self.__dict__.update(state)
        self.arrays = [_aligned_copy(array) for array in self.arrays]


def _aligned_copy(array):
    """array's values in a flat buffer of its dtype."""
    copy = flat_buffer(array.size, array.dtype)
    copy[...] = array.reshape(-1)
    return copy


def make_optimizer(optimizer, lr=None, **options):
    """An optimizer from a name or an instance.

    Parameters
    ----------
    optimizer : {"sgd", "momentum", "nesterov", "adam"} or SGD, Momentum, Adam
        The optimizer; an instance is returned as it is.
    lr : float, optional
        The learning rate; None keeps the default (0.01, or 0.001 for Adam).
    **options
        momentum (0.9) for momentum and nesterov; beta1, beta2, eps for Adam.

    Returns
    -------
    SGD, Momentum or Adam

    Raises
    ------
    ValueError
        If the name is unknown, or an instance comes with lr or options.
    TypeError
        If an option does not belong to the optimizer.
    """
    if isinstance(optimizer, SGD):
        if lr is not None or options:
            raise ValueError("pass lr and other options either in the optimizer object "
                             "or as arguments, not both")
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in _CLASSES:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or "
                         f"a fastnn.optim optimizer; got {optimizer!r}")
    cls, allowed = _CLASSES[optimizer]
    kwargs = {} if lr is None else {"lr": lr}
    for key, value in options.items():
        if key not in allowed:
            raise TypeError(f"optimizer {optimizer!r} takes no option {key!r}")
        kwargs[key] = value
    if cls is Momentum:
        kwargs["nesterov"] = optimizer == "nesterov"
    return cls(**kwargs)
