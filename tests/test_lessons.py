"""Each lesson of the texts, checked in numbers (the defaults of the `fastnn` commands)."""
import math

import numpy as np
import pytest

from fastnn import experiments


def test_std_1_sigmoid_saturates_most_activations_in_every_layer():
    records = experiments.histograms("sigmoid", 1.0)
    assert all(r.saturated > 0.5 for r in records)


def test_std_001_sigmoid_collapses_around_one_half():
    records = experiments.histograms("sigmoid", 0.01)
    assert all(abs(r.mean - 0.5) < 0.01 and r.std < 0.03 for r in records)


def test_xavier_sigmoid_keeps_a_spread_without_saturating():
    records = experiments.histograms("sigmoid", "xavier")
    assert all(r.std > 0.1 and r.saturated < 0.01 for r in records)


def test_he_keeps_relu_spread_while_std_001_shrinks_it_layer_after_layer():
    he = [r.std for r in experiments.histograms("relu", "he")]
    assert 0.5 < he[-1] / he[0] < 2
    small = [r.std for r in experiments.histograms("relu", 0.01)]
    assert all(b < 0.2 * a for a, b in zip(small, small[1:]))


def test_zero_init_ends_at_chance_on_circles_and_he_learns_them():
    results, _ = experiments.compare_init_circles()
    by_name = {r.label: r for r in results}
    assert by_name["zeros"].train_score == 0.5 and by_name["zeros"].test_score == 0.5
    assert by_name["zeros"].losses[-1] == pytest.approx(math.log(2), rel=1e-12)
    assert by_name["he"].train_score > 0.9 and by_name["he"].test_score > 0.9


@pytest.mark.slow  # 4 s with one BLAS thread (it took ~76 s with two on 2 cores)
def test_deep_spiral_std_001_learns_nothing_and_he_beats_xavier():
    results, _ = experiments.compare_init_spiral()
    tail = {r.label: np.mean(r.losses[-100:]) for r in results}
    assert tail["std=0.01"] == pytest.approx(math.log(3), rel=0.01)
    assert tail["he"] < tail["xavier (lecun)"] < 0.5 * math.log(3)


def test_deep_sigmoid_gradients_vanish_and_relu_ones_do_not():
    norms = experiments.vanishing()
    sigmoid = [r.dW_norm for r in norms["sigmoid"]]
    relu = [r.dW_norm for r in norms["relu"]]
    assert sigmoid[0] / sigmoid[-1] < 1e-4  # orders of magnitude
    assert relu[0] / relu[-1] > 0.1


def test_a_too_large_learning_rate_kills_relu_units():
    small, large = experiments.dead_relu(lrs=(0.01, 3.0))
    assert small.diverged_at is None and large.diverged_at is None
    dead = [sum(r.dead for r in run.records) for run in (small, large)]
    assert dead[1] > 2 * dead[0]


@pytest.mark.parametrize("lr", [1e10, 1e300])
def test_a_diverging_run_is_reported_with_the_step_that_failed(lr):
    (run,) = experiments.dead_relu(lrs=(lr,), epochs=1)
    assert run.diverged_at == run.net.step_count + 1 > 1  # that step changed nothing
    if run.records is not None:  # the dead units of the last finite weights
        assert len(run.records) == 3 and run.records[0].dead > 0
    run.net.layers[0].W[0, 0] = np.inf  # as an update that overflowed leaves them
    assert experiments._failing_step(run.net) == run.net.step_count  # it was counted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tanh_hidden_layers_train_further_than_sigmoid(seed):
    results, _ = experiments.compare_activations(seed=seed)
    final = {r.label: r.losses[-1] for r in results}
    assert final["tanh"] < final["sigmoid"]
