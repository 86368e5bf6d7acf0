"""Files against hostile input and a hostile world: headers of any JSON and files of any
bytes are refused with ValueError; a small file cannot make load inflate more than the
architecture it declares; save refuses what load would refuse; saving writes through
symbolic links, keeps the target's mode, and survives Ctrl-C at any point."""
import copy
import io
import itertools
import json
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import snapshot, toy_problem, unchanged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import MLP, DivergenceError
from fastnn.model.state import MAX_HEADER_CHARS, unpickle

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

#: Generators of every kind a model's seed takes, to build headers from.
GENERATORS = {"PCG64": lambda: np.random.default_rng(1),
              "MT19937": lambda: np.random.Generator(np.random.MT19937(1)),
              "Philox": lambda: np.random.Generator(np.random.Philox(1)),
              "RandomState": lambda: np.random.RandomState(np.random.SFC64(1))}


def trained(seed=0, optimizer="adam"):
    """A small model trained two epochs, with optimizer state, history and generator."""
    X, y = toy_problem("sigmoid")
    net = MLP([3, 4, 1], seed=seed)
    net.fit(X, y, epochs=2, optimizer=optimizer, validation_data=(X, y))
    return net


def payloads():
    """{generator kind: (header dict, arrays)} of a trained model's pickle."""
    result = {}
    for name, make in GENERATORS.items():
        _, (header, arrays) = trained(make()).__reduce__()
        result[name] = json.loads(header), arrays
    return result


PAYLOADS = payloads()


def _refused(call):
    """call() either returns an MLP or raises ValueError; nothing else."""
    try:
        return call()
    except ValueError:
        return None


# ---------------------------------------------------------------- hostile headers

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(max_size=8) | st.sampled_from([2**64, -(2**70), 10**30]),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                    max_leaves=20)


def places(value, path=()):
    """Every path (a tuple of keys and indices) into a JSON value, its own () first."""
    yield path
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        yield from places(item, path + (key,))


def replaced(value, path, new):
    """A deep copy of value with the item at path replaced by new (deleted if new is
    the string "<delete>" and the item sits in a dict)."""
    value = copy.deepcopy(value)
    *parents, last = path
    holder = value
    for key in parents:
        holder = holder[key]
    if new == "<delete>" and isinstance(holder, dict):
        del holder[last]
    else:
        holder[last] = new
    return value


@FUZZ
@given(header=JSON)
def test_any_json_header_is_refused_with_value_error(header):
    _, arrays = PAYLOADS["PCG64"]
    with pytest.raises(ValueError):
        unpickle(json.dumps(header), arrays)


@FUZZ
@given(kind=st.sampled_from(sorted(PAYLOADS)), data=st.data(),
       new=JSON | st.just("<delete>"))
def test_a_header_with_any_field_replaced_loads_or_gives_value_error(kind, data, new):
    header, arrays = PAYLOADS[kind]
    path = data.draw(st.sampled_from(list(places(header))[1:]))
    tampered = replaced(header, path, new)
    net = _refused(lambda: unpickle(json.dumps(tampered), arrays))
    assert net is None or isinstance(net, MLP)


@pytest.mark.parametrize("text", [
    "[" * 100_000, "{\"a\":" * 100_000, "[" * 100_000 + "]" * 100_000,
    json.dumps({"format": "fastnn.MLP", "format_version": 1,
                "layer_sizes": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}),
    "1" * 5000, "NaN", "\"" + "\\u0000" * 10 + "\"",
], ids=["open lists", "open dicts", "deep lists", "deep field", "huge int", "nan", "nul"])
def test_deep_or_odd_json_is_refused_as_a_bad_header(tmp_path, text):
    _, arrays = PAYLOADS["PCG64"]
    with pytest.raises(ValueError, match="the pickled model (has no valid fastnn header|is "
                                         "not a fastnn model|is a damaged)"):
        unpickle(text, arrays)
    path = tmp_path / "model.npz"
    np.savez(path, header=np.array(text), **arrays)
    with pytest.raises(ValueError, match="model.npz (has no valid fastnn header|is not a "
                                         "fastnn model|is a damaged)"):
        fastnn.load(path)


@pytest.mark.parametrize("change,message", [
    (lambda h: h.update(layer_sizes=[3, True, 1]), r"layer_sizes\[1\] must be of type int"),
    (lambda h: h.update(layer_sizes=[3, 4.0, 1]), r"layer_sizes\[1\] must be of type int"),
    (lambda h: h.update(layer_sizes=[3, 0, 1]), r"layer_sizes\[1\] must be at least 1"),
    (lambda h: h.update(activations="relu"), r"activations must be of type list"),
    (lambda h: h.update(activations=["swish"]), r"activation\[0\] must be one of"),
    (lambda h: h.update(activations=[]), r"one name per hidden layer \(1\); got 0"),
    (lambda h: h.update(negative_slope="0.01"), r"negative_slope must be of type float"),
    (lambda h: h.update(negative_slope=float("nan")), r"negative_slope must be finite"),
    (lambda h: h.update(dtype="float16"), r"dtype must be 'float32' or 'float64'"),
    (lambda h: h.update(dtype={"names": ["a"], "formats": ["f8"]}), r"dtype must be"),
    (lambda h: h.update(fastnn_version=1), r"fastnn_version must be of type str"),
    (lambda h: h.update(extra=1), r"unexpected \['extra'\]"),
    (lambda h: h["history"].update(loss=["0.5"]), r"history\['loss'\]\[0\] must be of type float"),
    (lambda h: h["history"].update(lr=[]), r"unexpected \['lr'\]"),
    (lambda h: h["optimizer"].update(name=["adam"]), r"optimizer name must be of type str"),
    (lambda h: h["optimizer"].update(t=1.0), r"step count must be of type int"),
    (lambda h: h["optimizer"].update(t=-1), r"step count -1 is out of range"),
    (lambda h: h["optimizer"]["config"].update(lr=[[[0.1]]]), r"optimizer's lr must be of type float"),
    (lambda h: h["optimizer"]["config"].update(nesterov=1), r"optimizer's nesterov must be of type bool"),
    (lambda h: h["optimizer"]["config"].update(momentum=0.5), r"optimizer 'adam' takes no option 'momentum'"),
    (lambda h: h["rng"].update(state=[]), r"rng state must be of type dict"),
    (lambda h: h["rng"]["state"].update(has_uint32=2**80), r"damaged or foreign"),
    (lambda h: h["rng"]["state"]["state"].update(state=-1), r"damaged or foreign"),
    (lambda h: h["rng"]["state"]["state"].update(inc="1"), r"rng.state.inc must be of type int"),
    (lambda h: h["rng"]["state"].update(extra=0), r"rng must have the keys .* unexpected \['extra'\]"),
])
def test_each_field_of_the_header_is_checked_for_its_type_and_value(change, message):
    header, arrays = PAYLOADS["PCG64"]
    header = copy.deepcopy(header)
    change(header)
    with pytest.raises(ValueError, match=message):
        unpickle(json.dumps(header), arrays)


@pytest.mark.parametrize("arrays,message", [
    (lambda a: list(a.values()), "its arrays must be a dict; got list"),
    (lambda a: dict(a, **{"0.bias": np.ones(4).tolist()}), "'0.bias' is list, not a numpy "
                                                            "array"),
])
def test_the_arrays_of_a_pickle_must_be_a_dict_of_plain_arrays(arrays, message):
    header, good = PAYLOADS["PCG64"]
    with pytest.raises(ValueError, match=message):
        unpickle(json.dumps(header), arrays(good))


# ---------------------------------------------------------------- hostile bytes

@pytest.fixture(scope="module")
def valid_file():
    """The bytes of a saved model (a Philox generator: a buffer position to check)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        trained(np.random.Generator(np.random.Philox(2)), "momentum").save(path)
        with open(path, "rb") as file:
            return file.read()


@FUZZ
@given(data=st.data())
def test_any_corruption_of_a_file_loads_or_gives_value_error(valid_file, data):
    content = bytearray(valid_file)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(content) - 1))
        how = data.draw(st.sampled_from(["byte", "cut", "insert", "zero run"]))
        if how == "byte":
            content[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del content[at:at + data.draw(st.integers(1, 64))]
        elif how == "insert":
            content[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            content[at:at + 8] = bytes(8)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        with open(path, "wb") as file:
            file.write(bytes(content))
        net = _refused(lambda: fastnn.load(path))
    assert net is None or isinstance(net, MLP)


def zip_of(members, compression=zipfile.ZIP_STORED):
    """A zip file's bytes holding members: {name: bytes, or an iterable of chunks}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression, compresslevel=1) as archive:
        for name, content in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in [content] if isinstance(content, bytes) else content:
                    member.write(chunk)
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, dtype):
    """The .npy header of an array of that shape and dtype, without its data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str,
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def zeros(n_bytes, chunk=2**20):
    """n_bytes of zeros, a chunk at a time."""
    for start in range(0, n_bytes, chunk):
        yield bytes(min(chunk, n_bytes - start))


BOMB = 2**28  # 256 MiB of zeros, deflated to some 250 KiB


def members_of(payload):
    """{member name: .npy bytes} of a payload (header dict, arrays), as np.savez
    writes them."""
    header, arrays = payload
    members = {f"{name}.npy": npy_bytes(array) for name, array in arrays.items()}
    members["header.npy"] = npy_bytes(np.array(json.dumps(header)))
    return members


def inflating(name, shape, dtype, n_bytes):
    """{name: chunks}: a member whose .npy header declares shape and dtype, followed
    by n_bytes of zeros."""
    return {name: itertools.chain([npy_header(shape, dtype)], zeros(n_bytes))}


#: Small files whose arrays would inflate to hundreds of MiB, beyond what the
#: architecture of their header allows: (the member that does it, the message).
BOMBS = {
    "a weight of 11 million rows": (
        lambda: inflating("0.weight.npy", (BOMB // 24, 3), "<f8", BOMB // 24 * 24),
        r"the header says 0.weight is \(4, 3\); the arrays hold \(11184810, 3\)"),
    "an extra member": (lambda: inflating("extra.npy", (BOMB // 8,), "<f8", BOMB),
                        r"unexpected \['extra'\]"),
    "a header of 256 MiB": (lambda: inflating("header.npy", (), f"<U{BOMB // 4}", BOMB),
                            "not a text of at most"),
    "a bias followed by 256 MiB": (lambda: inflating("0.bias.npy", (4,), "<f8", BOMB),
                                   r"0.bias.npy holds \d+ bytes; its .npy header "
                                   r"declares \d+"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_small_file_cannot_make_load_inflate_beyond_its_architecture(tmp_path, name):
    bomb, message = BOMBS[name]
    content = zip_of(dict(members_of(PAYLOADS["PCG64"]), **bomb()), zipfile.ZIP_DEFLATED)
    assert len(content) < 2**21  # a small file
    path = tmp_path / "bomb.npz"
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            fastnn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24  # 16 MiB, not the 256 MiB the file would inflate to


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update({"0.weight.npy": b"\x93NUMPY\x03\x00" + bytes(100)}), r"version \(3, 0\)"),
    (lambda m: m.update({"0.weight": m.pop("0.weight.npy")}), r"'0.weight', a second member "
                                                               r"of that name or no .npy"),
    (lambda m: m.update({"header.npy": npy_bytes(np.array(["{}"]))}), r"not a text"),
    (lambda m: m.pop("header.npy"), r"has no valid fastnn header: it holds none"),
])
def test_members_that_numpy_would_not_write_are_refused(tmp_path, change, message):
    members = members_of(PAYLOADS["PCG64"])
    change(members)
    path = tmp_path / "model.npz"
    path.write_bytes(zip_of(members))
    with pytest.raises(ValueError, match=message):
        fastnn.load(path)


def test_compressed_files_load_and_other_compressions_are_refused(tmp_path):
    net = trained()
    net.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        arrays = {key: data[key] for key in data.files}
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    assert snapshot(fastnn.load(tmp_path / "compressed.npz"))[2] == net.step_count
    members = {f"{key}.npy": npy_bytes(value) for key, value in arrays.items()}
    (tmp_path / "lzma.npz").write_bytes(zip_of(members, zipfile.ZIP_LZMA))
    with pytest.raises(ValueError, match="compressed in a way numpy never writes"):
        fastnn.load(tmp_path / "lzma.npz")


# ---------------------------------------------------------------- save refuses what load refuses

def diverged():
    """A float32 model whose update overflowed its weights (DivergenceError)."""
    X, y = toy_problem("identity")
    net = MLP([3, 4, 2], output="identity", dtype="float32", seed=0)
    with pytest.raises(DivergenceError, match="no longer finite"):
        net.fit(X.astype(np.float32), (100 * y).astype(np.float32), epochs=1, lr=1e38,
                batch_size=None)
    assert not np.isfinite(net.engine.params).all()
    return net


@pytest.mark.parametrize("copier", [lambda net, path: net.save(path),
                                    lambda net, path: pickle.dumps(net),
                                    lambda net, path: copy.deepcopy(net)],
                         ids=["save", "pickle", "deepcopy"])
def test_a_model_whose_weights_overflowed_is_refused_by_save_as_load_would(tmp_path,
                                                                           copier):
    net = diverged()
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match=r"cannot save or pickle a model whose state is "
                                         r"not finite.*\d\.(weight|bias) must be finite.*"
                                         r"re-initialise it \(a new MLP\) or load"):
        copier(net, path)
    assert list(tmp_path.iterdir()) == []
    fresh = MLP([3, 4, 2], output="identity", dtype="float32", seed=1)
    net.load_state_dict(fresh.state_dict())  # as the message says
    net.reset_optimizer()
    net.save(path)
    assert np.array_equal(fastnn.load(path).engine.params, fresh.engine.params)


def test_a_non_finite_optimizer_state_is_refused_naming_reset_optimizer(tmp_path):
    net = trained()
    net.optimizer_state.arrays[1][3] = np.inf
    with pytest.raises(ValueError, match=r"optimizer.state1 must be finite.*call "
                                         r"reset_optimizer\(\) first"):
        net.save(tmp_path / "model.npz")


def test_a_negative_adam_second_moment_is_refused_as_damaged(tmp_path):
    net = trained()
    assert (net.optimizer_state.arrays[1] > 0).any()
    _, (header, arrays) = net.__reduce__()
    arrays["optimizer.state1"][3] = -1e-3  # training then makes the weights NaN
    message = (r"a damaged or foreign fastnn model: Adam's second moment \(state array "
               r"1\) holds a negative value, v\[3\] = -0.001, which training never "
               r"leaves")
    path = tmp_path / "model.npz"
    np.savez(path, header=np.array(header), **arrays)
    with pytest.raises(ValueError, match=f"^{path} is {message}"):
        fastnn.load(path)
    with pytest.raises(ValueError, match=f"^the pickled model is {message}"):
        unpickle(header, arrays)
    net.optimizer_state.arrays[1][3] = -1e-3
    with pytest.raises(ValueError, match=r"^cannot save or pickle this model: Adam's "
                                         r"second moment.*v\[3\] = -0.001.*; call "
                                         r"reset_optimizer\(\) first$"):
        pickle.dumps(net)
    net.optimizer_state.arrays[0][3] = -1e-3  # a negative first moment is possible
    net.optimizer_state.arrays[1][3] = 0
    assert unchanged(pickle.loads(pickle.dumps(net)), snapshot(net))


def test_any_finite_momentum_velocity_loads(tmp_path):
    net = trained(optimizer="momentum")
    net.optimizer_state.arrays[0][:] = -np.arange(net.engine.n_params)
    net.save(tmp_path / "model.npz")
    assert unchanged(fastnn.load(tmp_path / "model.npz"), snapshot(net))


@pytest.mark.parametrize("change,message", [
    (lambda net: net.history["loss"].append("0.5"), r"history\['loss'\]\[2\] must be of type "
                                                    r"float; got '0.5'"),
    (lambda net: net.history["loss"].append([1.0]), r"history\['loss'\]\[2\] must be of type "
                                                    r"float; got \[1.0\]"),
    (lambda net: net.history["val_score"].append(True), r"history\['val_score'\]\[2\] must "
                                                        r"be of type float; got True"),
    (lambda net: net.history.pop("val_loss"), r"'val_loss'"),
])
def test_a_history_that_load_would_refuse_is_not_saved(tmp_path, change, message):
    net = trained()
    change(net)
    with pytest.raises(ValueError, match="cannot save or pickle this model: " + message):
        net.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_numbers_of_any_kind_in_the_history_are_saved_as_floats(tmp_path):
    net = trained()
    net.history["loss"] += [np.float32(0.25), 1, np.float64(0.5)]
    net.save(tmp_path / "model.npz")
    assert fastnn.load(tmp_path / "model.npz").history["loss"][-3:] == [0.25, 1.0, 0.5]


def test_a_generator_load_cannot_rebuild_is_refused_by_save(tmp_path):
    class Mine(np.random.PCG64):
        pass

    net = MLP([3, 4, 1], seed=np.random.Generator(Mine(0)))
    with pytest.raises(ValueError, match="cannot save or pickle this model: unknown bit "
                                         "generator 'Mine'"):
        net.save(tmp_path / "model.npz")


def test_a_header_longer_than_load_reads_is_not_saved(tmp_path):
    net = trained()
    net.history["loss"] = [0.1] * (MAX_HEADER_CHARS // 5)
    with pytest.raises(ValueError, match="more than load reads .*; shorten its history"):
        net.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- what is not a file

#: What a subprocess prints of load(sys.argv[1]): the error's type and message.
LOAD_SCRIPT = """
import sys, fastnn
try:
    fastnn.load(sys.argv[1])
except Exception as error:
    print(type(error).__name__, error)
"""


def _limit_memory():
    """In the child: at most 2 GiB of address space, so that reading /dev/zero whole
    fails there with MemoryError instead of exhausting the machine."""
    import resource  # (POSIX only)
    resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))


def special_file(tmp_path, kind):
    """A path to something that is not a regular file: /dev/zero, a FIFO (whose open
    would block, with no writer), or a symbolic link to a FIFO."""
    if kind == "/dev/zero":
        return kind
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    if kind == "fifo":
        return fifo
    link = tmp_path / "link.npz"
    link.symlink_to(fifo)
    return link


@pytest.mark.skipif(sys.platform == "win32", reason="needs /dev/zero and FIFOs")
@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "link to a fifo"])
def test_load_refuses_what_is_not_a_regular_file_before_reading(tmp_path, kind):
    path = special_file(tmp_path, kind)
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path)], text=True,
                          capture_output=True, timeout=30, preexec_fn=_limit_memory,
                          cwd=tmp_path)  # python -c imports from its folder: not the checkout
    assert done.stdout == f"OSError {path} is not a regular file (a device, pipe or " \
                          f"socket); fastnn model files are regular files\n", done.stderr
    with pytest.raises(IsADirectoryError):
        fastnn.load(tmp_path)


# ---------------------------------------------------------------- links, modes, interrupts

def test_saving_through_a_symbolic_link_replaces_its_target(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1.npz"
    link = tmp_path / "current.npz"
    first, second = trained(0), trained(1)
    first.save(target)
    link.symlink_to(target)
    second.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert unchanged(fastnn.load(target), snapshot(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.npz", "models"]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["v1.npz"]
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(tmp_path / "models" / "v2.npz")
    first.save(dangling)
    assert dangling.is_symlink() and unchanged(fastnn.load(dangling), snapshot(first))


def test_saving_into_a_missing_folder_names_the_path_not_a_temporary_file(tmp_path):
    path = tmp_path / "nowhere" / "model.npz"
    with pytest.raises(FileNotFoundError) as raised:
        trained().save(path)
    assert str(raised.value) == (f"[Errno 2] No such file or directory: cannot create a "
                                 f"file in '{tmp_path / 'nowhere'}' to write '{path}'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640, 0o444])
def test_saving_over_a_file_keeps_its_mode(tmp_path, mode):
    path = tmp_path / "model.npz"
    trained(0).save(path)
    os.chmod(path, mode)
    trained(1).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_of_any_file_under_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        trained().save(tmp_path / "model.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "model.npz").st_mode) == mode


def interrupt_after(function, removes_temporary=False):
    """function's stand-in that raises KeyboardInterrupt: after calling it (the
    temporary file renamed or written), or at once, the temporary removed first."""
    def interrupted(*args, **kwargs):
        if removes_temporary:
            os.unlink(next(p for p in args if ".fastnn-" in os.fspath(p)))
        elif function is not None:
            function(*args, **kwargs)
        raise KeyboardInterrupt
    return interrupted


@pytest.mark.parametrize("module,name,after,removes", [
    (np, "savez", False, False), (np, "savez", True, False),
    (os, "fsync", False, False), (os, "fsync", True, False),
    (os, "replace", False, False), (os, "replace", True, False),
    (os, "replace", False, True), (os, "chmod", False, True),
], ids=["savez", "savez done", "fsync", "fsync done", "replace", "replace done",
        "temporary gone", "chmod, temporary gone"])
def test_ctrl_c_anywhere_in_save_propagates_and_leaves_one_whole_model(
        tmp_path, monkeypatch, module, name, after, removes):
    path = tmp_path / "model.npz"
    old, new = trained(0), trained(1)
    old.save(path)
    function = getattr(module, name)
    monkeypatch.setattr(module, name, interrupt_after(function if after else None,
                                                      removes))
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    expected = new if (name, after) == ("replace", True) else old
    assert unchanged(fastnn.load(path), snapshot(expected))
