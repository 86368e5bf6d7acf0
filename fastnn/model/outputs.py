"""Output layers and their losses: one table, OUTPUTS, with all a model needs of each.

An output's position in OUTPUTS is its code in the compiled core (OUT_* in
fastnn/_ops.pxd, where its fused output+loss kernel lives); each Output checks its
targets, turns probabilities into predictions and scores them.
"""
import numpy as np

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
        """y (a numeric array of m rows) as the engine takes it: float targets (m, k)
        of dtype, or for softmax np.intp labels (m,); ValueError names `name`."""
        raise NotImplementedError

    def predict(self, out):
        """Predictions from the output's values out (m, k) (or (m,) for one unit)."""
        return out

    def score(self, pred, targets):
        """The score of pred (from predict) against checked targets (from targets)."""
        raise NotImplementedError


def _float_targets(y, m, k, dtype, name):
    """y as float targets (m, k): (m,) is accepted for one output unit."""
    wanted = ((m,), (m, k)) if k == 1 else ((m, k),)
    if y.shape not in wanted:
        shapes = " or ".join(map(str, wanted))
        raise ValueError(f"{name} must have shape {shapes} for {k} output unit"
                         f"{'s' if k > 1 else ''}; got {y.shape}")
    return np.ascontiguousarray(y.reshape(m, k), dtype=dtype)


class Sigmoid(Output):
    """sigmoid + binary cross-entropy: 0/1 labels, one per output unit."""
    name, loss, code = "sigmoid", "binary cross-entropy", 0

    def targets(self, y, m, k, dtype, name):
        targets = _float_targets(y, m, k, dtype, name)
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output; got "
                             f"values {np.unique(y[~np.isin(y, (0, 1))])[:5]}")
        return targets

    def predict(self, out):
        return (out > 0.5).astype(np.intp)

    def score(self, pred, targets):
        """Accuracy: the fraction of samples with every output unit right."""
        right = pred.reshape(targets.shape) == targets
        return float(np.mean(right.all(axis=1)))


class Softmax(Output):
    """softmax + cross-entropy: class labels (m,) or probability rows (m, k)."""
    name, loss, code = "softmax", "cross-entropy", 1

    def targets(self, y, m, k, dtype, name):
        if y.ndim == 1:
            labels = y.astype(np.intp)
            if y.dtype.kind == "f" and (labels != y).any():
                raise ValueError(f"{name} must hold integer class labels in "
                                 f"[0, {k}) or one-hot rows; got non-integer values")
            outside = (labels < 0) | (labels >= k)
            if outside.any():
                first = int(np.flatnonzero(outside)[0])
                raise ValueError(f"{name} must be class labels in [0, {k}) for a "
                                 f"softmax of {k} units; {name}[{first}] = {y[first]}")
            return np.ascontiguousarray(labels)
        if y.shape != (m, k):
            raise ValueError(f"{name} must be labels (m,) or one-hot rows (m, {k}); "
                             f"got shape {y.shape}")
        if (y < 0).any() or (y > 1).any() or not np.allclose(y.sum(axis=1), 1):
            raise ValueError(f"{name}'s rows must be probabilities (in [0, 1], "
                             f"summing to 1), such as one-hot rows")
        return np.ascontiguousarray(y, dtype=dtype)

    def predict(self, out):
        return out.argmax(axis=1)

    def score(self, pred, targets):
        truth = targets if targets.ndim == 1 else targets.argmax(axis=1)
        return float(np.mean(pred == truth))


class Identity(Output):
    """identity + mean squared error: real targets; scored by R^2."""
    name, loss, code = "identity", "mean squared error", 2

    def targets(self, y, m, k, dtype, name):
        return _float_targets(y, m, k, dtype, name)

    def score(self, pred, targets):
        """R^2 averaged over outputs, as scikit-learn's r2_score."""
        pred = pred.reshape(targets.shape)
        residual = ((targets - pred) ** 2).sum(axis=0)
        total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                      np.where(residual > 0, 0.0, 1.0))
        return float(np.mean(r2))


#: Output layers by name, in the order of their codes.
OUTPUTS = {output.name: output for output in (Sigmoid(), Softmax(), Identity())}
