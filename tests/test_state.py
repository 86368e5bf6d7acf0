"""Model state and files: state_dict, save/load round trips (weights, optimizer state,
history, random generator), files that are damaged or hostile, a save that crashes;
pickling and copying through the same state."""
import copy
import hashlib
import json
import pickle
import threading

import numpy as np
import pytest
from helpers import (OUTPUT_WIDTH, paused_in_another_thread, snapshot, toy_problem,
                     unchanged)

import fastnn
from fastnn import MLP, datasets
from fastnn.model.state import _rng_state, unpickle


def test_state_dict_uses_torch_sequential_names_and_round_trips():
    net = MLP([3, 5, 4, 2], activation=["tanh", "relu"], output="softmax", seed=0)
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert sd["2.weight"].shape == (4, 5) and sd["4.bias"].shape == (2,)
    other = MLP([3, 5, 4, 2], activation=["tanh", "relu"], output="softmax", seed=9)
    other.load_state_dict(sd)
    assert np.array_equal(other.engine.params, net.engine.params)
    bad = dict(sd, **{"2.weight": np.zeros((5, 4))})
    before = other.engine.params.copy()
    with pytest.raises(ValueError, match=r"2.weight must have shape"):
        other.load_state_dict(bad)
    with pytest.raises(TypeError, match="0.bias has dtype float32"):
        other.load_state_dict(dict(sd, **{"0.bias": sd["0.bias"].astype(np.float32)}))
    with pytest.raises(ValueError, match=r"missing \['4.bias'\]"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "4.bias"})
    assert np.array_equal(other.engine.params, before)


@pytest.mark.parametrize("seed", [7, np.random.RandomState(7)], ids=["Generator", "RandomState"])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_save_load_round_trips_and_training_continues_as_if_never_stopped(tmp_path, seed,
                                                                         optimizer):
    X, y = datasets.make_spiral(120, 3, seed=1)
    make = lambda: MLP([2, 12, 3], activation="leaky_relu", output="softmax",
                       negative_slope=0.05, seed=seed if isinstance(seed, int)
                       else np.random.RandomState(7))
    straight = make()
    straight.fit(X, y, epochs=6, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    stopped = make()
    stopped.fit(X, y, epochs=3, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    path = tmp_path / "model.npz"
    stopped.save(path)
    loaded = fastnn.load(path)
    assert np.array_equal(loaded.engine.params, stopped.engine.params)
    assert loaded.history == stopped.history and loaded.layer_sizes == stopped.layer_sizes
    loaded.fit(X, y, epochs=3, batch_size=16, optimizer=optimizer, weight_decay=1e-3)
    assert np.array_equal(loaded.engine.params, straight.engine.params)
    assert loaded.history == straight.history
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left


# ---------------------------------------------------------------- damaged and hostile files

@pytest.fixture
def saved(tmp_path):
    X, y = datasets.make_moons(100, seed=0)
    net = MLP([2, 8, 1], seed=0)
    net.fit(X, y, epochs=3, optimizer="adam")
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path


def rewrite(path, change):
    """Load the arrays and header of a saved model, let change() edit them, save again."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    change(arrays, header)
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


def test_truncated_and_random_files_are_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for name, content in [("truncated.npz", data[: len(data) // 2]),
                          ("noise.npz", np.random.default_rng(0).bytes(2000)),
                          ("empty.npz", b"")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ValueError, match="is not a readable fastnn model file"):
            fastnn.load(bad)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_foreign_and_future_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="has no valid fastnn header"):
        fastnn.load(foreign)
    np.savez(foreign, header=np.array(json.dumps({"format": "other"})))
    with pytest.raises(ValueError, match="is not a fastnn model$"):
        fastnn.load(foreign)
    np.savez(foreign, header=np.array(json.dumps({"format": "fastnn.MLP",
                                                  "format_version": 99})))
    with pytest.raises(ValueError, match="format version 99; this fastnn reads version 1"):
        fastnn.load(foreign)


@pytest.mark.parametrize("change,message", [
    (lambda a, h: a.update({"0.weight": np.ones((3, 2))}), r"the header says 0.weight is \(8, 2\); the arrays hold \(3, 2\)"),
    (lambda a, h: h.update(layer_sizes=[2, 10**12, 1]), r"the header says 0.weight is \(1000000000000, 2\)"),
    (lambda a, h: a.update({"2.bias": np.array([np.nan])}), r"2.bias must be finite"),
    (lambda a, h: a.update({"0.bias": np.ones(8, np.float32)}), r"0.bias has dtype float32"),
    (lambda a, h: a.update({"extra": np.ones(1)}), r"unexpected \['extra'\]"),
    (lambda a, h: h.update(output="softplus"), r"output must be one of"),
    (lambda a, h: h["optimizer"].update(name="lbfgs"), r"optimizer must be one of"),
    (lambda a, h: h["optimizer"]["config"].update(lr=-1), r"lr must be in"),
    (lambda a, h: a.pop("optimizer.state1"), r"missing \['optimizer.state1'\]"),
    (lambda a, h: h["rng"]["state"].update(bit_generator="seed"), r"unknown bit generator 'seed'"),
    (lambda a, h: h.pop("history"), r"damaged or foreign fastnn model: the header must have the keys .*missing \['history'\]"),
    (lambda a, h: h["optimizer"].update(t=2**63 - 1), r"step count 9223372036854775807 is out of range"),
    (lambda a, h: h["optimizer"].update(t=2**64), r"damaged or foreign fastnn model"),
])
def test_tampered_files_are_refused_before_anything_runs(saved, change, message):
    _, path = saved
    rewrite(path, change)
    state = np.random.get_state()[1].copy()
    with pytest.raises(ValueError, match=message):
        fastnn.load(path)
    assert np.array_equal(np.random.get_state()[1], state)  # nothing was called


def test_pickled_arrays_are_never_loaded(saved):
    _, path = saved
    rewrite(path, lambda a, h: a.update({"0.bias": np.array([object()] * 8, dtype=object)}))
    with pytest.raises(ValueError, match="not a readable fastnn model file: 0.bias.npy holds "
                                         r"Python objects \(a pickle\)"):
        fastnn.load(path)


def test_a_crash_while_saving_leaves_the_old_file_whole(saved, monkeypatch):
    net, path = saved
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    net.fit(*datasets.make_moons(100, seed=0), epochs=1)
    with pytest.raises(OSError, match="disk full"):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]


# ---------------------------------------------------------------- pickling and copying

COPIERS = {"pickle": lambda net: pickle.loads(pickle.dumps(net)),
           "deepcopy": copy.deepcopy, "copy": copy.copy}


def same_model(a, b):
    """Everything the state keeps is equal, bit for bit."""
    return (unchanged(a, snapshot(b)) and a.dtype == b.dtype and a.optimizer == b.optimizer
            and (a.layer_sizes, a.activations, a.output, a.negative_slope)
            == (b.layer_sizes, b.activations, b.output, b.negative_slope)
            and _rng_state(a.rng) == _rng_state(b.rng))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_pickles_and_copies_continue_training_bit_for_bit(dtype, output, optimizer):
    X, y = toy_problem(output, m=20)
    X = X.astype(dtype)
    net = MLP([3, 6, 5, OUTPUT_WIDTH[output]], activation=["tanh", "leaky_relu"],
              output=output, negative_slope=0.2, dtype=dtype, seed=3)
    train = dict(batch_size=6, shuffle=True, optimizer=optimizer, lr=0.05,
                 validation_data=(X[:5], y[:5]))
    net.fit(X, y, epochs=2, **train)
    copies = {name: copier(net) for name, copier in COPIERS.items()}
    for twin in copies.values():
        assert type(twin) is MLP and twin is not net and same_model(twin, net)
        twin.fit(X, y, epochs=3, **train)
    net.fit(X, y, epochs=3, **train)
    for twin in copies.values():
        assert same_model(twin, net) and twin.step_count == net.step_count == 20


@pytest.mark.parametrize("kind", [np.random.Generator, np.random.RandomState])
@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM,
                                           np.random.MT19937, np.random.Philox,
                                           np.random.SFC64])
def test_every_kind_of_generator_survives_save_load_and_pickle(tmp_path, kind,
                                                               bit_generator):
    rng = kind(bit_generator(5))
    rng.standard_normal()  # RandomState keeps a spare Gaussian
    rng.bytes(3)           # and the bit generator half a 64-bit draw
    net = MLP([3, 4, 1], seed=rng)
    net.save(tmp_path / "model.npz")
    for restored in (fastnn.load(tmp_path / "model.npz"), COPIERS["pickle"](net)):
        assert type(restored.rng) is kind and restored.rng is not rng
        draws = [(r.standard_normal(3).tolist(), r.random(3).tolist(), r.bytes(7))
                 for r in (restored.rng, copy.deepcopy(rng))]
        assert draws[0] == draws[1]


@pytest.mark.parametrize("copier", list(COPIERS))
def test_a_copy_is_independent_of_its_original(copier):
    X, y = toy_problem("sigmoid")
    net = MLP([3, 4, 1], seed=0)
    net.fit(X, y, epochs=2, optimizer="adam")
    before, rng_state = snapshot(net), net.rng.bit_generator.state
    twin = COPIERS[copier](net)
    twin.layers[0].W[...] += 1.0
    twin.optimizer_state.arrays[0][...] = 7.0
    twin.fit(X, y, epochs=2, optimizer="adam")
    twin.history["loss"].append(0.0)
    assert unchanged(net, before) and net.rng.bit_generator.state == rng_state


def test_pickling_from_a_callback_takes_the_state_between_epochs():
    X, y = toy_problem("softmax", m=30)
    train = dict(batch_size=7, optimizer="adam", shuffle=True)
    net = MLP([3, 8, 3], output="softmax", seed=4)
    pickles = []
    net.fit(X, y, epochs=4, callbacks=[lambda n, epoch, logs: pickles.append(
        pickle.dumps(n)) if epoch == 2 else None], **train)
    resumed = pickle.loads(pickles[0])
    assert len(resumed.history["loss"]) == 2
    resumed.fit(X, y, epochs=2, **train)
    assert same_model(resumed, net)


def test_saving_or_pickling_while_another_thread_trains_takes_the_state_between_steps(
        tmp_path):
    X, y = toy_problem("sigmoid", m=40)
    net = MLP([3, 8, 1], seed=5)
    with paused_in_another_thread(net, X, y, epochs=3):  # in its first epoch's callback
        after_one_epoch = snapshot(net)
        for copier in list(COPIERS.values()) + [save_and_load(tmp_path)]:
            assert unchanged(copier(net), after_one_epoch)
    assert len(net.history["loss"]) == 3 and same_model(COPIERS["pickle"](net), net)


def save_and_load(folder):
    """A copier through a file in folder."""
    def copier(net):
        net.save(folder / "model.npz")
        return fastnn.load(folder / "model.npz")
    return copier


def fingerprint(net):
    """(step count, digest of the parameters, digest of the optimizer's state, the loss
    history): what must belong to one step."""
    state = net.optimizer_state
    arrays = [] if state is None or net.step_count == 0 else state.arrays
    return (net.step_count, hashlib.sha256(net.engine.params.tobytes()).digest(),
            hashlib.sha256(b"".join(a.tobytes() for a in arrays)).digest(),
            tuple(net.history["loss"]))


def test_saves_pickles_and_state_dicts_taken_during_a_fit_hold_one_whole_step(tmp_path):
    X, y = toy_problem("softmax", m=128)
    # a step an epoch (steps long enough to overlap a copy), until the copier has taken
    # three rounds of copies, at two steps at least past the first (at most 3000 epochs)
    train = dict(batch_size=None, optimizer="adam", lr=0.01)
    make = lambda: MLP([3, 64, 64, 3], output="softmax", seed=8)  # noqa: E731
    net, copies, state_dicts, errors = make(), [], [], []
    copiers = [COPIERS["pickle"], copy.deepcopy, save_and_load(tmp_path)]
    started, stop = threading.Event(), threading.Event()

    def copier():  # while the fit runs, as fast as it can
        started.set()
        try:
            while not stop.is_set():
                copies.extend(fingerprint(copy(net)) for copy in copiers)
                state_dicts.append(hashlib.sha256(b"".join(
                    a.tobytes() for a in net.state_dict().values())).digest())
        except Exception as error:
            errors.append(error)

    def enough(n, epoch, logs):
        return len(copies) > 3 * len(copiers) and len({t for t, *_ in copies if t}) > 1

    thread = threading.Thread(target=copier)
    thread.start()
    started.wait(10)
    try:
        net.fit(X, y, epochs=3000, callbacks=[enough], **train)
    finally:
        stop.set()
        thread.join()
    steps = {0: fingerprint(make())}  # the same training again, every step recorded
    make().fit(X, y, epochs=net.step_count, callbacks=[lambda n, epoch, logs: steps.update({
        n.step_count: fingerprint(n)})], **train)
    assert errors == [] and len(copies) > 3 * len(copiers)
    for t, params, states, history in copies:
        assert (params, states) == steps[t][1:3]
        assert history in (steps[t][3], steps[t][3][:-1])  # the last epoch recorded or not
    assert any(0 < t < net.step_count for t, *_ in copies)  # some taken during the fit
    assert {params for _, params, *_ in steps.values()}.issuperset(state_dicts)


@pytest.fixture
def payload():
    """The arguments a pickle rebuilds a model from: (header JSON, arrays)."""
    X, y = toy_problem("sigmoid")
    net = MLP([3, 4, 1], seed=np.random.Generator(np.random.MT19937(0)))
    net.fit(X, y, epochs=2, optimizer="adam")
    function, (header, arrays) = net.__reduce__()
    assert function is unpickle and isinstance(header, str)
    assert all(type(a) is np.ndarray for a in arrays.values())
    return json.loads(header), arrays


@pytest.mark.parametrize("change,message", [
    (lambda a, h: a.update({"0.weight": np.ones((3, 3))}), r"the pickled model is a damaged or foreign fastnn model: the header says 0.weight is \(4, 3\); the arrays hold \(3, 3\)"),
    (lambda a, h: a.update({"2.bias": np.ones(1, np.float32)}), r"2.bias has dtype float32"),
    (lambda a, h: a.update({"2.bias": [1.0]}), r"damaged or foreign fastnn model"),
    (lambda a, h: a.update({"0.bias": np.full(4, np.inf)}), r"0.bias must be finite"),
    (lambda a, h: a.pop("optimizer.state0"), r"missing \['optimizer.state0'\]"),
    (lambda a, h: h.update(format_version=2), r"the pickled model has format version 2"),
    (lambda a, h: h.update(format="other"), r"the pickled model is not a fastnn model"),
    (lambda a, h: h["rng"]["state"]["state"].update(key=[1, 2]), r"rng.state.key has shape \(2,\); expected \(624,\)"),
    (lambda a, h: h["rng"]["state"]["state"].update(pos=10**7), r"buffer position 10000000 is outside \[0, 624\]"),
    (lambda a, h: h["rng"]["state"]["state"].update(pos=1.5), r"rng.state.pos must be of type int; got 1.5"),
    (lambda a, h: h["rng"].update(kind="Random"), r"unknown kind of random generator 'Random'"),
])
def test_tampered_pickles_are_refused_like_files(payload, change, message):
    header, arrays = payload
    change(arrays, header)
    with pytest.raises(ValueError, match=message):
        unpickle(json.dumps(header), arrays)


def test_a_bad_header_or_a_philox_buffer_position_out_of_range_is_refused():
    net = MLP([3, 4, 1], seed=np.random.Generator(np.random.Philox(0)))
    _, (header, arrays) = net.__reduce__()
    with pytest.raises(ValueError, match="the pickled model has no valid fastnn header"):
        unpickle(header[:-1], arrays)
    header = json.loads(header)
    header["rng"]["state"]["buffer_pos"] = -10**9  # numpy would read far outside
    with pytest.raises(ValueError, match=r"position -1000000000 is outside \[0, 4\]"):
        unpickle(json.dumps(header), arrays)
