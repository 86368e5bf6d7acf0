"""The multilayer perceptron: layers, training, prediction, state and files.

MLP keeps every parameter in one flat buffer (W then b, layer after layer) that the
compiled engine walks; each Layer's W and b are views into it. A training step is
one call into compiled code. This module checks every argument first, so a
refused call leaves the model as it was.
"""
import json
import math
import numbers
import os
import tempfile
import threading

import numpy as np

from fastnn import _checks as check
from fastnn import _kernels
from fastnn._version import __version__
from fastnn.activations import (ACTIVATIONS, DEFAULT_NEGATIVE_SLOPE, activation_code,
                                check_negative_slope)
from fastnn.init import as_rng, scheme_for
from fastnn.optim import make_optimizer

__all__ = ["MLP", "Layer", "DivergenceError", "load", "OUTPUTS"]

#: Output layers and their losses.
OUTPUTS = {"sigmoid": "binary cross-entropy", "softmax": "cross-entropy",
           "identity": "mean squared error"}

FORMAT_VERSION = 1


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; the model keeps the last
    finite weights (those before the step that failed)."""


class Layer:
    """A dense layer: W (n_out, n_in) and b (n_out,), views into the model's buffer.

    Writing into W or b changes the model; assigning W = array copies array in
    (same shape and dtype, finite).
    """

    __slots__ = ("_W", "_b", "activation")

    def __init__(self, W, b, activation):
        self._W, self._b, self.activation = W, b, activation

    @property
    def W(self):
        return self._W

    @W.setter
    def W(self, value):
        self._W[...] = _checked_copy("W", value, self._W)

    @property
    def b(self):
        return self._b

    @b.setter
    def b(self, value):
        self._b[...] = _checked_copy("b", value, self._b)

    def __repr__(self):
        n_out, n_in = self._W.shape
        return f"Layer({n_in} -> {n_out}, {self.activation})"


def _checked_copy(name, value, target):
    """value as an array of target's shape and dtype, finite; refused otherwise."""
    value = check.ndarray(name, value, target.ndim, target.dtype)
    check.same_shape(name, value, target.shape, f"{name}.shape")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} must be finite")
    return value


class MLP:
    """A multilayer perceptron.

    MLP(layer_sizes, activation="relu", output="sigmoid", init="auto",
        negative_slope=0.01, dtype="float64", seed=None, bias_init=0.0)

    layer_sizes lists every width from input to output, like the course's layers_dims.
    activation names the hidden layers' activation (identity, sigmoid, tanh, relu,
    leaky_relu), or is a list with one per hidden layer. output is "sigmoid" (binary
    cross-entropy), "softmax" (cross-entropy) or "identity" (mean squared error).
    init: "auto" (He for relu/leaky_relu layers, Xavier otherwise), a scheme name
    from fastnn.init.SCHEMES, a number (the std of a normal), or a callable
    (shape, rng, dtype) -> array. Weights are drawn layer by layer from seed (an int,
    Generator or RandomState); biases start at bias_init.
    """

    def __init__(self, layer_sizes, activation="relu", output="sigmoid", init="auto",
                 negative_slope=DEFAULT_NEGATIVE_SLOPE, dtype="float64", seed=None,
                 bias_init=0.0):
        sizes = _layer_sizes(layer_sizes)
        hidden = _hidden_activations(activation, len(sizes) - 2)
        if not isinstance(output, str) or output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(map(repr, OUTPUTS))}; "
                             f"got {output!r}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units (use output="
                             f"'sigmoid' for binary labels); got {sizes[-1]}")
        self.layer_sizes = sizes
        self.activations = hidden
        self.output = output
        self.negative_slope = check_negative_slope(negative_slope)
        self.dtype = check.float_dtype(dtype)
        bias_init = check.real("bias_init", bias_init)
        self._rng = as_rng(seed)

        self._params = np.empty(sum(o * (i + 1) for i, o in zip(sizes, sizes[1:])),
                                self.dtype)
        self.layers = []
        offset = 0
        for n_in, n_out, act in zip(sizes, sizes[1:], hidden + ("identity",)):
            W = self._params[offset:offset + n_out * n_in].reshape(n_out, n_in)
            b = self._params[offset + n_out * n_in:offset + n_out * (n_in + 1)]
            self.layers.append(Layer(W, b, act))
            offset += n_out * (n_in + 1)
        self._initialise(init, bias_init)

        codes = [activation_code(a) for a in hidden] + [activation_code("identity")]
        self._engine = _kernels.Engine(self._params, sizes, codes,
                                       _kernels.OUTPUTS[output], self.negative_slope)
        self._grads = np.zeros_like(self._params)
        self._optimizer = None      # the optimizer of the last fit
        self._states = None         # its state arrays (velocity; Adam's m and v)
        self._steps = np.zeros(1, np.int64)  # steps taken with it; the engine counts
        self._training = threading.Lock()    # held by fit, partial_fit, load_state_dict
        self.history = {"loss": [], "val_loss": [], "val_score": []}

    def _initialise(self, init, bias_init):
        """Draw every W in order (one draw per layer) and set every b to bias_init."""
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            # The output layer's own nonlinearity decides its "auto" scheme.
            act = layer.activation if index < last else (
                "sigmoid" if self.output == "sigmoid" else "identity")
            draw = scheme_for(init, act, self.negative_slope)
            W = np.asarray(draw(layer.W.shape, self._rng, self.dtype))
            if W.shape != layer.W.shape or W.dtype.kind not in "fiu":
                raise ValueError(f"init returned {W.dtype} of shape {W.shape} for layer "
                                 f"{index}; expected real numbers of shape {layer.W.shape}")
            if not np.isfinite(W).all():
                raise ValueError(f"init returned non-finite weights for layer {index}")
            layer.W[...] = W
            layer.b[...] = bias_init

    # ------------------------------------------------------------ properties

    @property
    def n_features(self):
        return self.layer_sizes[0]

    @property
    def n_outputs(self):
        return self.layer_sizes[-1]

    @property
    def is_classifier(self):
        return self.output != "identity"

    def __repr__(self):
        acts = self.activations[0] if len(set(self.activations)) == 1 else list(
            self.activations)
        return (f"MLP({list(self.layer_sizes)}, activation={acts!r}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")

    # ------------------------------------------------------------ inputs

    def _features(self, X, name="X"):
        """X as a C-contiguous (m, n_features) array of the model's dtype.

        Integer and boolean arrays (and lists) are converted; a float array of the
        other precision is refused, never cast silently. Finiteness is checked by
        the engine (in C) or by fit, once for all the data.
        """
        if not isinstance(X, np.ndarray):
            X = np.asarray(X)
            if X.dtype.kind == "f":
                with np.errstate(over="ignore"):
                    converted = X.astype(self.dtype)
                if np.isinf(converted).sum() > np.isinf(X).sum():
                    raise ValueError(f"{name} has values beyond the range of "
                                     f"{self.dtype.name}, the model's dtype")
                X = converted
        if X.dtype.kind in "biu":
            X = X.astype(self.dtype)
        elif X.dtype.kind != "f":
            raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}")
        elif X.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {X.dtype} but the model is "
                            f"{self.dtype}; convert it with "
                            f"{name}.astype(np.{self.dtype.name}) (fastnn never casts "
                            f"floats silently)")
        if X.ndim != 2:
            hint = f" (one sample: {name}.reshape(1, -1))" if X.ndim == 1 else ""
            raise ValueError(f"{name} must be 2-D (m, {self.n_features}); got shape "
                             f"{X.shape}{hint}")
        if X.shape[1] != self.n_features:
            raise ValueError(f"{name} must have {self.n_features} features (columns), "
                             f"like the model's input layer; got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one sample; got shape {X.shape}")
        return np.ascontiguousarray(X)

    def _targets(self, y, m, name="y"):
        """y as the engine takes it: class labels np.intp (m,) for softmax labels,
        otherwise float targets (m, k) of the model's dtype."""
        y = np.asarray(y)
        k = self.n_outputs
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers; got dtype {y.dtype}")
        if y.shape[:1] != (m,):
            raise ValueError(f"{name} must have one row per sample of X ({m}); got shape "
                             f"{y.shape}")
        _check_finite(name, y)
        if self.output == "softmax":
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
            return np.ascontiguousarray(y, dtype=self.dtype)
        wanted = ((m,), (m, k)) if k == 1 else ((m, k),)
        if y.shape not in wanted:
            shapes = " or ".join(map(str, wanted))
            raise ValueError(f"{name} must have shape {shapes} for {k} output unit"
                             f"{'s' if k > 1 else ''}; got {y.shape}")
        if self.output == "sigmoid" and not np.isin(y, (0, 1)).all():
            raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output; got "
                             f"values {np.unique(y[~np.isin(y, (0, 1))])[:5]}")
        return np.ascontiguousarray(y.reshape(m, k), dtype=self.dtype)

    # ------------------------------------------------------------ inference

    def predict_proba(self, X):
        """Probabilities (sigmoid, softmax) or values (identity) for X (m, n_features).

        Shape (m, k); (m,) when the output has one unit.
        """
        if not (type(X) is np.ndarray and X.dtype is self.dtype and X.ndim == 2
                and X.shape[1] == self.layer_sizes[0] and X.shape[0]
                and X.flags.c_contiguous):  # the fast path skips only what it has seen
            X = self._features(X)
        out = self._engine.predict(X)  # which checks shape, dtype and finiteness in C
        return out.reshape(-1) if self.layer_sizes[-1] == 1 else out

    def predict(self, X):
        """Class labels (sigmoid: 0/1 where p > 0.5; softmax: argmax), or values."""
        out = self.predict_proba(X)
        if self.output == "sigmoid":
            return (out > 0.5).astype(np.intp)
        if self.output == "softmax":
            return out.argmax(axis=1)
        return out

    def score(self, X, y):
        """Accuracy for classifiers (all outputs right, for several sigmoid units);
        R^2 for regression (averaged over outputs, as scikit-learn's r2_score)."""
        X = self._features(X)
        return self._score(X, self._targets(y, X.shape[0]))

    def _score(self, X, targets):
        """score() on arrays already checked and converted by _features and _targets."""
        pred = self.predict(X)
        if self.output == "softmax":
            truth = targets if targets.ndim == 1 else targets.argmax(axis=1)
            return float(np.mean(pred == truth))
        if self.output == "sigmoid":
            right = pred.reshape(targets.shape) == targets
            return float(np.mean(right.all(axis=1)))
        pred = pred.reshape(targets.shape)
        residual = ((targets - pred) ** 2).sum(axis=0)
        total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                      np.where(residual > 0, 0.0, 1.0))
        return float(np.mean(r2))

    def loss(self, X, y):
        """The mean loss on (X, y), weight decay excluded."""
        X = self._features(X)
        return self._engine.loss(X, self._targets(y, X.shape[0]))

    def gradients(self, X, y, weight_decay=0.0):
        """[(dW, db), ...] per layer: the gradient of the mean loss on (X, y) (plus
        0.5 weight_decay sum ||W||^2 when weight_decay > 0), by backprop. New arrays."""
        X = self._features(X)
        targets = self._targets(y, X.shape[0])
        weight_decay = check.real("weight_decay", weight_decay, 0)
        grads = np.empty_like(self._params)
        self._engine.loss_and_gradients(X, targets, grads)
        out = []
        offset = 0
        for layer in self.layers:
            n_out, n_in = layer.W.shape
            dW = grads[offset:offset + n_out * n_in].reshape(n_out, n_in)
            db = grads[offset + n_out * n_in:offset + n_out * (n_in + 1)]
            if weight_decay:
                dW += weight_decay * layer.W
            out.append((dW, db))
            offset += n_out * (n_in + 1)
        return out

    # ------------------------------------------------------------ training

    def fit(self, X, y, epochs=100, batch_size=32, lr=None, optimizer="sgd",
            weight_decay=0.0, shuffle=True, validation_data=None, patience=None,
            callbacks=(), verbose=False, **optimizer_options):
        """Train by mini-batch gradient descent; returns self.history.

        epochs passes over (X, y), each reshuffled (from the model's seed) when
        shuffle; batch_size=None uses the full batch. optimizer: "sgd", "momentum",
        "nesterov", "adam" or a fastnn.optim object; lr=None is 0.01 (0.001 for
        Adam); optimizer_options: momentum, or beta1, beta2, eps. weight_decay is L2
        regularisation (loss + 0.5 wd sum ||W||^2, biases excluded).
        validation_data=(X_val, y_val) records val_loss and val_score each epoch;
        patience stops after that many epochs without a better val_loss and
        restores the best weights. Each callback(net, epoch, logs) runs after every
        epoch; one returning True stops training. verbose prints a line per epoch.

        The optimizer's state (velocity, Adam's moments and step count) carries over
        between calls while the optimizer's kind stays the same.
        history["loss"] is the mean over the epoch's batches of the training
        objective; val_loss is the loss on the validation data after the epoch
        (once any epoch had validation data, val_loss and val_score have one entry
        per epoch, NaN for the epochs without).
        Raises DivergenceError, keeping the last finite weights, if the loss or a
        gradient stops being finite.
        """
        epochs = check.integer("epochs", epochs, 1)
        return self._train(X, y, epochs, batch_size, lr, optimizer, weight_decay, shuffle,
                           validation_data, patience, callbacks, verbose,
                           optimizer_options)

    def partial_fit(self, X, y, batch_size=32, lr=None, optimizer="sgd", weight_decay=0.0,
                    shuffle=True, **optimizer_options):
        """One pass (one epoch) over (X, y), continuing from the current state; returns
        self.history. Arguments as for fit."""
        return self._train(X, y, 1, batch_size, lr, optimizer, weight_decay, shuffle,
                           None, None, (), False, optimizer_options)

    def _train(self, X, y, epochs, batch_size, lr, optimizer, weight_decay, shuffle,
               validation_data, patience, callbacks, verbose, optimizer_options):
        # Every argument is checked before anything changes.
        X = self._features(X)
        _check_finite("X", X)
        m = X.shape[0]
        targets = self._targets(y, m)
        batch = m if batch_size is None else min(check.integer("batch_size", batch_size, 1), m)
        opt = make_optimizer(optimizer, lr, **optimizer_options)
        weight_decay = check.real("weight_decay", weight_decay, 0)
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}")
        validation = self._validation(validation_data)
        if patience is not None:
            patience = check.integer("patience", patience, 1)
            if validation is None:
                raise ValueError("patience (early stopping) needs validation_data")
        callbacks = list(callbacks)
        for callback in callbacks:
            if not callable(callback):
                raise TypeError(f"callbacks must be callables; got {callback!r}")

        if not self._training.acquire(blocking=False):
            raise RuntimeError("this model is being trained in another thread; fastnn "
                               "refuses concurrent training of one model")
        try:
            return self._epochs(X, targets, m, epochs, batch, opt, weight_decay, shuffle,
                                validation, patience, callbacks, verbose)
        finally:
            self._training.release()

    def _epochs(self, X, targets, m, epochs, batch, opt, weight_decay, shuffle, validation,
                patience, callbacks, verbose):
        if self._optimizer is None or self._optimizer.name != opt.name:
            self._states = [np.zeros_like(self._params) for _ in range(opt.n_states)]
            self._steps[0] = 0
        self._optimizer = opt
        states = (self._states + [self._grads, self._grads])[:2]
        momentum, beta1, beta2, eps = opt.hyper()
        if shuffle:  # each batch gathered into these, where the step reads it from cache
            X_batch = np.empty((min(batch, m),) + X.shape[1:], X.dtype)
            t_batch = np.empty((min(batch, m),) + targets.shape[1:], targets.dtype)
        best = None

        for _ in range(epochs):
            epoch = len(self.history["loss"]) + 1
            if shuffle:
                order = self._rng.permutation(m)
            total = 0.0
            for start in range(0, m, batch):
                if shuffle:
                    rows = order[start:start + batch]
                    X_in = np.take(X, rows, axis=0, out=X_batch[:len(rows)])
                    t_in = np.take(targets, rows, axis=0, out=t_batch[:len(rows)])
                else:
                    X_in, t_in = X[start:start + batch], targets[start:start + batch]
                loss = self._engine.step(
                    X_in, t_in, self._grads, states[0], states[1], opt.name, opt.lr,
                    momentum, beta1, beta2, eps, self._steps, weight_decay)
                if loss == -math.inf:
                    raise DivergenceError(
                        f"training diverged in epoch {epoch}: an update overflowed the "
                        f"weights (lr={opt.lr:g}), which are no longer finite; use a "
                        f"smaller learning rate and re-initialise or load the model.")
                if not math.isfinite(loss):
                    raise DivergenceError(
                        f"training diverged in epoch {epoch}: the loss or its gradient "
                        f"became {loss} (lr={opt.lr:g}); try a smaller learning rate. "
                        f"The model keeps the weights from before that step.")
                total += loss * min(batch, m - start)
            logs = {"loss": total / m}
            if validation is not None:
                logs["val_loss"] = self._engine.loss(*validation)
                logs["val_score"] = self._score(*validation)
            validated = validation is not None or self.history["val_loss"]
            for key in self.history if validated else ["loss"]:
                values = self.history[key]  # val_*: NaN for epochs without validation
                values.extend([math.nan] * (epoch - 1 - len(values)))
                values.append(logs.get(key, math.nan))
            if verbose:
                print(f"epoch {epoch}: " + "  ".join(f"{k} {v:.6g}" for k, v in logs.items()))
            stop = any([callback(self, epoch, logs) is True for callback in callbacks])
            if patience is not None:
                if best is None or logs["val_loss"] < best[0]:
                    best, waited = (logs["val_loss"], self._params.copy()), 0
                else:
                    waited += 1
                    stop = stop or waited >= patience
            if stop:
                break
        if best is not None:
            self._engine.assign(best[1])  # never under a running prediction
        return self.history

    def _validation(self, validation_data):
        """(X, engine targets) for validation_data, checked once, or None."""
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        X_val = self._features(validation_data[0], "validation_data[0]")
        _check_finite("validation_data[0]", X_val)
        return X_val, self._targets(validation_data[1], X_val.shape[0], "validation_data[1]")

    def reset_optimizer(self):
        """Forget the optimizer's state (velocity, moments, step count)."""
        self._optimizer, self._states = None, None
        self._steps[0] = 0

    # ------------------------------------------------------------ state and files

    def state_dict(self):
        """The parameters under torch.nn.Sequential's names ("0.weight", "0.bias",
        "2.weight", ...: Linear layers sit at even indices, activations between).
        A dict of new arrays; torch.from_numpy loads them into the same Sequential."""
        return {key: value.copy() for key, value in self._named_parameters()}

    def _named_parameters(self):
        for index, layer in enumerate(self.layers):
            yield f"{2 * index}.weight", layer.W
            yield f"{2 * index}.bias", layer.b

    def load_state_dict(self, state_dict):
        """Copy parameters in from a state_dict; every key, shape and dtype must match,
        and all values be finite. Checks everything before changing anything."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict; got {type(state_dict).__name__}")
        expected = dict(self._named_parameters())
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        checked = {key: _checked_copy(key, state_dict[key], target)
                   for key, target in expected.items()}
        if not self._training.acquire(blocking=False):
            raise RuntimeError("this model is being trained in another thread; load its "
                               "state when training is over")
        try:
            values = np.concatenate([checked[key].ravel() for key in expected])
            self._engine.assign(values)  # never under a running prediction
        finally:
            self._training.release()

    def save(self, path):
        """Write the model to one .npz file (no pickles): the parameters under
        state_dict's names, the optimizer's state and a JSON header. The write is
        atomic: a temporary file in the same folder, renamed over path."""
        arrays = dict(self._named_parameters())
        for index, state in enumerate(self._states or []):
            arrays[f"optimizer.state{index}"] = state
        header = {
            "format": "fastnn.MLP", "format_version": FORMAT_VERSION,
            "fastnn_version": __version__, "layer_sizes": list(self.layer_sizes),
            "activations": list(self.activations), "output": self.output,
            "negative_slope": self.negative_slope, "dtype": self.dtype.name,
            "optimizer": None if self._optimizer is None else {
                "name": self._optimizer.name, "config": vars(self._optimizer),
                "t": int(self._steps[0])},
            "history": self.history, "rng": _rng_state(self._rng),
        }
        arrays["header"] = np.array(json.dumps(header))
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".npz", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def load(path):
    """A model saved by MLP.save, ready to predict or to continue training.

    The file is read without pickles (allow_pickle=False); the header's architecture,
    every array's shape and dtype, and the finiteness of every value are checked before
    a model is built. A truncated, corrupted, tampered or foreign file raises
    ValueError; a missing one FileNotFoundError.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # zipfile, zlib and numpy each raise their own kinds
        raise ValueError(f"{path} is not a readable fastnn model file: {error}") from None
    try:
        header = json.loads(str(arrays.pop("header")))
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} has no valid fastnn header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != "fastnn.MLP":
        raise ValueError(f"{path} is not a fastnn model file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {header.get('format_version')!r}; "
                         f"this fastnn reads version {FORMAT_VERSION}")
    try:
        _check_architecture(header, arrays)
        net = MLP(header["layer_sizes"], header["activations"], header["output"],
                  init="zeros", negative_slope=header["negative_slope"],
                  dtype=header["dtype"])
        states = [arrays.pop(f"optimizer.state{i}") for i in range(2)
                  if f"optimizer.state{i}" in arrays]
        net.load_state_dict(arrays)
        net.history = {key: [float(v) for v in header["history"][key]]
                       for key in ("loss", "val_loss", "val_score")}
        net._rng = _rng_from_state(header["rng"])
        optimizer = header["optimizer"]
        if optimizer is not None:
            net._optimizer = make_optimizer(optimizer["name"], **{
                k: v for k, v in optimizer["config"].items() if k != "nesterov"})
            if len(states) != net._optimizer.n_states:
                raise ValueError("optimizer state arrays do not match the optimizer")
            net._states = [_checked_copy(f"optimizer.state{i}", s, net._params).copy()
                           for i, s in enumerate(states)]
            steps = check.integer("optimizer step count", optimizer["t"], 0)
            if steps >= 2**62:
                raise ValueError(f"optimizer step count {steps} is out of range")
            net._steps[0] = steps
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise ValueError(f"{path} is a damaged or foreign fastnn file: {error}") from None
    return net


def _check_architecture(header, arrays):
    """The header's layer sizes must be those of the weight arrays, before any allocation."""
    sizes = header["layer_sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ValueError(f"layer_sizes {sizes!r} is not a list of widths")
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        for key, shape in ((f"{2 * index}.weight", (n_out, n_in)),
                           (f"{2 * index}.bias", (n_out,))):
            if key not in arrays or arrays[key].shape != shape:
                found = arrays[key].shape if key in arrays else "nothing"
                raise ValueError(f"the header says {key} is {shape}; the file has {found}")


def _rng_state(rng):
    if isinstance(rng, np.random.RandomState):
        state = rng.get_state(legacy=False)
        state["state"]["key"] = state["state"]["key"].tolist()
        return {"kind": "RandomState", "state": state}
    return {"kind": "Generator", "state": rng.bit_generator.state}


def _rng_from_state(saved):
    if saved["kind"] == "RandomState":
        rng = np.random.RandomState()
        state = dict(saved["state"])
        state["state"] = dict(state["state"], key=np.array(state["state"]["key"], np.uint32))
        rng.set_state(state)
        return rng
    state = saved["state"]
    if state["bit_generator"] not in _BIT_GENERATORS:  # a name from a file picks no code
        raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
    bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}


def _check_finite(name, array):
    """ValueError saying how many values are NaN or infinite and where the first is."""
    if array.dtype.kind in "biu":
        return
    if array.dtype in check.FLOAT_DTYPES and array.flags.c_contiguous:
        first = _kernels.first_nonfinite(array)
    else:
        bad = np.flatnonzero(~np.isfinite(array))
        first = bad[0] if len(bad) else -1
    if first >= 0:
        raise ValueError(_kernels._nonfinite_message(name, array, int(first)))


def _layer_sizes(layer_sizes):
    if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
        raise TypeError("layer_sizes must be a list of integers (input width first); "
                        f"got {type(layer_sizes).__name__}")
    sizes = tuple(check.integer(f"layer_sizes[{i}]", n, 1) for i, n in enumerate(layer_sizes))
    if len(sizes) < 2:
        raise ValueError("layer_sizes needs at least the input and output widths; got "
                         f"{list(sizes)}")
    return sizes


def _hidden_activations(activation, n_hidden):
    if isinstance(activation, str):
        activation_code(activation)
        return (activation,) * n_hidden
    if isinstance(activation, (list, tuple)):
        if len(activation) != n_hidden:
            raise ValueError(f"activation lists one name per hidden layer ({n_hidden}); "
                             f"got {len(activation)}")
    else:
        raise TypeError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))} or "
                        f"a list of them; got {type(activation).__name__}")
    for i, name in enumerate(activation):
        activation_code(name, f"activation[{i}]")
    return tuple(activation)
