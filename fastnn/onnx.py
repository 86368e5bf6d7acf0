"""ONNX export of fastnn.MLP and of the estimators MLPClassifier and MLPRegressor.

:func:`export` (and ``to_onnx`` on the model and the estimators) builds the graph with
the onnx package alone (``onnx.helper``), opset 17, so any ONNX runtime can serve the
model: onnxruntime from C++, Java, C#, JavaScript or a phone. ``import fastnn`` never
imports this module or onnx; it needs the ``fastnn[onnx]`` extra.

The graph has one input, ``X`` of shape (N, n_features) and the model's dtype (float32
or float64; a runtime does not convert it, as the estimators do), N symbolic. Each layer
is a Gemm with transB=1 over fastnn's W (n_out, n_in) as it is, then the activation
(leaky ReLU as Where(z > 0, z, slope z), exact in both dtypes); the output layer's is
Sigmoid, Softmax (axis -1), Exp (the Poisson output) or none (identity). The outputs,
each exactly as fastnn returns it (k output units; "(N,) or (N, k)" means (N,) when
k is 1):

========================  =============  ==============  ==========================
model                     output         dtype           shape, as returned by
========================  =============  ==============  ==========================
MLP, sigmoid or softmax   probabilities  the model's     (N,) or (N, k): predict_proba
                          labels         int64           sigmoid: 0/1 (p > 0.5) of
                                                         probabilities' shape;
                                                         softmax: the argmax (N,);
                                                         as predict
MLP, identity or poisson  values         the model's     (N,) or (N, k): predict_proba
MLPClassifier             label          classes_'       (N,): predict (binary:
                                         (string for     classes_[p > 0.5];
                                         text labels)    multiclass: the argmax's);
                                                         multilabel: int64 0/1 (N, k)
                          probabilities  the model's     (N, n_classes): predict_proba
                                                         (binary: [1 - p, p])
MLPRegressor              predictions    the model's     (N,) or (N, k): predict
========================  =============  ==============  ==========================

The classifier's probabilities are a plain tensor (no ZipMap), and its labels come
from a constant tensor of classes_ (Gather on the predicted index).
"""
import os
import sys

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as error:
    raise ImportError("fastnn's ONNX export needs the onnx package: "
                      "pip install 'fastnn[onnx]'") from error

from fastnn._version import __version__
from fastnn.model import MLP
from fastnn.model.state import check_finite_state, write_atomically

__all__ = ["export", "OPSET", "INPUT"]

#: The ONNX opset of the graphs (default domain).
OPSET = 17

#: The name of the graph's input.
INPUT = "X"

#: The ONNX operators of the activations and output layers that have one.
_OPERATORS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softmax": "Softmax",
              "poisson": "Exp"}


def export(model, path=None):
    """A fastnn model or fitted estimator as an ONNX model, written to path if given.

    Parameters
    ----------
    model : fastnn.MLP, fastnn.MLPClassifier or fastnn.MLPRegressor
        The model; an estimator must be fitted.
    path : str or os.PathLike, optional
        Where to write the .onnx file. It is written to a temporary file in the same
        folder and renamed over path, so a failed export leaves no partial file (and
        an old file at path whole).

    Returns
    -------
    onnx.ModelProto
        The model: input "X" (N, n_features) of the model's dtype; outputs as this
        module's docstring lists them.

    Raises
    ------
    TypeError
        If model is none of these, or path is not a str or os.PathLike.
    sklearn.exceptions.NotFittedError
        If model is an estimator that has not been fitted.
    ValueError
        If the model's weights are not finite (after training diverged), as save
        refuses them (before anything is written).
    OSError
        If path cannot be written: its folder is missing or not writable, or path is
        a folder (raised before anything is written).

    Notes
    -----
    While another thread trains the model, the graph holds the weights of one of
    its steps, as save's file does.
    """
    graph_name, net, head = _parts(model)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike; got "
                            f"{type(path).__name__}")
        path = os.fspath(path)
    proto = _model(graph_name, net, lambda graph, values: head(graph, values, model))
    if path is not None:
        write_atomically(path, lambda f: onnx.save_model(proto, f))
    return proto


def _parts(model):
    """(graph name, network, head) for model: head(graph, values, model) declares
    the graph's outputs from the output layer's values."""
    if isinstance(model, MLP):
        return "fastnn.MLP", model, _mlp_outputs
    estimators = sys.modules.get("fastnn.sklearn")  # an estimator needs it imported
    heads = () if estimators is None else (
        (estimators.MLPClassifier, _classifier_outputs),
        (estimators.MLPRegressor, _regressor_outputs))
    for kind, head in heads:
        if isinstance(model, kind):
            from sklearn.utils.validation import check_is_fitted
            check_is_fitted(model)
            return f"fastnn.{kind.__name__}", model.model_, head
    raise TypeError(f"model must be a fastnn.MLP, MLPClassifier or MLPRegressor; got "
                    f"{type(model).__name__}")


class _Graph:
    """The nodes, initializers and outputs of one graph being built, in a dtype."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.elem_type = helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes, self.initializers, self.outputs = [], {}, []

    def constant(self, name, value):
        """An initializer named name holding the array value (strings as ONNX
        strings); added once per name. Returns name."""
        if name not in self.initializers:
            value = np.asarray(value)
            self.initializers[name] = (
                helper.make_tensor(name, TensorProto.STRING, value.shape,
                                   [s.encode() for s in value.ravel()])
                if value.dtype.kind == "U" else numpy_helper.from_array(value, name))
        return name

    def scalar(self, name, value):
        """A constant scalar of the graph's dtype. Returns its name."""
        return self.constant(name, np.array(value, self.dtype))

    def op(self, op_type, inputs, output, **attributes):
        """A node computing the tensor named output. Returns output."""
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output,
                                           **attributes))
        return output

    def output(self, name, elem_type, shape):
        """Declare the tensor name an output of the graph (shape with "N" for the
        batch). Returns name."""
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name


def _model(graph_name, net, head):
    """The ModelProto of net's layers followed by head(graph, values), which
    declares the outputs from the output layer's values."""
    graph = _Graph(net.dtype)
    values = net.engine.read(lambda: _layers(graph, net))  # the weights of one step
    head(graph, values)
    inputs = [helper.make_tensor_value_info(INPUT, graph.elem_type,
                                            ["N", net.n_features])]
    body = helper.make_graph(graph.nodes, graph_name, inputs, graph.outputs,
                             list(graph.initializers.values()))
    opset = [helper.make_opsetid("", OPSET)]
    return helper.make_model(
        body, opset_imports=opset, ir_version=helper.find_min_ir_version_for(opset),
        producer_name="fastnn", producer_version=__version__,
        doc_string=f"{graph_name} {list(net.layer_sizes)}, {net.dtype.name}; "
                   f"exported by fastnn {__version__}")


def _layers(graph, net):
    """Every layer of net from the input: the output layer's values (N, k).
    ValueError, as save raises it, if the weights are not finite."""
    check_finite_state(dict(net._named_parameters()), "export")
    a = INPUT
    for index, layer in enumerate(net.layers):
        z = graph.op("Gemm", [a, graph.constant(f"W{index}", layer.W),
                              graph.constant(f"b{index}", layer.b)], f"z{index}", transB=1)
        a = _activate(graph, z, f"a{index}", layer.activation, net.negative_slope)
    return _activate(graph, a, "outputs", net.output, net.negative_slope)


def _activate(graph, z, name, activation, slope):
    """The tensor name = activation(z): a hidden activation, or an output layer's
    (by its name in OUTPUTS); identity is z itself."""
    if activation == "identity":
        return z
    if activation == "leaky_relu":  # as fastnn: z * (1 if z > 0 else slope)
        positive = graph.op("Greater", [z, graph.scalar("zero", 0)], f"{name}_positive")
        scaled = graph.op("Mul", [z, graph.scalar("negative_slope", slope)],
                          f"{name}_scaled")
        return graph.op("Where", [positive, z, scaled], name)
    axis = {"axis": -1} if activation == "softmax" else {}
    return graph.op(_OPERATORS[activation], [z], name, **axis)


def _squeezed(graph, values, k, name):
    """values (N, k) as the tensor name, (N,) for one unit as fastnn returns it."""
    if k == 1:
        return graph.op("Squeeze", [values, graph.constant("axis_1", np.array([1]))],
                        name)
    return graph.op("Identity", [values], name)


def _as_returned(graph, values, k, name):
    """values (N, k) as the graph's output name, (N,) for one unit."""
    _squeezed(graph, values, k, name)
    return graph.output(name, graph.elem_type, ["N"] if k == 1 else ["N", k])


def _above_half(graph, p, name):
    """int64 0/1, 1 where p > 0.5 (fastnn's and scikit-learn's threshold)."""
    above = graph.op("Greater", [p, graph.scalar("half", 0.5)], f"{name}_above")
    return graph.op("Cast", [above], name, to=TensorProto.INT64)


def _mlp_outputs(graph, values, net):
    """MLP's outputs: "probabilities" or "values" as predict_proba returns them, and
    for classifiers "labels" as predict returns them."""
    k = net.n_outputs
    if net.output not in ("sigmoid", "softmax"):
        _as_returned(graph, values, k, "values")
        return
    probabilities = _as_returned(graph, values, k, "probabilities")
    if net.output == "sigmoid":
        _above_half(graph, probabilities, "labels")
        graph.output("labels", TensorProto.INT64, ["N"] if k == 1 else ["N", k])
    else:
        graph.op("ArgMax", [values], "labels", axis=1, keepdims=0)
        graph.output("labels", TensorProto.INT64, ["N"])


def _classifier_outputs(graph, values, estimator):
    """MLPClassifier's outputs: "label" as predict returns it and "probabilities" as
    predict_proba does."""
    net = estimator.model_
    k = net.n_outputs
    if net.output == "sigmoid" and k > 1:  # multilabel: the indicator matrix
        graph.output(_above_half(graph, values, "label"), TensorProto.INT64, ["N", k])
        _as_returned(graph, values, k, "probabilities")
        return
    classes = _classes(estimator.classes_)
    if net.output == "softmax":
        index = graph.op("ArgMax", [values], "label_index", axis=1, keepdims=0)
        _squeezed(graph, values, k, "probabilities")
    else:  # binary: one unit p, probabilities [1 - p, p]; one class counts twice
        classes, k = np.resize(classes, 2), 2
        index = _above_half(graph, _squeezed(graph, values, 1, "p"), "label_index")
        graph.op("Concat", [graph.op("Sub", [graph.scalar("one", 1), values], "q"),
                            values], "probabilities", axis=1)
    graph.op("Gather", [graph.constant("classes", classes), index], "label", axis=0)
    graph.output("label", _label_type(classes), ["N"])
    graph.output("probabilities", graph.elem_type, ["N", k])


def _classes(classes):
    """classes_ as an array ONNX can hold: numbers or booleans, or str for text."""
    if classes.dtype.kind in "biuf":
        return classes
    if classes.dtype.kind in "OU" and all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    raise TypeError(f"ONNX export needs numeric, boolean or string class labels; "
                    f"classes_ has dtype {classes.dtype} ({classes[:3]!r})")


def _label_type(classes):
    """The ONNX element type of the labels in classes."""
    if classes.dtype.kind == "U":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(classes.dtype)


def _regressor_outputs(graph, values, estimator):
    """MLPRegressor's output: "predictions" as predict returns them."""
    _as_returned(graph, values, estimator.model_.n_outputs, "predictions")
