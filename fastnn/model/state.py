"""State and files: state_dict, save and load, pickling, and the random generator's state.

A model's state is a JSON header and plain arrays (the parameters under
torch.nn.Sequential's names and the optimizer's state). save writes it as one .npz,
read back with allow_pickle=False; pickling and copying carry the same state. Either
way it is checked whole before a model is built: the header field by field (its JSON
types, then the values a model takes), the arrays' names, shapes and dtypes against
the architecture the header declares (for a file, from the zip directory and each
member's .npy header, before any array is read), then every value (finite, and an
optimizer state that training can leave). save and pickling
check the state they write by the same rules, so they never write what load refuses.
"""
import contextlib
import errno
import json
import math
import numbers
import os
import reprlib
import secrets
import stat
import zipfile

import numpy as np
from numpy.lib import format as npy

from fastnn._layout import n_parameters
from fastnn._version import __version__
from fastnn.activations import check_negative_slope
from fastnn.model import inputs
from fastnn.model.inputs import checked_like
from fastnn.optim import OptimizerState, make_optimizer

__all__ = ["Files", "load", "unpickle", "write_atomically", "check_finite_state",
           "FORMAT_VERSION", "MAX_HEADER_CHARS"]

FORMAT_VERSION = 1

#: The longest JSON header a file may hold, in characters (4 bytes each in the
#: file): room for the history of over 100,000 epochs.
MAX_HEADER_CHARS = 2**23

_HEADER_KEYS = ("format", "format_version", "fastnn_version", "layer_sizes",
                "activations", "output", "negative_slope", "dtype", "optimizer",
                "history", "rng")
_HISTORY_KEYS = ("loss", "val_loss", "val_score")

#: What checking a header's values or building its model can raise; each is
#: reported as a ValueError.
_STATE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError,
                 RecursionError)


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
            New arrays, copied between two training steps when another thread
            trains the model.
        """
        return self._engine.read(lambda: {key: value.copy()
                                          for key, value in self._named_parameters()})

    def _named_parameters(self):
        arrays = (array for layer in self.layers for array in (layer.W, layer.b))
        return zip(_parameter_names(len(self.layers)), arrays)

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

    def to_onnx(self, path=None):
        """The model as an ONNX graph, written to path when given (fastnn.onnx.export).

        Needs the onnx package (the ``fastnn[onnx]`` extra), imported only here.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Where to write the .onnx file (atomically: a failed export leaves no
            partial file).

        Returns
        -------
        onnx.ModelProto
            Input "X" (N, n_features) of the model's dtype; outputs "probabilities"
            (sigmoid, softmax) or "values" (identity, poisson) as predict_proba
            returns them, and for sigmoid and softmax "labels" (int64) as predict
            returns them.

        Raises
        ------
        ImportError
            If onnx is not installed.
        TypeError
            If path is not a str or os.PathLike.
        ValueError
            If the weights are not finite (after training diverged), as save refuses
            them.
        OSError
            If path cannot be written (before anything is written).
        """
        from fastnn.onnx import export
        return export(self, path)

    def save(self, path):
        """Write the model to one .npz file (no pickles), atomically.

        The file holds the parameters under state_dict's names, the optimizer's state
        and a JSON header. It is written to a temporary file beside path's target
        (symbolic links followed to the file they name) and renamed over it, so a
        crash or an interrupt never leaves a damaged model there. The target keeps its
        permission bits; a new file gets those of any file made under the umask.

        Parameters
        ----------
        path : str or os.PathLike

        Raises
        ------
        OSError
            If the file cannot be written.
        ValueError
            If load would refuse the model: its parameters or optimizer state are not
            finite (after training diverged), its optimizer state is one no training
            leaves (a negative value in Adam's second moment), its history holds anything but
            numbers, its generator runs on a bit generator other than numpy's
            PCG64, PCG64DXSM, MT19937, Philox and SFC64, or its header would be
            longer than MAX_HEADER_CHARS.

        Notes
        -----
        While another thread trains the model, the file holds the state between two
        of its steps: the weights, the optimizer's state and its step count of one
        step, and the history and the random generator as they are by then.
        """
        header, arrays = _state(self)
        text = json.dumps(header)
        if len(text) > MAX_HEADER_CHARS:
            raise ValueError(f"cannot save this model: its header would have {len(text)} "
                             f"characters, more than load reads ({MAX_HEADER_CHARS}); "
                             f"shorten its history")
        arrays["header"] = np.array(text)
        write_atomically(path, lambda file: np.savez(file, **arrays))

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
        ValueError
            As save raises it (the header's length aside), for a model load would
            refuse.

        Notes
        -----
        While another thread trains the model, the pickle holds the state between
        two of its steps, as save's file does.
        """
        header, arrays = _state(self)
        return unpickle, (json.dumps(header), arrays)


def _parameter_names(n_layers):
    """state_dict's keys for n_layers dense layers: "0.weight", "0.bias", "2.weight"..."""
    return [f"{2 * index}.{kind}" for index in range(n_layers)
            for kind in ("weight", "bias")]


def _state_name(index):
    """The name of the optimizer's state array number index."""
    return f"optimizer.state{index}"



def _state(net):
    """(header, arrays): the model's state as save writes it and pickles carry it,
    copied between two training steps of whichever thread trains it (in a read
    section of its engine, as predictions read the weights), then checked as load
    will check it."""
    with _reported_as("cannot save or pickle this model"):
        header, arrays = net._engine.read(lambda: _copied_state(net))
        _check_fields(header)
    check_finite_state(arrays)
    if header["optimizer"] is not None:
        optimizer = _optimizer(header["optimizer"])
        try:
            optimizer.check_state([arrays[_state_name(index)]
                                   for index in range(optimizer.n_states)])
        except ValueError as error:
            raise ValueError(f"cannot save or pickle this model: {error}; call "
                             f"reset_optimizer() first") from None
    return header, arrays


def _copied_state(net):
    """(header, arrays) of the model as it is: the parameters, the optimizer's state
    arrays and step count, the history and the random generator's state, copied."""
    arrays = {key: value.copy() for key, value in net._named_parameters()}
    state = net._optimizer_state
    for index, array in enumerate([] if state is None else state.arrays):
        arrays[_state_name(index)] = array.copy()
    header = {
        "format": "fastnn.MLP", "format_version": FORMAT_VERSION,
        "fastnn_version": __version__, "layer_sizes": list(net.layer_sizes),
        "activations": list(net.activations), "output": net.output,
        "negative_slope": net.negative_slope, "dtype": net.dtype.name,
        "optimizer": None if state is None else {
            "name": state.optimizer.name, "config": dict(vars(state.optimizer)),
            "t": int(state.steps[0])},
        "history": _history(net.history),
        "rng": _rng_state(net._rng),
    }
    return header, arrays


def _history(history):
    """A model's history as save writes it: its three lists, their real numbers
    (NumPy's too) made floats, anything else left for _check_fields to refuse."""
    return {key: [float(value) if isinstance(value, numbers.Real)
                  and not isinstance(value, bool) else value for value in history[key]]
            for key in _HISTORY_KEYS}


def check_finite_state(arrays, action="save or pickle"):
    """ValueError, saying what to do, unless every array of a model's state is
    finite: load refuses a model that is not, and an export of it would be useless.

    Parameters
    ----------
    arrays : dict of str to numpy.ndarray
        Arrays under state_dict's names, and the optimizer's state arrays.
    action : str, default="save or pickle"
        What is refused, for the message: "cannot {action} a model whose state...".

    Raises
    ------
    ValueError
        Naming the first array that is not finite and what to do about it.
    """
    for name, array in arrays.items():
        try:
            inputs.check_finite(name, array)
        except ValueError as error:
            remedy = ("call reset_optimizer() first" if name.startswith("optimizer")
                      else "re-initialise it (a new MLP) or load the weights of a saved "
                           "model (fastnn.load, load_state_dict) first")
            raise ValueError(f"cannot {action} a model whose state is not finite, as "
                             f"training that diverged leaves it ({error}); {remedy}"
                             ) from None


def write_atomically(path, write):
    """Write a file through write(file) into a new file beside path's target, then
    rename it over the target, so that a failure never leaves a partial file.

    Symbolic links are followed: the file a link names gets the content and the link
    stays a link. The new file gets the target's permission bits, or for a new
    target those of any file open() makes (0o666 less the umask). The temporary file
    is removed on any failure, Ctrl-C included, and its removal never hides the error
    that came first.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        write(file) writes the content into file, a new binary file open for writing
        (its name is the temporary file's path).

    Raises
    ------
    OSError
        If path is a folder, or its folder is missing or not writable (raised before
        anything is written, naming path and the folder, never the temporary file),
        or writing fails; and anything write raises.
    """
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(os.path.dirname(target), f".fastnn-{secrets.token_hex(8)}.tmp")
    try:
        with _created(tmp, path) as file:
            if mode is not None:
                os.chmod(tmp, mode)
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # never made, already renamed, or stuck
            os.unlink(tmp)
        raise


def _created(tmp, path):
    """A new file tmp open for writing, made as open() makes any; an OSError saying
    that no file can be made in its folder, naming that folder and path (the file the
    caller asked for), if it cannot be made."""
    try:
        return open(tmp, "xb")
    except OSError as error:
        raise type(error)(error.errno, f"{error.strerror}: cannot create a file in "
                                       f"{os.path.dirname(tmp)!r} to write "
                                       f"{os.fspath(path)!r}") from None


# ---------------------------------------------------------------- reading

def load(path):
    """A model saved by MLP.save, ready to predict or to continue training.

    The file is read without pickles (allow_pickle=False). The JSON header is checked
    field by field first; then the zip directory and each member's .npy header,
    against the architecture the header declares, before any array is read (so a
    small file cannot make load inflate more than that architecture needs); then every
    array's values: finite, and an optimizer state that training can leave.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    fastnn.MLP

    Raises
    ------
    OSError
        If the file cannot be opened (FileNotFoundError, IsADirectoryError,
        PermissionError...) or is not a regular file (a device such as /dev/zero, a
        pipe or a socket; refused before anything is read). Symbolic links are
        followed.
    ValueError
        If the file is truncated, corrupted, tampered with or foreign.
    """
    path = os.fspath(path)
    mode = os.stat(path).st_mode  # checked before open, where a FIFO would block
    if not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        raise OSError(f"{path} is not a regular file (a device, pipe or socket); "
                      f"fastnn model files are regular files")
    with open(path, "rb") as file:
        header, arrays = _read(file, path)
    return _restore(header, arrays, path)


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
    source = "the pickled model"
    header = _parse(header, source)
    with _reported_as(_damaged(source)):
        if not isinstance(arrays, dict):
            raise TypeError(f"its arrays must be a dict; got {type(arrays).__name__}")
        _check_arrays(_layout(header), {name: _array_layout(name, value)
                                        for name, value in arrays.items()})
    return _restore(header, arrays, source)


def _damaged(source):
    """The start of the message for a file or pickle whose contents do not fit."""
    return f"{source} is a damaged or foreign fastnn model"


@contextlib.contextmanager
def _reported_as(prefix, errors=_STATE_ERRORS):
    """Turn the errors given, raised in the block, into ValueError("prefix: error")."""
    try:
        yield
    except errors as error:
        raise ValueError(f"{prefix}: {error}") from None


def _unreadable(path):
    """A context that reports any error of zipfile, zlib or numpy as a ValueError."""
    return _reported_as(f"{path} is not a readable fastnn model file", Exception)


def _read(file, path):
    """The header (checked) and the arrays of an open fastnn file. The zip directory
    and each member's .npy header are checked against the header's architecture
    before any array is read."""
    with _unreadable(path):
        archive = zipfile.ZipFile(file)
    with archive:
        with _unreadable(path):
            members = _members(archive)
            info = members.pop("header", None)
            text = None if info is None else _header_text(archive, info)
        if text is None:
            raise ValueError(f"{path} has no valid fastnn header: it holds none")
        header = _parse(text, path)
        layout = _layout(header)
        with _unreadable(path):
            found = {name: _member_layout(archive, info) if name in layout else None
                     for name, info in members.items()}
        with _reported_as(_damaged(path)):
            _check_arrays(layout, found)
        with _unreadable(path):
            return header, {name: _member(archive, info) for name, info in members.items()}


def _members(archive):
    """{array name: ZipInfo} of a zip's members, each named "<name>.npy", once."""
    members = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members or name == info.filename:
            raise ValueError(f"it holds {_short(info.filename)}, a second member of "
                             f"that name or no .npy")
        members[name] = info
    return members


def _header_text(archive, info):
    """The JSON text of a file's header member, its size checked first."""
    shape, dtype = _member_layout(archive, info)
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_HEADER_CHARS:
        raise ValueError(f"its header is {dtype} of shape {shape}, not a text of at "
                         f"most {MAX_HEADER_CHARS} characters")
    return str(_member(archive, info))


def _member_layout(archive, info):
    """(shape, dtype) that a member's .npy header declares, once the zip directory
    agrees with it: the member stored or deflated (as np.savez and
    np.savez_compressed write them), not encrypted, and its size exactly that of the
    .npy header and the array it declares."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) \
            or info.flag_bits & 0x1:
        raise ValueError(f"{info.filename} is encrypted or compressed in a way numpy "
                         f"never writes")
    with archive.open(info) as member:
        version = npy.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{info.filename} has .npy format version {version}")
        read_header = (npy.read_array_header_1_0 if version == (1, 0)
                       else npy.read_array_header_2_0)
        shape, _, dtype = read_header(member)
        if dtype.hasobject:
            raise ValueError(f"{info.filename} holds Python objects (a pickle), which "
                             f"fastnn never reads")
        size = member.tell() + math.prod(shape) * dtype.itemsize
    if info.file_size != size:
        raise ValueError(f"{info.filename} holds {info.file_size} bytes; its .npy "
                         f"header declares {size}")
    return shape, dtype


def _member(archive, info):
    """The array a member holds (its layout checked by _member_layout)."""
    with archive.open(info) as member:
        return npy.read_array(member, allow_pickle=False)


def _array_layout(name, value):
    """(shape, dtype) of a pickle's array (an ndarray: joblib's may be memmaps);
    ValueError if it is not one."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{_short(name)} is {type(value).__name__}, not a numpy array")
    return value.shape, value.dtype


def _parse(text, source):
    """The header a JSON text holds: a fastnn header of this format version, each
    field checked by _check_fields."""
    try:
        header = json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"{source} has no valid fastnn header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != "fastnn.MLP":
        raise ValueError(f"{source} is not a fastnn model")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{source} has format version "
                         f"{_short(header.get('format_version'))}; this fastnn reads "
                         f"version {FORMAT_VERSION}")
    with _reported_as(_damaged(source)):
        _check_fields(header)
    return header


def _restore(header, arrays, source):
    """The model of a checked header and its arrays (from a file or a pickle, named
    source in errors), every value checked before it is built."""
    with _reported_as(_damaged(source)):
        return _model(header, arrays)


def _model(header, arrays):
    """The MLP a checked header and its arrays (of the header's layout) describe."""
    from fastnn.model.network import MLP  # (which imports this module)
    net = MLP(header["layer_sizes"], header["activations"], header["output"],
              init="zeros", negative_slope=header["negative_slope"], dtype=header["dtype"])
    saved = header["optimizer"]
    optimizer = None if saved is None else _optimizer(saved)
    arrays = dict(arrays)
    states = [arrays.pop(_state_name(index))
              for index in range(0 if optimizer is None else optimizer.n_states)]
    net.load_state_dict(arrays)
    net.history = {key: [float(value) for value in header["history"][key]]
                   for key in _HISTORY_KEYS}
    net._rng = _rng_from_state(header["rng"])
    if optimizer is not None:
        state = OptimizerState(optimizer, net.engine.n_params, net.dtype)
        for i, (array, saved_array) in enumerate(zip(state.arrays, states)):
            array[...] = checked_like(_state_name(i), saved_array, net.engine.params)
        optimizer.check_state(state.arrays)
        state.steps[0] = saved["t"]
        net._optimizer_state = state
    return net


# ---------------------------------------------------------------- the header's fields

def _short(value):
    """A short repr of a value from a file, however long or deep."""
    return reprlib.repr(value)


def _typed(name, value, kind):
    """value, if it is of the JSON kind given (bool, int, float, str, list or dict; a
    float may be an int, no number a bool); ValueError naming it otherwise."""
    kinds = {float: (int, float)}.get(kind, (kind,))
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be of type {kind.__name__}; got {_short(value)}")
    return value


def _typed_list(name, value, kind):
    """value, if it is a list of values of the JSON kind given."""
    for index, item in enumerate(_typed(name, value, list)):
        _typed(f"{name}[{index}]", item, kind)
    return value


def _keys(name, value, keys):
    """value, if it is a dict with exactly the keys given."""
    missing = sorted(set(keys) - set(_typed(name, value, dict)))
    unexpected = sorted(set(value) - set(keys))
    if missing or unexpected:
        raise ValueError(f"{name} must have the keys {list(keys)}: missing {missing}, "
                         f"unexpected {_short(unexpected)}")
    return value


def _check_fields(header):
    """Check every field of a header for its JSON type, then for a value a model
    takes, as MLP checks its arguments (ValueError or TypeError naming the field)."""
    _keys("the header", header, _HEADER_KEYS)
    _typed("fastnn_version", header["fastnn_version"], str)
    sizes = inputs.layer_sizes(_typed_list("layer_sizes", header["layer_sizes"], int))
    inputs.hidden_activations(_typed_list("activations", header["activations"], str),
                              len(sizes) - 2)
    inputs.output_layer(_typed("output", header["output"], str), sizes[-1])
    check_negative_slope(_typed("negative_slope", header["negative_slope"], float))
    if header["dtype"] not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got "
                         f"{_short(header['dtype'])}")
    if header["optimizer"] is not None:
        _optimizer(header["optimizer"])
    for key, values in _keys("history", header["history"], _HISTORY_KEYS).items():
        _typed_list(f"history[{key!r}]", values, float)
    _rng_from_state(header["rng"])


def _optimizer(saved):
    """The optimizer of a header's "optimizer" field, checked with its step count."""
    _keys("optimizer", saved, ("name", "config", "t"))
    for key, value in _typed("optimizer config", saved["config"], dict).items():
        _typed(f"the optimizer's {key}", value, bool if key == "nesterov" else float)
    steps = _typed("the optimizer step count", saved["t"], int)
    if not 0 <= steps < 2**62:
        raise ValueError(f"optimizer step count {steps} is out of range")
    return make_optimizer(_typed("optimizer name", saved["name"], str), **{
        key: value for key, value in saved["config"].items() if key != "nesterov"})


def _layout(header):
    """{name: (shape, dtype)}: the arrays a checked header calls for."""
    sizes, dtype = header["layer_sizes"], np.dtype(header["dtype"])
    shapes = [shape for n_in, n_out in zip(sizes, sizes[1:])
              for shape in ((n_out, n_in), (n_out,))]
    layout = {name: (shape, dtype)
              for name, shape in zip(_parameter_names(len(sizes) - 1), shapes)}
    optimizer = header["optimizer"]
    for index in range(0 if optimizer is None else _optimizer(optimizer).n_states):
        layout[_state_name(index)] = (n_parameters(sizes),), dtype
    return layout


def _check_arrays(layout, found):
    """ValueError unless found ({name: (shape, dtype)}) names exactly the layout's
    arrays, each of the layout's shape and dtype (the (shape, dtype) of a name the
    layout lacks is never read)."""
    missing = sorted(set(layout) - set(found))
    unexpected = sorted(set(found) - set(layout))
    if missing or unexpected:
        raise ValueError(f"the arrays do not match the header: missing {missing}, "
                         f"unexpected {_short(unexpected)}")
    for name, (shape, dtype) in layout.items():
        if found[name][0] != shape:
            raise ValueError(f"the header says {name} is {shape}; the arrays hold "
                             f"{found[name][0]}")
        if found[name][1] != dtype:
            raise ValueError(f"{name} has dtype {found[name][1]}; the header says {dtype}")


# ---------------------------------------------------------------- the random generator

def _rng_state(rng):
    """The generator's state in JSON's values (its arrays as lists), read under its
    bit generator's lock: never halfway through a draw of another thread."""
    if isinstance(rng, np.random.RandomState):
        with rng._bit_generator.lock:  # (RandomState has no public way to its lock)
            return {"kind": "RandomState", "state": _plain(rng.get_state(legacy=False))}
    with rng.bit_generator.lock:
        return {"kind": "Generator", "state": _plain(rng.bit_generator.state)}


def _plain(value):
    """value with every array in it (dicts walked) made a list."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value.tolist() if isinstance(value, np.ndarray) else value


def _rng_from_state(saved):
    """The Generator or RandomState of a state from _rng_state, over the bit generator
    it names (one of _BIT_GENERATORS: a name from a file picks no other code), its
    state of the keys, types and shapes of that bit generator's."""
    _keys("rng", saved, ("kind", "state"))
    kind, name = saved["kind"], _typed("rng state", saved["state"], dict).get(
        "bit_generator")
    if kind not in ("Generator", "RandomState"):
        raise ValueError(f"unknown kind of random generator {_short(kind)}")
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {_short(name)}")
    bit_generator = _BIT_GENERATORS[name]()
    rng = (np.random.Generator if kind == "Generator" else np.random.RandomState)(
        bit_generator)
    fresh = bit_generator.state if kind == "Generator" else rng.get_state(legacy=False)
    state = _like(saved["state"], fresh, "rng")
    position, length = _buffer_position(state)
    if not 0 <= position <= length:
        raise ValueError(f"the generator's buffer position {position} is outside "
                         f"[0, {length}]")
    if kind == "RandomState":
        rng.set_state(state)
    else:
        bit_generator.state = state
    return rng


def _buffer_position(state):
    """Where a bit generator's state says to read on in its buffer, and the buffer's
    length ((0, 0) for those without): numpy trusts it, and crashes beyond."""
    if state["bit_generator"] == "MT19937":
        return state["state"]["pos"], 624
    if state["bit_generator"] == "Philox":
        return state["buffer_pos"], 4
    return 0, 0


def _like(saved, fresh, name):
    """saved, if it has the structure of the fresh state (the same keys, values of the
    same types), its lists of integers made arrays where fresh has arrays (of their
    dtype and shape); ValueError naming the first difference."""
    if isinstance(fresh, dict):
        _keys(name, saved, fresh)
        return {key: _like(saved[key], value, f"{name}.{key}")
                for key, value in fresh.items()}
    if isinstance(fresh, np.ndarray):
        array = np.array(_typed_list(name, saved, int), fresh.dtype)
        if array.shape != fresh.shape:
            raise ValueError(f"{name} has shape {array.shape}; expected {fresh.shape}")
        return array
    return _typed(name, saved, type(fresh))


_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}
