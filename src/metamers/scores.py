"""Score tables: one long-format row per (image, evaluator, evaluator layer, metric).

Image sets scored per condition: ``metamer`` (the synthesised images), ``pixel_control``
(the reference plus Gaussian noise scaled to the metamer's pixel distance) and ``initial``
(the starting images: the noise floor). References are scored as their own set (the ceiling).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metamers.activations import LOGITS
from metamers.criteria import Criterion, NullDistribution
from metamers.stats import (
    RankedRows,
    bootstrap_mean_cis,
    linear_cka,
    null_percentile,
    rank_once,
    rsa,
)

CONDITION = ["generator", "layer", "optimizer", "init"]


def pixel_distance(images: np.ndarray, reference_images: np.ndarray) -> np.ndarray:
    """Per-image L2 distance in pixel space ([0, 1] units), over all channels and pixels."""
    difference = (np.asarray(images, np.float64) - np.asarray(reference_images, np.float64))
    return np.linalg.norm(difference.reshape(len(difference), -1), axis=1)


def pixel_control(reference_images: np.ndarray, distances: np.ndarray, seed: int) -> np.ndarray:
    """Reference plus Gaussian noise rescaled to each target L2 distance.

    Pixels stay in [0, 1]: noise is rescaled after clipping until the distance matches (a few
    bisection-free fixed-point steps), so the control's distance equals the metamer's.
    """
    generator = torch.Generator().manual_seed(seed)
    references = torch.as_tensor(np.asarray(reference_images, np.float64))
    direction = torch.randn(references.shape, generator=generator, dtype=torch.float64)
    targets = torch.as_tensor(np.asarray(distances, np.float64))
    scale = targets / direction.flatten(1).norm(dim=1)
    for _ in range(100):
        control = (references + scale.view(-1, 1, 1, 1) * direction).clamp(0, 1)
        achieved = (control - references).flatten(1).norm(dim=1)
        if torch.allclose(achieved, targets, rtol=0, atol=1e-7):
            break
        scale = scale * torch.where(achieved > 0, targets / achieved, torch.ones_like(targets))
    return control.numpy().astype(np.float32)


def evaluator_image_scores(image_activations: dict[str, np.ndarray],
                           reference_activations: dict[str, np.ndarray],
                           reference_labels: np.ndarray, layers: list[str],
                           nulls: dict[str, NullDistribution], criterion: Criterion,
                           reference_ranks: dict[str, RankedRows] | None = None,
                           ) -> pd.DataFrame:
    """Scores of N images against their N references under one evaluator (long format).

    ``*_activations`` map layer -> (N, D) plus ``LOGITS`` -> (N, classes); ``nulls[layer]`` is
    that evaluator layer's null file; ``reference_ranks[layer]``: the references ranked once
    (``stats.rank_once``), where several image sets are scored against them. Per layer: each
    measure, its percentile in the null, whether it exceeds its threshold
    (``<measure>_passes``), and ``passes``, the representation test: ``criterion``'s measures
    (:meth:`Criterion.check_measures`).
    """
    logits = image_activations[LOGITS]
    predicted = logits.argmax(1)
    reference_predicted = reference_activations[LOGITS].argmax(1)
    metrics = {  # (evaluator layer, metric) -> (N,) values
        ("output", "top1_correct"): (predicted == reference_labels).astype(float),
        ("output", "agrees_with_reference"): (predicted == reference_predicted).astype(float),
        ("output", "max_softmax"): torch.softmax(torch.from_numpy(logits.astype(np.float64)), 1)
        .amax(1).numpy(),
    }
    for layer in layers:
        result = criterion.check_measures(image_activations[layer],
                                          reference_activations[layer], nulls[layer],
                                          (reference_ranks or {}).get(layer))
        for measure, values in result.values.items():
            metrics[layer, measure] = values
            metrics[layer, f"{measure}_percentile"] = null_percentile(
                values, nulls[layer].values[measure])
            metrics[layer, f"{measure}_passes"] = result.passes[measure].astype(float)
        metrics[layer, "passes"] = result.passed.astype(float)
    count = len(reference_labels)  # one frame, not one per metric: pandas costs ms a frame
    return pd.DataFrame({
        "metamer": np.tile(np.arange(count), len(metrics)),
        "evaluator_layer": np.repeat([layer for layer, _ in metrics], count),
        "metric": np.repeat([metric for _, metric in metrics], count),
        "value": np.concatenate([np.asarray(values, np.float64) for values in metrics.values()]),
    })


def condition_scores(activations: dict[str, dict[str, dict[str, np.ndarray]]],
                     reference_activations: dict[str, dict[str, np.ndarray]],
                     reference_labels: np.ndarray, distances: dict[str, np.ndarray],
                     evaluator_layers: dict[str, list[str]],
                     nulls: dict[str, dict[str, NullDistribution]], criterion: Criterion,
                     condition: dict) -> pd.DataFrame:
    """All scores of one condition: every evaluator and image set, plus pixel distances.

    ``activations[evaluator][image_set][layer]``; ``distances[image_set]`` per image;
    ``nulls[evaluator][layer]`` the null of each evaluator layer.
    """
    frames = []
    for evaluator, image_sets in activations.items():
        references = reference_activations[evaluator]
        ranks = {layer: rank_once(references[layer]) for layer in evaluator_layers[evaluator]}
        scored = {image_set: evaluator_image_scores(image_activations, references,
                                                    reference_labels, evaluator_layers[evaluator],
                                                    nulls[evaluator], criterion, ranks)
                  for image_set, image_activations in image_sets.items()}
        if "metamer" in scored and "pixel_control" in scored:
            scored["metamer"] = pd.concat([scored["metamer"], _pixel_control_comparison(
                scored["metamer"], scored["pixel_control"])], ignore_index=True)
        frames.extend(frame.assign(evaluator=evaluator, image_set=image_set)
                      for image_set, frame in scored.items())
    for image_set, values in distances.items():
        frames.append(pd.DataFrame({"metamer": np.arange(len(values)), "evaluator": "pixels",
                                    "evaluator_layer": "pixels", "metric": "pixel_distance",
                                    "value": values, "image_set": image_set}))
    table = pd.concat(frames, ignore_index=True)
    for key in reversed(CONDITION):
        table.insert(0, key, condition[key])
    return table[[*CONDITION, "image_set", "metamer", "evaluator", "evaluator_layer", "metric",
                  "value"]]


def _pixel_control_comparison(metamer: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """One evaluator's metamer and pixel-control scores -> per metamer and evaluator layer:
    ``beats_pixel_control`` (its Spearman correlation with the reference exceeds that of its
    pixel control) and ``transfers`` (it also passes)."""
    keys = ["evaluator_layer", "metamer"]

    def metric(table: pd.DataFrame, name: str) -> pd.Series:
        return table[table["metric"] == name].set_index(keys)["value"]

    spearman = metric(metamer, "spearman")
    beats = (spearman > metric(control, "spearman").reindex(spearman.index)).astype(float)
    transfers = beats * metric(metamer, "passes").reindex(spearman.index)
    return pd.concat([values.rename("value").reset_index().assign(metric=name)
                      for name, values in (("beats_pixel_control", beats),
                                           ("transfers", transfers))], ignore_index=True)


def reference_scores(reference_activations: dict[str, dict[str, np.ndarray]],
                     reference_labels: np.ndarray) -> pd.DataFrame:
    """The references' own output metrics per evaluator: the ceiling of recognizability."""
    frames = []
    for evaluator, layers in reference_activations.items():
        frame = evaluator_image_scores(layers, layers, reference_labels, [], {}, Criterion())
        frames.append(frame.assign(evaluator=evaluator))
    return pd.concat(frames, ignore_index=True)


def summarize(scores: pd.DataFrame, activations_by_condition: dict | None = None,
              seed: int = 0) -> pd.DataFrame:
    """One row per (condition, image set, evaluator, evaluator layer, metric): mean and 95% CI.

    ``activations_by_condition[condition tuple][evaluator][image_set][layer]`` together with
    the references (under image set ``reference``) adds RSA and CKA rows when given.
    """
    keys = [*CONDITION, "image_set", "evaluator", "evaluator_layer", "metric"]
    groups = scores.groupby(keys, sort=True)["value"]
    summary = groups.agg(["mean", "count"]).reset_index()
    intervals = bootstrap_mean_cis([values.to_numpy() for _, values in groups], seed=seed)
    summary.insert(len(keys) + 1, "ci_low", intervals[:, 0])
    summary.insert(len(keys) + 2, "ci_high", intervals[:, 1])
    if activations_by_condition:
        summary = pd.concat([summary, _rsa_rows(activations_by_condition, seed)],
                            ignore_index=True)
    return summary


def _rsa_rows(activations_by_condition: dict, seed: int) -> pd.DataFrame:
    rows = []
    for condition, evaluators in activations_by_condition.items():
        for evaluator, image_sets in evaluators.items():
            references = image_sets["reference"]
            for image_set, layers in image_sets.items():
                if image_set == "reference":
                    continue
                for layer, values in layers.items():
                    if layer == LOGITS:
                        continue
                    correlation, p_value = rsa(values, references[layer], seed=seed)
                    base = {**dict(zip(CONDITION, condition)), "image_set": image_set,
                            "evaluator": evaluator, "evaluator_layer": layer, "count": len(values)}
                    rows.append({**base, "metric": "rsa", "mean": correlation,
                                 "ci_low": np.nan, "ci_high": np.nan, "p_value": p_value})
                    rows.append({**base, "metric": "cka",
                                 "mean": linear_cka(values, references[layer]),
                                 "ci_low": np.nan, "ci_high": np.nan})
    return pd.DataFrame(rows)


def generation_summary(generation: pd.DataFrame) -> pd.DataFrame:
    """Iterations to success by (generator, layer, optimizer, init), with pixel distances beside.

    ``generation`` has one row per metamer (``stages.generation_rows``); medians of iterations
    count successful metamers only.
    """
    def summarize_group(group: pd.DataFrame) -> pd.Series:
        succeeded = group.loc[group["success"], "iterations_to_success"]
        return pd.Series({
            "metamers": len(group),
            "success_rate": group["success"].mean(),
            "median_iterations_to_success": succeeded.median() if len(succeeded) else np.nan,
            "median_pixel_distance": group["pixel_distance"].median(),
            "median_initial_distance": group["initial_distance"].median(),
            "wall_time_s": group["wall_time_s"].iloc[0],
        })

    return (generation.groupby(CONDITION, sort=True)[list(generation.columns)]
            .apply(summarize_group).reset_index().astype({"metamers": int}))
