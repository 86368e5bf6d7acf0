"""Optimizer configurations. The arithmetic lives in the compiled kernels
(fastnn.kernels.*_update and the training step); these classes only hold and check
the hyper-parameters. Weight decay is a separate argument of MLP.fit, applied as
L2 regularisation to weights, never to biases.
"""
from dataclasses import dataclass

from fastnn import _checks as check

__all__ = ["SGD", "Momentum", "Adam", "make_optimizer", "OPTIMIZERS"]


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent: W -= lr dW."""
    lr: float = 0.01
    name = "sgd"
    n_states = 0

    def __post_init__(self):
        object.__setattr__(self, "lr", check.real("lr", self.lr, 0, low_open=True))

    def hyper(self):
        """(momentum, beta1, beta2, eps) as the compiled step takes them."""
        return 0.0, 0.0, 0.0, 0.0


@dataclass(frozen=True)
class Momentum(SGD):
    """Momentum in PyTorch's form: v = momentum v + dW; W -= lr v.

    nesterov=True: W -= lr (dW + momentum v). Equivalent, for a fixed lr, to the
    course's v = beta v + (1 - beta) dW with the lr rescaled by 1 / (1 - beta).
    """
    momentum: float = 0.9
    nesterov: bool = False
    n_states = 1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "momentum", check.real("momentum", self.momentum, 0, 1))
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"nesterov must be True or False; got {self.nesterov!r}")

    @property
    def name(self):
        return "nesterov" if self.nesterov else "momentum"

    def hyper(self):
        return self.momentum, 0.0, 0.0, 0.0


@dataclass(frozen=True)
class Adam(SGD):
    """Adam (Kingma and Ba, 2015) with bias correction, PyTorch's arithmetic."""
    lr: float = 0.001
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name = "adam"
    n_states = 2

    def __post_init__(self):
        super().__post_init__()
        for name in ("beta1", "beta2"):
            object.__setattr__(self, name, check.real(name, getattr(self, name), 0, 1,
                                                      high_open=True))
        object.__setattr__(self, "eps", check.real("eps", self.eps, 0, low_open=True))

    def hyper(self):
        return 0.0, self.beta1, self.beta2, self.eps


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


def make_optimizer(optimizer, lr=None, **options):
    """An optimizer from a name ("sgd", "momentum", "nesterov", "adam") or an instance.

    lr=None keeps the default: 0.01, or 0.001 for Adam. options: momentum (0.9) for
    momentum and nesterov; beta1, beta2, eps for Adam.
    """
    if isinstance(optimizer, SGD):
        if lr is not None or options:
            raise ValueError("pass lr and other options either in the optimizer object "
                             "or as arguments, not both")
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))} or "
                         f"a fastnn.optim optimizer; got {optimizer!r}")
    kwargs = {} if lr is None else {"lr": lr}
    allowed = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
               "adam": ("beta1", "beta2", "eps")}[optimizer]
    for key, value in options.items():
        if key not in allowed:
            raise TypeError(f"optimizer {optimizer!r} takes no option {key!r}")
        kwargs[key] = value
    if optimizer == "sgd":
        return SGD(**kwargs)
    if optimizer == "adam":
        return Adam(**kwargs)
    return Momentum(nesterov=optimizer == "nesterov", **kwargs)
