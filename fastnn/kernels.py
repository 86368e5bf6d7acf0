"""The compiled kernels, with every argument checked.

Each function here has a twin of the same name and arguments in fastnn.reference.
Arrays are float32 or float64, all of one dtype per call (never cast silently);
inputs are made C-contiguous (a copy only when they are not), outputs must be
C-contiguous and writeable and are written in place. Samples are rows: a dense
layer holds W (n_out, n_in) and b (n_out,) and computes Z = A_prev W^T + b.
Gradients are of the mean loss over the batch: the output kernels put the 1/m in
dZ, and dense_backward adds none. Every scalar argument (lr, momentum, beta1, beta2,
eps, weight_decay, negative_slope) is checked in the arrays' dtype too: a value that
overflows it, or that is not 0 and becomes 0 in it, is refused with a ValueError
naming the argument.
"""
import ctypes

from fastnn import _checks as check
from fastnn import _kernels
from fastnn.activations import DEFAULT_NEGATIVE_SLOPE, activation_code, check_negative_slope

__all__ = [
    "activation_forward", "activation_derivative", "dense_forward", "dense_backward",
    "sigmoid_binary_cross_entropy", "softmax_cross_entropy", "mean_squared_error",
    "sgd_update", "momentum_update", "adam_update",
]

#: The largest step count t that adam_update's compiled kernel takes (a C long).
_C_LONG_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1

_SOFTMAX = _kernels.OUTPUTS["softmax"]


def _scalar(name, value, dtype, low, high=None, low_open=False, high_open=False):
    """A hyper-parameter checked by check.real (with its bounds), refused when the
    arrays' dtype cannot hold it (it overflows, or is not 0 and becomes 0). (The
    bounds are passed on by position: forwarding **bounds cost 0.35 us a call.)"""
    return check.representable(name, check.real(name, value, low, high, low_open,
                                                 high_open), dtype, "the arrays'")


def _slope(negative_slope, dtype):
    """Leaky ReLU's slope, checked as in fastnn.activations and in the arrays' dtype."""
    return check.representable("negative_slope", check_negative_slope(negative_slope),
                               dtype, "the arrays'")


def _same_size_pair(names, first, second, outputs):
    """Check first/second (inputs of one shape) and the outputs; return flat views."""
    first = check.input_array(names[0], first)
    second = check.input_array(names[1], second, dtype=first.dtype)
    check.same_shape(names[1], second, first.shape, f"{names[0]}.shape")
    for name, out in outputs:
        check.output_array(name, out, first.shape, first.dtype)
    return first, second


def activation_forward(Z, A, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """Apply an activation elementwise: A = g(Z).

    Parameters
    ----------
    Z : numpy.ndarray
        Pre-activations of any shape, float32 or float64, finite.
    A : numpy.ndarray
        Output of Z's shape and dtype, C-contiguous and writeable; written in place.
        It may be Z itself (in place).
    activation : str
        "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0; any finite number.

    Raises
    ------
    TypeError
        If Z or A is not a float32/float64 ndarray, their dtypes differ, activation is
        not a string or negative_slope is not a real number.
    ValueError
        If Z is empty or holds NaN or infinity, A has another shape or is not
        C-contiguous and writeable, activation is unknown or negative_slope is not
        finite.
    """
    if _kernels.activation_forward(Z, A, activation, negative_slope):
        return  # (plainly right arguments, taken in compiled code)
    Z = check.input_array("Z", Z)
    check.output_array("A", A, Z.shape, Z.dtype)
    _kernels.activation_forward(Z, A, activation_code(activation),
                                _slope(negative_slope, Z.dtype), checked=True)


def activation_derivative(Z, A, out, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """The activation's derivative elementwise: out = g'(Z).

    sigmoid' = A (1 - A) and tanh' = 1 - A^2 from the cache A = g(Z).
    relu'(0) = 0 and leaky_relu'(0) = negative_slope: at exactly 0 the z < 0 branch.

    Parameters
    ----------
    Z : numpy.ndarray
        Pre-activations, any shape, float32 or float64, finite.
    A : numpy.ndarray
        The cache g(Z), of Z's shape and dtype, finite.
    out : numpy.ndarray
        Where g'(Z) is written: Z's shape and dtype, C-contiguous, writeable.
    activation : str
        "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z <= 0; finite.

    Raises
    ------
    TypeError
        If an array is not a float32 or float64 ndarray, the dtypes differ, activation
        is not a string or negative_slope is not a real number.
    ValueError
        If Z or A is empty or not finite, A or out has the wrong shape, out is not
        C-contiguous or not writeable, activation is unknown or negative_slope is NaN
        or infinite.
    """
    if _kernels.activation_derivative(Z, A, out, activation, negative_slope):
        return  # (plainly right arguments, taken in compiled code)
    Z, A = _same_size_pair(("Z", "A"), Z, A, [("out", out)])
    _kernels.activation_derivative(Z, A, out, activation_code(activation),
                                   _slope(negative_slope, Z.dtype), checked=True)


def dense_forward(A_prev, W, b, Z, A, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """Forward pass of a dense layer: Z = A_prev W^T + b, A = g(Z).

    One GEMM (for a thin layer, at most 16 outputs or inputs, vector loops), then bias
    and activation in one pass. Z is the cache dense_backward needs; A may be Z
    itself when it is not needed.

    Parameters
    ----------
    A_prev : numpy.ndarray of shape (m, n_in)
        The layer's input, float32 or float64, finite.
    W : numpy.ndarray of shape (n_out, n_in)
        Weights, of A_prev's dtype, finite.
    b : numpy.ndarray of shape (n_out,)
        Biases, of A_prev's dtype, finite.
    Z : numpy.ndarray of shape (m, n_out)
        Pre-activations, written in place (C-contiguous, writeable, same dtype).
    A : numpy.ndarray of shape (m, n_out)
        Activations, written in place (C-contiguous, writeable, same dtype).
    activation : str
        "identity", "sigmoid", "tanh", "relu" or "leaky_relu".
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or not of A_prev's dtype,
        activation is not a string, or negative_slope is not a real number.
    ValueError
        If an array has the wrong number of dimensions or shape, an input is empty or
        not finite, Z or A is not C-contiguous and writeable, activation is unknown or
        negative_slope is not finite.
    """
    if _kernels.dense_forward(A_prev, W, b, Z, A, activation, negative_slope):
        return  # (plainly right arguments, taken in compiled code)
    A_prev = check.input_array("A_prev", A_prev, 2)
    dtype, (m, n_in) = A_prev.dtype, A_prev.shape
    W = check.input_array("W", W, 2, dtype)
    n_out = W.shape[0]
    check.same_shape("W", W, (n_out, n_in), "(n_out, n_in) with n_in from A_prev")
    b = check.input_array("b", b, 1, dtype)
    check.same_shape("b", b, (n_out,), "(n_out,) with n_out from W")
    check.output_array("Z", Z, (m, n_out), dtype)
    check.output_array("A", A, (m, n_out), dtype)
    _kernels.dense_forward(A_prev, W, b, Z, A, activation_code(activation),
                           _slope(negative_slope, dtype), checked=True)


def dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                   negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """Backprop through a dense layer from its cache, in one call.

    dZ = dA * g'(Z), dW = dZ^T A_prev, db = sum of dZ over rows, dA_prev = dZ W.
    All arrays share one dtype, float32 or float64; the inputs must be finite and
    the outputs (written in place) C-contiguous and writeable.

    Parameters
    ----------
    dA : numpy.ndarray of shape (m, n_out)
        Gradient of the loss with respect to the layer's output A.
    Z : numpy.ndarray of shape (m, n_out)
        The forward pass's pre-activations.
    A : numpy.ndarray of shape (m, n_out)
        The forward pass's activations g(Z).
    A_prev : numpy.ndarray of shape (m, n_in)
        The layer's input.
    W : numpy.ndarray of shape (n_out, n_in)
        The layer's weights.
    dZ : numpy.ndarray of shape (m, n_out)
        Output: dA * g'(Z); may be dA itself.
    dW : numpy.ndarray of shape (n_out, n_in)
        Output: the weights' gradient.
    db : numpy.ndarray of shape (n_out,)
        Output: the biases' gradient.
    dA_prev : numpy.ndarray of shape (m, n_in) or None
        Output: the input's gradient; None skips that product (the first layer
        needs none).
    activation : str
        The activation g of the forward pass (a name from
        fastnn.activations.ACTIVATIONS).
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0, as in the forward pass.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray, an array's dtype is not dA's,
        activation is not a string, or negative_slope is not a real number.
    ValueError
        If an array is not 2-D (b: 1-D) or its shape does not match the others, an
        input is empty or not finite, an output is not C-contiguous and writeable,
        activation is unknown or negative_slope is not finite.
    """
    if _kernels.dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                               negative_slope):
        return  # (plainly right arguments, taken in compiled code)
    dA, Z, A, A_prev, W = _backward_arrays(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev)
    _kernels.dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev,
                            activation_code(activation), _slope(negative_slope, dA.dtype),
                            checked=True)


def _backward_arrays(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev):
    """Check dense_backward's arrays; return its inputs made C-contiguous."""
    dA = check.input_array("dA", dA, 2)
    dtype, (m, n_out) = dA.dtype, dA.shape
    Z = check.input_array("Z", Z, 2, dtype)
    check.same_shape("Z", Z, dA.shape, "(m, n_out) like dA")
    A = check.input_array("A", A, 2, dtype)
    check.same_shape("A", A, dA.shape, "(m, n_out) like dA")
    A_prev = check.input_array("A_prev", A_prev, 2, dtype)
    n_in = A_prev.shape[1]
    check.same_shape("A_prev", A_prev, (m, n_in), "(m, n_in) with m from dA")
    W = check.input_array("W", W, 2, dtype)
    check.same_shape("W", W, (n_out, n_in), "(n_out, n_in) from dA and A_prev")
    check.output_array("dZ", dZ, (m, n_out), dtype)
    check.output_array("dW", dW, (n_out, n_in), dtype)
    check.output_array("db", db, (n_out,), dtype)
    if dA_prev is not None:
        check.output_array("dA_prev", dA_prev, (m, n_in), dtype)
    return dA, Z, A, A_prev, W


def sigmoid_binary_cross_entropy(Z, Y, A, dZ, sample_weight=None):
    """Sigmoid output with binary cross-entropy from logits, mean over all elements.

    loss = mean(max(z, 0) - z y + log(1 + e^-|z|)), finite for any finite z.
    Writes A = sigmoid(Z) and dZ = (A - Y) / Z.size. With sample_weight, the mean
    over the rows (axis 0) is weighted: sum_i w_i l_i / sum_i w_i, l_i the mean of
    row i, and dZ is its gradient.

    Parameters
    ----------
    Z : numpy.ndarray
        Logits of any shape, float32 or float64, finite.
    Y : numpy.ndarray
        Targets (0/1 labels or probabilities), Z's shape and dtype, finite.
    A : numpy.ndarray
        Output for sigmoid(Z): Z's shape and dtype, C-contiguous, writeable.
    dZ : numpy.ndarray
        Output for the gradient with respect to Z, like A.
    sample_weight : numpy.ndarray of shape (Z.shape[0],), optional
        Row weights of Z's dtype: finite, >= 0, not all 0.

    Returns
    -------
    loss : float
        The (weighted) mean binary cross-entropy.

    Raises
    ------
    TypeError
        If an argument is not a float32/float64 ndarray or its dtype differs from
        Z's.
    ValueError
        If Z or Y is empty or not finite, a shape differs from Z's, or A or dZ is not
        C-contiguous and writeable.
    """
    return _elementwise_loss(Z, Y, A, dZ, sample_weight, "sigmoid")


def softmax_cross_entropy(Z, Y, P, dZ, sample_weight=None):
    """Softmax output with cross-entropy (log-sum-exp), mean over the m rows.

    loss = mean_i sum_j Y_ij (lse(z_i) - z_ij). Writes P = softmax(Z) and
    dZ = (P sum_j Y_ij - Y) / m (= (P - Y) / m for one-hot). With sample_weight
    the mean is weighted, sum_i w_i l_i / sum_i w_i, and dZ its gradient.

    Parameters
    ----------
    Z : numpy.ndarray of shape (m, k)
        Logits, float32 or float64, finite.
    Y : numpy.ndarray of shape (m,) or (m, k)
        Integer class labels in [0, k), or target rows of Z's dtype such as one-hot
        (finite).
    P : numpy.ndarray of shape (m, k)
        Output for softmax(Z): Z's dtype, C-contiguous, writeable.
    dZ : numpy.ndarray of shape (m, k)
        Output for the gradient with respect to Z, like P.
    sample_weight : numpy.ndarray of shape (m,), optional
        Row weights of Z's dtype: finite, >= 0, not all 0.

    Returns
    -------
    loss : float
        The (weighted) mean cross-entropy.

    Raises
    ------
    TypeError
        If Z, P, dZ or Y is not a numpy.ndarray, Z, P or dZ is not float32/float64,
        or P, dZ or float targets Y do not have Z's dtype.
    ValueError
        If Z is not 2-D, empty or not finite, P or dZ is not (m, k), C-contiguous and
        writeable, labels are not of shape (m,) or lie outside [0, k), or target rows
        are not (m, k) or not finite.
    """
    loss = _kernels.output_loss(_SOFTMAX, Z, Y, P, dZ, sample_weight)
    if loss is not None:
        return loss  # (plainly right arguments, taken in compiled code)
    Z = check.input_array("Z", Z, 2)
    m, k = Z.shape
    check.output_array("P", P, Z.shape, Z.dtype)
    check.output_array("dZ", dZ, Z.shape, Z.dtype)
    if sample_weight is not None:
        sample_weight = check.sample_weight(sample_weight, m, Z.dtype, strict=True)
    if getattr(Y, "dtype", None) is not None and Y.dtype.kind in "iu":
        Y = check.class_labels("Y", Y, m, k)
    else:
        Y = check.input_array("Y", Y, 2, Z.dtype)
        check.same_shape("Y", Y, Z.shape, "(m, k) like Z, or integer labels (m,)")
    return _kernels.output_loss(_SOFTMAX, Z, Y, P, dZ, sample_weight, checked=True)


def mean_squared_error(Z, Y, A, dZ, sample_weight=None):
    """Identity output with mean squared error over all elements.

    loss = mean((Z - Y)^2). Writes A = Z and dZ = 2 (Z - Y) / Z.size. With
    sample_weight, the mean over the rows (axis 0) is weighted: sum_i w_i l_i /
    sum_i w_i, l_i the mean of row i, and dZ is its gradient.

    Parameters
    ----------
    Z : numpy.ndarray
        Predictions of any shape, float32 or float64, finite.
    Y : numpy.ndarray
        Targets of the same shape and dtype, finite.
    A : numpy.ndarray
        Output, a copy of Z: same shape and dtype, C-contiguous and writeable.
    dZ : numpy.ndarray
        Output for 2 (Z - Y) / Z.size, like A.
    sample_weight : numpy.ndarray of shape (Z.shape[0],), optional
        Row weights of Z's dtype: finite, >= 0, not all 0.

    Returns
    -------
    loss : float
        The (weighted) mean squared error.

    Raises
    ------
    TypeError
        If Z, Y, A or dZ is not an ndarray of dtype float32 or float64, or not of
        Z's dtype.
    ValueError
        If Z or Y is empty or holds NaN or infinity, Y, A or dZ has another shape
        than Z, or A or dZ cannot be written in place (not C-contiguous or
        read-only).
    """
    return _elementwise_loss(Z, Y, A, dZ, sample_weight, "identity")


def _elementwise_loss(Z, Y, A, dZ, sample_weight, output):
    """The checks and the call shared by the elementwise output+loss kernels."""
    code = _kernels.OUTPUTS[output]
    loss = _kernels.output_loss(code, Z, Y, A, dZ, sample_weight)
    if loss is not None:
        return loss  # (plainly right arguments, taken in compiled code)
    Z, Y = _same_size_pair(("Z", "Y"), Z, Y, [("A", A), ("dZ", dZ)])
    if sample_weight is not None:
        sample_weight = check.sample_weight(sample_weight, Z.shape[0], Z.dtype, strict=True)
    return _kernels.output_loss(code, Z, Y, A, dZ, sample_weight, checked=True)


def _param_and_states(param, grad, states):
    """Check a parameter (written in place), its gradient and its optimizer states."""
    param = check.ndarray("param", param)
    check.output_array("param", param, param.shape, param.dtype)
    grad = check.input_array("grad", grad, dtype=param.dtype)
    check.same_shape("grad", grad, param.shape, "param.shape")
    for name, state in states:
        check.output_array(name, state, param.shape, param.dtype)
    return param, grad


def sgd_update(param, grad, lr, weight_decay=0.0):
    """Plain SGD step, in place: param -= lr (grad + weight_decay param).

    weight_decay is L2 regularisation: the gradient of 0.5 wd ||param||^2 (0 for biases).

    Parameters
    ----------
    param : numpy.ndarray
        Parameters of any shape, float32 or float64, C-contiguous and writeable;
        updated in place.
    grad : numpy.ndarray
        Their gradient: same shape and dtype, finite.
    lr : float
        Learning rate, > 0.
    weight_decay : float, default=0.0
        L2 coefficient, >= 0.

    Raises
    ------
    TypeError
        If param or grad is not a float32/float64 ndarray, grad's dtype differs, or lr
        or weight_decay is not a real number.
    ValueError
        If param is empty, not C-contiguous or read-only, grad has another shape or is
        not finite, lr <= 0, weight_decay < 0, or either is not finite.
    """
    dtype = check.ndarray("param", param).dtype
    hyper = (_scalar("lr", lr, dtype, low=0, low_open=True),
             _scalar("weight_decay", weight_decay, dtype, low=0))
    if not _kernels.sgd_update(param, grad, *hyper):
        param, grad = _param_and_states(param, grad, [])
        _kernels.sgd_update(param, grad, *hyper, checked=True)


def momentum_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0,
                    nesterov=False):
    """Momentum SGD in PyTorch's form, in place.

    g = grad + wd param;  velocity = momentum velocity + g;
    param -= lr velocity,  or with nesterov: param -= lr (g + momentum velocity).

    Parameters
    ----------
    param : numpy.ndarray
        The parameters (float32 or float64), C-contiguous and writeable; updated in
        place.
    grad : numpy.ndarray
        The gradient, of param's shape and dtype; finite.
    velocity : numpy.ndarray
        The velocity state, of param's shape and dtype, C-contiguous and writeable;
        updated in place.
    lr : float
        Learning rate, > 0.
    momentum : float, default=0.9
        Momentum coefficient in [0, 1].
    weight_decay : float, default=0.0
        L2 coefficient, >= 0.
    nesterov : bool, default=False
        Nesterov's variant.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or not of param's dtype, a number
        is not real, or nesterov is not a bool.
    ValueError
        If an array is empty or has another shape than param, param or velocity is not
        C-contiguous and writeable, grad is not finite, or lr, momentum or
        weight_decay is not finite or out of its range.
    """
    dtype = check.ndarray("param", param).dtype
    hyper = (_scalar("lr", lr, dtype, low=0, low_open=True),
             _scalar("momentum", momentum, dtype, low=0, high=1),
             _scalar("weight_decay", weight_decay, dtype, low=0),
             check.flag("nesterov", nesterov))
    if not _kernels.momentum_update(param, grad, velocity, *hyper):
        param, grad = _param_and_states(param, grad, [("velocity", velocity)])
        _kernels.momentum_update(param, grad, velocity, *hyper, checked=True)


def adam_update(param, grad, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """Adam at step t >= 1 (count from 1), in place, with bias correction.

    g = grad + wd param;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    With AVX-512 on CPUs other than AMD's, the square root and the division come
    from refined estimates, within about an ulp of the exact values; on AMD's, from
    the divider, with every fourth vector of float64 from the estimates
    (FASTNN_ADAM_DIVIDE chooses: see Vector maths in docs/performance.md).

    Parameters
    ----------
    param : numpy.ndarray
        Parameters, float32 or float64, C-contiguous, writeable; updated in place.
    grad : numpy.ndarray
        Gradient, param's shape and dtype, finite.
    m, v : numpy.ndarray
        First and second moment states, param's shape and dtype, C-contiguous and
        writeable; updated in place.
    t : int
        Step number, >= 1.
    lr : float, default=0.001
        Learning rate, > 0.
    beta1, beta2 : float, default=0.9 and 0.999
        Moment decay rates, in [0, 1).
    eps : float, default=1e-8
        Added to the denominator, > 0.
    weight_decay : float, default=0.0
        L2 coefficient, >= 0.

    Raises
    ------
    TypeError
        If an array is not a float32/float64 ndarray or not of param's dtype, t is
        not an integer (bools refused), or a hyper-parameter is not a real number.
    ValueError
        If an array is empty or shaped unlike param, param, m or v is not C-contiguous
        and writeable, grad is not finite, t < 1 or beyond a C long, or a
        hyper-parameter is not finite, out of its range or not held by the arrays'
        dtype.
    """
    dtype = check.ndarray("param", param).dtype
    hyper = (check.integer("t", t, 1, _C_LONG_MAX),
             _scalar("lr", lr, dtype, low=0, low_open=True),
             _scalar("beta1", beta1, dtype, low=0, high=1, high_open=True),
             _scalar("beta2", beta2, dtype, low=0, high=1, high_open=True),
             _scalar("eps", eps, dtype, low=0, low_open=True),
             _scalar("weight_decay", weight_decay, dtype, low=0))
    if not _kernels.adam_update(param, grad, m, v, *hyper):
        param, grad = _param_and_states(param, grad, [("m", m), ("v", v)])
        _kernels.adam_update(param, grad, m, v, *hyper, checked=True)

