"""MLP refuses bad arguments with clear errors, and a refused call changes nothing."""
import numpy as np
import pytest

from fastnn import MLP

X = np.random.default_rng(0).standard_normal((10, 3))
y = np.arange(10) % 2


def snapshot(net):
    return (net._params.copy(), {k: list(v) for k, v in net.history.items()},
            int(net._steps[0]),
            None if net._states is None else [s.copy() for s in net._states])


def unchanged(net, before):
    after = snapshot(net)
    return (np.array_equal(before[0], after[0]) and before[1] == after[1]
            and before[2] == after[2]
            and (before[3] is None) == (after[3] is None)
            and all(np.array_equal(a, b) for a, b in zip(before[3] or [], after[3] or [])))


CONSTRUCTOR_CASES = [
    (dict(layer_sizes=[3]), ValueError, r"layer_sizes needs at least the input and output"),
    (dict(layer_sizes=[3, 0, 1]), ValueError, r"layer_sizes\[1\] must be at least 1; got 0"),
    (dict(layer_sizes=[3, 2.5, 1]), TypeError, r"layer_sizes\[1\] must be an integer"),
    (dict(layer_sizes="3,4,1"), TypeError, r"layer_sizes must be a list of integers"),
    (dict(activation="softmax"), ValueError, r"activation must be one of 'identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu'; got 'softmax'"),
    (dict(activation=["relu"]), ValueError, r"activation lists one name per hidden layer \(2\); got 1"),
    (dict(output="tanh"), ValueError, r"output must be one of 'sigmoid', 'softmax', 'identity'"),
    (dict(output="softmax"), ValueError, r"a softmax output needs at least 2 units"),
    (dict(dtype="float16"), TypeError, r"dtype must be float32 or float64; got 'float16'"),
    (dict(negative_slope=float("inf")), ValueError, r"negative_slope must be finite"),
    (dict(seed="x"), TypeError, r"seed must be None, an int"),
]


@pytest.mark.parametrize("change,error,pattern", CONSTRUCTOR_CASES)
def test_constructor_rejects(change, error, pattern):
    kwargs = dict(layer_sizes=[3, 4, 2, 1])
    kwargs.update(change)
    with pytest.raises(error, match=pattern):
        MLP(**kwargs)


Xnan = X.copy()
Xnan[4, 1] = np.nan
Xnan[7, 0] = np.inf

FIT_CASES = [
    (dict(X=Xnan), ValueError, r"X must be finite: 2 values are NaN or infinite, the first is X\[4, 1\] = nan"),
    (dict(X=X[:, :2]), ValueError, r"X must have 3 features \(columns\), like the model's input layer; got shape \(10, 2\)"),
    (dict(X=X[0]), ValueError, r"X must be 2-D \(m, 3\); got shape \(3,\) \(one sample: X.reshape\(1, -1\)\)"),
    (dict(X=X[:0], y=y[:0]), ValueError, r"X must hold at least one sample"),
    (dict(X=X.astype(np.float32)), TypeError, r"X has dtype float32 but the model is float64; convert it"),
    (dict(X=X.astype(complex)), TypeError, r"X must hold real numbers; got dtype complex128"),
    (dict(X=np.array([["a"] * 3] * 10)), TypeError, r"X must hold real numbers"),
    (dict(y=y[:9]), ValueError, r"y must have one row per sample of X \(10\); got shape \(9,\)"),
    (dict(y=y + 1), ValueError, r"y must hold 0/1 labels for a sigmoid output; got values \[2\]"),
    (dict(y=np.where(y == 1, np.nan, 0)), ValueError, r"y must be finite: 5 values"),
    (dict(y=np.c_[y, y]), ValueError, r"y must have shape \(10,\) or \(10, 1\) for 1 output unit; got \(10, 2\)"),
    (dict(epochs=0), ValueError, r"epochs must be at least 1; got 0"),
    (dict(epochs=2.0), TypeError, r"epochs must be an integer"),
    (dict(batch_size=0), ValueError, r"batch_size must be at least 1; got 0"),
    (dict(lr=-0.1), ValueError, r"lr must be in \(0, inf\]; got -0.1"),
    (dict(lr=float("nan")), ValueError, r"lr must be finite"),
    (dict(weight_decay=-1.0), ValueError, r"weight_decay must be in \[0, inf\]"),
    (dict(optimizer="rmsprop"), ValueError, r"optimizer must be one of 'sgd', 'momentum', 'nesterov', 'adam'"),
    (dict(optimizer="sgd", beta1=0.5), TypeError, r"optimizer 'sgd' takes no option 'beta1'"),
    (dict(optimizer="adam", beta2=1.0), ValueError, r"beta2 must be in \[0, 1\)"),
    (dict(shuffle="yes"), TypeError, r"shuffle must be True or False"),
    (dict(validation_data=X), TypeError, r"validation_data must be a pair"),
    (dict(validation_data=(X[:, :2], y)), ValueError, r"validation_data\[0\] must have 3 features"),
    (dict(validation_data=(X, y[:3])), ValueError, r"validation_data\[1\] must have one row per sample"),
    (dict(patience=3), ValueError, r"patience \(early stopping\) needs validation_data"),
    (dict(callbacks=[1]), TypeError, r"callbacks must be callables"),
]


@pytest.mark.parametrize("change,error,pattern", FIT_CASES)
def test_fit_rejects_and_leaves_the_model_as_it_was(change, error, pattern):
    net = MLP([3, 4, 2, 1], seed=0)
    net.fit(X, y, epochs=2, optimizer="momentum")
    before = snapshot(net)
    kwargs = dict(X=X, y=y, epochs=2, optimizer="momentum")
    kwargs.update(change)
    with pytest.raises(error, match=pattern):
        net.fit(**kwargs)
    assert unchanged(net, before)


SOFTMAX_CASES = [
    (np.array([0, 1, 2, 3] * 2 + [0, 1]), ValueError, r"y must be class labels in \[0, 3\) for a softmax of 3 units; y\[3\] = 3"),
    (np.arange(10) % 3 + 0.5, ValueError, r"y must hold integer class labels"),
    (np.eye(4)[np.arange(10) % 4], ValueError, r"y must be labels \(m,\) or one-hot rows \(m, 3\); got shape \(10, 4\)"),
    (np.full((10, 3), 0.5), ValueError, r"y's rows must be probabilities"),
]


@pytest.mark.parametrize("labels,error,pattern", SOFTMAX_CASES)
def test_softmax_labels_are_checked(labels, error, pattern):
    net = MLP([3, 4, 3], output="softmax", seed=0)
    before = snapshot(net)
    with pytest.raises(error, match=pattern):
        net.fit(X, labels, epochs=1)
    with pytest.raises(error, match=pattern):
        net.loss(X, labels)
    assert unchanged(net, before)


def test_prediction_inputs_are_checked_in_compiled_code_too():
    net = MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=r"X must be finite: 2 values are NaN or infinite, "
                                         r"the first is X\[4, 1\] = nan"):
        net.predict(Xnan)
    assert net.predict(X.astype(int)).shape == (10,)        # integers are converted
    assert net.predict(np.asfortranarray(X)).shape == (10,)  # so is memory order
    assert net.predict(X.tolist()).shape == (10,)
    with pytest.raises(TypeError, match=r"weight_decay must be a real number"):
        net.gradients(X, y, weight_decay="a lot")
