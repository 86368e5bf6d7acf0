"""fastnn.datasets.make_sklearn_circles: scikit-learn's circles, the course's data."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import datasets

#: Points of the course's data as scikit-learn 1.9.1 draws them (numpy 2.4):
#: np.random.seed(1); make_circles(n_samples=300, noise=.05), and seed 2 with 100
#: samples. (n_samples, seed): {index: (x0, x1, label)}.
COURSE_POINTS = {
    (300, 1): {0: (-0.07741354010048114, 0.8526022642742742, 1),
               1: (0.43186959584803564, -0.8721450395952108, 0),
               150: (0.7632101503999836, -0.1000604790540604, 1),
               299: (-0.061145412565262895, 0.9298264080659127, 0)},
    (100, 2): {0: (-0.5242373850862546, -0.6091036148461817, 1),
               50: (0.4972912382775519, 0.8874227607821487, 0),
               99: (0.3438483715909715, -0.9192735912720769, 0)},
}


def assert_bitwise_equal(actual, expected):
    assert len(actual) == len(expected) == 2
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape and a.flags.c_contiguous
        assert a.tobytes() == e.tobytes()


@pytest.mark.parametrize("n_samples,seed", list(COURSE_POINTS))
def test_the_courses_data_has_the_stored_points(n_samples, seed):
    X, y = datasets.make_sklearn_circles(n_samples, noise=0.05, seed=seed)
    assert X.shape == (n_samples, 2) and np.count_nonzero(y == 0) == n_samples // 2
    for i, (x0, x1, label) in COURSE_POINTS[n_samples, seed].items():
        # Another platform's cos, sin or log may differ in the last bit.
        np.testing.assert_allclose(X[i], [x0, x1], rtol=0, atol=1e-15)
        assert y[i] == label


@settings(max_examples=60, deadline=None)
@given(n_samples=st.integers(2, 500), noise=st.none() | st.floats(0, 10),
       factor=st.floats(0, 1, exclude_max=True), seed=st.integers(0, 2**32 - 1))
def test_the_points_are_scikit_learns_bit_for_bit(n_samples, noise, factor, seed):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    expected = sklearn_datasets.make_circles(n_samples, noise=noise, factor=factor,
                                             random_state=seed)
    assert_bitwise_equal(datasets.make_sklearn_circles(n_samples, noise=noise,
                                                       factor=factor, seed=seed), expected)


def test_a_random_state_is_drawn_from_as_scikit_learn_draws_from_it():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ours, theirs = np.random.RandomState(7), np.random.RandomState(7)
    assert_bitwise_equal(datasets.make_sklearn_circles(50, noise=0.1, seed=ours),
                         sklearn_datasets.make_circles(50, noise=0.1, random_state=theirs))
    assert ours.randint(2**31) == theirs.randint(2**31)  # both advanced alike


def test_the_courses_global_seed_gives_the_same_points_and_numpys_state_is_left_alone():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    saved = np.random.get_state()
    try:
        np.random.seed(1)  # the course's load_dataset, on numpy's global RandomState
        train = sklearn_datasets.make_circles(n_samples=300, noise=.05)
        np.random.seed(2)
        test = sklearn_datasets.make_circles(n_samples=100, noise=.05)
        before = np.random.get_state()
        assert_bitwise_equal(datasets.make_sklearn_circles(300, noise=0.05, seed=1), train)
        assert_bitwise_equal(datasets.make_sklearn_circles(100, noise=0.05, seed=2), test)
        datasets.make_sklearn_circles(100, noise=0.05)  # seed None: a fresh RandomState
        after = np.random.get_state()
        assert before[0] == after[0] and np.array_equal(before[1], after[1])
        assert before[2:] == after[2:]
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"seed": np.random.default_rng(1)}, TypeError, "or a numpy.random.RandomState"),
    ({"seed": 1.0}, TypeError, "seed must be None, an int or"),
    ({"seed": True}, TypeError, "seed must be None, an int or"),
    ({"seed": -1}, ValueError, "from 0 to 2**32 - 1; got -1"),
    ({"seed": 2**32}, ValueError, "from 0 to 2**32 - 1; got 4294967296"),
    ({"n_samples": 1}, ValueError, "n_samples must be at least 2"),
    ({"n_samples": 2.0}, TypeError, "n_samples must be an integer"),
    ({"factor": 1.0}, ValueError, "factor must be in [0, 1)"),
    ({"factor": -0.1}, ValueError, "factor must be in [0, 1)"),
    ({"noise": -0.1}, ValueError, "noise must be in [0, inf]"),
    ({"noise": float("nan")}, ValueError, "noise must be finite"),
    ({"noise": "0.1"}, TypeError, "noise must be a real number"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, error, message):
    with pytest.raises(error) as info:
        datasets.make_sklearn_circles(**{"n_samples": 10, "noise": 0.05, **kwargs})
    assert message in str(info.value)
