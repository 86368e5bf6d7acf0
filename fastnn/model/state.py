"""State and files: state_dict, save and load, pickling, and the random generator's state.

A model's state is a JSON header and plain arrays (the parameters under
torch.nn.Sequential's names and the optimizer's state). save writes it as one .npz,
read back with allow_pickle=False; pickling and copying carry the same state. Either
way it is checked whole before a model is built.
"""
import errno
import json
import os
import secrets

import numpy as np

from fastnn import _checks as check
from fastnn._version import __version__
from fastnn.model.inputs import checked_like
from fastnn.optim import OptimizerState, make_optimizer

__all__ = ["Files", "load", "unpickle", "write_atomically", "FORMAT_VERSION"]

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
        with self._session("load its state"):
            values = np.concatenate([checked[key].ravel() for key in expected])
            self._engine.assign(values)  # never under a running prediction

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
        RuntimeError
            If another thread is training the model (from a callback of this
            thread's fit, the state between epochs is saved).
        """
        header, arrays = _state(self)
        arrays["header"] = np.array(json.dumps(header))
        write_atomically(path, lambda f: np.savez(f, **arrays))

    def __reduce__(self):
        """Pickle (and copy, and deep-copy) the model through save's state.

        The payload is plain data: the header as a JSON string and the arrays as
        numpy arrays, never the compiled engine. Unpickling checks them as load
        checks a file, so training continues bit for bit.

        Returns
        -------
        tuple
            (fastnn.model.state.unpickle, (header, arrays)).

        Raises
        ------
        RuntimeError
            If another thread is training the model (from a callback of this
            thread's fit, the state between epochs is pickled).
        """
        header, arrays = _state(self)
        return unpickle, (json.dumps(header), arrays)


def _state(net):
    """(header, arrays): the model's state as save writes it and pickles carry it,
    copied while no training step runs."""
    with net._between_steps():
        arrays = {key: value.copy() for key, value in net._named_parameters()}
        state = net._optimizer_state
        for index, array in enumerate([] if state is None else state.arrays):
            arrays[f"optimizer.state{index}"] = array.copy()
        header = {
            "format": "fastnn.MLP", "format_version": FORMAT_VERSION,
            "fastnn_version": __version__, "layer_sizes": list(net.layer_sizes),
            "activations": list(net.activations), "output": net.output,
            "negative_slope": net.negative_slope, "dtype": net.dtype.name,
            "optimizer": None if state is None else {
                "name": state.optimizer.name, "config": dict(vars(state.optimizer)),
                "t": int(state.steps[0])},
            "history": {key: list(values) for key, values in net.history.items()},
            "rng": _rng_state(net._rng),
        }
    return header, arrays


def write_atomically(path, write):
    """Write a file through write(f) into a temporary file beside path, then rename it
    over path: a failure leaves no partial file, and an old file at path whole.

    The temporary file is created by open() (permissions 0o666 less the umask, as any
    new file; not tempfile's 0o600), so the file at path can be read as any other.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        write(f) writes the content into f, a binary file open for writing.

    Raises
    ------
    OSError
        If path is a folder, or its folder is missing or not writable (raised before
        anything is written), or writing fails; anything write raises.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    f = open(tmp, "xb")  # a new file, never another's
    try:
        with f:
            write(f)
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
    return _restore(*_read(path), path)


def unpickle(header, arrays):
    """The model a pickle of fastnn.MLP holds, checked as load checks a file.

    Parameters
    ----------
    header : str
        The JSON header save writes.
    arrays : dict of str to numpy.ndarray
        The arrays save writes beside it.

    Returns
    -------
    fastnn.MLP

    Raises
    ------
    ValueError
        If the state is damaged, tampered with or foreign.
    """
    try:
        header = json.loads(header)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the pickled model has no valid fastnn header: {error}") from None
    return _restore(header, arrays, "the pickled model")


def _read(path):
    """The header (a dict) and the arrays of a fastnn file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as error:  # zipfile, zlib and numpy each raise their own kinds
        raise ValueError(f"{path} is not a readable fastnn model file: {error}") from None
    try:
        return json.loads(str(arrays.pop("header"))), arrays
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} has no valid fastnn header: {error}") from None


def _restore(header, arrays, source):
    """The model of a header and its arrays (from a file or a pickle, named source in
    errors), its format, architecture and every value checked before it is built."""
    if not isinstance(header, dict) or header.get("format") != "fastnn.MLP":
        raise ValueError(f"{source} is not a fastnn model")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{source} has format version {header.get('format_version')!r}; "
                         f"this fastnn reads version {FORMAT_VERSION}")
    try:
        _check_architecture(header, arrays)
        return _model(header, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise ValueError(f"{source} is a damaged or foreign fastnn model: {error}") from None


def _model(header, arrays):
    """The MLP a checked header and its arrays describe."""
    from fastnn.model.network import MLP  # (which imports this module)
    net = MLP(header["layer_sizes"], header["activations"], header["output"],
              init="zeros", negative_slope=header["negative_slope"], dtype=header["dtype"])
    arrays = dict(arrays)
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
                raise ValueError(f"the header says {key} is {shape}; the arrays hold "
                                 f"{found}")


def _rng_state(rng):
    """The generator's state in JSON's values (its arrays as lists)."""
    if isinstance(rng, np.random.RandomState):
        return {"kind": "RandomState", "state": _plain(rng.get_state(legacy=False))}
    return {"kind": "Generator", "state": _plain(rng.bit_generator.state)}


def _plain(value):
    """value with every array in it (dicts walked) made a list."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value.tolist() if isinstance(value, np.ndarray) else value


def _rng_from_state(saved):
    """The Generator or RandomState of a state from _rng_state, over the bit generator
    it names (one of _BIT_GENERATORS: a name from a file picks no other code)."""
    kind, state = saved["kind"], saved["state"]
    if kind not in ("Generator", "RandomState"):
        raise ValueError(f"unknown kind of random generator {kind!r}")
    if state["bit_generator"] not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
    position, length = _buffer_position(state)
    if not 0 <= check.integer("the generator's buffer position", position) <= length:
        raise ValueError(f"the generator's buffer position {position} is outside "
                         f"[0, {length}]")
    bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
    state = _arrays_like(state, bit_generator.state, "rng")
    if kind == "RandomState":
        rng = np.random.RandomState(bit_generator)
        rng.set_state(state)
        return rng
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _buffer_position(state):
    """Where a bit generator's state says to read on in its buffer, and the buffer's
    length ((0, 0) for those without): numpy trusts it, and crashes beyond."""
    if state["bit_generator"] == "MT19937":
        return state["state"]["pos"], 624
    if state["bit_generator"] == "Philox":
        return state["buffer_pos"], 4
    return 0, 0


def _arrays_like(saved, fresh, name):
    """saved, its lists made arrays where the fresh state has arrays (of their dtype and
    shape, else ValueError)."""
    if isinstance(fresh, np.ndarray):
        array = np.array(saved, fresh.dtype)
        if array.shape != fresh.shape:
            raise ValueError(f"{name} has shape {array.shape}; expected {fresh.shape}")
        return array
    if isinstance(saved, dict) and isinstance(fresh, dict):
        return {key: _arrays_like(value, fresh.get(key), f"{name}.{key}")
                for key, value in saved.items()}
    return saved


_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}
