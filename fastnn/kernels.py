"""The compiled kernels, with every argument checked.

Each function here has a twin of the same name and arguments in fastnn.reference.
Arrays are float32 or float64, all of one dtype per call (never cast silently);
inputs are made C-contiguous (a copy only when they are not), outputs must be
C-contiguous and writeable and are written in place. Samples are rows: a dense
layer holds W (n_out, n_in) and b (n_out,) and computes Z = A_prev W^T + b.
Gradients are of the mean loss over the batch: the output kernels put the 1/m in
dZ, and dense_backward adds none.
"""
from fastnn import _checks as check
from fastnn import _kernels
from fastnn.activations import DEFAULT_NEGATIVE_SLOPE, activation_code, check_negative_slope

__all__ = [
    "activation_forward", "activation_derivative", "dense_forward", "dense_backward",
    "sigmoid_binary_cross_entropy", "softmax_cross_entropy", "mean_squared_error",
    "sgd_update", "momentum_update", "adam_update",
]

_DTYPE_NAMES = {check.FLOAT_DTYPES[0]: "float", check.FLOAT_DTYPES[1]: "double"}


def _compiled(kernel, dtype):
    """The float or double specialisation of a fused kernel (no per-call dispatch)."""
    return kernel[_DTYPE_NAMES[dtype]]


def _same_size_pair(names, first, second, outputs):
    """Check first/second (inputs of one shape) and the outputs; return flat views."""
    first = check.input_array(names[0], first)
    second = check.input_array(names[1], second, dtype=first.dtype)
    check.same_shape(names[1], second, first.shape, f"{names[0]}.shape")
    for name, out in outputs:
        check.output_array(name, out, first.shape, first.dtype)
    return first, second


def activation_forward(Z, A, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """A = g(Z) elementwise, for any shape; A may be Z itself (in place)."""
    Z = check.input_array("Z", Z)
    check.output_array("A", A, Z.shape, Z.dtype)
    _compiled(_kernels.activation_forward, Z.dtype)(
        Z.reshape(-1), A.reshape(-1), activation_code(activation),
        check_negative_slope(negative_slope))


def activation_derivative(Z, A, out, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """out = g'(Z); sigmoid' = A (1 - A) and tanh' = 1 - A^2 from the cache A = g(Z).

    relu'(0) = 0 and leaky_relu'(0) = negative_slope: at exactly 0 the z < 0 branch.
    """
    Z, A = _same_size_pair(("Z", "A"), Z, A, [("out", out)])
    _compiled(_kernels.activation_derivative, Z.dtype)(
        Z.reshape(-1), A.reshape(-1), out.reshape(-1), activation_code(activation),
        check_negative_slope(negative_slope))


def dense_forward(A_prev, W, b, Z, A, activation, negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """Z = A_prev W^T + b (GEMM, then bias and activation in one pass), A = g(Z).

    A_prev (m, n_in), W (n_out, n_in), b (n_out,); writes Z and A, both (m, n_out).
    Z is the cache dense_backward needs; A may be Z itself when it is not needed.
    """
    A_prev = check.input_array("A_prev", A_prev, 2)
    dtype, (m, n_in) = A_prev.dtype, A_prev.shape
    W = check.input_array("W", W, 2, dtype)
    n_out = W.shape[0]
    check.same_shape("W", W, (n_out, n_in), "(n_out, n_in) with n_in from A_prev")
    b = check.input_array("b", b, 1, dtype)
    check.same_shape("b", b, (n_out,), "(n_out,) with n_out from W")
    check.output_array("Z", Z, (m, n_out), dtype)
    check.output_array("A", A, (m, n_out), dtype)
    _compiled(_kernels.dense_forward, dtype)(
        A_prev, W, b, Z, A, activation_code(activation),
        check_negative_slope(negative_slope))


def dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation,
                   negative_slope=DEFAULT_NEGATIVE_SLOPE):
    """Backprop through a dense layer from its cache, in one call.

    dZ = dA * g'(Z), dW = dZ^T A_prev, db = sum of dZ over rows, dA_prev = dZ W.
    dA, Z, A = g(Z), dZ: (m, n_out); A_prev, dA_prev: (m, n_in); W, dW: (n_out, n_in).
    dA_prev=None skips the last product (the first layer needs none); dZ may be dA.
    """
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
    _compiled(_kernels.dense_backward, dtype)(
        dA, Z, A, A_prev, W, dZ, dW, db, dA_prev, activation_code(activation),
        check_negative_slope(negative_slope))


def sigmoid_binary_cross_entropy(Z, Y, A, dZ):
    """Sigmoid output with binary cross-entropy from logits, mean over all elements.

    loss = mean(max(z, 0) - z y + log(1 + e^-|z|)), finite for any finite z.
    Writes A = sigmoid(Z) and dZ = (A - Y) / Z.size; returns the loss.
    """
    Z, Y = _same_size_pair(("Z", "Y"), Z, Y, [("A", A), ("dZ", dZ)])
    return _compiled(_kernels.sigmoid_binary_cross_entropy, Z.dtype)(
        Z.reshape(-1), Y.reshape(-1), A.reshape(-1), dZ.reshape(-1))


def softmax_cross_entropy(Z, Y, P, dZ):
    """Softmax output with cross-entropy (log-sum-exp), mean over the m rows.

    Z (m, k) logits; Y integer labels (m,) in [0, k), or target rows (m, k) such as
    one-hot. loss = mean_i sum_j Y_ij (lse(z_i) - z_ij). Writes P = softmax(Z) and
    dZ = (P sum_j Y_ij - Y) / m (= (P - Y) / m for one-hot); returns the loss.
    """
    Z = check.input_array("Z", Z, 2)
    m, k = Z.shape
    check.output_array("P", P, Z.shape, Z.dtype)
    check.output_array("dZ", dZ, Z.shape, Z.dtype)
    if getattr(Y, "dtype", None) is not None and Y.dtype.kind in "iu":
        labels = check.class_labels("Y", Y, m, k)
        return _compiled(_kernels.softmax_cross_entropy_labels, Z.dtype)(Z, labels, P, dZ)
    Y = check.input_array("Y", Y, 2, Z.dtype)
    check.same_shape("Y", Y, Z.shape, "(m, k) like Z, or integer labels (m,)")
    return _compiled(_kernels.softmax_cross_entropy_probs, Z.dtype)(Z, Y, P, dZ)


def mean_squared_error(Z, Y, A, dZ):
    """Identity output with mean squared error over all elements.

    loss = mean((Z - Y)^2). Writes A = Z and dZ = 2 (Z - Y) / Z.size; returns the loss.
    """
    Z, Y = _same_size_pair(("Z", "Y"), Z, Y, [("A", A), ("dZ", dZ)])
    return _compiled(_kernels.mean_squared_error, Z.dtype)(
        Z.reshape(-1), Y.reshape(-1), A.reshape(-1), dZ.reshape(-1))


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
    """param -= lr (grad + weight_decay param), in place.

    weight_decay is L2 regularisation: the gradient of 0.5 wd ||param||^2 (0 for biases).
    """
    param, grad = _param_and_states(param, grad, [])
    _compiled(_kernels.sgd_update, param.dtype)(
        param.reshape(-1), grad.reshape(-1), check.real("lr", lr, 0, low_open=True),
        check.real("weight_decay", weight_decay, 0))


def momentum_update(param, grad, velocity, lr, momentum=0.9, weight_decay=0.0,
                    nesterov=False):
    """Momentum SGD in PyTorch's form, in place:

    g = grad + wd param;  velocity = momentum velocity + g;
    param -= lr velocity,  or with nesterov: param -= lr (g + momentum velocity).
    """
    param, grad = _param_and_states(param, grad, [("velocity", velocity)])
    _compiled(_kernels.momentum_update, param.dtype)(
        param.reshape(-1), grad.reshape(-1), velocity.reshape(-1),
        check.real("lr", lr, 0, low_open=True), check.real("momentum", momentum, 0, 1),
        check.real("weight_decay", weight_decay, 0), _flag("nesterov", nesterov))


def adam_update(param, grad, m, v, t, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """Adam at step t >= 1 (count from 1), in place, with bias correction:

    g = grad + wd param;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """
    param, grad = _param_and_states(param, grad, [("m", m), ("v", v)])
    _compiled(_kernels.adam_update, param.dtype)(
        param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
        check.integer("t", t, 1), check.real("lr", lr, 0, low_open=True),
        check.real("beta1", beta1, 0, 1, high_open=True),
        check.real("beta2", beta2, 0, 1, high_open=True),
        check.real("eps", eps, 0, low_open=True),
        check.real("weight_decay", weight_decay, 0))


def _flag(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value
