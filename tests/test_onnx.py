"""ONNX export (fastnn.onnx): every hidden activation, output and dtype run in
onnxruntime against fastnn's own predictions; the estimators; `fastnn export`; bad
input and files that are never left half-written."""
import contextlib
import hashlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

import fastnn  # noqa: E402
from fastnn import cli  # noqa: E402
from fastnn.model import OUTPUTS  # noqa: E402
from fastnn.onnx import export  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Relative tolerance of onnxruntime against fastnn, per dtype.
RTOL = {np.float32: 1e-6, np.float64: 1e-12}

#: Output widths tried per output layer (one unit is returned as (N,)).
WIDTHS = {"sigmoid": (1, 3), "softmax": (3,), "identity": (1, 2), "poisson": (1, 2)}

DTYPES = (np.float32, np.float64)


def run(proto, X):
    """The graph's outputs for X by name, from onnxruntime, after the full check."""
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X})))


def assert_same_values(got, want):
    """Same shape and dtype, and |got - want| <= RTOL * max |want|: the error relative
    to the array's scale, the bound two GEMMs summing in different orders keep (where
    a sum cancels to near 0, an elementwise relative bound holds for neither)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(np.abs(want).max(), np.finfo(want.dtype).tiny)
    np.testing.assert_array_less(np.abs(got - want), RTOL[want.dtype.type] * scale)


def network(output, k, activation="relu", dtype=np.float64, seed=0):
    """An untrained [4, 6, 5, k] network with random biases, and 64 rows of X."""
    net = fastnn.MLP([4, 6, 5, k], activation=activation, output=output, dtype=dtype,
                     negative_slope=0.2, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        layer.b = rng.normal(0, 0.5, layer.b.shape).astype(dtype)
    return net, (2 * rng.standard_normal((64, 4))).astype(dtype)


CASES = [(activation, output, k, dtype) for activation in fastnn.ACTIVATIONS
         for output in OUTPUTS for k in WIDTHS[output] for dtype in DTYPES]


@pytest.mark.parametrize("activation,output,k,dtype", CASES, ids=[
    f"{a}-{o}{k}-{np.dtype(d).name}" for a, o, k, d in CASES])
def test_the_graph_predicts_as_fastnn(activation, output, k, dtype):
    net, X = network(output, k, activation, dtype)
    got = run(net.to_onnx(), X)
    classifier = output in ("sigmoid", "softmax")
    assert list(got) == (["probabilities", "labels"] if classifier else ["values"])
    assert_same_values(got["probabilities" if classifier else "values"],
                       net.predict_proba(X))
    if classifier:
        labels = net.predict(X)
        assert got["labels"].dtype == np.int64 and got["labels"].shape == labels.shape
        np.testing.assert_array_equal(got["labels"], labels)


def test_the_graph_is_fastnns_layers_as_they_are():
    net, X = network("softmax", 3, "leaky_relu", np.float32)
    proto = net.to_onnx()
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    gemms = [node for node in proto.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == 3 and all(
        [(a.name, a.i) for a in node.attribute] == [("transB", 1)] for node in gemms)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for index, layer in enumerate(net.layers):
        np.testing.assert_array_equal(weights[f"W{index}"], layer.W)  # (n_out, n_in)
        assert weights[f"W{index}"].dtype == np.float32
    assert "LeakyRelu" not in {node.op_type for node in proto.graph.node}
    (x,) = proto.graph.input
    assert x.name == "X" and x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", 4]
    for rows in (1, 7):  # the batch dimension is symbolic
        assert run(proto, X[:rows])["labels"].shape == (rows,)


# ---------------------------------------------------------------- the estimators

def labels(kind, rng, m):
    """Targets of a kind: binary and multiclass strings, a label indicator matrix,
    integers."""
    if kind == "binary strings":
        return np.array(["no", "yes"])[rng.integers(0, 2, m)]
    if kind == "multiclass strings":
        return np.array(["cat", "dog", "emu", "yak"])[rng.integers(0, 4, m)]
    if kind == "multilabel":
        return rng.integers(0, 2, (m, 3))
    return rng.integers(3, 6, m)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["binary strings", "multiclass strings", "multilabel",
                                  "integers"])
def test_the_classifier_graph_predicts_as_the_classifier(kind, dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 4)).astype(dtype)
    clf = fastnn.MLPClassifier((8,), max_iter=30, random_state=0).fit(X, labels(kind, rng, 80))
    got = run(clf.to_onnx(), X)
    assert list(got) == ["label", "probabilities"]
    np.testing.assert_array_equal(got["label"], clf.predict(X))
    assert got["label"].shape == clf.predict(X).shape
    assert_same_values(got["probabilities"], clf.predict_proba(X))


def test_a_classifier_of_one_class_predicts_it():
    X = np.random.default_rng(2).standard_normal((20, 3))
    clf = fastnn.MLPClassifier((4,), max_iter=5).fit(X, ["only"] * 20)
    got = run(clf.to_onnx(), X)
    np.testing.assert_array_equal(got["label"], clf.predict(X))
    assert_same_values(got["probabilities"], clf.predict_proba(X))


@pytest.mark.parametrize("loss,targets,dtype", [("squared_error", 1, np.float64),
                                                ("poisson", 2, np.float32)])
def test_the_regressor_graph_predicts_as_the_regressor(loss, targets, dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 4)).astype(dtype)
    y = np.abs(X[:, :targets] + 0.1 * rng.standard_normal((80, targets)))
    reg = fastnn.MLPRegressor(loss, (8,), max_iter=30, random_state=0).fit(
        X, y.ravel() if targets == 1 else y)
    got = run(reg.to_onnx(), X)
    assert list(got) == ["predictions"]
    assert_same_values(got["predictions"], reg.predict(X))


@pytest.mark.parametrize("estimator", [fastnn.MLPClassifier, fastnn.MLPRegressor])
def test_an_unfitted_estimator_is_refused(estimator, tmp_path):
    with pytest.raises(NotFittedError):
        estimator().to_onnx(tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- files

def test_the_file_holds_the_returned_model_readable_as_any_file(tmp_path):
    net, X = network("sigmoid", 1)
    path = tmp_path / "model.onnx"
    umask = os.umask(0o027)
    try:
        proto = net.to_onnx(path)
    finally:
        os.umask(umask)
    assert onnx.load(path) == proto
    assert os.stat(path).st_mode & 0o777 == 0o640  # 0o666 less the umask, as open()'s
    assert os.listdir(tmp_path) == ["model.onnx"]


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_a_path_that_cannot_be_written_raises_oserror_first(tmp_path, where):
    net, _ = network("sigmoid", 1)
    (tmp_path / "taken").mkdir()
    path = tmp_path / ("nowhere/model.onnx" if where == "missing folder" else "taken")
    message = (f"No such file or directory: cannot create a file in "
               f"'{tmp_path / 'nowhere'}' to write '{path}'"
               if where == "missing folder" else f"Is a directory: '{path}'")
    with pytest.raises(OSError) as raised:
        net.to_onnx(path)
    assert str(raised.value) == f"[Errno {raised.value.errno}] {message}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["taken"]


def test_a_model_whose_weights_overflowed_is_refused_as_save_refuses_it(tmp_path):
    net = fastnn.MLP([3, 2], output="identity", dtype="float32", seed=0)
    X = np.ones((4, 3), np.float32)
    with pytest.raises(fastnn.DivergenceError, match="no longer finite"):
        net.fit(X, np.full((4, 2), 100, np.float32), epochs=1, lr=1e38)
    message = (r"cannot export a model whose state is not finite, as training that "
               r"diverged leaves it \(\d\.(weight|bias) must be finite.*\); "
               r"re-initialise it \(a new MLP\) or load")
    with pytest.raises(ValueError, match=message):
        net.to_onnx(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match=message.replace("export", "save or pickle")):
        net.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def not_root():
    """Run the block as nobody (the effective uid only) if this is root, whom no
    permission bits refuse; root again afterwards."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_folder_without_write_permission_raises_oserror(tmp_path):
    net, _ = network("sigmoid", 1)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with not_root(), pytest.raises(PermissionError):
        net.to_onnx(locked / "model.onnx")
    assert not list(locked.iterdir())


def test_a_failed_export_leaves_no_partial_file(tmp_path, monkeypatch):
    net, _ = network("softmax", 3)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the old model")

    def fail_midway(proto, f):
        data = proto.SerializeToString()
        f.write(data[:len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        net.to_onnx(path)
    assert path.read_bytes() == b"the old model"
    assert os.listdir(tmp_path) == ["model.onnx"]


@pytest.mark.parametrize("model,path,match", [
    ("a string", None, "model must be a fastnn.MLP"),
    (fastnn.MLP([2, 1]), 3, "path must be a str or os.PathLike; got int")])
def test_bad_arguments_are_refused(model, path, match):
    with pytest.raises(TypeError, match=match):
        export(model, path)


def exported_parameters(net):
    """The layers' W and b of net's graph, as the bytes of fastnn's flat buffer."""
    layers = {t.name: t for t in net.to_onnx().graph.initializer if t.name[0] in "Wb"}
    return b"".join(onnx.numpy_helper.to_array(layers[f"{kind}{index}"]).tobytes()
                    for index in range(len(net.layers)) for kind in "Wb")


def test_exports_taken_during_a_fit_hold_the_weights_of_one_step():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((128, 3)), rng.integers(0, 3, 128)
    # a step an epoch (steps long enough to overlap an export), until the exporter has
    # exported two states past the first (at most 3000 epochs)
    train = dict(batch_size=None, optimizer="adam", lr=0.01)
    make = lambda: fastnn.MLP([3, 64, 64, 3], output="softmax", seed=8)  # noqa: E731
    digest = lambda data: hashlib.sha256(data).digest()  # noqa: E731
    net, exports, stop = make(), [], threading.Event()
    first = digest(net.engine.params.tobytes())

    def exporter():  # while the fit runs, as fast as it can
        while not stop.is_set():
            exports.append(digest(exported_parameters(net)))

    thread = threading.Thread(target=exporter)
    thread.start()
    try:
        net.fit(X, y, epochs=3000, callbacks=[
            lambda n, epoch, logs: len(set(exports) - {first}) > 1], **train)
    finally:
        stop.set()
        thread.join()
    steps = {first}  # the same training again, every step's weights recorded
    make().fit(X, y, epochs=net.step_count, callbacks=[lambda n, epoch, logs: steps.add(
        digest(n.engine.params.tobytes()))], **train)
    assert set(exports) <= steps
    assert set(exports) - {first, digest(net.engine.params.tobytes())}  # some mid-fit


# ---------------------------------------------------------------- imports, command

def test_import_fastnn_never_imports_onnx(tmp_path):
    # Run outside the checkout, so that the installed package is imported.
    code = ("import sys, fastnn\n"
            "fastnn.MLP([2, 3, 1]).predict([[0.0, 1.0]]); fastnn.MLPClassifier()\n"
            "print(sorted({'onnx', 'onnxruntime', 'fastnn.onnx'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout == "[]\n"


def test_without_onnx_the_export_says_how_to_get_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails
    monkeypatch.delitem(sys.modules, "fastnn.onnx")
    net = fastnn.MLP([2, 1])
    with pytest.raises(ImportError, match=r"pip install 'fastnn\[onnx\]'"):
        net.to_onnx()
    net.save(tmp_path / "model.npz")
    with pytest.raises(SystemExit) as info:
        cli.main(["export", str(tmp_path / "model.npz"), str(tmp_path / "model.onnx")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "pip install 'fastnn[onnx]'" in err
    assert len(err.strip().splitlines()) == 1


def test_fastnn_export_writes_the_model(tmp_path, capsys):
    net, X = network("softmax", 3, "tanh", np.float32)
    net.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(tmp_path / "model.npz"), str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    got = run(onnx.load(out), X)
    assert_same_values(got["probabilities"], net.predict_proba(X))
    np.testing.assert_array_equal(got["labels"], net.predict(X))


@pytest.mark.parametrize("argv,message", [
    (["export", "model.npz"], "the following arguments are required: output"),
    (["export", "missing.npz", "m.onnx"], "No such file or directory"),
    (["export", "junk.npz", "m.onnx"], "is not a readable fastnn model file"),
    (["export", "model.npz", "nowhere/m.onnx"],
     "No such file or directory: cannot create a file in"),
    (["export", "model.npz", "nowhere/m.onnx"], "nowhere' to write 'nowhere/m.onnx'"),
])
def test_fastnn_export_bad_arguments_exit_2_with_one_line(tmp_path, monkeypatch, capsys,
                                                          argv, message):
    monkeypatch.chdir(tmp_path)
    fastnn.MLP([2, 1]).save("model.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse's errors and the files' exit so
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
