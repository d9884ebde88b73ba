"""Each figure function writes a non-trivial PDF from small synthetic tables and arrays, and
the analysis functions compute what the figures draw."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from metamers import analysis, plots, stages, store, transfer
from metamers import config as config_module
from metamers.scores import generation_summary

CONDITIONS = [
    {"generator": generator, "layer": layer, "optimizer": optimizer, "init": "uniform"}
    for (generator, layer), optimizer in itertools.product(
        [("net_a", "conv"), ("pair", "deep")], ["adam", "sgd"])
]
MEMBERS = {"net_a": ["net_a"], "pair": ["net_a", "net_b"]}
LAYERS = {"net_a": ["conv", "fc"], "net_b": ["conv", "fc"]}
IMAGES, CLASSES = 6, 3


def assert_pdf(path) -> None:
    assert path.exists()
    content = path.read_bytes()
    assert content.startswith(b"%PDF")
    assert len(content) > 1024


def page_count(path) -> int:
    """Page objects in a PDF written by matplotlib (uncompressed object dictionaries)."""
    return len(re.findall(rb"/Type /Page\b", path.read_bytes()))


RUNS = len({(condition["optimizer"], condition["init"]) for condition in CONDITIONS})


def test_runs_group_conditions_by_optimizer_and_init():
    grouped = plots.runs(CONDITIONS)
    assert list(grouped) == [("adam", "uniform"), ("sgd", "uniform")]
    assert grouped[("adam", "uniform")] == [0, 2]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def scores(rng) -> pd.DataFrame:
    rows = []
    for condition in CONDITIONS:
        for image_set, evaluator, metamer in itertools.product(
                ["metamer", "pixel_control"], ["net_a", "net_b"], range(IMAGES)):
            rows.append({**condition, "image_set": image_set, "metamer": metamer,
                         "evaluator": evaluator, "evaluator_layer": "output",
                         "metric": "top1_correct", "value": float(rng.random() < 0.6)})
    return pd.DataFrame(rows)


@pytest.fixture
def reference_scores(rng) -> pd.DataFrame:
    return pd.DataFrame([{"metamer": metamer, "evaluator_layer": "output",
                          "metric": "top1_correct", "value": float(rng.random() < 0.9),
                          "evaluator": evaluator}
                         for evaluator in ["net_a", "net_b"] for metamer in range(IMAGES)])


@pytest.fixture
def summary(rng) -> pd.DataFrame:
    rows = []
    for condition, image_set, evaluator in itertools.product(
            CONDITIONS, ["metamer", "pixel_control", "initial"], LAYERS):
        base = {**condition, "image_set": image_set, "evaluator": evaluator, "count": IMAGES}
        rows.append({**base, "evaluator_layer": "output", "metric": "top1_correct",
                     "mean": rng.random(), "ci_low": np.nan, "ci_high": np.nan})
        for layer in LAYERS[evaluator]:
            for metric in ("spearman", "passes"):
                mean = rng.random()
                rows.append({**base, "evaluator_layer": layer, "metric": metric, "mean": mean,
                             "ci_low": mean - 0.1, "ci_high": mean + 0.1})
            rows.append({**base, "evaluator_layer": layer, "metric": "rsa", "mean": rng.random(),
                         "ci_low": np.nan, "ci_high": np.nan, "p_value": 0.01})
    return pd.DataFrame(rows)


def _mean_top1(scores, condition, image_set, evaluator) -> float:
    """The mean top-1 correct of one cell, computed straight from the scores."""
    rows = scores[(scores["image_set"] == image_set) & (scores["evaluator"] == evaluator)]
    for key, value in condition.items():
        rows = rows[rows[key] == value]
    return rows["value"].mean()


def test_transfer_matrix_holds_mean_top1_and_ceiling(scores, reference_scores):
    matrix = transfer.transfer_matrix(scores, reference_scores)
    image_sets, evaluators = ["metamer", "pixel_control"], ["net_a", "net_b"]
    assert len(matrix) == len(CONDITIONS) * len(image_sets) * len(evaluators)
    # configured order: run, then (generator, layer), image set, evaluator
    runs = list(dict.fromkeys(zip(matrix["optimizer"], matrix["init"])))
    assert runs == [("adam", "uniform"), ("sgd", "uniform")]
    assert matrix["evaluator"].tolist()[:2] == evaluators
    ceiling = reference_scores.groupby("evaluator")["value"].mean()
    for row in matrix.itertuples():
        condition = {key: getattr(row, key) for key in plots.CONDITION}
        assert row.recognizability == pytest.approx(
            _mean_top1(scores, condition, row.image_set, row.evaluator))
        assert row.count == IMAGES
        assert row.reference_recognizability == pytest.approx(ceiling[row.evaluator])


def test_transfer_matrix_stage_writes_what_the_figure_draws(tmp_path, scores,
                                                           reference_scores):
    store.write_table(tmp_path / "scores.parquet", scores)
    store.write_table(tmp_path / "reference_scores.parquet", reference_scores)
    stages.transfer_matrix(tmp_path / "scores.parquet", tmp_path / "reference_scores.parquet",
                           tmp_path / "transfer_matrix.parquet")
    saved = store.read_table(tmp_path / "transfer_matrix.parquet")
    pd.testing.assert_frame_equal(saved, transfer.transfer_matrix(scores, reference_scores))
    path = tmp_path / "transfer_matrix.pdf"
    grids = plots.plot_transfer_matrix(saved, MEMBERS, CLASSES, path)
    assert_pdf(path)
    assert set(grids) == {("adam", "uniform"), ("sgd", "uniform")}
    ceiling = reference_scores.groupby("evaluator")["value"].mean()
    for (optimizer, init), grid in grids.items():
        assert grid.index.tolist() == ["net_a · conv", "pair · deep", plots.CEILING_ROW]
        for condition in CONDITIONS:
            if (condition["optimizer"], condition["init"]) != (optimizer, init):
                continue
            row = f"{condition['generator']} · {condition['layer']}"
            for evaluator in ["net_a", "net_b"]:
                assert grid.loc[row, evaluator] == pytest.approx(
                    _mean_top1(scores, condition, "metamer", evaluator))
        assert grid.loc[plots.CEILING_ROW].to_dict() == pytest.approx(ceiling.to_dict())


def test_convergence_holds_stopped_losses(tmp_path, rng):
    losses = []
    for _ in CONDITIONS:
        loss = np.exp(-np.arange(21)[:, None] * rng.uniform(0.1, 0.3, size=(1, IMAGES)))
        loss[11:, 0] = np.nan  # metamer 0 stopped at iteration 10
        losses.append(loss)
    path = tmp_path / "convergence.pdf"
    curves = analysis.loss_quantiles(CONDITIONS, losses)
    plots.plot_convergence(curves, path)
    assert_pdf(path)
    first = curves[curves["optimizer"] == "adam"].iloc[: len(losses[0])]
    held = np.where(np.isnan(losses[0]), losses[0][10], losses[0])
    assert first["median"].to_numpy() == pytest.approx(np.median(held, axis=1))


def test_metamer_grid(tmp_path, rng):
    references = rng.random((IMAGES, 1, 8, 8))
    metamer_sets = [{"metamers": rng.random((IMAGES, 1, 8, 8)),
                     "reference_index": np.arange(IMAGES),
                     "reference_label": np.arange(IMAGES) % CLASSES,
                     "pixel_distance": rng.random(IMAGES) * 5} for _ in CONDITIONS]
    path = tmp_path / "metamer_grid.pdf"
    plots.plot_metamer_grid(references, ["a", "b", "c"], CONDITIONS, metamer_sets, 3, path)
    assert_pdf(path)
    assert page_count(path) == RUNS


def test_metamer_grid_color(tmp_path, rng):
    metamer_sets = [{"metamers": rng.random((2, 3, 8, 8)), "reference_index": np.array([1, 0]),
                     "reference_label": np.array([1, 0]), "pixel_distance": np.ones(2)}]
    path = tmp_path / "grid.pdf"
    plots.plot_metamer_grid(rng.random((2, 3, 8, 8)), ["a", "b"], CONDITIONS[:1],
                            metamer_sets, 4, path)
    assert_pdf(path)


def test_generation_study(tmp_path, rng):
    rows = []
    for condition in CONDITIONS:
        for metamer in range(IMAGES):
            success = metamer != 0
            rows.append({**condition, "metamer": metamer, "success": success,
                         "iterations_to_success": int(rng.integers(1, 10)) * 10 if success
                         else -1, "pixel_distance": rng.random() * 10,
                         "initial_distance": 12.0, "final_spearman": 0.9, "wall_time_s": 1.0})
    generation = pd.DataFrame(rows)
    summary = generation_summary(generation)
    assert summary["success_rate"].tolist() == pytest.approx([5 / 6] * len(CONDITIONS))
    assert summary["median_pixel_distance"].tolist() == pytest.approx(
        generation.groupby(plots.CONDITION)["pixel_distance"].median().tolist())
    path = tmp_path / "generation_study.pdf"
    plots.plot_generation_study(generation, summary, path)
    assert_pdf(path)
    assert page_count(path) == 2  # iterations, pixel distances


def test_representation_test(tmp_path, summary):
    curves = analysis.representation_curves(summary, LAYERS)
    assert set(curves["metric"]) == {"spearman", "passes"}
    assert len(curves) == len(CONDITIONS) * 3 * 2 * 2 * 2  # image sets, evaluators, layers
    assert (curves["depth"] == curves["evaluator_layer"].map({"conv": 0, "fc": 1})).all()
    for _, panel in curves.groupby(["evaluator", "metric"]):
        assert panel["depth"].is_monotonic_increasing
    path = tmp_path / "representation_test.pdf"
    plots.plot_representation_test(curves, LAYERS, path)
    assert_pdf(path)
    assert page_count(path) == RUNS


def test_rsa(tmp_path, rng, summary):
    references = rng.normal(size=(IMAGES, 16))
    metamers = [references + rng.normal(scale=0.3, size=references.shape) for _ in CONDITIONS]
    labels = np.arange(IMAGES) % CLASSES
    rdms, points = analysis.representational_geometry(references, metamers)
    assert len(rdms) == len(points) == len(CONDITIONS) + 1
    assert rdms[0] == pytest.approx(1 - np.corrcoef(references))
    rsa_scores = analysis.rsa_scores(summary, "net_a", "fc")
    assert len(rsa_scores) == len(CONDITIONS) * 3 and set(rsa_scores["metric"]) == {"rsa"}
    path = tmp_path / "rsa.pdf"
    plots.plot_rsa(rdms, points, CONDITIONS, rsa_scores, labels, ["a", "b", "c"], "net_a",
                   "fc", path)
    assert_pdf(path)
    assert page_count(path) == RUNS
    with pytest.raises(ValueError, match="pair"):
        analysis.representational_geometry(references, [metamers[0][:3]])


def test_pca_projection_recovers_plane():
    references = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0]])
    projected_references, projected_copy = analysis.pca_projection(references, references)
    assert projected_copy == pytest.approx(projected_references)
    assert np.abs(projected_references).max(axis=0) == pytest.approx([2.0, 1.0])


def test_deepest_layers_are_the_last_configured():
    assert config_module.deepest_layers({"net_a": ["conv", "fc"], "net_b": ["x"]}) == {
        "net_a": "fc", "net_b": "x"}
    assert analysis.rsa_layer({"net_b": ["conv", "pool"], "net_a": ["fc"]}) == ("net_b", "pool")


def test_agreement_uses_deepest_layer(tmp_path, summary):
    table = analysis.agreement_table(summary, LAYERS)
    assert set(table["image_set"]) == {"metamer", "pixel_control"}
    correlations = analysis.agreement_correlations(table)
    path = tmp_path / "agreement.pdf"
    plots.plot_agreement(table, correlations, path)
    assert_pdf(path)
    metamers = table[table["image_set"] == "metamer"]
    assert len(metamers) == len(CONDITIONS) * len(LAYERS)
    passes = summary[(summary["metric"] == "passes") & (summary["evaluator_layer"] == "fc")
                     & (summary["image_set"] == "metamer")]
    assert sorted(metamers["fraction_passing"]) == pytest.approx(sorted(passes["mean"]))
    assert correlations["metamer"] == pytest.approx(
        np.corrcoef(metamers["fraction_passing"], metamers["recognizability"])[0, 1])
    assert correlations["all"] == pytest.approx(
        np.corrcoef(table["fraction_passing"], table["recognizability"])[0, 1])
    constant = metamers.assign(recognizability=0.5)
    assert np.isnan(analysis.agreement_correlations(constant)["metamer"])
