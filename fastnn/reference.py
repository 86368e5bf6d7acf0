"""The NumPy twin of every compiled kernel: same names, same arguments, same outputs.

Written the way a careful NumPy user would write them (vectorised, in place where
NumPy allows, stable formulas), because this module is both the oracle the tests
compare fastnn.kernels against and the baseline every speed claim is measured
against. It does not check its arguments.
"""
import math

import numpy as np
from scipy.special import expit, xlogy

from fastnn._layout import layer_views


def activation_forward(Z, A, activation, negative_slope=0.01):
    """Apply an activation elementwise in NumPy: A = g(Z).

    A = g(Z) for identity, sigmoid, tanh, relu or leaky_relu (z for z > 0, else
    negative_slope z). The twin of fastnn.kernels.activation_forward, without its
    argument checks.

    Parameters
    ----------
    Z : numpy.ndarray
        Pre-activations, any shape, float32 or float64.
    A : numpy.ndarray
        Where g(Z) goes, written in place: Z's shape and dtype. May be Z itself.
    activation : {"identity", "sigmoid", "tanh", "relu", "leaky_relu"}
        The activation g, by name.
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0; ignored by the other activations.

    Raises
    ------
    ValueError
        If activation is none of the five names (A is then left as it was).
    """
    if activation == "identity":
        np.copyto(A, Z)
    elif activation == "sigmoid":
        expit(Z, out=A)
    elif activation == "tanh":
        np.tanh(Z, out=A)
    elif activation == "relu":
        np.maximum(Z, 0, out=A)
    elif activation == "leaky_relu":
        np.copyto(A, np.where(Z > 0, Z, Z * negative_slope))
    else:
        raise ValueError(f"unknown activation {activation!r}")


def _derivative(Z, A, activation, negative_slope):
    """g'(Z) as a new array (1 for identity); sigmoid and tanh from the cache A = g(Z)."""
    if activation == "identity":
        return 1
    if activation == "sigmoid":
        return A * (1 - A)
    if activation == "tanh":
        return 1 - A * A
    if activation == "relu":
        return Z > 0
    if activation == "leaky_relu":
        return np.where(Z > 0, 1, negative_slope)
    raise ValueError(f"unknown activation {activation!r}")


def activation_derivative(Z, A, out, activation, negative_slope=0.01):
    """The activation's derivative elementwise, in NumPy: out = g'(Z).

    sigmoid' = A (1 - A) and tanh' = 1 - A^2 from the cached A = g(Z); identity's is
    1, relu'(0) = 0 and leaky_relu'(0) = negative_slope (z = 0 takes the z < 0
    branch). The twin of fastnn.kernels.activation_derivative; nothing is checked.

    Parameters
    ----------
    Z : numpy.ndarray
        The pre-activations, of any shape, float32 or float64.
    A : numpy.ndarray
        The cache g(Z), Z's shape and dtype; only sigmoid and tanh read it.
    out : numpy.ndarray
        Receives g'(Z) in place; Z's shape and dtype.
    activation : {"identity", "sigmoid", "tanh", "relu", "leaky_relu"}
        The activation g whose derivative is taken.
    negative_slope : float, default=0.01
        Leaky ReLU's slope, its derivative for z <= 0.

    Raises
    ------
    ValueError
        If activation is unknown; out is not written then.
    """
    np.copyto(out, _derivative(Z, A, activation, negative_slope))


def dense_forward(A_prev, W, b, Z, A, activation, negative_slope=0.01):
    """Forward pass of a dense layer in NumPy: Z = A_prev W^T + b, A = g(Z).

    One matmul into Z, the bias added in place, then activation_forward. Samples
    are rows. The twin of fastnn.kernels.dense_forward, minus its checks.

    Parameters
    ----------
    A_prev : numpy.ndarray of shape (m, n_in)
        The layer's input, float32 or float64.
    W : numpy.ndarray of shape (n_out, n_in)
        The weights, in A_prev's dtype.
    b : numpy.ndarray of shape (n_out,)
        The biases, in A_prev's dtype.
    Z : numpy.ndarray of shape (m, n_out)
        Written in place: the pre-activations, the cache dense_backward reads.
    A : numpy.ndarray of shape (m, n_out)
        Written in place: the activations g(Z). May be Z when Z is not needed.
    activation : {"identity", "sigmoid", "tanh", "relu", "leaky_relu"}
        The activation g.
    negative_slope : float, default=0.01
        The slope of leaky ReLU for z < 0.

    Raises
    ------
    ValueError
        If activation is unknown (Z has been written by then, A has not).
    """
    np.matmul(A_prev, W.T, out=Z)
    Z += b
    activation_forward(Z, A, activation, negative_slope)


def dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                   negative_slope=0.01):
    """Backprop through a dense layer in NumPy, from the forward pass's cache.

    dZ = dA g'(Z) (dZ may be dA), dW = dZ^T A_prev, db = sum of dZ's rows,
    dA_prev = dZ W (if given). No 1/m is added here: the output kernels put it in
    dZ. All arrays share one dtype, float32 or float64; outputs are written in
    place. The twin of fastnn.kernels.dense_backward, which checks what this takes
    on trust.

    Parameters
    ----------
    dA : numpy.ndarray of shape (m, n_out)
        The loss's gradient with respect to the layer's output A.
    Z, A : numpy.ndarray of shape (m, n_out)
        The forward pass's pre-activations and its activations g(Z).
    A_prev : numpy.ndarray of shape (m, n_in)
        The layer's input in the forward pass.
    W : numpy.ndarray of shape (n_out, n_in)
        The layer's weights.
    dZ : numpy.ndarray of shape (m, n_out)
        Receives dA g'(Z); may be dA itself.
    dW : numpy.ndarray of shape (n_out, n_in)
        Receives the gradient of the weights.
    db : numpy.ndarray of shape (n_out,)
        Receives the gradient of the biases.
    dA_prev : numpy.ndarray of shape (m, n_in) or None
        Receives the gradient of the input; None skips that product (the first
        layer has no use for it).
    activation : {"identity", "sigmoid", "tanh", "relu", "leaky_relu"}
        The forward pass's activation g.
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0, the forward pass's.

    Raises
    ------
    ValueError
        If activation is unknown; no output is written then.
    """
    np.multiply(dA, _derivative(Z, A, activation, negative_slope), out=dZ)
    np.matmul(dZ.T, A_prev, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dA_prev is not None:
        np.matmul(dZ, W, out=dA_prev)


def _row_mean(loss, dZ, sample_weight):
    """Weight the elementwise losses (and dZ, the gradient of their plain mean over
    all elements) by rows: returns sum_i w_i mean_j loss_ij / sum_i w_i, and rescales
    dZ to that weighted mean's gradient. Without weights, the plain mean."""
    if sample_weight is None:
        return float(np.mean(loss))
    rows = loss.reshape(len(sample_weight), -1)
    w = sample_weight.astype(np.float64)
    dZ *= (sample_weight * (len(sample_weight) / w.sum())).astype(dZ.dtype).reshape(
        (-1,) + (1,) * (dZ.ndim - 1))
    return float(np.sum(w * rows.mean(axis=1)) / w.sum())


def sigmoid_binary_cross_entropy(Z, Y, A, dZ, sample_weight=None):
    """Sigmoid output with binary cross-entropy from logits, in NumPy.

    Mean over all elements of max(z, 0) - z y + log(1 + e^-|z|) (= log(1 + e^z) - z y);
    A = sigmoid(Z), dZ = (A - Y) / Z.size. With sample_weight (one per row of Z), the
    mean over rows is weighted. The twin of fastnn.kernels.sigmoid_binary_cross_entropy;
    its arguments go unchecked.

    Parameters
    ----------
    Z : numpy.ndarray
        Logits, any shape, float32 or float64.
    Y : numpy.ndarray
        Targets, 0/1 labels or probabilities, in Z's shape and dtype.
    A : numpy.ndarray
        Written in place: sigmoid(Z), in Z's shape and dtype.
    dZ : numpy.ndarray
        Written in place: the mean loss's gradient with respect to Z, like A.
    sample_weight : numpy.ndarray of shape (Z.shape[0],), optional
        Row weights in Z's dtype.

    Returns
    -------
    loss : float
        The (weighted) mean binary cross-entropy.
    """
    expit(Z, out=A)
    np.subtract(A, Y, out=dZ)
    dZ /= Z.size
    loss = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    return _row_mean(loss, dZ, sample_weight)


def softmax_cross_entropy(Z, Y, P, dZ, sample_weight=None):
    """Softmax output with cross-entropy (log-sum-exp) in NumPy, mean over the m rows.

    Mean over rows of lse(z) - z[y] (Y integer labels) or sum_j Y_j (lse(z) - z_j).
    P = softmax(Z), dZ = (P sum_j Y_j - Y) / m; with labels Y is one-hot. With
    sample_weight the mean over rows is weighted.
    The twin of fastnn.kernels.softmax_cross_entropy, unchecked: here a 1-D Y is
    read as labels, where the checked kernel goes by Y's dtype.

    Parameters
    ----------
    Z : numpy.ndarray of shape (m, k)
        Logits, float32 or float64.
    Y : numpy.ndarray of shape (m,) or (m, k)
        Integer class labels in [0, k), or target rows in Z's dtype (one-hot or
        probabilities).
    P : numpy.ndarray of shape (m, k)
        Written in place: softmax(Z), in Z's dtype.
    dZ : numpy.ndarray of shape (m, k)
        Written in place: the mean loss's gradient with respect to Z.
    sample_weight : numpy.ndarray of shape (m,), optional
        Row weights in Z's dtype.

    Returns
    -------
    loss : float
        The cross-entropy, averaged over the m rows (weighted).

    Raises
    ------
    IndexError
        If Y is 1-D with a float dtype, or holds a label >= k or < -k
        (a label in [-k, 0) is not refused: it counts from the end).
    """
    m = Z.shape[0]
    rows, top = np.arange(m), np.argmax(Z, axis=1)  # each row's first maximum
    shifted = Z - Z[rows, top][:, None]
    np.exp(shifted, out=P)
    # the sum of e^shifted is 1 (the first maximum's) + the rest, summed apart: the
    # log-sum-exp as log1p(rest) keeps a loss near 0 to its last bits
    e_top = P[rows, top]
    P[rows, top] = 0
    rest = P.sum(axis=1, keepdims=True)
    P[rows, top] = e_top
    P /= 1 + rest
    log_p = shifted - np.log1p(rest)
    if Y.ndim == 1:
        np.divide(P, m, out=dZ)
        dZ[rows, Y] -= 1 / m
        return _row_mean(-log_p[rows, Y], dZ, sample_weight)
    np.multiply(P, Y.sum(axis=1, keepdims=True), out=dZ)
    dZ -= Y
    dZ /= m
    return _row_mean(-np.sum(Y * log_p, axis=1), dZ, sample_weight)


def mean_squared_error(Z, Y, A, dZ, sample_weight=None):
    """Identity output with mean squared error over all elements, in NumPy.

    Mean over all elements of (Z - Y)^2; A = Z, dZ = 2 (Z - Y) / Z.size; with
    sample_weight the mean over rows is weighted. The twin of
    fastnn.kernels.mean_squared_error, with no checks of its own.

    Parameters
    ----------
    Z : numpy.ndarray
        Predictions of any shape, float32 or float64.
    Y : numpy.ndarray
        The targets, of Z's shape and dtype.
    A : numpy.ndarray
        Receives a copy of Z (same shape and dtype).
    dZ : numpy.ndarray
        Receives 2 (Z - Y) / Z.size, like A.
    sample_weight : numpy.ndarray of shape (Z.shape[0],), optional
        Row weights in Z's dtype.

    Returns
    -------
    loss : float
        The (weighted) mean squared error.
    """
    np.copyto(A, Z)
    np.subtract(Z, Y, out=dZ)
    loss = dZ.astype(np.float64) ** 2
    dZ *= 2 / Z.size
    return _row_mean(loss, dZ, sample_weight)


def poisson_deviance(Z, Y, A, dZ, sample_weight=None):
    """exp output with the Poisson deviance / 2 (log link), in NumPy.

    Mean over all elements of exp(z) - y z + y log y - y (y log y = 0 at y = 0);
    A = exp(Z), dZ = (A - Y) / Z.size; with sample_weight the mean over rows is
    weighted. The twin of the engine's poisson output.

    Parameters
    ----------
    Z : numpy.ndarray
        Logits (log-predictions) of any shape, float32 or float64.
    Y : numpy.ndarray
        Targets >= 0, of Z's shape and dtype.
    A : numpy.ndarray
        Receives exp(Z).
    dZ : numpy.ndarray
        Receives the gradient, like A.
    sample_weight : numpy.ndarray of shape (Z.shape[0],), optional
        Row weights in Z's dtype.

    Returns
    -------
    loss : float
        The (weighted) mean deviance / 2.
    """
    np.exp(Z, out=A)
    np.subtract(A, Y, out=dZ)
    dZ /= Z.size
    y = Y.astype(np.float64)
    loss = A - y * Z + xlogy(y, y) - y
    return _row_mean(loss, dZ, sample_weight)


def sgd_update(param, grad, lr, weight_decay=0.0):
    """Plain SGD step in place, in NumPy: param -= lr (grad + weight_decay param).

    weight_decay is L2 regularisation, the gradient of 0.5 wd ||param||^2. The
    twin of fastnn.kernels.sgd_update, which checks what this one does not.

    Parameters
    ----------
    param : numpy.ndarray
        Parameters of any shape, float32 or float64; updated in place.
    grad : numpy.ndarray
        Their gradient, in param's shape and dtype.
    lr : float
        The learning rate, > 0.
    weight_decay : float, default=0.0
        The L2 coefficient, >= 0 (0 for biases).
    """
    param -= lr * (grad + weight_decay * param)


def momentum_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0,
                    nesterov=False):
    """Momentum SGD in PyTorch's form, in place, in NumPy.

    g = grad + wd param; velocity = momentum velocity + g; param -= lr velocity
    (Nesterov: param -= lr (g + momentum velocity)). The twin of
    fastnn.kernels.momentum_update; no argument is checked.

    Parameters
    ----------
    param : numpy.ndarray
        The parameters, float32 or float64; updated in place.
    grad : numpy.ndarray
        Their gradient, in param's shape and dtype.
    velocity : numpy.ndarray
        The velocity state, in param's shape and dtype; updated in place.
    lr : float
        Learning rate, > 0.
    momentum : float, default=0.9
        The momentum coefficient, in [0, 1].
    weight_decay : float, default=0.0
        L2 coefficient, >= 0.
    nesterov : bool, default=False
        Nesterov's variant (here any true value selects it).
    """
    g = grad + weight_decay * param
    velocity *= momentum
    velocity += g
    if nesterov:
        param -= lr * (g + momentum * velocity)
    else:
        param -= lr * velocity


def adam_update(param, grad, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """Adam at step t >= 1 with bias correction (PyTorch's arithmetic), in NumPy.

    g = grad + wd param;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    param -= lr / (1 - beta1^t) * m / (sqrt(v) (1 / sqrt(1 - beta2^t)) + eps).
    The twin of fastnn.kernels.adam_update, without its argument checks.

    Parameters
    ----------
    param : numpy.ndarray
        Parameters, float32 or float64, updated in place.
    grad : numpy.ndarray
        The gradient, in param's shape and dtype.
    m, v : numpy.ndarray
        First and second moments, in param's shape and dtype; updated in place.
    t : int
        The step number, counted from 1.
    lr : float, default=0.001
        Learning rate, > 0.
    beta1, beta2 : float, default=0.9 and 0.999
        Decay rates of the two moments, in [0, 1).
    eps : float, default=1e-8
        Added to the bias-corrected sqrt(v), > 0.
    weight_decay : float, default=0.0
        L2 coefficient, >= 0.

    Raises
    ------
    ZeroDivisionError
        If 1 - beta1^t is 0 (t = 0, or beta1 = 1) while lr and beta1 are Python
        floats; m and v have been updated by then, param has not.
    """
    g = grad + weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = np.sqrt(v)
    denom *= 1 / math.sqrt(1 - beta2 ** t)
    denom += eps
    param -= (lr / (1 - beta1 ** t)) * m / denom


class Engine:
    """The NumPy twin of the compiled engine (fastnn._engine.Engine): a whole MLP.

    The MLP lives in one flat parameter vector (W then b, layer after layer) and is
    composed from the kernels above, with the same methods and the same results.
    It takes names where the compiled engine takes codes, and checks nothing.
    Buffers are allocated once per batch size and reused, as a careful NumPy user
    would: unlike the compiled engine, one instance is for one thread at a time.

    Parameters
    ----------
    params : numpy.ndarray
        The flat parameters, 1-D, float32 or float64, worked on in place.
    sizes : sequence of int
        The layer widths, input first.
    activations : sequence of str
        Every layer's activation by name; the output layer's is "identity" (logits).
    output : {"sigmoid", "softmax", "identity", "poisson"}
        The output layer and its loss.
    negative_slope : float
        Leaky ReLU's slope.

    Attributes
    ----------
    params, sizes, activations, output, slope
        The arguments as given (params itself, not a copy; slope is negative_slope).
    layers : list of tuple of numpy.ndarray
        Each layer's (W, b): views into params, W (n_out, n_in) and b (n_out,).

    Raises
    ------
    ValueError
        If params is shorter than the widths need (the sum of n_out (n_in + 1)).
    """

    def __init__(self, params, sizes, activations, output, negative_slope):
        self.activations = list(activations)
        self.output = output
        self.slope = negative_slope
        self.params = params
        self.sizes = list(sizes)
        self.layers = layer_views(params, self.sizes)
        self._buffers = {}

    @classmethod
    def twin_of(cls, net):
        """A twin of a fastnn.MLP over a copy of its parameters.

        Parameters
        ----------
        net : fastnn.MLP
            The model to mirror: its widths, activations, output, slope and
            parameters (read through its state_dict).

        Returns
        -------
        Engine
            Its `params` is the copy, which the twin's steps update; net itself is
            left as it was.
        """
        params = np.concatenate([value.ravel() for value in net.state_dict().values()])
        return cls(params, net.layer_sizes, list(net.activations) + ["identity"],
                   net.output, net.negative_slope)

    def _cache(self, m):
        if m not in self._buffers:
            dtype = self.params.dtype
            self._buffers[m] = [(np.empty((m, n), dtype), np.empty((m, n), dtype),
                                 np.empty((m, n), dtype)) for n in self.sizes[1:]]
        return self._buffers[m]

    def _forward(self, X):
        cache = self._cache(X.shape[0])
        A_prev = X
        for (W, b), (Z, A, _), act in zip(self.layers, cache, self.activations):
            dense_forward(A_prev, W, b, Z, A, act, self.slope)
            A_prev = A
        return cache

    def predict(self, X, out=None):
        """out (m, k) = the output's probabilities or values for X; returns out.

        Parameters
        ----------
        X : numpy.ndarray of shape (m, n_in)
            Samples as rows, in params' dtype.
        out : numpy.ndarray of shape (m, k) or None, default=None
            Where the output is written, in params' dtype; None makes a new array.

        Returns
        -------
        out : numpy.ndarray of shape (m, k)
            Sigmoid or softmax probabilities, or the identity output's values.

        Raises
        ------
        ValueError
            If one of the activation names is unknown.
        """
        Z = self._forward(X)[-1][0]
        out = np.empty_like(Z) if out is None else out
        if self.output == "softmax":
            softmax_cross_entropy(Z, np.zeros(len(Z), np.intp), out, np.empty_like(Z))
        elif self.output == "poisson":
            np.exp(Z, out=out)
        else:
            activation_forward(Z, out, "sigmoid" if self.output == "sigmoid" else "identity")
        return out

    def loss(self, X, Y, weights=None, weight_decay=0.0):
        """The mean loss on (X, Y), forward only, plus 0.5 weight_decay sum ||W||^2.

        Parameters
        ----------
        X : numpy.ndarray of shape (m, n_in)
            The samples, in params' dtype.
        Y : numpy.ndarray of shape (m, k), or (m,) for softmax
            Float targets in params' dtype, or integer labels for a softmax output.
        weights : numpy.ndarray of shape (m,), optional
            Row weights in params' dtype: the mean over rows is weighted.
        weight_decay : float, default=0.0
            The L2 penalty's factor.

        Returns
        -------
        loss : float
            The output's (weighted) mean loss plus the penalty.

        Raises
        ------
        ValueError
            If an activation name is unknown.
        """
        Z, A, dZ = self._forward(X)[-1]
        return (_LOSSES[self.output](Z, Y, A, dZ, weights)
                + _penalty(self.layers, weight_decay))

    def loss_and_gradients(self, X, Y, grads, weights=None, weight_decay=0.0):
        """The loss on (X, Y) as `loss` computes it; its gradient (params' layout)
        into grads.

        The forward pass, the output's loss, then dense_backward from the output
        layer down; weight_decay W is added to each dW.

        Parameters
        ----------
        X, Y : numpy.ndarray
            The samples (m, n_in) and their targets, as `loss` takes them.
        grads : numpy.ndarray
            1-D, of params' length and dtype: receives the gradient, in params'
            layout (W then b, layer after layer).
        weights, weight_decay
            As `loss` takes them.

        Returns
        -------
        float
            The mean loss, as `loss` computes it.

        Raises
        ------
        ValueError
            If a layer names an activation the kernels do not know.
        """
        cache = self._forward(X)
        Z, A, dZ = cache[-1]
        loss = (_LOSSES[self.output](Z, Y, A, dZ, weights)
                + _penalty(self.layers, weight_decay))
        dA = dZ
        grad_views = layer_views(grads, self.sizes)
        for l in range(len(self.layers) - 1, -1, -1):
            W, _ = self.layers[l]
            dW, db = grad_views[l]
            Z, A, dZ = cache[l]
            A_prev = X if l == 0 else cache[l - 1][1]
            dA_prev = None if l == 0 else cache[l - 1][2]
            dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, self.activations[l],
                           self.slope)
            dW += (weight_decay * W).astype(W.dtype)
            dA = dA_prev
        return loss

    def updater(self, settings):
        """Bind a fit's settings to the twin, for step; unlike the compiled updater,
        it checks nothing.

        Parameters
        ----------
        settings : fastnn.model.training.TrainingSettings
            Or any object with `optimizer`, `weight_decay`, `decay_per_sample` and
            `state` (an OptimizerState in params' layout and dtype).

        Returns
        -------
        update : tuple
            (settings, grads): settings itself, and the twin's own gradient buffer.
        """
        return settings, np.zeros_like(self.params)

    def step(self, X, Y, update, weights=None):
        """One training step in place, as the compiled engine's (same returns).

        Forward, loss, backward, then the optimizer's update of every layer (weight
        decay on W, not on b; divided by the batch's total weight when
        decay_per_sample). state.steps[0] is incremented just before the update,
        so Adam's t is the new count. A batch whose weights sum to 0 changes
        nothing and returns 0.0.

        Parameters
        ----------
        X : numpy.ndarray of shape (m, n_in)
            The batch, in params' dtype.
        Y : numpy.ndarray
            Its targets, as `loss` takes them.
        update : tuple
            What `updater` returned.
        weights : numpy.ndarray of shape (m,), optional
            Row weights, as `loss` takes them.

        Returns
        -------
        float
            loss + 0.5 weight_decay sum ||W||^2 (the penalty summed in float64).
            If that is not finite it is returned with nothing updated; if only a
            gradient is not finite, NaN, with nothing updated either; -inf if the
            update was made and left a parameter that is not finite.

        Raises
        ------
        ValueError
            If an activation is unknown; raised before any parameter changes.
        """
        settings, grads = update
        opt, wd, state = settings.optimizer, settings.weight_decay, settings.state
        norm = len(X) if weights is None else float(np.sum(weights, dtype=np.float64))
        if norm == 0:
            return 0.0
        if settings.decay_per_sample:
            wd /= norm
        loss = self.loss_and_gradients(X, Y, grads, weights) + _penalty(self.layers, wd)
        if not np.isfinite(loss) or not np.isfinite(grads).all():
            return loss if not np.isfinite(loss) else float("nan")
        state.steps[0] += 1  # the step counter, as the compiled engine keeps it
        states = [layer_views(a, self.sizes) for a in state.arrays]
        for index, ((W, b), (dW, db)) in enumerate(zip(self.layers,
                                                       layer_views(grads, self.sizes))):
            for part, (p, g, decay) in enumerate(((W, dW, wd), (b, db, 0.0))):
                _update(opt, p, g, [s[index][part] for s in states], int(state.steps[0]),
                        decay)
        return loss if np.isfinite(self.params).all() else -np.inf


#: The output+loss kernel of each output, by name.
_LOSSES = {"sigmoid": sigmoid_binary_cross_entropy, "softmax": softmax_cross_entropy,
           "identity": mean_squared_error, "poisson": poisson_deviance}


def _penalty(layers, weight_decay):
    """0.5 weight_decay sum ||W||^2 over the layers' (W, b), summed in float64."""
    return 0.5 * weight_decay * sum(float(np.sum(W.astype(np.float64) ** 2))
                                    for W, _ in layers)


def _update(opt, p, g, states, t, weight_decay):
    """One optimizer update of parameter p by name: sgd, momentum, nesterov or adam."""
    if opt.name == "sgd":
        sgd_update(p, g, opt.lr, weight_decay)
    elif opt.name == "adam":
        adam_update(p, g, states[0], states[1], t, opt.lr, opt.beta1, opt.beta2, opt.eps,
                    weight_decay)
    else:
        momentum_update(p, g, states[0], opt.lr, opt.momentum, weight_decay,
                        opt.name == "nesterov")
