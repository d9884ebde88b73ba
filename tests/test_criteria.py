"""The success criterion: metamers pass, unrelated images fail, the threshold is a percentile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers import criteria, inits, stats
from metamers.activations import extract
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings

CPU = torch.device("cpu")
LAYER = "relu2"


def activations_and_predictions(model, images, layer=LAYER):
    values = extract(model, images, [layer], CPU)
    return values[layer], values["__logits__"].argmax(1)


def test_metamer_of_trained_model_meets_the_criterion(trained_model, references, null_at):
    reference_images, _ = references
    null = null_at(LAYER)
    synthesis = MetamerSynthesis([Member("cnn", trained_model, LAYER, null.threshold)],
                                 reference_images, CPU)
    starts = inits.initial_images("uniform", reference_images, seed=0)
    budget = 200
    synthesis.setup(starts, OptimizerSettings("Adam", {"lr": 0.05}))
    result = synthesis.synthesize(budget, check_every=10)
    assert result.success.all()
    assert (result.iterations_to_success <= budget).all()
    # An independent check of the stored metamers with the criterion function itself.
    metamer_values, metamer_classes = activations_and_predictions(
        trained_model, torch.from_numpy(result.metamers))
    reference_values, reference_classes = activations_and_predictions(trained_model,
                                                                      reference_images)
    check = criteria.check_criterion(metamer_values, reference_values, metamer_classes,
                                     reference_classes, null.threshold)
    assert check.passed.all()
    assert (check.spearman > null.threshold).all()
    # The noise starts did not pass: success came from the optimisation.
    start_values, start_classes = activations_and_predictions(trained_model, starts)
    assert not criteria.check_criterion(start_values, reference_values, start_classes,
                                        reference_classes, null.threshold).passed.any()


def test_criterion_rejects_noise(trained_model, references, null_at):
    reference_images, _ = references
    noise = inits.initial_images("uniform", reference_images, seed=1)
    noise_values, noise_classes = activations_and_predictions(trained_model, noise)
    reference_values, reference_classes = activations_and_predictions(trained_model,
                                                                      reference_images)
    check = criteria.check_criterion(noise_values, reference_values, noise_classes,
                                     reference_classes, null_at(LAYER).threshold)
    assert not check.passed.any()
    assert (check.spearman < null_at(LAYER).threshold).all()


def test_criterion_rejects_another_references_image(trained_model, references, null_at):
    reference_images, labels = references
    # Reference i against a reference of another class (labels are grouped, two per class).
    other = torch.roll(torch.arange(len(labels)), 2)
    assert (labels[other] != labels).all()
    values, classes = activations_and_predictions(trained_model, reference_images)
    check = criteria.check_criterion(values[other.numpy()], values, classes[other.numpy()],
                                     classes, null_at(LAYER).threshold)
    assert not check.passed.any()
    # At the 100th percentile (the null's maximum) no distinct pair can pass, by construction.
    every_other = [torch.roll(torch.arange(len(labels)), shift) for shift in range(1, len(labels))]
    strict = null_at(LAYER, 100.0).threshold
    for order in every_other:
        index = order.numpy()
        assert not criteria.check_criterion(values[index], values, classes, classes,
                                            strict).passed.any()


def test_threshold_is_the_configured_percentile_not_the_max(null_at):
    null = null_at(LAYER, 99.0)
    np.testing.assert_allclose(null.threshold, np.percentile(null.correlations, 99))
    assert null.threshold < null.correlations.max()
    above = (null.correlations > null.threshold).mean()
    assert 0 < above <= 0.02
    assert null_at(LAYER, 90.0).threshold < null.threshold
    assert null_at(LAYER, 100.0).threshold == null.correlations.max()


def test_compute_null_uses_distinct_pairs_only():
    values = np.random.default_rng(0).random((6, 30))
    null = criteria.compute_null(values, 95.0)
    assert len(null.correlations) == 15
    assert null.correlations.max() < 1.0
    assert np.all(np.diff(null.correlations) >= 0)
    with pytest.raises(ValueError, match="at least two"):
        criteria.compute_null(values[:1], 99.0)


def test_check_criterion_needs_both_parts():
    rng = np.random.default_rng(1)
    references = rng.random((3, 50))
    metamers = references.copy()
    metamers[2] = rng.random(50)  # unrelated activations
    check = criteria.check_criterion(metamers, references, np.array([1, 4, 2]),
                                     np.array([1, 5, 2]), threshold=0.5)
    np.testing.assert_allclose(check.spearman[:2], 1.0)
    np.testing.assert_array_equal(check.class_matches, [True, False, True])
    np.testing.assert_array_equal(check.passed, [True, False, False])


@pytest.fixture
def near_and_far_metamers() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """40 float32 metamers at noise levels from near to far from their references, and random
    predicted classes for both (3 classes)."""
    rng = np.random.default_rng(2)
    references = rng.random((40, 300)).astype(np.float32)
    noise = rng.normal(0, 1, references.shape) * rng.uniform(0.05, 0.6, (40, 1))
    metamers = (references + noise).astype(np.float32)
    return metamers, references, rng.integers(0, 3, 40), rng.integers(0, 3, 40)


def test_correlating_only_matching_classes_decides_the_same(near_and_far_metamers):
    """The synthesis's cheaper check: no ranking where the class differs, same outcome."""
    metamers, references, predictions, reference_predictions = near_and_far_metamers
    full = criteria.check_criterion(metamers, references, predictions, reference_predictions,
                                    threshold=0.8)
    cheap = criteria.check_criterion(metamers, references, predictions, reference_predictions,
                                     threshold=0.8, correlate_all=False)
    assert 0 < full.passed.sum() < full.class_matches.sum() < 40
    np.testing.assert_array_equal(cheap.passed, full.passed)
    np.testing.assert_array_equal(cheap.spearman[full.class_matches],
                                  full.spearman[full.class_matches])
    assert np.isnan(cheap.spearman[~full.class_matches]).all()


def test_correlation_first_classifies_only_correlating_metamers_and_decides_the_same(
        near_and_far_metamers):
    """The check made from a step's activations: classes only where the correlation passes."""
    metamers, references, predictions, reference_predictions = near_and_far_metamers
    full = criteria.check_criterion(metamers, references, predictions, reference_predictions,
                                    threshold=0.8)
    asked = []

    def classify(rows: np.ndarray) -> np.ndarray:
        asked.extend(rows)
        return predictions[rows]

    first, predicted = criteria.check_correlation_first(
        metamers, stats.rank_once(references), classify, reference_predictions, threshold=0.8)
    correlating = full.spearman > 0.8
    assert 0 < full.passed.sum() < correlating.sum() < 40
    np.testing.assert_array_equal(asked, np.flatnonzero(correlating))
    np.testing.assert_array_equal(first.passed, full.passed)
    np.testing.assert_allclose(first.spearman, full.spearman, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(predicted, np.where(correlating, predictions, -1))


def test_check_criterion_is_strict_and_rejects_undefined_correlations():
    references = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    metamers = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])  # second: constant row
    check = criteria.check_criterion(metamers, references, [0, 0], [0, 0], threshold=1.0)
    assert not check.passed.any()  # a correlation of 1 does not exceed a threshold of 1
    check = criteria.check_criterion(metamers, references, [0, 0], [0, 0], threshold=0.99)
    np.testing.assert_array_equal(check.passed, [True, False])
    assert np.isnan(check.spearman[1])
