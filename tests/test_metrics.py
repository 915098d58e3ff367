"""Training's value types: time to accuracy read from an epoch history."""

from __future__ import annotations

from harness.backends.metrics import EpochMetrics, seconds_to_target


def history(*val_accuracies, seconds=2.5):
    return [EpochMetrics(epoch, 0.1, 0.9, 0.1, accuracy, seconds) for epoch, accuracy in enumerate(val_accuracies, 1)]


def test_seconds_to_target_sums_the_epochs_up_to_the_first_that_reaches_it():
    assert seconds_to_target(history(0.95, 0.979, 0.98, 0.97, 0.99), 98.0) == 7.5  # epoch 3, not epoch 5
    assert seconds_to_target(history(0.985), 98.0) == 2.5


def test_no_time_to_target_when_it_is_not_reached_or_not_set_or_there_is_no_validation():
    assert seconds_to_target(history(0.95, 0.979), 98.0) is None
    assert seconds_to_target(history(0.99), None) is None
    assert seconds_to_target(history(None, None), 98.0) is None
