"""Score tables: pixel distance and control, evaluator scores, condition tables, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from metamers import criteria, scores
from metamers.activations import LOGITS


def test_pixel_distance_is_the_l2_norm():
    images = np.zeros((2, 1, 3, 3))
    references = np.zeros((2, 1, 3, 3))
    images[0, 0, 0, 0] = 3.0
    images[0, 0, 1, 1] = 4.0
    images[1] = 0.5
    np.testing.assert_allclose(scores.pixel_distance(images, references), [5.0, 1.5])
    np.testing.assert_array_equal(scores.pixel_distance(references, references), [0.0, 0.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_control_matches_the_metamers_distance(seed):
    rng = np.random.default_rng(seed)
    references = rng.random((6, 1, 28, 28)).astype(np.float32)
    references[:3] = np.round(references[:3])  # saturated pixels, as in Fashion-MNIST
    metamers = rng.random((6, 1, 28, 28)).astype(np.float32)
    distances = scores.pixel_distance(metamers, references)
    control = scores.pixel_control(references, distances, seed=seed)
    assert control.shape == references.shape and control.dtype == np.float32
    assert control.min() >= 0 and control.max() <= 1
    np.testing.assert_allclose(scores.pixel_distance(control, references), distances, atol=1e-5)
    np.testing.assert_array_equal(control, scores.pixel_control(references, distances, seed))
    assert not np.allclose(control, metamers)


def test_pixel_control_at_small_distance_is_near_the_reference():
    references = np.full((2, 1, 8, 8), 0.5, np.float32)
    control = scores.pixel_control(references, np.array([0.0, 0.1]), seed=0)
    np.testing.assert_allclose(control[0], references[0])
    np.testing.assert_allclose(scores.pixel_distance(control, references), [0.0, 0.1], atol=1e-6)


@pytest.fixture
def evaluator_activations():
    rng = np.random.default_rng(2)
    count = 8
    reference = {"relu1": np.maximum(rng.standard_normal((count, 30)), 0),
                 LOGITS: rng.standard_normal((count, 4))}
    images = {"relu1": np.maximum(reference["relu1"] + 0.3 * rng.standard_normal((count, 30)),
                                  0),
              LOGITS: rng.standard_normal((count, 4))}
    # Half the images are classified correctly, half not.
    labels = images[LOGITS].argmax(1)
    labels[::2] = (labels[::2] + 1) % 4
    return images, reference, labels


def metric(table: pd.DataFrame, layer: str, name: str) -> np.ndarray:
    rows = table[(table.evaluator_layer == layer) & (table.metric == name)]
    return rows.sort_values("metamer")["value"].to_numpy()


def references_null(reference: dict) -> dict[str, dict[str, criteria.NullDistribution]]:
    """``{evaluator: {layer: null}}`` of cnn_a's relu1 over the references' pairs."""
    return {"cnn_a": {"relu1": criteria.reference_null(reference["relu1"])}}


PERCENTILE_95 = criteria.Criterion(threshold=95.0)


def test_evaluator_image_scores_match_manual_computation(evaluator_activations):
    images, reference, labels = evaluator_activations
    # a third of the images at 3x their values: same correlations, a far lower SNR
    scale = np.where(np.arange(len(labels)) % 3 == 0, 3.0, 1.0)[:, None]
    images = {**images, "relu1": images["relu1"] * scale}
    nulls = references_null(reference)["cnn_a"]
    table = scores.evaluator_image_scores(images, reference, labels, ["relu1"], nulls,
                                          PERCENTILE_95)
    predicted = images[LOGITS].argmax(1)
    np.testing.assert_array_equal(metric(table, "output", "top1_correct"),
                                  (predicted == labels).astype(float))
    assert 0 < metric(table, "output", "top1_correct").sum() < len(labels)
    np.testing.assert_array_equal(metric(table, "output", "agrees_with_reference"),
                                  (predicted == reference[LOGITS].argmax(1)).astype(float))
    softmax = np.exp(images[LOGITS]) / np.exp(images[LOGITS]).sum(1, keepdims=True)
    np.testing.assert_allclose(metric(table, "output", "max_softmax"), softmax.max(1))
    spearman = [scipy_stats.spearmanr(a, b).statistic
                for a, b in zip(images["relu1"], reference["relu1"])]
    pearson = [scipy_stats.pearsonr(a, b).statistic
               for a, b in zip(images["relu1"], reference["relu1"])]
    np.testing.assert_allclose(metric(table, "relu1", "spearman"), spearman, atol=1e-12)
    np.testing.assert_allclose(metric(table, "relu1", "pearson"), pearson, atol=1e-12)
    # Noisy copies correlate with their own reference above the null of different references.
    assert (metric(table, "relu1", "spearman_percentile") > 90).all()
    snr = [10 * np.log10(np.sum(b**2) / np.sum((a - b) ** 2))
           for a, b in zip(images["relu1"], reference["relu1"])]
    np.testing.assert_allclose(metric(table, "relu1", "snr_db"), snr, rtol=1e-12)
    null = scipy_stats.spearmanr(reference["relu1"], axis=1).statistic[np.triu_indices(8, 1)]
    spearman_passes = np.array(spearman) > np.percentile(null, 95)
    np.testing.assert_array_equal(metric(table, "relu1", "spearman_passes"), spearman_passes)
    every = spearman_passes.copy()
    for measure, values in (("pearson", pearson), ("snr_db", snr)):
        passes = np.array(values) > nulls["relu1"].threshold(measure, 95.0)
        np.testing.assert_array_equal(metric(table, "relu1", f"{measure}_passes"), passes)
        every &= passes
    np.testing.assert_array_equal(metric(table, "relu1", "passes"), every)
    np.testing.assert_array_equal(every, spearman_passes & (scale[:, 0] == 1))  # SNR rejects
    assert set(table.columns) == {"metamer", "evaluator_layer", "metric", "value"}


def test_condition_scores_and_summary(evaluator_activations):
    images, reference, labels = evaluator_activations
    condition = {"generator": "cnn_a", "layer": "relu2", "optimizer": "adam", "init": "uniform"}
    activations = {"cnn_a": {"metamer": images, "initial": reference}}
    distances = {"metamer": np.linspace(1, 2, 8), "initial": np.zeros(8)}
    table = scores.condition_scores(activations, {"cnn_a": reference}, labels, distances,
                                    {"cnn_a": ["relu1"]}, references_null(reference),
                                    PERCENTILE_95, condition)
    assert list(table.columns) == [*scores.CONDITION, "image_set", "metamer", "evaluator",
                                   "evaluator_layer", "metric", "value"]
    assert (table.generator == "cnn_a").all() and (table.init == "uniform").all()
    pixels = table[table.metric == "pixel_distance"]
    np.testing.assert_allclose(pixels[pixels.image_set == "metamer"].value, distances["metamer"])
    initial = table[(table.image_set == "initial") & (table.metric == "spearman")]
    np.testing.assert_allclose(initial.value, 1.0)  # references scored against themselves
    summary = scores.summarize(table, {("cnn_a", "relu2", "adam", "uniform"): {
        "cnn_a": {**activations["cnn_a"], "reference": reference}}}, seed=0)
    row = summary[(summary.image_set == "metamer") & (summary.metric == "spearman")].iloc[0]
    assert row["mean"] == pytest.approx(metric(table[table.image_set == "metamer"], "relu1",
                                               "spearman").mean())
    assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["count"] == 8
    rsa_initial = summary[(summary.metric == "rsa") & (summary.image_set == "initial")]
    assert rsa_initial["mean"].iloc[0] == pytest.approx(1.0)
    cka_initial = summary[(summary.metric == "cka") & (summary.image_set == "initial")]
    assert cka_initial["mean"].iloc[0] == pytest.approx(1.0)


def test_reference_scores_are_the_ceiling(evaluator_activations):
    _, reference, labels = evaluator_activations
    table = scores.reference_scores({"cnn_a": reference}, labels)
    agrees = table[table.metric == "agrees_with_reference"]
    assert (agrees.value == 1.0).all() and (agrees.evaluator == "cnn_a").all()
    np.testing.assert_array_equal(
        table[table.metric == "top1_correct"].sort_values("metamer").value,
        (reference[LOGITS].argmax(1) == labels).astype(float))


def test_a_metamer_transfers_only_where_it_beats_its_pixel_control(evaluator_activations):
    images, reference, labels = evaluator_activations
    condition = {"generator": "cnn_a", "layer": "relu2", "optimizer": "adam", "init": "uniform"}
    # The references themselves as pixel controls: no metamer can beat a perfect control.
    activations = {"cnn_a": {"metamer": images, "pixel_control": reference}}
    distances = {"metamer": np.ones(8), "pixel_control": np.ones(8)}
    table = scores.condition_scores(activations, {"cnn_a": reference}, labels, distances,
                                    {"cnn_a": ["relu1"]}, references_null(reference),
                                    PERCENTILE_95, condition)
    metamers = table[table.image_set == "metamer"]
    np.testing.assert_array_equal(metric(metamers, "relu1", "beats_pixel_control"), 0.0)
    np.testing.assert_array_equal(metric(metamers, "relu1", "transfers"), 0.0)
    # Swapped roles: the references, as metamers, beat noisy controls wherever those are
    # imperfect, and transfer where they also pass.
    swapped = {"cnn_a": {"metamer": reference, "pixel_control": images}}
    table = scores.condition_scores(swapped, {"cnn_a": reference}, labels, distances,
                                    {"cnn_a": ["relu1"]}, references_null(reference),
                                    PERCENTILE_95, condition)
    metamers = table[table.image_set == "metamer"]
    control_spearman = metric(table[table.image_set == "pixel_control"], "relu1", "spearman")
    expected = (1.0 > np.asarray(control_spearman)).astype(float)
    np.testing.assert_array_equal(metric(metamers, "relu1", "beats_pixel_control"), expected)
    np.testing.assert_array_equal(metric(metamers, "relu1", "transfers"),
                                  expected * metric(metamers, "relu1", "passes"))
