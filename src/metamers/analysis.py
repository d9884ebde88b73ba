"""Tables and arrays the figures draw, computed from score tables and activations.

The figures of :mod:`metamers.plots` only draw what these functions return; nothing here draws.
Conditions are dicts with the keys of ``scores.CONDITION``; tables follow the schemas of
``scores.parquet`` and ``summary.parquet`` (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from metamers.config import deepest_layers
from metamers.scores import CONDITION
from metamers.stats import rdm


def rsa_layer(evaluator_layers: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """Where the RSA figure looks: the first evaluator and its deepest layer."""
    return next(iter(deepest_layers(evaluator_layers).items()))


def loss_quantiles(conditions: Sequence[Mapping], losses: Sequence[np.ndarray]) -> pd.DataFrame:
    """Median and interquartile range of the loss per iteration, one block per condition.

    ``losses`` are (iterations + 1, N) traces with NaN once a metamer stopped; a stopped
    metamer keeps its last loss, so the median is over every metamer at every iteration.
    Iterations after the last metamer stopped are dropped.
    """
    frames = []
    for condition, loss in zip(conditions, losses):
        held = pd.DataFrame(np.asarray(loss, np.float64)).ffill()
        running = np.isfinite(np.asarray(loss, np.float64)).any(axis=1)
        last = int(np.flatnonzero(running)[-1]) + 1 if running.any() else 1
        held = held.iloc[:last]
        frames.append(pd.DataFrame({
            **{key: condition[key] for key in CONDITION},
            "iteration": np.arange(last),
            "median": held.median(axis=1).to_numpy(),
            "q25": held.quantile(0.25, axis=1).to_numpy(),
            "q75": held.quantile(0.75, axis=1).to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def representation_curves(summary: pd.DataFrame, evaluator_layers: Mapping[str, Sequence[str]],
                          metrics: Sequence[str] = ("spearman", "passes")) -> pd.DataFrame:
    """Summary rows of ``metrics`` at each evaluator's configured layers, with ``depth`` (the
    layer's position in its evaluator's list, 0 = earliest), in order of depth."""
    frames = []
    for evaluator, layers in evaluator_layers.items():
        order = {layer: index for index, layer in enumerate(layers)}
        for metric in metrics:
            rows = summary[(summary["evaluator"] == evaluator) & (summary["metric"] == metric)
                           & summary["evaluator_layer"].isin(layers)]
            frames.append(rows.assign(depth=rows["evaluator_layer"].map(order))
                          .sort_values("depth", kind="stable"))
    return pd.concat(frames, ignore_index=True)


def pca_projection(reference_activations: np.ndarray, *others: np.ndarray
                   ) -> list[np.ndarray]:
    """2-D coordinates of the references and of each further (N, D) array, in the plane of
    the references' first two principal components (numpy SVD)."""
    references = np.asarray(reference_activations, np.float64)
    center = references.mean(axis=0)
    _, _, components = np.linalg.svd(references - center, full_matrices=False)
    basis = components[:2].T
    return [(np.asarray(values, np.float64) - center) @ basis
            for values in (references, *others)]


def representational_geometry(reference_activations: np.ndarray,
                              metamer_activations: Sequence[np.ndarray]
                              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RDMs (1 - Pearson, (N, N)) and 2-D PCA coordinates (:func:`pca_projection`, (N, 2)) of
    the references followed by each condition's metamers.

    Row i of each ``metamer_activations`` array is the metamer of reference i (as scored).
    """
    for values in metamer_activations:
        if len(values) != len(reference_activations):
            raise ValueError(f"{len(values)} metamers but {len(reference_activations)} "
                             "references: rows must pair metamer i with reference i.")
    arrays = (reference_activations, *metamer_activations)
    return [rdm(values) for values in arrays], pca_projection(*arrays)


def rsa_scores(summary: pd.DataFrame, evaluator: str, layer: str) -> pd.DataFrame:
    """The summary's RSA rows (mean and permutation ``p_value``) at one evaluator layer."""
    return summary[(summary["metric"] == "rsa") & (summary["evaluator"] == evaluator)
                   & (summary["evaluator_layer"] == layer)]


def agreement_table(summary: pd.DataFrame, evaluator_layers: Mapping[str, Sequence[str]],
                    image_sets: Sequence[str] = ("metamer", "pixel_control")) -> pd.DataFrame:
    """Per condition, image set (of ``image_sets``) and evaluator: recognizability (mean
    top1_correct) and the fraction passing the representation test at the evaluator's deepest
    configured layer."""
    keys = [*CONDITION, "image_set", "evaluator"]
    recognizability = summary[summary["metric"] == "top1_correct"].set_index(keys)["mean"]
    deepest = deepest_layers(evaluator_layers)
    passes = summary[(summary["metric"] == "passes")
                     & (summary["evaluator_layer"] == summary["evaluator"].map(deepest))]
    passes = passes.set_index(keys)["mean"]
    table = pd.DataFrame({"recognizability": recognizability, "fraction_passing": passes})
    table = table.dropna().reset_index()
    return table[table["image_set"].isin(image_sets)]


def pearson(first: pd.Series, second: pd.Series) -> float:
    """Pearson r, or NaN with fewer than three points or a constant variable."""
    if len(first) < 3 or first.nunique() < 2 or second.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(first, second)[0, 1])


def agreement_correlations(table: pd.DataFrame) -> dict[str, float]:
    """Pearson r between fraction passing and recognizability over an :func:`agreement_table`:
    ``metamer`` over its metamer points, ``all`` over every point."""
    metamers = table[table["image_set"] == "metamer"]
    return {"metamer": pearson(metamers["fraction_passing"], metamers["recognizability"]),
            "all": pearson(table["fraction_passing"], table["recognizability"])}
