"""Property-based fuzzing of every public entry point (run by test_fuzz.py in a subprocess).

Random shapes, dtypes, memory layouts and values go to the constructor, every MLP
method, fastnn.kernels, fastnn.init, fastnn.diagnostics and fastnn.datasets. Each call
must either return or raise one of the documented exceptions: TypeError, ValueError,
or fastnn.DivergenceError. Anything else fails here with a traceback; a crash in
compiled code kills this process, which the calling test reports.

    python tests/fuzz_entry_points.py [max_examples]
"""
import sys
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import MLP, datasets, diagnostics, init, kernels

ALLOWED = (TypeError, ValueError, fastnn.DivergenceError)
DTYPES = [np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128, np.float16,
          object, "U3"]
VALUES = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 3.0, 7.0, -2.5, 1e300, -1e300, 1e-300,
                          np.nan, np.inf, -np.inf])
NAMES = st.sampled_from(["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax",
                         "he", "xavier", "sgd", "adam", "nesterov", "momentum", "auto", "",
                         "RELU", "zeros"])


@st.composite
def arrays(draw, shape=None, dtypes=DTYPES):
    """An array of the given (or a random) shape, dtype, memory layout and values."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    size = int(np.prod(shape)) if shape else 1
    base = np.array(draw(st.lists(VALUES, min_size=size, max_size=size)), np.float64)
    dtype = draw(st.sampled_from(dtypes))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = base.reshape(shape).astype(dtype)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "readonly", "transposed"]))
    if layout == "fortran":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim:
        array = np.repeat(array, 2, axis=0)[::2]
    elif layout == "readonly":
        array.flags.writeable = False
    elif layout == "transposed" and array.ndim == 2:
        array = np.ascontiguousarray(array.T).T
    return array


def anything():
    return st.one_of(arrays(), st.none(), st.integers(-3, 10), st.floats(), st.text(max_size=3),
                     st.lists(st.floats(), max_size=4), st.booleans())


def maybe_right(shape, dtype=np.float64):
    """Mostly well-formed arrays of `shape`, sometimes anything at all."""
    return st.one_of(arrays(shape, [dtype]), arrays(shape, [dtype]), arrays(shape), anything())


def call(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except ALLOWED:
        pass


def fuzz(max_examples):
    config = settings(max_examples=max_examples, deadline=None, database=None,
                      derandomize=True, suppress_health_check=list(HealthCheck))

    @config
    @given(sizes=st.one_of(st.lists(st.integers(-1, 4), max_size=4), anything()),
           activation=st.one_of(NAMES, anything()), output=st.one_of(NAMES, anything()),
           init_scheme=st.one_of(NAMES, st.floats(), anything()),
           dtype=st.one_of(st.sampled_from(["float32", "float64", "int32", "f2"]), anything()),
           seed=st.one_of(st.integers(-2, 5), anything()),
           slope=st.one_of(st.floats(), anything()))
    def constructor(sizes, activation, output, init_scheme, dtype, seed, slope):
        call(MLP, sizes, activation=activation, output=output, init=init_scheme, dtype=dtype,
             seed=seed, negative_slope=slope)

    nets = [MLP([3, 4, 1], seed=0), MLP([3, 5, 2, 3], activation="tanh", output="softmax",
                                         dtype="float32", seed=0),
            MLP([3, 2, 2], activation=["leaky_relu"], output="identity", seed=0)]

    @config
    @given(which=st.integers(0, 2), m=st.integers(0, 6), data=st.data(),
           method=st.sampled_from(["fit", "partial_fit", "predict", "predict_proba", "score",
                                   "loss", "gradients"]))
    def methods(which, m, data, method):
        net = nets[which]
        X = data.draw(maybe_right((m, 3), net.dtype))
        k = net.n_outputs
        y = data.draw(st.one_of(maybe_right((m,)), maybe_right((m, k)),
                                arrays((m,), [np.int64]), anything()))
        if method in ("predict", "predict_proba"):
            call(getattr(net, method), X)
        elif method in ("fit", "partial_fit"):
            kwargs = data.draw(st.fixed_dictionaries({}, optional={
                "batch_size": st.one_of(st.none(), st.integers(-1, 4), anything()),
                "lr": st.one_of(st.floats(), anything()),
                "optimizer": st.one_of(NAMES, anything()),
                "weight_decay": st.one_of(st.floats(), anything()),
                "shuffle": anything()}))
            if method == "fit":
                kwargs["epochs"] = data.draw(st.one_of(st.integers(-1, 2), anything()))
            call(getattr(net, method), X, y, **kwargs)
        else:
            call(getattr(net, method), X, y)
        assert all(np.isfinite(layer.W).all() for layer in net.layers)

    @config
    @given(which=st.integers(0, 2), data=st.data())
    def state(which, data):
        net = nets[which]
        sd = net.state_dict()
        key = data.draw(st.sampled_from(sorted(sd)))
        sd[key] = data.draw(st.one_of(maybe_right(sd[key].shape, net.dtype), anything()))
        call(net.load_state_dict, sd)
        call(setattr, net.layers[0], "W", data.draw(maybe_right(net.layers[0].W.shape,
                                                                net.dtype)))

    @config
    @given(m=st.integers(0, 4), n_in=st.integers(0, 4), n_out=st.integers(0, 4),
           dtype=st.sampled_from([np.float64, np.float32]), data=st.data(),
           activation=st.one_of(NAMES, anything()))
    def kernel_layers(m, n_in, n_out, dtype, data, activation):
        a = lambda shape: data.draw(maybe_right(shape, dtype))
        call(kernels.dense_forward, a((m, n_in)), a((n_out, n_in)), a((n_out,)),
             a((m, n_out)), a((m, n_out)), activation)
        call(kernels.dense_backward, a((m, n_out)), a((m, n_out)), a((m, n_out)),
             a((m, n_in)), a((n_out, n_in)), a((m, n_out)), a((n_out, n_in)), a((n_out,)),
             data.draw(st.one_of(st.none(), maybe_right((m, n_in), dtype))), activation)
        call(kernels.activation_forward, a((m, n_out)), a((m, n_out)), activation)
        call(kernels.activation_derivative, a((m, n_out)), a((m, n_out)), a((m, n_out)),
             activation)

    @config
    @given(m=st.integers(0, 4), k=st.integers(0, 4), dtype=st.sampled_from([np.float64,
                                                                            np.float32]),
           data=st.data())
    def kernel_losses(m, k, dtype, data):
        a = lambda shape: data.draw(maybe_right(shape, dtype))
        labels = data.draw(st.one_of(arrays((m,), [np.int64, np.int32]),
                                     maybe_right((m,), dtype)))
        call(kernels.softmax_cross_entropy, a((m, k)), labels, a((m, k)), a((m, k)))
        call(kernels.softmax_cross_entropy, a((m, k)), a((m, k)), a((m, k)), a((m, k)))
        call(kernels.sigmoid_binary_cross_entropy, a((m, k)), a((m, k)), a((m, k)),
             a((m, k)))
        call(kernels.mean_squared_error, a((m, k)), a((m, k)), a((m, k)), a((m, k)))

    @config
    @given(n=st.integers(0, 5), dtype=st.sampled_from([np.float64, np.float32]),
           data=st.data(), hyper=st.lists(st.one_of(st.floats(), anything()), min_size=6,
                                          max_size=6))
    def kernel_updates(n, dtype, data, hyper):
        a = lambda: data.draw(maybe_right((n,), dtype))
        call(kernels.sgd_update, a(), a(), hyper[0], hyper[1])
        call(kernels.momentum_update, a(), a(), a(), hyper[0], hyper[2], hyper[1], hyper[3])
        call(kernels.adam_update, a(), a(), a(), a(), hyper[4], hyper[0], hyper[2], hyper[3],
             hyper[5], hyper[1])

    @config
    @given(name=st.sampled_from(sorted(init.SCHEMES)), shape=anything(), rng=anything(),
           dtype=anything(), extra=st.one_of(st.floats(), anything()),
           small_shape=st.tuples(st.integers(-1, 4), st.integers(-1, 4)))
    def schemes(name, shape, rng, dtype, extra, small_shape):
        call(init.SCHEMES[name], shape, rng, dtype)
        call(init.SCHEMES[name], small_shape, 0)
        call(init.normal, small_shape, 0, np.float64, std=extra)
        call(init.he_normal, small_shape, 0, np.float64, mode=extra)
        call(init.constant, small_shape, 0, np.float64, value=extra)

    @config
    @given(which=st.integers(0, 2), m=st.integers(0, 4), data=st.data(),
           extra=anything())
    def diagnostic_functions(which, m, data, extra):
        net = nets[which]
        X = data.draw(maybe_right((m, 3), net.dtype))
        y = data.draw(st.one_of(maybe_right((m,)), arrays((m,), [np.int64]), anything()))
        call(diagnostics.activation_stats, net, X, bins=data.draw(
            st.one_of(st.integers(-1, 5), anything())), range=data.draw(
            st.one_of(st.none(), st.tuples(st.floats(), st.floats()))))
        call(diagnostics.gradient_norms, net, X, y)
        call(diagnostics.dead_units, net, X)
        call(diagnostics.symmetry, net)
        call(diagnostics.gradient_check, net, X, y, eps=extra)
        for function in (diagnostics.activation_stats, diagnostics.dead_units,
                         diagnostics.symmetry):
            call(function, *([extra, X] if function is not diagnostics.symmetry else [extra]))
        call(diagnostics.gradient_norms, extra, X, y)

    @config
    @given(name=st.sampled_from(["make_circles", "make_sklearn_circles", "make_moons",
                                 "make_spiral", "make_xor"]),
           n=st.one_of(st.integers(-1, 50), anything()), noise=st.one_of(st.floats(),
                                                                       anything()),
           seed=anything())
    def toy_data(name, n, noise, seed):
        call(getattr(datasets, name), n, noise=noise, seed=seed)

    for run in (constructor, methods, state, kernel_layers, kernel_losses, kernel_updates,
                schemes, diagnostic_functions, toy_data):
        run()
        print(f"{run.__name__}: {max_examples} examples, all returned or raised "
              f"TypeError/ValueError/DivergenceError", flush=True)


if __name__ == "__main__":
    fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
