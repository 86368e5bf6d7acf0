"""Model state and files: state_dict, save/load round trips (weights, optimizer state,
history, random generator), files that are damaged or hostile, a save that crashes."""
import json

import numpy as np
import pytest

import fastnn
from fastnn import MLP, datasets


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
    with pytest.raises(ValueError, match="is not a fastnn model file"):
        fastnn.load(foreign)
    np.savez(foreign, header=np.array(json.dumps({"format": "fastnn.MLP",
                                                  "format_version": 99})))
    with pytest.raises(ValueError, match="format version 99; this fastnn reads version 1"):
        fastnn.load(foreign)


@pytest.mark.parametrize("change,message", [
    (lambda a, h: a.update({"0.weight": np.ones((3, 2))}), r"the header says 0.weight is \(8, 2\); the file has \(3, 2\)"),
    (lambda a, h: h.update(layer_sizes=[2, 10**12, 1]), r"the header says 0.weight is \(1000000000000, 2\)"),
    (lambda a, h: a.update({"2.bias": np.array([np.nan])}), r"2.bias must be finite"),
    (lambda a, h: a.update({"0.bias": np.ones(8, np.float32)}), r"0.bias has dtype float32"),
    (lambda a, h: a.update({"extra": np.ones(1)}), r"unexpected \['extra'\]"),
    (lambda a, h: h.update(output="softplus"), r"output must be one of"),
    (lambda a, h: h["optimizer"].update(name="lbfgs"), r"optimizer must be one of"),
    (lambda a, h: h["optimizer"]["config"].update(lr=-1), r"lr must be in"),
    (lambda a, h: a.pop("optimizer.state1"), r"optimizer state arrays do not match"),
    (lambda a, h: h["rng"]["state"].update(bit_generator="seed"), r"unknown bit generator 'seed'"),
    (lambda a, h: h.pop("history"), r"damaged or foreign fastnn file: 'history'"),
    (lambda a, h: h["optimizer"].update(t=2**63 - 1), r"step count 9223372036854775807 is out of range"),
    (lambda a, h: h["optimizer"].update(t=2**64), r"damaged or foreign fastnn file"),
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
    with pytest.raises(ValueError, match="not a readable fastnn model file.*pickle"):
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
