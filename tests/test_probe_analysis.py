"""Probes, separating dimensions, margins and their controls on synthetic activations with known answers."""

from __future__ import annotations

import numpy as np

from slmlab.probe.analysis import analyse_layer, auc, best_layer_p_value, layer_sweep, permute_by_task, probe


def synthetic(separable: bool, tasks: int = 40, per_task: int = 5, dims: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(tasks * per_task, dims))
    groups = np.repeat(np.arange(tasks), per_task)
    if separable:  # passing depends on two dimensions only, with a little noise
        y = (X[:, 17] - 0.8 * X[:, 42] + 0.2 * rng.normal(size=len(X)) > 0).astype(int)
    else:
        y = rng.integers(0, 2, len(X))
    return X, y, groups


def test_auc_matches_its_definition():
    y = np.array([0, 0, 1, 1, 1])
    assert auc(np.array([0.1, 0.4, 0.35, 0.8, 0.9]), y) == 5 / 6
    assert auc(np.array([1.0, 1.0, 1.0, 1.0, 1.0]), y) == 0.5


def test_separable_data_is_found_on_the_right_two_dimensions():
    X, y, groups = synthetic(separable=True)
    found = analyse_layer(X, y, groups, layer=3, kind="generated_mean", shuffles=20, pairs=20)
    assert found.full.auc > 0.85 and found.full.beats_control
    assert set(found.pair) == {17, 42}
    assert found.pair_honest.auc > 0.95 and found.pair_honest.beats_control
    assert found.pair_control.share_beaten == 1.0
    assert {dim for dim, _ in found.sparse_dims[:2]} == {17, 42}
    # Margins are in raw units along the boundary's normal: passed samples sit on the positive side.
    assert found.margins.median_distance(y, passed=True) > 0 > found.margins.median_distance(y, passed=False)
    assert "dims 17 and 42" in found.headline() or "dims 42 and 17" in found.headline()


def test_non_separable_data_stays_within_the_shuffled_label_control():
    X, y, groups = synthetic(separable=False)
    found = probe(X, y, groups, shuffles=20)
    assert not found.beats_control
    assert abs(found.balanced_accuracy - 0.5) < 0.12
    assert probe(X, y, groups, shuffles=20) == found  # the same data gives the same numbers
    assert found.auc_ci[0] < 0.5 < found.auc_ci[1]


def test_folds_grouped_by_task_do_not_reward_recognising_the_task():
    # Every sample of a task has nearly the same activation and the same outcome, and outcomes are
    # random across tasks: a probe that memorises tasks looks perfect unless folds keep tasks apart.
    rng = np.random.default_rng(1)
    tasks, per_task = 40, 5
    centres, labels = rng.normal(size=(tasks, 60)), rng.integers(0, 2, tasks)
    groups = np.repeat(np.arange(tasks), per_task)
    X = centres[groups] + 0.01 * rng.normal(size=(tasks * per_task, 60))
    y = labels[groups]
    found = probe(X, y, groups, shuffles=20)
    assert not found.beats_control
    assert found.balanced_accuracy < 0.7


def test_too_few_samples_of_a_class_give_no_probe():
    X, y, groups = synthetic(separable=True)
    y = np.zeros_like(y)
    y[:5] = 1
    assert probe(X, y, groups) is None


def test_shuffles_keep_tasks_together_and_choosing_the_best_layer_is_paid_for():
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1])
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    rng = np.random.default_rng(0)
    for _ in range(10):
        shuffled = permute_by_task(y, groups, rng)
        assert all(shuffled[2 * i] == shuffled[2 * i + 1] for i in range(4))
        assert shuffled.sum() == y.sum() and shuffled[8] == 1  # the only one-sample task keeps its label
    # Eight layers of noise: the best of them, judged alone, can look like a finding; corrected, it does not.
    _, y, groups = synthetic(separable=False)
    sweep = layer_sweep(lambda layer: np.random.default_rng(layer).normal(size=(len(y), 40)), list(range(8)), y,
                        groups, shuffles=19)  # fmt: skip
    layer, family_p = best_layer_p_value(sweep)
    assert family_p >= dict(sweep)[layer].p_value and family_p > 0.05
