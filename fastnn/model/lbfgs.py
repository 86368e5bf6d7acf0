"""Full-batch training with L-BFGS: scipy.optimize.minimize(method="L-BFGS-B") over
the compiled loss and gradients, one compiled call per evaluation (one per chunk of
rows for a sparse X, which is never densified whole)."""
import math

import numpy as np
import scipy.optimize

from fastnn.model import inputs

__all__ = ["minimize_lbfgs"]

#: Rows of a sparse X densified at a time for one evaluation.
_SPARSE_CHUNK = 1024


def minimize_lbfgs(engine, X, targets, weights, weight_decay, max_iter, max_fun, tol,
                   on_iteration):
    """Minimise loss + 0.5 weight_decay sum ||W||^2 over the engine's parameters.

    Parameters
    ----------
    engine : fastnn._engine.Engine
        The model's engine; its parameters are the starting point and receive the
        result (each evaluation assigns scipy's point into the model's buffer).
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

    options = {"maxiter": max_iter, "maxfun": max_fun, "gtol": tol}
    result = scipy.optimize.minimize(
        objective, engine.params.astype(np.float64), method="L-BFGS-B", jac=True,
        options=options, callback=lambda intermediate_result: on_iteration(
            float(intermediate_result.fun)))
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
