"""The success criterion: its measures and thresholds against scipy, its null, and the
synthesis's Spearman-and-class check (metamers pass, unrelated images fail)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from metamers import criteria, inits, stages, stats, store
from metamers.activations import extract
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings

CPU = torch.device("cpu")
LAYER = "relu2"


def activations_and_predictions(model, images, layer=LAYER):
    values = extract(model, images, [layer], CPU)
    return values[layer], values["__logits__"].argmax(1)


LENIENT = criteria.Criterion(("spearman",), 99.0)  # config/lenient.yaml


def lenient_threshold(null_at, layer=LAYER):
    return criteria.Thresholds.of(LENIENT, null_at(layer)).measures["spearman"]


def test_metamer_of_trained_model_meets_the_criterion(trained_model, references, null_at):
    reference_images, _ = references
    threshold = lenient_threshold(null_at)
    synthesis = MetamerSynthesis([Member("cnn", trained_model, LAYER, threshold)],
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
                                     reference_classes, threshold)
    assert check.passed.all()
    assert (check.spearman > threshold).all()
    # The noise starts did not pass: success came from the optimisation.
    start_values, start_classes = activations_and_predictions(trained_model, starts)
    assert not criteria.check_criterion(start_values, reference_values, start_classes,
                                        reference_classes, threshold).passed.any()


def test_criterion_rejects_noise(trained_model, references, null_at):
    reference_images, _ = references
    noise = inits.initial_images("uniform", reference_images, seed=1)
    noise_values, noise_classes = activations_and_predictions(trained_model, noise)
    reference_values, reference_classes = activations_and_predictions(trained_model,
                                                                      reference_images)
    check = criteria.check_criterion(noise_values, reference_values, noise_classes,
                                     reference_classes, lenient_threshold(null_at))
    assert not check.passed.any()
    assert (check.spearman < lenient_threshold(null_at)).all()


def test_criterion_rejects_another_references_image(trained_model, references, null_at):
    reference_images, labels = references
    # Reference i against a reference of another class (labels are grouped, two per class).
    other = torch.roll(torch.arange(len(labels)), 2)
    assert (labels[other] != labels).all()
    values, classes = activations_and_predictions(trained_model, reference_images)
    check = criteria.check_criterion(values[other.numpy()], values, classes[other.numpy()],
                                     classes, lenient_threshold(null_at))
    assert not check.passed.any()
    # At the null's maximum no distinct pair can pass, by construction.
    every_other = [torch.roll(torch.arange(len(labels)), shift) for shift in range(1, len(labels))]
    strict = null_at(LAYER).threshold("spearman", "max")
    for order in every_other:
        index = order.numpy()
        assert not criteria.check_criterion(values[index], values, classes, classes,
                                            strict).passed.any()


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

    success = criteria.SuccessCheck(torch.from_numpy(references), reference_predictions, 0.8)
    first, predicted = success.check(torch.from_numpy(metamers), slice(None), classify)
    correlating = full.spearman > 0.8
    assert 0 < full.passed.sum() < correlating.sum() < 40
    np.testing.assert_array_equal(asked, np.flatnonzero(correlating))
    np.testing.assert_array_equal(first.passed, full.passed)
    np.testing.assert_allclose(first.spearman, full.spearman, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(predicted, np.where(correlating, predictions, -1))


def test_the_synthesis_check_applies_every_deciding_measure(near_and_far_metamers):
    """All three measures equal scipy's and the SNR's definition; a metamer that clears the
    Spearman bar but not the SNR bar fails; without class_match the class does not decide."""
    metamers, references, _, reference_predictions = near_and_far_metamers
    spearman_only = criteria.SuccessCheck(torch.from_numpy(references), reference_predictions,
                                          criteria.Thresholds({"spearman": 0.8}, False))
    values = spearman_only.measure(torch.from_numpy(metamers), slice(None))
    for row in range(len(metamers)):
        assert values["spearman"][row] == pytest.approx(
            scipy_stats.spearmanr(metamers[row], references[row])[0], abs=1e-12)
        assert values["pearson"][row] == pytest.approx(
            scipy_stats.pearsonr(metamers[row], references[row])[0], abs=1e-6)
    expected_snr = 10 * np.log10((references.astype(np.float64) ** 2).sum(1)
                                 / ((metamers - references).astype(np.float64) ** 2).sum(1))
    np.testing.assert_allclose(values["snr_db"], expected_snr, rtol=1e-6)
    snr_bar = float(np.median(values["snr_db"][values["spearman"] > 0.8]))
    strict = criteria.SuccessCheck(torch.from_numpy(references), reference_predictions,
                                   criteria.Thresholds({"spearman": 0.8, "snr_db": snr_bar},
                                                       False))
    everyone = np.arange(40)
    loose, _ = spearman_only.check(torch.from_numpy(metamers), slice(None), lambda rows: rows)
    tight, _ = strict.check(torch.from_numpy(metamers), slice(None), lambda rows: rows)
    np.testing.assert_array_equal(loose.passed, values["spearman"] > 0.8)
    np.testing.assert_array_equal(tight.passed, (values["spearman"] > 0.8)
                                  & (values["snr_db"] > snr_bar))
    assert loose.passed.sum() > tight.passed.sum() > 0
    assert not tight.passed[everyone[loose.passed & (values["snr_db"] <= snr_bar)]].any()


def test_check_criterion_is_strict_and_rejects_undefined_correlations():
    references = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    metamers = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])  # second: constant row
    check = criteria.check_criterion(metamers, references, [0, 0], [0, 0], threshold=1.0)
    assert not check.passed.any()  # a correlation of 1 does not exceed a threshold of 1
    check = criteria.check_criterion(metamers, references, [0, 0], [0, 0], threshold=0.99)
    np.testing.assert_array_equal(check.passed, [True, False])
    assert np.isnan(check.spearman[1])


@pytest.fixture
def activation_rows() -> tuple[np.ndarray, np.ndarray]:
    """Five ReLU-like rows (ties at zero) and noisy copies of them."""
    rng = np.random.default_rng(3)
    references = np.maximum(rng.standard_normal((5, 40)), 0)
    return np.maximum(references + 0.4 * rng.standard_normal((5, 40)), 0), references


def snr_db(values: np.ndarray, reference: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((values - reference) ** 2))


def test_measures_match_scipy_and_the_snr_definition(activation_rows):
    values, references = activation_rows
    measured = criteria.measure_rows(values, references)
    np.testing.assert_allclose(measured["spearman"], [
        scipy_stats.spearmanr(a, b).statistic for a, b in zip(values, references)], atol=1e-12)
    np.testing.assert_allclose(measured["pearson"], [
        scipy_stats.pearsonr(a, b).statistic for a, b in zip(values, references)], atol=1e-12)
    np.testing.assert_allclose(measured["snr_db"], [
        snr_db(a, b) for a, b in zip(values, references)], rtol=1e-12)
    assert measured["snr_db"][0] != criteria.measure_rows(references, values)["snr_db"][0]


def test_measures_against_references_ranked_once_are_the_same(activation_rows):
    values, references = (rows.astype(np.float32) for rows in activation_rows)
    ranked = criteria.measure_rows(values, references, reference_ranks=stats.rank_once(references))
    for measure, measured in criteria.measure_rows(values, references).items():
        np.testing.assert_allclose(ranked[measure], measured, rtol=1e-12, atol=1e-12)
    assert list(ranked) == list(criteria.MEASURES)


def test_pair_measures_are_every_pair_with_zero_rows_at_zero(activation_rows):
    values, _ = activation_rows
    values = np.concatenate([values, np.zeros((1, 40))]).astype(np.float32)  # row 5: all zero
    pairs = stats.pair_measures(values, criteria.MEASURES)
    first, second = np.triu_indices(len(values), k=1)
    assert len(pairs["spearman"]) == 15
    for index, (i, j) in enumerate(zip(first, second)):
        if j == 5:  # Feather et al.'s null: a pair with an all-zero row counts 0
            assert [pairs[m][index] for m in criteria.MEASURES] == [0.0, 0.0, 0.0]
            continue
        row, other = values[i].astype(np.float64), values[j].astype(np.float64)
        assert pairs["spearman"][index] == pytest.approx(
            scipy_stats.spearmanr(row, other).statistic, abs=1e-12)
        assert pairs["pearson"][index] == pytest.approx(
            scipy_stats.pearsonr(row, other).statistic, abs=1e-12)
        assert pairs["snr_db"][index] == pytest.approx(snr_db(other, row), rel=1e-9)


def test_the_max_threshold_is_the_largest_null_value_and_percentiles_are_numpys(
        activation_rows):
    values, references = activation_rows
    null = criteria.reference_null(np.concatenate([values, references]))
    spearman = scipy_stats.spearmanr(np.concatenate([values, references]), axis=1).statistic
    expected = np.sort(spearman[np.triu_indices(10, k=1)])
    np.testing.assert_allclose(null.values["spearman"], expected, atol=1e-12)
    assert null.pairs == 45 and null.source == "references"
    assert null.threshold("spearman") == null.maximum("spearman") == pytest.approx(expected[-1])
    assert null.threshold("pearson", 90) == pytest.approx(np.percentile(null.values["pearson"],
                                                                         90))
    assert criteria.reference_null(references, max_pairs=4).pairs == 4
    with pytest.raises(ValueError, match="at least two"):
        criteria.reference_null(references[:1])


def flat_null(spearman: float, pearson: float, snr: float) -> criteria.NullDistribution:
    """A null whose every measure has the given maximum (and lower values below it)."""
    return criteria.NullDistribution({
        measure: np.array([maximum - 1.0, maximum - 0.5, maximum])
        for measure, maximum in (("spearman", spearman), ("pearson", pearson),
                                 ("snr_db", snr))}, "train")


def test_the_criterion_rejects_a_metamer_passing_spearman_but_failing_snr():
    rng = np.random.default_rng(4)
    references = rng.random((3, 50)) + 0.1
    metamers = references**3  # same ranks, far in value: Spearman 1, SNR low
    null = flat_null(spearman=0.9, pearson=0.5, snr=10.0)
    result = criteria.Criterion().check(metamers, references, null, [1, 2, 3], [1, 2, 3])
    np.testing.assert_array_equal(result.passes["spearman"], True)
    assert (result.values["snr_db"] < 10.0).all()
    np.testing.assert_array_equal(result.passes["snr_db"], False)
    np.testing.assert_array_equal(result.passed, False)
    spearman_only = criteria.Criterion(measures=("spearman",))
    np.testing.assert_array_equal(
        spearman_only.check(metamers, references, null, [1, 2, 3], [1, 2, 3]).passed, True)
    # the class must match too; the representation test leaves classes out
    wrong_class = spearman_only.check(metamers, references, null, [1, 0, 3], [1, 2, 3])
    np.testing.assert_array_equal(wrong_class.passed, [True, False, True])
    assert spearman_only.check_measures(metamers, references, null).class_matches is None


def test_a_measure_whose_null_maximum_is_its_ceiling_is_reported_and_does_not_decide():
    references = np.random.default_rng(5).random((2, 30))
    null = flat_null(spearman=1.0, pearson=0.5, snr=10.0)
    result = criteria.Criterion().check_measures(references, references, null)
    assert result.uninformative == ("spearman",)
    np.testing.assert_array_equal(result.passes["spearman"], False)  # 1.0 does not exceed 1.0
    np.testing.assert_array_equal(result.passed, True)  # Pearson and SNR decide
    with pytest.raises(ValueError, match="ceiling"):
        criteria.Criterion(measures=("spearman",)).check_measures(references, references, null)
    percentile = criteria.Criterion(measures=("spearman",), threshold=50)
    assert percentile.uninformative(null) == ()


def test_null_from_blocks_takes_every_pair_within_blocks_only():
    blocks = [np.random.default_rng(seed).random((4, 20)) for seed in range(3)]
    null = criteria.null_from_blocks(iter(blocks), pairs=14, source="train")
    within = [stats.pair_measures(block, criteria.MEASURES) for block in blocks]
    expected = np.sort(np.concatenate([within[0]["pearson"], within[1]["pearson"],
                                       within[2]["pearson"][:2]]))
    np.testing.assert_array_equal(null.values["pearson"], expected)
    assert null.pairs == 14 and criteria.images_for_pairs(14, 4) == 12
    with pytest.raises(ValueError, match="gave 18 pairs, 19 were asked"):
        criteria.null_from_blocks(iter(blocks), pairs=19, source="train")


def test_the_null_file_holds_every_measure_its_size_maxima_and_thresholds(job_inputs, data_spec,
                                                                        tmp_path):
    settings = {"source": "train", "pairs": 600, "augment": True, "block_images": 32}
    path = tmp_path / "null.h5"
    stages.null_distribution(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                             "relu2", settings, "max", data_spec, None,
                             job_inputs["references_path"], 0, path, device="cpu")
    null = store.read_null(path)
    assert null.pairs == 600 and null.source == "train"
    attrs = store.read_null_attrs(path)
    assert attrs["pairs"] == 600 and attrs["images"] == 32 * 2  # 496 pairs per block
    for measure in criteria.MEASURES:
        assert attrs["maxima"][measure] == null.maximum(measure) == null.values[measure].max()
        assert attrs["thresholds"][measure] == null.maximum(measure)
    assert attrs["uninformative"] == [] and attrs["threshold_rule"] == "max"
    assert null.maximum("spearman") < 1.0
    lenient = criteria.Criterion(("spearman",), 99.0)
    assert criteria.Thresholds.of(lenient, null).measures["spearman"] == pytest.approx(
        np.percentile(null.values["spearman"], 99))


def test_a_projected_null_is_the_null_of_the_evaluations_projected_activations(job_inputs,
                                                                             tmp_path):
    """Where the evaluation projects a wide layer, its null is of projected activations too."""
    settings = {"source": "references", "pairs": 100000, "augment": True, "block_images": 256}
    path = tmp_path / "projected.h5"
    weights, spec = job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"]
    stages.null_distribution(weights, spec, "relu2", settings, 99.0, {}, None,
                             job_inputs["references_path"], 0, path, projection_dim=64,
                             device="cpu")
    model = stages.load_zoo_model(weights, spec, CPU)
    references = torch.from_numpy(store.read_references(job_inputs["references_path"])["images"])
    projected = extract(model, references, [LAYER], CPU, projection_dim=64, seed=0)[LAYER]
    assert projected.shape[1] == 64
    expected = criteria.reference_null(projected)
    for measure in criteria.MEASURES:
        np.testing.assert_allclose(store.read_null(path).values[measure],
                                   expected.values[measure], rtol=1e-5, atol=1e-6)
