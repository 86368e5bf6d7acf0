"""Every kind of bad argument to fastnn.kernels gets a clear TypeError or ValueError;
the compiled kernels beneath still refuse what they must not trust."""
import re

import numpy as np
import pytest

from fastnn import kernels

m, n_in, n_out = 4, 3, 2


def forward_args(**change):
    args = dict(A_prev=np.ones((m, n_in)), W=np.ones((n_out, n_in)), b=np.ones(n_out),
                Z=np.empty((m, n_out)), A=np.empty((m, n_out)), activation="relu")
    args.update(change)
    return args


def backward_args(**change):
    args = dict(dA=np.ones((m, n_out)), Z=np.ones((m, n_out)), A=np.ones((m, n_out)),
                A_prev=np.ones((m, n_in)), W=np.ones((n_out, n_in)),
                dZ=np.empty((m, n_out)), dW=np.empty((n_out, n_in)), db=np.empty(n_out),
                dA_prev=np.empty((m, n_in)), activation="tanh")
    args.update(change)
    return args


def read_only(shape):
    a = np.empty(shape)
    a.flags.writeable = False
    return a


shared = np.ones((m, n_in))

FORWARD_CASES = [
    # (changed arguments, exception, pattern the message must contain)
    (dict(A_prev=[[1.0] * n_in] * m), TypeError, r"A_prev must be a numpy.ndarray; got list"),
    (dict(A_prev=np.ones((m, n_in), int)), TypeError, r"A_prev must have dtype float32 or float64; got int64"),
    (dict(W=np.ones((n_out, n_in), np.float32)), TypeError, r"W has dtype float32, but the other arrays are float64"),
    (dict(A_prev=np.ones(n_in)), ValueError, r"A_prev must be 2-D; got 1-D with shape \(3,\)"),
    (dict(A_prev=np.ones((0, n_in))), ValueError, r"A_prev must not be empty"),
    (dict(W=np.ones((n_out, n_in + 1))), ValueError, r"W must have shape \(n_out, n_in\).* = \(2, 3\); got \(2, 4\)"),
    (dict(b=np.ones(n_out + 1)), ValueError, r"b must have shape \(n_out,\).* = \(2,\); got \(3,\)"),
    (dict(Z=np.empty((m, n_out + 1))), ValueError, r"Z must have shape \(4, 2\); got \(4, 3\)"),
    (dict(Z=np.empty((m, n_out), np.float32)), TypeError, r"Z has dtype float32"),
    (dict(Z=np.empty((n_out, m)).T), ValueError, r"Z must be C-contiguous"),
    (dict(A=read_only((m, n_out))), ValueError, r"A must be writeable"),
    (dict(Z=[[0.0] * n_out] * m), TypeError, r"Z must be a numpy.ndarray; got list"),
    (dict(activation="softplus"), ValueError, r"activation must be one of 'identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu'; got 'softplus'"),
    (dict(activation=3), TypeError, r"activation must be a string"),
    (dict(negative_slope=float("nan")), ValueError, r"negative_slope must be finite"),
    (dict(W=np.array([[1.0, np.inf, 0.0], [np.nan, 0.0, 0.0]])), ValueError, r"W must be finite: 2 values are NaN or infinite, the first is W\[0, 1\] = inf"),
    (dict(negative_slope="0.1"), TypeError, r"negative_slope must be a real number"),
    (dict(A_prev=shared, Z=shared[:, :n_out].copy(), A=shared[:, :n_out]), ValueError, r"A must be C-contiguous"),
    (dict(A_prev=shared, A=shared.reshape(-1)[:m * n_out].reshape(m, n_out)), ValueError, r"A overlaps A_prev in memory"),
]


@pytest.mark.parametrize("change,error,pattern", FORWARD_CASES)
def test_dense_forward_rejects(change, error, pattern):
    with pytest.raises(error, match=pattern):
        kernels.dense_forward(**forward_args(**change))


BACKWARD_CASES = [
    (dict(Z=np.ones((m + 1, n_out))), ValueError, r"Z must have shape \(m, n_out\) like dA = \(4, 2\); got \(5, 2\)"),
    (dict(A_prev=np.ones((m + 1, n_in))), ValueError, r"A_prev must have shape \(m, n_in\) with m from dA = \(4, 3\); got \(5, 3\)"),
    (dict(W=np.ones((n_out + 1, n_in))), ValueError, r"W must have shape \(n_out, n_in\).* = \(2, 3\); got \(3, 3\)"),
    (dict(dW=np.empty((n_in, n_out))), ValueError, r"dW must have shape \(2, 3\); got \(3, 2\)"),
    (dict(db=np.empty((n_out, 1))), ValueError, r"db must be 1-D"),
    (dict(dA_prev=np.empty((m, n_in), np.float32)), TypeError, r"dA_prev has dtype float32"),
    (dict(dA=np.ones((m, n_out), np.complex128)), TypeError, r"dA must have dtype float32 or float64; got complex128"),
    (dict(dA=np.array([["a"] * n_out] * m)), TypeError, r"dA must have dtype float32 or float64"),
    (dict(dA=np.ones((m, n_out), object)), TypeError, r"dA must have dtype float32 or float64; got object"),
]


@pytest.mark.parametrize("change,error,pattern", BACKWARD_CASES)
def test_dense_backward_rejects(change, error, pattern):
    with pytest.raises(error, match=pattern):
        kernels.dense_backward(**backward_args(**change))


def test_dense_backward_output_overlapping_an_input_is_refused():
    args = backward_args()
    args["dW"] = args["W"]
    with pytest.raises(ValueError, match="dW overlaps W in memory"):
        kernels.dense_backward(**args)


def test_in_place_aliases_that_are_safe_are_allowed():
    args = backward_args(dA=np.full((m, n_out), 2.0))
    args["dZ"] = args["dA"]  # dZ written over dA: documented as allowed
    kernels.dense_backward(**args)
    np.testing.assert_allclose(args["dZ"], 2.0 * (1 - 1.0))  # tanh' from A = 1 is 0
    Z = np.linspace(-1, 1, 6)
    kernels.activation_forward(Z, Z, "relu")  # A = Z in place
    np.testing.assert_array_equal(Z, np.maximum(np.linspace(-1, 1, 6), 0))


def test_non_contiguous_inputs_are_accepted_and_correct():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((m, 2 * n_in))
    A_prev = wide[:, ::2]
    W = np.asfortranarray(rng.standard_normal((n_out, n_in)))
    Z, A = np.empty((m, n_out)), np.empty((m, n_out))
    kernels.dense_forward(A_prev, W, np.zeros(n_out), Z, A, "identity")
    np.testing.assert_allclose(Z, A_prev @ W.T, rtol=1e-12)


def unaligned(shape):
    """A C-contiguous float64 array whose data starts 4 bytes past an 8-byte boundary."""
    raw = np.zeros(int(np.prod(shape)) * 8 + 8, np.uint8)
    start = 4 if raw.ctypes.data % 8 == 0 else 8 - raw.ctypes.data % 8 + 4
    return raw[start:start + int(np.prod(shape)) * 8].view(np.float64).reshape(shape)


class Subclass(np.ndarray):
    pass


#: Arguments the dense kernels accept but not as they come (fastnn.kernels converts
#: or checks them first, then calls the compiled kernel with checked=True).
ACCEPTED_NOT_PLAIN = [
    dict(A_prev=np.ones((m, 2 * n_in))[:, ::2]), dict(W=np.asfortranarray(np.ones((n_out, n_in)))),
    dict(b=np.ones(n_out).view(Subclass)), dict(A_prev=unaligned((m, n_in))),
    dict(Z=unaligned((m, n_out))), dict(negative_slope=0), dict(negative_slope=np.float64(0.5)),
]


def activation_args(**change):
    args = dict(Z=np.ones((m, n_out)), A=np.ones((m, n_out)), out=np.empty((m, n_out)),
                activation="sigmoid")
    args.update(change)
    return args


def loss_args(**change):
    from fastnn import _kernels
    args = dict(output=_kernels.OUTPUTS["softmax"], Z=np.zeros((m, 3)),
                Y=np.array([0, 2, 1, 0], np.intp), A=np.empty((m, 3)), dZ=np.empty((m, 3)))
    args.update(change)
    return args


def adam_args(**change):
    args = dict(param=np.ones((m, n_in)), grad=np.ones((m, n_in)), m=np.zeros((m, n_in)),
                v=np.zeros((m, n_in)), t=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0)
    args.update(change)
    return args


#: Each compiled kernel that takes arguments as they come: its arguments, its outputs.
PLAIN_KERNELS = {
    "adam_update": (adam_args, ("param", "m", "v")),
    "sgd_update": (lambda **c: {"param": np.ones(5), "grad": np.ones(5), "lr": 0.1,
                                "weight_decay": 0.0, **c}, ("param",)),
    "momentum_update": (lambda **c: {"param": np.ones(5), "grad": np.ones(5),
                                     "velocity": np.zeros(5), "lr": 0.1, "momentum": 0.9,
                                     "weight_decay": 0.0, "nesterov": True, **c},
                        ("param", "velocity")),
    "dense_forward": (forward_args, ("Z", "A")),
    "dense_backward": (backward_args, ("dZ", "dW", "db", "dA_prev")),
    "activation_forward": (lambda **c: {k: v for k, v in activation_args(**c).items()
                                        if k != "out"}, ("A",)),
    "activation_derivative": (activation_args, ("out",)),
    "output_loss": (loss_args, ("A", "dZ")),
}


def _plain_call(kernel, args):
    """The compiled kernel's own answer: True or the loss (done), False or None (not
    taken)."""
    from fastnn import _kernels
    if "activation" in args:
        args = {"negative_slope": 0.01, **args}
    return getattr(_kernels, kernel)(**args)


NOT_PLAIN = [("dense_forward", change) for change in [case[0] for case in FORWARD_CASES] + ACCEPTED_NOT_PLAIN + [
    dict(A_prev=np.ones((m, n_in)).astype(">f8")), dict(Z=np.empty((m, n_out)).astype(">f8")),
    dict(W=np.ones((n_out, n_in), np.float32), negative_slope=1e-50)]] + [
    ("dense_backward", change) for change in [case[0] for case in BACKWARD_CASES] + [
        dict(dA=np.ones((m, 2 * n_out))[:, ::2]), dict(A=np.ones((m, n_out)).view(Subclass)),
        dict(W=unaligned((n_out, n_in))), dict(dA_prev=read_only((m, n_in))),
        dict(dW=np.empty((n_out, n_in)).astype(">f8")), dict(activation="relu", negative_slope=1),
        dict(dZ=np.empty((n_out, m)).T), dict(Z=np.full((m, n_out), np.nan))]] + [
    (kernel, change) for kernel in ("activation_forward", "activation_derivative")
    for change in [dict(Z=[[1.0] * n_out] * m), dict(Z=np.ones((m, n_out), int)),
                   dict(A=read_only((m, n_out))), dict(A=np.ones((m, n_out + 1))),
                   dict(Z=np.full((m, n_out), np.inf)), dict(activation="softplus"),
                   dict(activation=None), dict(negative_slope=1), dict(Z=np.ones((0, n_out))),
                   dict(out=np.empty((n_out, m)).T), dict(Z=np.ones((m, n_out)).view(Subclass))]
    if not (kernel == "activation_forward" and "out" in change
            or kernel == "activation_derivative" and change.get("A") is not None
            and not change["A"].flags.writeable)] + [
    ("output_loss", change) for change in [
        dict(Y=np.array([0, 2, 1, 0], np.int32)), dict(Y=np.array([0, 3, 1, 0], np.intp)),
        dict(Y=np.array([0, -1, 1, 0], np.intp)), dict(Y=np.array([0, 1, 0], np.intp)),
        dict(Y=np.array([0, 2, 1, 0], np.intp)[::-1]), dict(Y=np.full((m, 3), np.nan)),
        dict(Y=np.zeros((m, 4))), dict(sample_weight=np.ones(m)), dict(Z=np.zeros(3)),
        dict(A=read_only((m, 3))), dict(dZ=np.empty((m, 3), np.float32)),
        dict(output=0, Y=np.zeros((m, 1))), dict(output=2, Y=np.zeros((m, 3), np.float32)),
        dict(output=2, Y=[[0.0] * 3] * m), dict(Z=np.full((m, 3), np.nan))]] + [
    ("adam_update", change) for change in [
        dict(param=read_only((m, n_in))), dict(param=np.ones((n_in, m)).T),
        dict(param=np.ones((m, n_in)).view(Subclass)), dict(param=[[1.0] * n_in] * m),
        dict(grad=np.full((m, n_in), np.nan)), dict(grad=np.ones((m, 2 * n_in))[:, ::2]),
        dict(grad=np.ones((m, n_in + 1))), dict(m=np.zeros((m, n_in), np.float32)),
        dict(v=read_only((m, n_in))), dict(v=np.zeros(m * n_in)), dict(m=None),
        dict(param=np.array(1.0), grad=np.array(1.0), m=np.array(0.0), v=np.array(0.0))]] + [
    ("sgd_update", dict(grad=np.ones(5, np.float32))), ("sgd_update", dict(param=np.ones(6))),
    ("momentum_update", dict(velocity=read_only(5))),
    ("momentum_update", dict(velocity=np.zeros(10)[::2]))]


@pytest.mark.parametrize("kernel, change", NOT_PLAIN)
def test_the_compiled_kernels_take_as_they_come_only_what_the_checks_pass(kernel, change):
    """The compiled kernels refuse (returning False or None, writing nothing) any call
    fastnn.kernels's checks would refuse or change; they take plainly right ones."""
    make, outputs = PLAIN_KERNELS[kernel]
    args = make(**change)
    before = {name: np.array(args[name]) for name in outputs
              if isinstance(args[name], np.ndarray)}
    try:
        taken = _plain_call(kernel, args)
    except ValueError as error:  # the overlap checks are the compiled kernel's own
        assert "overlaps" in str(error)
        return
    assert taken is (None if kernel == "output_loss" else False)
    for name, copy in before.items():
        np.testing.assert_array_equal(args[name], copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_kernels_take_plainly_right_arguments_as_they_come(dtype):
    def plain(args):
        return {k: np.ones_like(v, dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                else v for k, v in args.items()}
    for kernel, (make, _) in PLAIN_KERNELS.items():
        assert _plain_call(kernel, plain(make())) is not (
            None if kernel == "output_loss" else False), kernel
    assert _plain_call("dense_backward", {**plain(backward_args()), "dA_prev": None}) is True
    for output in (0, 2, 3):  # the elementwise outputs, on any shape
        Z = np.full((2, 3, 2), 0.5, dtype)
        loss = _plain_call("output_loss", dict(output=output, Z=Z, Y=Z.copy(), A=np.empty_like(Z),
                                               dZ=np.empty_like(Z)))
        assert loss is not None and np.isfinite(loss)


@pytest.mark.parametrize("change", ACCEPTED_NOT_PLAIN)
def test_arguments_taken_after_the_checks_give_the_twins_results(change):
    from fastnn import reference
    rng = np.random.default_rng(1)
    values = dict(A_prev=rng.standard_normal((m, n_in)), W=rng.standard_normal((n_out, n_in)),
                  b=rng.standard_normal(n_out), activation="leaky_relu")
    args = forward_args(**values)
    for name, value in change.items():
        if isinstance(value, np.ndarray) and name in values:
            value[...] = values[name]
        args[name] = value
    kernels.dense_forward(**args)
    twin = {**args, "Z": np.empty((m, n_out)), "A": np.empty((m, n_out))}
    reference.dense_forward(**{k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v
                               for k, v in twin.items()})
    np.testing.assert_allclose(args["Z"], twin["Z"], rtol=1e-12)
    np.testing.assert_allclose(args["A"], twin["A"], rtol=1e-12)


def loss_call(name, Z=None, Y=None, A=None, dZ=None):
    Z = np.zeros((m, 3)) if Z is None else Z
    Y = np.zeros((m, 3)) if Y is None else Y
    A = np.empty(Z.shape) if A is None else A
    dZ = np.empty(Z.shape) if dZ is None else dZ
    return lambda: getattr(kernels, name)(Z, Y, A, dZ)


LOSS_CASES = [
    (loss_call("softmax_cross_entropy", Y=np.array([0, 1, 3, 0])), ValueError, r"Y must be class indices in \[0, 3\); Y\[2\] = 3"),
    (loss_call("softmax_cross_entropy", Y=np.array([0, -1, 2, 0])), ValueError, r"Y\[1\] = -1"),
    (loss_call("softmax_cross_entropy", Y=np.array([0, 1, 2])), ValueError, r"Y must have shape \(m,\) = \(4,\); got \(3,\)"),
    (loss_call("softmax_cross_entropy", Y=np.zeros((m, 4))), ValueError, r"Y must have shape \(m, k\) like Z, or integer labels \(m,\) = \(4, 3\); got \(4, 4\)"),
    (loss_call("softmax_cross_entropy", Z=np.zeros(3)), ValueError, r"Z must be 2-D"),
    (loss_call("sigmoid_binary_cross_entropy", Y=np.zeros((m, 1))), ValueError, r"Y must have shape Z.shape = \(4, 3\); got \(4, 1\)"),
    (loss_call("sigmoid_binary_cross_entropy", dZ=np.empty((m, 1))), ValueError, r"dZ must have shape \(4, 3\)"),
    (loss_call("mean_squared_error", Y=np.zeros((m, 3), np.float32)), TypeError, r"Y has dtype float32"),
]


@pytest.mark.parametrize("call,error,pattern", LOSS_CASES)
def test_output_losses_reject(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


p, g = np.zeros(5), np.ones(5)

UPDATE_CASES = [
    (lambda: kernels.sgd_update(p, g, 0.0), ValueError, r"lr must be in \(0, inf\]; got 0.0"),
    (lambda: kernels.sgd_update(p, g, float("inf")), ValueError, r"lr must be finite"),
    (lambda: kernels.sgd_update(p, g, 0.1, -1e-3), ValueError, r"weight_decay must be in \[0, inf\]"),
    (lambda: kernels.sgd_update(p, np.ones(4), 0.1), ValueError, r"grad must have shape param.shape = \(5,\); got \(4,\)"),
    (lambda: kernels.sgd_update(read_only(5), g, 0.1), ValueError, r"param must be writeable"),
    (lambda: kernels.sgd_update(p, g, "fast"), TypeError, r"lr must be a real number; got str"),
    (lambda: kernels.momentum_update(p, g, np.zeros(4), 0.1), ValueError, r"velocity must have shape \(5,\)"),
    (lambda: kernels.momentum_update(p, g, np.zeros(5), 0.1, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
    (lambda: kernels.momentum_update(p, g, np.zeros(5), 0.1, nesterov="yes"), TypeError, r"nesterov must be True or False"),
    (lambda: kernels.momentum_update(p, g, p, 0.1), ValueError, r"param overlaps velocity in memory"),
    (lambda: kernels.adam_update(p, g, np.zeros(5), np.zeros(5), 0), ValueError, r"t must be at least 1; got 0"),
    (lambda: kernels.adam_update(p, g, np.zeros(5), np.zeros(5), 1.5), TypeError, r"t must be an integer"),
    (lambda: kernels.adam_update(p, g, np.zeros(5), np.zeros(5), 1, beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
    (lambda: kernels.adam_update(p, g, np.zeros(5), np.zeros(5), 1, eps=0.0), ValueError, r"eps must be in \(0, inf\]"),
    (lambda: kernels.adam_update(p, g, np.zeros(5), np.zeros(5, np.float32), 1), TypeError, r"v has dtype float32"),
]


@pytest.mark.parametrize("call,error,pattern", UPDATE_CASES)
def test_optimizer_updates_reject(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_a_refused_update_changes_nothing():
    param, velocity = np.ones(5), np.full(5, 0.5)
    with pytest.raises(ValueError):
        kernels.momentum_update(param, g, velocity, lr=-1.0)
    np.testing.assert_array_equal(param, 1.0)
    np.testing.assert_array_equal(velocity, 0.5)


def test_messages_name_expected_and_actual():
    with pytest.raises(ValueError) as info:
        kernels.dense_forward(**forward_args(W=np.ones((n_out, 7))))
    message = str(info.value)
    assert message.startswith("W ") and "(2, 3)" in message and "(2, 7)" in message
    assert re.search(r"n_in", message)


def test_the_compiled_label_kernel_bounds_every_label_itself():
    # The checked wrapper copies labels before checking them; the kernel, which runs
    # without the GIL, still refuses a label out of range (another thread could have
    # changed a caller's array) and returns NaN instead of writing out of bounds.
    from fastnn import _kernels
    Z, P, dZ = np.zeros((3, 2)), np.empty((3, 2)), np.empty((3, 2))
    for bad in (2, -1, 1 << 40):
        loss = _kernels.output_loss(_kernels.OUTPUTS["softmax"], Z,
                                    np.array([0, bad, 1], np.intp), P, dZ, checked=True)
        assert np.isnan(loss)


def _f32(*shape, value=1.0):
    return np.full(shape, value, np.float32)


#: (call with float32 arrays and one scalar argument, its name, the scalar's repr)
SCALAR_IN_DTYPE_CASES = [
    (lambda x: kernels.sgd_update(_f32(3), _f32(3), lr=x), "lr", 1e300),
    (lambda x: kernels.sgd_update(_f32(3), _f32(3), lr=x), "lr", 1e-50),
    (lambda x: kernels.sgd_update(_f32(3), _f32(3), 0.1, weight_decay=x), "weight_decay", 1e39),
    (lambda x: kernels.sgd_update(_f32(3), _f32(3), 0.1, weight_decay=x), "weight_decay", 1e-46),
    (lambda x: kernels.momentum_update(_f32(3), _f32(3), _f32(3), lr=x), "lr", 1e300),
    (lambda x: kernels.momentum_update(_f32(3), _f32(3), _f32(3), 0.1, momentum=x),
     "momentum", 1e-50),
    (lambda x: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), 1, lr=x), "lr", 1e300),
    (lambda x: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), 1, beta1=x),
     "beta1", 1e-50),
    (lambda x: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), 1, beta2=x),
     "beta2", 1e-50),
    (lambda x: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), 1, eps=x), "eps", 1e-50),
    (lambda x: kernels.adam_update(_f32(3), _f32(3), _f32(3), _f32(3), 1, weight_decay=x),
     "weight_decay", 1e40),
    (lambda x: kernels.activation_forward(_f32(3, value=-1), _f32(3), "leaky_relu", x),
     "negative_slope", 1e300),
    (lambda x: kernels.activation_forward(_f32(3, value=-1), _f32(3), "leaky_relu", x),
     "negative_slope", -1e300),
    (lambda x: kernels.activation_derivative(_f32(3), _f32(3), _f32(3), "leaky_relu", x),
     "negative_slope", 1e-50),
    (lambda x: kernels.dense_forward(_f32(2, 3), _f32(1, 3), _f32(1), _f32(2, 1), _f32(2, 1),
                                     "leaky_relu", x), "negative_slope", 1e300),
    (lambda x: kernels.dense_backward(_f32(2, 1), _f32(2, 1), _f32(2, 1), _f32(2, 3),
                                      _f32(1, 3), _f32(2, 1), _f32(1, 3), _f32(1), None,
                                      "leaky_relu", x), "negative_slope", 1e300),
]


@pytest.mark.parametrize("call, name, value", SCALAR_IN_DTYPE_CASES)
def test_scalar_arguments_are_checked_in_the_arrays_dtype(call, name, value):
    fate = "is 0 in" if abs(value) < 1 else "is beyond the range of"
    with pytest.raises(ValueError, match=rf"^{name} = {re.escape(repr(value))} {fate} "
                                         r"float32, the arrays' dtype$"):
        call(value)
    call(0.5)  # a value that float32 holds passes


@pytest.mark.parametrize("t, error, pattern", [
    (2 ** 63, ValueError, r"t must be at most \d+; got 9223372036854775808"),
    (10 ** 30, ValueError, r"t must be at most \d+; got 10{30}"),
    (np.uint64(2 ** 64 - 1), ValueError, r"t must be at most \d+; got 18446744073709551615"),
])
def test_adam_step_count_beyond_a_c_long_is_refused(t, error, pattern):
    param = np.ones(3)
    with pytest.raises(error, match=pattern):
        kernels.adam_update(param, np.ones(3), np.zeros(3), np.zeros(3), t)
    np.testing.assert_array_equal(param, 1.0)


@pytest.mark.parametrize("call", [
    lambda **kw: kernels.activation_forward(np.array(-0.5), np.empty(()), "leaky_relu", **kw),
    lambda **kw: kernels.activation_derivative(np.array(-0.5), np.array(-0.005), np.empty(()),
                                               "leaky_relu", **kw),
    lambda **kw: kernels.mean_squared_error(np.array(0.3), np.array(1.0), np.empty(()),
                                            np.empty(()), **kw),
    lambda **kw: kernels.sigmoid_binary_cross_entropy(np.array(0.3), np.array(1.0), np.empty(()),
                                                      np.empty(()), **kw)])
def test_0_d_arrays_are_refused_whatever_else_comes(call):
    """The checks make a 0-d input 1-d, so a 0-d output is refused: on both paths."""
    for extra in ({}, {"negative_slope": np.float64(0.01)}, {"sample_weight": np.ones(1)}):
        try:
            with pytest.raises(ValueError, match="must be 1-D; got 0-D|must have shape"):
                call(**extra)
        except TypeError as error:  # the argument is not one this kernel takes
            assert "unexpected keyword" in str(error)


def test_the_private_checked_entries_refuse_what_they_cannot_lay_out():
    """checked=True (keyword only) trusts values, never the memory layout."""
    from fastnn import _kernels
    softmax, Z = _kernels.OUTPUTS["softmax"], np.zeros((m, 3))
    labels, P, dZ = np.array([0, 1, 2, 0], np.intp), np.empty((m, 3)), np.empty((m, 3))
    with pytest.raises(TypeError, match="sample_weight must be a numpy.ndarray"):
        _kernels.output_loss(softmax, Z, labels, P, dZ, [1.0] * m, checked=True)
    with pytest.raises(ValueError, match="sample_weight is not a C-contiguous array of 4"):
        _kernels.output_loss(softmax, Z, labels, P, dZ, np.ones(m, np.float32), checked=True)
    with pytest.raises(ValueError, match="labels must be a C-contiguous np.intp array"):
        _kernels.output_loss(softmax, Z, labels.astype(np.int32), P, dZ, checked=True)
    with pytest.raises(TypeError, match="A_prev must be a float32 or float64"):
        _kernels.dense_forward([[1.0]], [[1.0]], [1.0], [[0.0]], [[0.0]], 0, 0.0, checked=True)
    with pytest.raises(TypeError):  # not by position
        _kernels.dense_forward(*forward_args().values(), 0.01, True)
    args = forward_args(b=np.ones(n_out + 1))
    with pytest.raises(ValueError, match="b is not a C-contiguous array of 2 values"):
        _kernels.dense_forward(*list(args.values())[:5], 3, 0.01, checked=True)


def test_an_array_reshaped_by_another_thread_meanwhile_is_never_overrun():
    """dA and A reshaped in place (same bytes, other dims) by a thread while the
    finiteness scans (which release the GIL) run: each call works on one consistent
    layout or refuses it, and never writes past dW or db."""
    import threading
    import time
    from fastnn import _kernels
    rows, k, n = 1 << 17, 4, 16
    dA, A, Z = np.ones((rows, k)), np.ones((rows, k)), np.ones((rows, k))
    A_prev, W, dZ = np.ones((rows, n)), np.ones((k, n)), np.zeros((rows // 2, 2 * k))
    guard_w, guard_b = np.zeros(4 * k * n), np.zeros(4 * k)
    dW, db = guard_w[:k * n].reshape(k, n), guard_b[:k]
    done = threading.Event()

    def toggle():
        while not done.is_set():
            for shape in ((rows // 2, 2 * k), (rows, k)):
                dA.shape = A.shape = shape
                time.sleep(0.0002)

    thread = threading.Thread(target=toggle)
    thread.start()
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                _kernels.dense_backward(dA, Z, A, A_prev, W, dZ, dW, db, None, "identity", 0.01)
            except ValueError as error:
                assert "reshape" in str(error)
            assert not guard_w[k * n:].any() and not guard_b[k:].any()
    finally:
        done.set()
        thread.join()
