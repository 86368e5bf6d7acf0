"""State and files: state_dict, save and load, and the random generator's state.

A file is one .npz of plain arrays (the parameters under torch.nn.Sequential's names
and the optimizer's state) with a JSON header; it is read with allow_pickle=False
and checked whole before a model is built.
"""
import json
import os
import tempfile

import numpy as np

from fastnn import _checks as check
from fastnn._version import __version__
from fastnn.model.inputs import checked_like
from fastnn.optim import OptimizerState, make_optimizer

__all__ = ["Files", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class Files:
    """MLP's state and file methods (a mixin of fastnn.MLP)."""

    def state_dict(self):
        """The parameters under torch.nn.Sequential's names.

        Linear layers sit at even indices, activations between: "0.weight",
        "0.bias", "2.weight", ... torch.from_numpy loads them into the same
        Sequential.

        Returns
        -------
        dict of str to numpy.ndarray
            New arrays.
        """
        return {key: value.copy() for key, value in self._named_parameters()}

    def _named_parameters(self):
        for index, layer in enumerate(self.layers):
            yield f"{2 * index}.weight", layer.W
            yield f"{2 * index}.bias", layer.b

    def load_state_dict(self, state_dict):
        """Copy parameters in from a state_dict, checking everything first.

        Parameters
        ----------
        state_dict : dict of str to numpy.ndarray
            Every key of state_dict(), each array of its shape and dtype, finite.

        Raises
        ------
        TypeError
            If state_dict is not a dict or an array has the wrong dtype.
        ValueError
            If keys are missing or unexpected, or an array has the wrong shape or is
            not finite.
        RuntimeError
            If the model is being trained in another thread.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict; got {type(state_dict).__name__}")
        expected = dict(self._named_parameters())
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        checked = {key: checked_like(key, state_dict[key], target)
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
        """Write the model to one .npz file (no pickles), atomically.

        The file holds the parameters under state_dict's names, the optimizer's state
        and a JSON header; it is written to a temporary file in the same folder and
        renamed over path, so a crash never leaves a damaged model there.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        OSError
            If the file cannot be written.
        """
        arrays = dict(self._named_parameters())
        state = self._optimizer_state
        for index, array in enumerate([] if state is None else state.arrays):
            arrays[f"optimizer.state{index}"] = array
        header = {
            "format": "fastnn.MLP", "format_version": FORMAT_VERSION,
            "fastnn_version": __version__, "layer_sizes": list(self.layer_sizes),
            "activations": list(self.activations), "output": self.output,
            "negative_slope": self.negative_slope, "dtype": self.dtype.name,
            "optimizer": None if state is None else {
                "name": state.optimizer.name, "config": vars(state.optimizer),
                "t": int(state.steps[0])},
            "history": self.history, "rng": _rng_state(self._rng),
        }
        arrays["header"] = np.array(json.dumps(header))
        _write_atomically(os.fspath(path), arrays)


def _write_atomically(path, arrays):
    """np.savez into a temporary file beside path, then renamed over it."""
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
    a model is built.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    fastnn.MLP

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        If the file cannot be opened.
    ValueError
        If the file is truncated, corrupted, tampered with or foreign.
    """
    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        _check_architecture(header, arrays)
        return _model(header, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise ValueError(f"{path} is a damaged or foreign fastnn file: {error}") from None


def _read(path):
    """The header (a dict) and the arrays of a fastnn file, format checked."""
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
    return header, arrays


def _model(header, arrays):
    """The MLP a checked header and its arrays describe."""
    from fastnn.model.network import MLP  # (which imports this module)
    net = MLP(header["layer_sizes"], header["activations"], header["output"],
              init="zeros", negative_slope=header["negative_slope"], dtype=header["dtype"])
    states = [arrays.pop(f"optimizer.state{i}") for i in range(2)
              if f"optimizer.state{i}" in arrays]
    net.load_state_dict(arrays)
    net.history = {key: [float(v) for v in header["history"][key]]
                   for key in ("loss", "val_loss", "val_score")}
    net._rng = _rng_from_state(header["rng"])
    saved = header["optimizer"]
    if saved is not None:
        optimizer = make_optimizer(saved["name"], **{
            k: v for k, v in saved["config"].items() if k != "nesterov"})
        if len(states) != optimizer.n_states:
            raise ValueError("optimizer state arrays do not match the optimizer")
        state = OptimizerState(optimizer, net.engine.n_params, net.dtype)
        state.arrays = [checked_like(f"optimizer.state{i}", s, net.engine.params).copy()
                        for i, s in enumerate(states)]
        steps = check.integer("optimizer step count", saved["t"], 0)
        if steps >= 2**62:
            raise ValueError(f"optimizer step count {steps} is out of range")
        state.steps[0] = steps
        net._optimizer_state = state
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
