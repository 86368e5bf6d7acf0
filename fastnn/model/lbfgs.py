"""Full-batch training with L-BFGS: scipy.optimize.minimize(method="L-BFGS-B") over
the compiled loss and gradients, one compiled call per evaluation (one per chunk of
rows for a sparse X, which is never densified whole)."""
import math

import numpy as np
import scipy.optimize

from fastnn import _checks as check
from fastnn.model import inputs
from fastnn.model.training import DivergenceError, record

__all__ = ["LBFGS", "minimize_lbfgs"]

#: Rows of a sparse X densified at a time for one evaluation.
_SPARSE_CHUNK = 1024


def minimize_lbfgs(engine, X, targets, weights, weight_decay, max_iter, max_fun, tol,
                   on_iteration):
    """Minimise loss + 0.5 weight_decay sum ||W||^2 over the engine's parameters.

    Parameters
    ----------
    engine : fastnn._engine.Engine
        The model's engine; its parameters are the starting point and receive the
        result (each evaluation assigns scipy's point into the model's buffer; an
        interrupt leaves the last iterate scipy accepted there).
    X : numpy.ndarray or inputs.SparseRows
        Checked, finite samples.
    targets : numpy.ndarray
        Their checked targets.
    weights : numpy.ndarray or None
        Checked sample weights.
    weight_decay : float
        L2 on the weights (not the biases).
    max_iter, max_fun : int
        scipy's maxiter and maxfun.
    tol : float
        scipy's gtol: stop when every projected gradient component is below it.
    on_iteration : callable
        Called with the objective after each iteration.

    Returns
    -------
    scipy.optimize.OptimizeResult
        fun is the final objective, nit the iterations, success and message
        scipy's verdict.
    """
    dtype = engine.params.dtype

    def objective(point):
        engine.assign(point.astype(dtype, copy=False))
        grads = np.empty(len(point), dtype)  # scipy keeps the arrays it is given
        loss = _loss_and_gradients(engine, X, targets, weights, grads, weight_decay)
        return loss, grads.astype(np.float64, copy=False)

    accepted = [engine.params.copy()]  # the last iterate scipy accepted

    def after_iteration(intermediate_result):
        on_iteration(float(intermediate_result.fun))
        accepted[0] = intermediate_result.x.astype(dtype)

    options = {"maxiter": max_iter, "maxfun": max_fun, "gtol": tol}
    try:
        result = scipy.optimize.minimize(
            objective, engine.params.astype(np.float64), method="L-BFGS-B", jac=True,
            options=options, callback=after_iteration)
    except KeyboardInterrupt:  # not the point being tried: the last one accepted
        engine.assign(accepted[0])
        raise
    engine.assign(result.x.astype(dtype))  # the best point, not the last tried
    return result


def _loss_and_gradients(engine, X, targets, weights, grads, weight_decay):
    """The objective and its gradient into grads; a sparse X a chunk at a time,
    the chunks' results averaged by their total weights."""
    if not isinstance(X, inputs.SparseRows):
        return engine.loss_and_gradients(X, targets, grads, weights, weight_decay)
    total = float(len(X) if weights is None else weights.sum())
    part = np.empty_like(grads)
    grads[...] = 0
    loss = 0.0
    for start, rows in X.chunks(_SPARSE_CHUNK):
        chunk = slice(start, start + len(rows))
        w = None if weights is None else weights[chunk]
        share = (len(rows) if w is None else float(w.sum())) / total
        if share == 0:
            continue
        loss += share * engine.loss_and_gradients(rows, targets[chunk], part, w,
                                                  weight_decay)
        grads += share * part
    return loss if math.isfinite(loss) else math.inf


class LBFGS:
    """MLP's full-batch L-BFGS training (a mixin of fastnn.MLP)."""

    def fit_lbfgs(self, X, y, max_iter=200, max_fun=15000, tol=1e-4, weight_decay=0.0,
                  sample_weight=None, verbose=False):
        """Train on the full batch with L-BFGS (scipy.optimize.minimize, "L-BFGS-B").

        Minimises the mean loss (weighted by sample_weight) + 0.5 weight_decay
        sum ||W||^2, one compiled loss-and-gradients call per evaluation; the
        optimizer state of fit is left alone. history["loss"] gains the objective
        after each iteration.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (m, n_features)
            A sparse X is evaluated a chunk of rows at a time.
        y : array-like
            Targets, as fit takes them.
        max_iter, max_fun : int, default=200, 15000
            The most L-BFGS iterations, and loss evaluations.
        tol : float, default=1e-4
            Stop when every component of the (projected) gradient is below tol.
        weight_decay : float, default=0.0
            L2 regularisation of the weights, not the biases.
        sample_weight : array-like of shape (m,), optional
            Non-negative weights, not all 0.
        verbose : bool, default=False
            Print the objective after each iteration.

        Returns
        -------
        scipy.optimize.OptimizeResult
            scipy's result: fun (the final objective), nit, nfev, success,
            message; x is the model's final parameters (as float64).

        Raises
        ------
        TypeError, ValueError, RuntimeError
            As fit, before anything changes.
        DivergenceError
            If the objective or the parameters stopped being finite; the model
            keeps the parameters and history it started from.
        """
        X = inputs.features(self, X, sparse=True)
        inputs.check_finite("X", X)
        targets = inputs.targets(self, y, X.shape[0])
        weights = inputs.sample_weight(self, sample_weight, X.shape[0])
        limits = (check.integer("max_iter", max_iter, 1),
                  check.integer("max_fun", max_fun, 1), check.real("tol", tol, 0))
        weight_decay = check.real("weight_decay", weight_decay, 0)
        check.cast("weight_decay", np.array(weight_decay), self.dtype)
        after = self._lbfgs_iteration(check.flag("verbose", verbose))
        with self._session("train it"):
            start = self._engine.params.copy()
            lengths = {key: len(values) for key, values in self.history.items()}
            result = minimize_lbfgs(self._engine, X, targets, weights, weight_decay,
                                    *limits, after)
            if not (math.isfinite(result.fun) and np.isfinite(self._engine.params).all()):
                self._lbfgs_undo(start, lengths)
                raise DivergenceError(f"L-BFGS ended on a non-finite objective "
                                      f"({result.fun}); the model keeps the parameters "
                                      f"and history it started from")
            return result

    def _lbfgs_undo(self, params, lengths):
        """Put back the parameters and cut the history lists to their lengths."""
        self._engine.assign(params)
        for key, values in self.history.items():
            del values[lengths[key]:]

    def _lbfgs_iteration(self, verbose):
        """What fit_lbfgs does after each iteration: record (and print) the objective."""
        def after(loss):
            epoch = len(self.history["loss"]) + 1
            self._engine.write(lambda: record(self.history, epoch, {"loss": loss}))
            if verbose:
                print(f"iteration {epoch}: loss {loss:.6g}")
        return after
