"""Output layers and their losses: one table, OUTPUTS, with all a model needs of each.

An output's position in OUTPUTS is its code in the compiled core (OUT_* in
fastnn/_ops.pxd, where its fused output+loss kernel lives); each Output checks its
targets, turns probabilities into predictions and scores them.
"""
import numpy as np

from fastnn import _checks as check

__all__ = ["Output", "OUTPUTS"]


class Output:
    """An output layer with its loss.

    Attributes
    ----------
    name : str
        The name MLP's output= takes.
    loss : str
        The loss it trains, in words.
    code : int
        Its number in the compiled core.
    """
    name = loss = None
    code = -1

    def __repr__(self):
        return f"<output {self.name!r}: {self.loss}>"

    def targets(self, y, m, k, dtype, name):
        """Check targets for this output and convert them as the engine takes them.

        inputs.targets calls it after its own checks, so y is already known to
        be numeric, finite and m rows long.

        Parameters
        ----------
        y : numpy.ndarray
            The targets as the user gave them: m rows of booleans, integers or
            floats.
        m : int
            The number of samples.
        k : int
            The number of output units.
        dtype : numpy.dtype
            The model's float dtype, float32 or float64.
        name : str
            The name the error messages give y.

        Returns
        -------
        numpy.ndarray
            C-contiguous float targets (m, k) of dtype, or for softmax labels
            np.intp class indices (m,).

        Raises
        ------
        ValueError
            If y's shape or values do not fit this output (in the subclasses).
        NotImplementedError
            Always, in this base class.
        """
        raise NotImplementedError

    def predict(self, out):
        """Turn the output layer's values into predictions.

        The base class predicts the values themselves, as a regression does.

        Parameters
        ----------
        out : numpy.ndarray of shape (m, k), or (m,) for one unit
            What the output layer computed (MLP.predict_proba).

        Returns
        -------
        numpy.ndarray
            The predictions: here out itself, not a copy.
        """
        return out

    def score(self, pred, targets, weights=None):
        """Score predictions against the true targets; higher is better.

        Parameters
        ----------
        pred : numpy.ndarray
            m predictions, as predict returns them.
        targets : numpy.ndarray
            The true targets of the same m samples, as the targets method
            returns them.
        weights : numpy.ndarray of shape (m,), optional
            The samples' weights (non-negative, not all 0).

        Returns
        -------
        float
            The score: accuracy in [0, 1] for a classifier, R^2 (at most 1) for
            a regression.

        Raises
        ------
        NotImplementedError
            Always, in this base class.
        """
        raise NotImplementedError


def _float_targets(y, m, k, dtype, name, binary=False):
    """y as float targets (m, k): (m,) is accepted for one output unit; with binary,
    only 0/1 values (checked before the cast, so a value out of dtype's range is
    reported as such)."""
    wanted = ((m,), (m, k)) if k == 1 else ((m, k),)
    if y.shape not in wanted:
        shapes = " or ".join(map(str, wanted))
        raise ValueError(f"{name} must have shape {shapes} for {k} output unit"
                         f"{'s' if k > 1 else ''}; got {y.shape}")
    if binary and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output; got "
                         f"values {np.unique(y[~np.isin(y, (0, 1))])[:5]}")
    return np.ascontiguousarray(check.cast(name, y, dtype).reshape(m, k))


class Sigmoid(Output):
    """sigmoid + binary cross-entropy: 0/1 labels (m, k), or (m,) for one unit."""
    name, loss, code = "sigmoid", "binary cross-entropy", 0

    def targets(self, y, m, k, dtype, name):
        """Float 0/1 targets (m, k) of dtype; ValueError for any other value."""
        return _float_targets(y, m, k, dtype, name, binary=True)

    def predict(self, out):
        """0/1 labels, 1 where out > 0.5: np.intp, of out's shape."""
        return (out > 0.5).astype(np.intp)

    def score(self, pred, targets, weights=None):
        """Accuracy: the (weighted) fraction of samples with every output unit right."""
        right = pred.reshape(targets.shape) == targets
        return float(np.average(right.all(axis=1), weights=weights))


class Softmax(Output):
    """softmax + cross-entropy: class labels (m,) or probability rows (m, k)."""
    name, loss, code = "softmax", "cross-entropy", 1

    def targets(self, y, m, k, dtype, name):
        """Labels (m,) in [0, k) as np.intp, or probability rows (m, k) of dtype."""
        if y.ndim == 1:
            if y.dtype.kind == "f" and (np.floor(y) != y).any():
                raise ValueError(f"{name} must hold integer class labels in "
                                 f"[0, {k}) or one-hot rows; got non-integer values")
            outside = (y < 0) | (y >= k)  # before the cast, which could wrap or overflow
            if outside.any():
                first = int(np.flatnonzero(outside)[0])
                raise ValueError(f"{name} must be class labels in [0, {k}) for a "
                                 f"softmax of {k} units; {name}[{first}] = {y[first]}")
            return np.ascontiguousarray(y.astype(np.intp))
        if y.shape != (m, k):
            raise ValueError(f"{name} must be labels (m,) or one-hot rows (m, {k}); "
                             f"got shape {y.shape}")
        if (y < 0).any() or (y > 1).any() or not np.allclose(y.sum(axis=1), 1):
            raise ValueError(f"{name}'s rows must be probabilities (in [0, 1], "
                             f"summing to 1), such as one-hot rows")
        return np.ascontiguousarray(check.cast(name, y, dtype))

    def predict(self, out):
        """The class of each row's largest probability: np.intp labels (m,)."""
        return out.argmax(axis=1)

    def score(self, pred, targets, weights=None):
        """Accuracy against the labels (the argmax of each row for probability rows),
        weighted by weights when given."""
        truth = targets if targets.ndim == 1 else targets.argmax(axis=1)
        return float(np.average(pred == truth, weights=weights))


class Identity(Output):
    """identity + mean squared error: real targets (m,) or (m, k); scored by R^2."""
    name, loss, code = "identity", "mean squared error", 2

    def targets(self, y, m, k, dtype, name):
        """Any real targets as floats (m, k) of dtype; only the shape is checked."""
        return _float_targets(y, m, k, dtype, name)

    def score(self, pred, targets, weights=None):
        """R^2 averaged over outputs, as scikit-learn's r2_score.

        R^2 = 1 - sum w (t - pred)^2 / sum w (t - mean_w t)^2 per output (w = 1
        without weights); an output whose targets are constant scores 1 if
        predicted exactly, else 0.
        """
        pred = pred.reshape(targets.shape)
        w = np.ones((len(targets), 1)) if weights is None else weights.reshape(-1, 1)
        residual = (w * (targets - pred) ** 2).sum(axis=0)
        mean = np.average(targets, axis=0, weights=w.ravel())
        total = (w * (targets - mean) ** 2).sum(axis=0)
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                      np.where(residual > 0, 0.0, 1.0))
        return float(np.mean(r2))


class Poisson(Identity):
    """exp + Poisson deviance (log link): counts or rates y >= 0 (m,) or (m, k);
    predictions exp(z); scored by R^2, as scikit-learn's regressors."""
    name, loss, code = "poisson", "Poisson deviance", 3

    def targets(self, y, m, k, dtype, name):
        """Non-negative real targets as floats (m, k) of dtype."""
        if (y < 0).any():
            first = int(np.flatnonzero(np.ravel(y < 0))[0])
            raise ValueError(f"{name} must be >= 0 for a Poisson output; got "
                             f"{np.ravel(y)[first]} at flat index {first}")
        return _float_targets(y, m, k, dtype, name)


#: Output layers by name, in the order of their codes.
OUTPUTS = {output.name: output
           for output in (Sigmoid(), Softmax(), Identity(), Poisson())}
