"""The multilayer perceptron, split by concern:

- network: MLP (construction, layers, inference) and Layer;
- inputs: checking architectures, features and targets;
- outputs: the output layers and their losses (OUTPUTS);
- training: fit's settings, the epoch loop, history, early stopping, DivergenceError;
- state: state_dict, save and load, pickling.
"""
from fastnn.model.network import MLP, Layer
from fastnn.model.outputs import OUTPUTS
from fastnn.model.state import load
from fastnn.model.training import DivergenceError, TrainingSettings

__all__ = ["MLP", "Layer", "DivergenceError", "load", "OUTPUTS", "TrainingSettings"]
