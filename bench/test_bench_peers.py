"""fastnn against the peers a user would pick instead, on the work users bring.

Every case trains the same network, with Adam (lr 1e-3), the same batch size and the
same number of epochs, reshuffling every epoch, in three ways: fastnn's estimator
(`fastnn.MLPClassifier` / `MLPRegressor`), scikit-learn's, and a plain PyTorch CPU
loop (randperm, index, forward, loss, backward, step), each skipped when its library
is not installed. The estimators run at scikit-learn's defaults otherwise (alpha
1e-4, tol=0 so that every epoch runs); the PyTorch loop has no weight decay.

Threads: all three run on PEER_THREADS (FASTNN_PEER_THREADS, default every core the
process may use) for the whole group, lifting bench/conftest.py's pin: fastnn's own
threads (its default n_threads follows scipy's BLAS limit, set here), scikit-learn's
BLAS (numpy's OpenBLAS) and PyTorch's intra-op threads. The "GEMM peak" group times
numpy's BLAS on a 1536^3 product on those threads, in the same run, for each dtype;
`python bench/report.py` divides each case's FLOPs (those of its training steps'
matrix products) by its time and by that peak.

fastnn's rounds also time its epochs alone (each a compiled call over all its steps),
without the fit's set-up (checks, the model, its initial weights) and bookkeeping: the
report's "steps of GEMM peak" is the share of the peak that its training steps reach.

Rounds: the contenders take turns, a fit each per round, for ROUNDS rounds after a
warm-up round, and the report takes each one's fastest (this VM's slow phases last
seconds: five rounds of one contender in a row could all fall in one).
"""
import contextlib
import os
import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

sklearn = pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastnn  # noqa: E402

try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None

PEER_THREADS = int(os.environ.get("FASTNN_PEER_THREADS", len(os.sched_getaffinity(0))
                                  if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def _split(X, y, dtype="float64"):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train).astype(dtype), scaler.transform(X_test).astype(dtype),
            y_train, y_test)


def _digits(dtype):
    X, y = datasets.load_digits(return_X_y=True)
    return _split(X, y, dtype)


def _breast_cancer(dtype):
    return _split(*datasets.load_breast_cancer(return_X_y=True), dtype)


def _diabetes(dtype):
    X, y = datasets.load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y, dtype)
    mean, std = y_train.mean(), y_train.std()
    return X_train, X_test, ((y_train - mean) / std).astype(dtype), \
        ((y_test - mean) / std).astype(dtype)


def _tabular(dtype):
    """15,000 training rows x 64 features, ten classes: a random two-layer teacher's
    argmax, so that a network can learn it (5,000 more rows to test)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 64))
    hidden = np.tanh(X @ rng.standard_normal((64, 32)) / 8)
    y = np.argmax(hidden @ rng.standard_normal((32, 10)), axis=1)
    return X[:15000].astype(dtype), X[15000:].astype(dtype), y[:15000], y[15000:]


CASES = {  # data, "classifier"/"regressor", hidden layers, batch size, epochs, dtype
    "digits [64, 100, 10] batch 200": (_digits, "classifier", (100,), 200, 30, "float64"),
    "breast cancer [30, 32, 32, 1] batch 32": (_breast_cancer, "classifier", (32, 32), 32,
                                              50, "float64"),
    "diabetes [10, 64, 64, 1] batch 32": (_diabetes, "regressor", (64, 64), 32, 50,
                                         "float64"),
    "tabular 15000x64 [64, 256, 256, 10] batch 128 float64": (
        _tabular, "classifier", (256, 256), 128, 3, "float64"),
    "tabular 15000x64 [64, 256, 256, 10] batch 128 float32": (
        _tabular, "classifier", (256, 256), 128, 3, "float32"),
}


def fit_flops(sizes, m, batch, epochs):
    """The FLOPs of the matrix products of every training step of the fit: per row,
    2 n_in n_out for each layer's forward and weight gradient, and for every layer
    but the first its input's gradient."""
    pairs = list(zip(sizes, sizes[1:]))
    per_row = 2 * sum(i * o for i, o in pairs) * 3 - 2 * sizes[0] * sizes[1]
    return per_row * m * epochs


def _estimator(library, kind, settings):
    classes = {("fastnn", "classifier"): fastnn.MLPClassifier,
               ("fastnn", "regressor"): fastnn.MLPRegressor,
               ("sklearn", "classifier"): MLPClassifier,
               ("sklearn", "regressor"): MLPRegressor}
    return classes[library, kind](**settings)


def _torch_fit(kind, sizes, batch, epochs, X, y):
    """A plain PyTorch training loop, as the tutorials write it; returns a predict
    function giving labels (classifier) or values."""
    torch.manual_seed(0)
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out, dtype=dtype), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    binary = kind == "classifier" and sizes[-1] == 1
    if kind == "regressor":
        loss_fn, target = torch.nn.MSELoss(), torch.from_numpy(y).reshape(-1, 1)
    elif binary:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        target = torch.from_numpy(y.astype(X.dtype)).reshape(-1, 1)
    else:
        loss_fn, target = torch.nn.CrossEntropyLoss(), torch.from_numpy(y)
    inputs = torch.from_numpy(X)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), batch):
            rows = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[rows]), target[rows])
            loss.backward()
            optimizer.step()

    def predict(X_new):
        with torch.no_grad():
            out = model(torch.from_numpy(X_new))
        if kind == "regressor":
            return out.numpy().ravel()
        return (out.numpy().ravel() > 0).astype(int) if binary else out.argmax(1).numpy()
    return predict


def _score(kind, predicted, y_test):
    """Accuracy, or R^2 for a regressor."""
    if kind == "classifier":
        return float(np.mean(predicted == y_test))
    return float(1 - np.sum((y_test - predicted) ** 2) / np.sum((y_test - y_test.mean())
                                                                  ** 2))


@pytest.fixture
def peer_threads():
    """Every library on PEER_THREADS for the benchmark (conftest pins BLAS to one)."""
    with threadpool_limits(limits=PEER_THREADS):
        if torch is not None:
            torch.set_num_threads(PEER_THREADS)
        yield PEER_THREADS


PEERS = ["fastnn", "sklearn", pytest.param("torch", marks=pytest.mark.skipif(
    torch is None, reason="PyTorch is not installed"))]


def _fit_function(impl, case):
    """A call that fits impl on case's training set and returns its predict."""
    make_data, kind, hidden, batch, epochs, dtype = CASES[case]
    X_train, _, y_train, _ = make_data(dtype)
    if impl == "torch":
        return lambda: _torch_fit(kind, _sizes(case), batch, epochs, X_train, y_train)
    settings = dict(hidden_layer_sizes=hidden, solver="adam", batch_size=batch,
                    max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                    random_state=0)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return _estimator(impl, kind, settings).fit(X_train, y_train).predict
    return fit


def _sizes(case):
    make_data, kind, hidden, _, _, dtype = CASES[case]
    X_train, _, y_train, _ = make_data(dtype)
    n_out = 1 if kind == "regressor" or len(np.unique(y_train)) == 2 \
        else len(np.unique(y_train))
    return [X_train.shape[1], *hidden, n_out]


@contextlib.contextmanager
def _epochs_timed(seconds):
    """Within it, every epoch that fastnn's estimators run (fastnn.sklearn's
    run_epoch) adds its time to seconds[0]."""
    import fastnn.sklearn as estimators
    run_epoch = estimators.run_epoch

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return run_epoch(*args, **kwargs)
        finally:
            seconds[0] += time.perf_counter() - start
    estimators.run_epoch = timed
    try:
        yield
    finally:
        estimators.run_epoch = run_epoch


ROUNDS = 5
SETTLE_SECONDS = 0.3
_ROUND_TIMES = {}


def _round_times(case):
    """Every contender's fit times on case, side by side: a warm-up round, then ROUNDS
    rounds in each of which every installed contender fits once, in turn, so that a
    slow phase of the machine falls on all of them alike. Each fit starts
    SETTLE_SECONDS after the last: an OpenBLAS pool's threads spin for about 0.1 s
    after their last product (numpy's, for scikit-learn's fit), and a fit started
    meanwhile shares the cores with them (fastnn's two-thread digits fit took 110-140
    ms so while its threads met at barriers, about 40 since they take work items,
    against 22-30 alone), as no program using one of these libraries would. Also
    fastnn's epochs' time in each of its fits (under "fastnn epochs")."""
    if case not in _ROUND_TIMES:
        fits = {impl: _fit_function(impl, case) for impl in ("fastnn", "sklearn", "torch")
                if impl != "torch" or torch is not None}
        times = {impl: [] for impl in [*fits, "fastnn epochs"]}
        for round_ in range(ROUNDS + 1):
            for impl, fit in fits.items():
                epochs = [0.0]
                time.sleep(SETTLE_SECONDS)
                with _epochs_timed(epochs) if impl == "fastnn" else contextlib.nullcontext():
                    start = time.perf_counter()
                    fit()
                    seconds = time.perf_counter() - start
                if round_:
                    times[impl].append(seconds)
                    if impl == "fastnn":
                        times["fastnn epochs"].append(epochs[0])
        _ROUND_TIMES[case] = times
    return _ROUND_TIMES[case]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", PEERS)
def test_fit(benchmark, peer_threads, impl, case):
    """pytest-benchmark times one more fit (for its predictions' test score); the
    report reads the rounds taken side by side (extra_info["round_seconds"])."""
    make_data, kind, hidden, batch, epochs, dtype = CASES[case]
    X_train, X_test, y_train, y_test = make_data(dtype)
    benchmark.group = f"peers: {case}"
    benchmark.extra_info.update(flops=fit_flops(_sizes(case), len(X_train), batch, epochs),
                                dtype=dtype, threads=peer_threads,
                                round_seconds=_round_times(case)[impl])
    if impl == "fastnn":
        benchmark.extra_info["epoch_seconds"] = _round_times(case)["fastnn epochs"]
    predict = benchmark.pedantic(_fit_function(impl, case), rounds=1, iterations=1)
    benchmark.extra_info["test_score"] = _score(kind, predict(X_test), y_test)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gemm_peak(benchmark, peer_threads, dtype):
    """numpy's BLAS on a 1536^3 product: the machine's GEMM peak on PEER_THREADS."""
    n = 1536
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    out = np.empty((n, n), dtype)
    benchmark.group = f"GEMM peak {dtype}"
    benchmark.extra_info.update(flops=2 * n ** 3, dtype=dtype, threads=peer_threads)
    benchmark.pedantic(np.matmul, args=(A, B), kwargs=dict(out=out), rounds=5,
                       iterations=1, warmup_rounds=1)
