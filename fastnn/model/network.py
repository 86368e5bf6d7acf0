"""The network: MLP's construction, its layers and inference.

MLP keeps every parameter in one flat buffer (W then b, layer after layer) that the
compiled engine walks; each Layer's W and b are views into it. Training (fit) and
state (state_dict, save) come from the mixins of fastnn.model.training and
fastnn.model.state. Every argument is checked first, so a refused call leaves the
model as it was.
"""
import numpy as np

from fastnn import _checks as check
from fastnn import _layout
from fastnn import _engine
from fastnn._engine import Engine, flat_buffer
from fastnn.activations import DEFAULT_NEGATIVE_SLOPE, activation_code, check_negative_slope
from fastnn.init import as_rng, scheme_for, zeros
from fastnn.model import inputs
from fastnn.model.outputs import OUTPUTS
from fastnn.model.lbfgs import LBFGS
from fastnn.model.state import Files
from fastnn.model.training import Training

__all__ = ["MLP", "Layer"]

#: Rows of a sparse X densified at a time for predictions.
_SPARSE_CHUNK = 256


class Layer:
    """A dense layer: W (n_out, n_in) and b (n_out,), views into the model's buffer.

    Writing into W or b changes the model; assigning ``layer.W = array`` copies array
    in (same shape and dtype, finite).

    Parameters
    ----------
    W : numpy.ndarray
        The weights, (n_out, n_in).
    b : numpy.ndarray
        The biases, (n_out,).
    activation : str
        The layer's activation ("identity" for the output layer: its logits).
    """

    __slots__ = ("_W", "_b", "activation")

    def __init__(self, W, b, activation):
        self._W, self._b, self.activation = W, b, activation

    @property
    def W(self):
        """The weights (n_out, n_in), the model's own array."""
        return self._W

    @W.setter
    def W(self, value):
        self._W[...] = inputs.checked_like("W", value, self._W)

    @property
    def b(self):
        """The biases (n_out,), the model's own array."""
        return self._b

    @b.setter
    def b(self, value):
        self._b[...] = inputs.checked_like("b", value, self._b)

    def __repr__(self):
        n_out, n_in = self._W.shape
        return f"Layer({n_in} -> {n_out}, {self.activation})"


class MLP(Training, LBFGS, Files):
    """A multilayer perceptron.

    Parameters
    ----------
    layer_sizes : list of int
        Every width from input to output, like the course's layers_dims.
    activation : str or list of str, default="relu"
        The hidden layers' activation (identity, sigmoid, tanh, relu, leaky_relu), or
        one per hidden layer.
    output : {"sigmoid", "softmax", "identity", "poisson"}, default="sigmoid"
        The output layer and its loss: binary cross-entropy, cross-entropy, mean
        squared error, or exp(z) with the Poisson deviance (counts, rates).
    init : str, float or callable, default="auto"
        "auto" (He for relu/leaky_relu layers, Xavier otherwise), a scheme name from
        fastnn.init.SCHEMES, a number (the std of a normal), or a callable
        (shape, rng, dtype) -> array.
    negative_slope : float, default=0.01
        Leaky ReLU's slope for z < 0.
    dtype : {"float64", "float32"}, default="float64"
        The parameters' dtype, and the dtype every input must have.
    seed : int, numpy.random.Generator, numpy.random.RandomState or None
        Draws the weights (layer by layer) and shuffles the epochs.
    bias_init : float, default=0.0
        Every bias's initial value.

    Attributes
    ----------
    layers : list of Layer
        The dense layers, first to last; their W and b are the model's own arrays.
    history : dict of list
        "loss", "val_loss" and "val_score" per epoch trained (see fit).

    Raises
    ------
    TypeError, ValueError
        For any argument of the wrong kind or out of range, naming it.
    """

    def __init__(self, layer_sizes, activation="relu", output="sigmoid", init="auto",
                 negative_slope=DEFAULT_NEGATIVE_SLOPE, dtype="float64", seed=None,
                 bias_init=0.0):
        sizes = inputs.layer_sizes(layer_sizes)
        hidden = inputs.hidden_activations(activation, len(sizes) - 2)
        self.layer_sizes, self.activations = sizes, hidden
        self.output = inputs.output_layer(output, sizes[-1]).name
        self.dtype = check.float_dtype(dtype)
        self.negative_slope = check_negative_slope(negative_slope)
        bias_init = check.real("bias_init", bias_init)
        for name, value in (("negative_slope", self.negative_slope),
                            ("bias_init", bias_init)):  # in the dtype, as the engine
            check.representable(name, value, self.dtype, flushed=True)  # reads them
        self._rng = as_rng(seed)
        params = flat_buffer(_layout.n_parameters(sizes), self.dtype)
        self.layers = [Layer(W, b, act) for (W, b), act in
                       zip(_layout.layer_views(params, sizes), hidden + ("identity",))]
        self._initialise(init, bias_init)
        codes = [activation_code(layer.activation) for layer in self.layers]
        self._engine = Engine(params, sizes, codes, OUTPUTS[self.output].code,
                              self.negative_slope)
        self._start_training()

    def _initialise(self, init, bias_init):
        """Draw every W in order (one draw per layer) and set every b to bias_init."""
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            # The output layer's own nonlinearity decides its "auto" scheme.
            act = layer.activation if index < last else (
                "sigmoid" if self.output == "sigmoid" else "identity")
            draw = scheme_for(init, act, self.negative_slope)
            layer.b[...] = bias_init
            if draw is zeros:  # nothing to draw, nor to check
                layer.W[...] = 0
                continue
            W = np.asarray(draw(layer.W.shape, self._rng, self.dtype))
            if W.shape != layer.W.shape or W.dtype.kind not in "fiu":
                raise ValueError(f"init returned {W.dtype} of shape {W.shape} for layer "
                                 f"{index}; expected real numbers of shape {layer.W.shape}")
            if not np.isfinite(W).all():
                raise ValueError(f"init returned non-finite weights for layer {index}")
            layer.W[...] = check.cast(f"init's weights for layer {index}", W, self.dtype)

    # ------------------------------------------------------------ properties

    @property
    def n_features(self):
        """The input width."""
        return self.layer_sizes[0]

    @property
    def n_outputs(self):
        """The output width."""
        return self.layer_sizes[-1]

    @property
    def is_classifier(self):
        """True for sigmoid and softmax outputs."""
        return self.output in ("sigmoid", "softmax")

    @property
    def engine(self):
        """The compiled engine (fastnn._engine.Engine) over the model's parameters.

        A hook for tests and benchmarks: ``engine.params`` is the flat parameter
        buffer, and predict, loss, loss_and_gradients, updater and step are the calls
        the model makes; fastnn.reference.Engine.twin_of(net) is its NumPy twin.
        """
        return self._engine

    @property
    def rng(self):
        """The model's random generator, which shuffles the epochs (drawing from it
        changes the shuffles to come)."""
        return self._rng

    def __repr__(self):
        acts = self.activations[0] if len(set(self.activations)) == 1 else list(
            self.activations)
        return (f"MLP({list(self.layer_sizes)}, activation={acts!r}, "
                f"output={self.output!r}, dtype={self.dtype.name!r})")

    # ------------------------------------------------------------ inference

    predict_proba = _engine.predict_proba  # compiled: see its comment

    def _predict_proba_converted(self, X):
        """predict_proba for an X the engine does not read as it is (anything but a
        C-contiguous ndarray of m >= 1 rows of the model's dtype and width): checked
        and converted, or densified a chunk of rows at a time when sparse."""
        X = X if isinstance(X, inputs.SparseRows) else inputs.features(self, X, sparse=True)
        if isinstance(X, inputs.SparseRows):
            X.check_finite("X")
            out = np.empty((len(X), self.layer_sizes[-1]), self.dtype)
            for start, rows in X.chunks(_SPARSE_CHUNK):
                self._engine.predict(rows, out[start:start + len(rows)], start)
        else:
            out = self._engine.predict(X)  # which checks shape, dtype and finiteness
        return out.reshape(-1) if self.layer_sizes[-1] == 1 else out

    def predict(self, X):
        """Class labels (sigmoid: 0/1 where p > 0.5; softmax: the argmax), or values.

        Parameters
        ----------
        X : array-like of shape (m, n_features)
            As for predict_proba.

        Returns
        -------
        numpy.ndarray
            (m,) labels (np.intp) for softmax; 0/1 of predict_proba's shape for
            sigmoid; predict_proba's values for identity.

        Raises
        ------
        TypeError, ValueError
            As predict_proba.
        """
        return OUTPUTS[self.output].predict(self.predict_proba(X))

    def score(self, X, y, sample_weight=None):
        """Accuracy for classifiers (all outputs right, for several sigmoid units); R^2
        for regression (averaged over outputs, as scikit-learn's r2_score); weighted
        by sample_weight when given.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (m, n_features)
        y : array-like
            The true labels or values, as fit takes them.
        sample_weight : array-like of shape (m,), optional
            Non-negative weights, not all 0.

        Returns
        -------
        float
            In [0, 1] for accuracy; at most 1 for R^2.

        Raises
        ------
        TypeError, ValueError
            If X or y is not what the model takes.
        """
        X = inputs.features(self, X, sparse=True)
        targets = inputs.targets(self, y, X.shape[0])
        return self._score(X, targets, inputs.sample_weight(self, sample_weight, len(X)))

    def _score(self, X, targets, weights=None):
        """score() on arrays already checked by inputs.features, targets and
        sample_weight."""
        return OUTPUTS[self.output].score(self.predict(X), targets, weights)
