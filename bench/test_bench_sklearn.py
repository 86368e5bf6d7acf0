"""fastnn.MLPClassifier against scikit-learn's MLPClassifier at identical settings.

Adam at scikit-learn's defaults (lr 1e-3, alpha 1e-4), the same hidden layer, batch
size and number of epochs, tol=0 so that both run every epoch, float64, BLAS on the
threads bench/conftest.py sets (one by default) for both. Each case is one group:
`python bench/report.py` shows scikit-learn's time over fastnn's. The test accuracy
of each fitted model goes into extra_info, to show both learned the same problem.
"""
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnMLP  # noqa: E402

import fastnn  # noqa: E402


def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


def _tabular():
    """20,000 x 64, ten classes: a random two-layer teacher's argmax, so a network can
    learn it."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25000, 64))
    hidden = np.tanh(X @ rng.standard_normal((64, 32)) / 8)
    y = np.argmax(hidden @ rng.standard_normal((32, 10)), axis=1)
    return X[:20000], X[20000:], y[:20000], y[20000:]


CASES = {  # data, hidden layers, batch size, epochs
    "digits [64, 100, 10] batch 200": (_digits, (100,), 200, 30),
    "tabular 20000x64 [64, 100, 10] batch 200": (_tabular, (100,), 200, 10),
}
ESTIMATORS = {"fastnn": fastnn.MLPClassifier, "sklearn": SklearnMLP}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", ESTIMATORS)
def test_fit(benchmark, impl, case):
    make_data, hidden, batch, epochs = CASES[case]
    X_train, X_test, y_train, y_test = make_data()
    settings = dict(hidden_layer_sizes=hidden, solver="adam", batch_size=batch,
                    max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                    random_state=0)
    benchmark.group = f"sklearn fit: {case}"

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return ESTIMATORS[impl](**settings).fit(X_train, y_train)

    model = benchmark.pedantic(fit, rounds=3, iterations=1)
    assert model.n_iter_ == epochs
    benchmark.extra_info["test_accuracy"] = float(model.score(X_test, y_test))
