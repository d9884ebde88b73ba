"""Transfer of metamers to other models: the recognizability matrix (generating condition by
evaluator), and transfer grouped by how an evaluator relates to the generator that made the
metamer.

Relations, from closest to farthest: the ``same model`` (a generator set: any member), an
``other seed`` (same architecture family and training recipe, different seed), ``other
training`` (same family, other recipe: standard vs. robust vs. augmented) and ``other
architecture``. Per metamer, a metric is averaged over the evaluators of one relation; means and
bootstrap CIs resample metamers (the evaluators of one metamer are not independent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from metamers import zoo
from metamers.config import deepest_layers
from metamers.scores import CONDITION
from metamers.stats import bootstrap_mean_ci

RELATIONS = ["same model", "other seed", "other training", "other architecture"]
# metric -> (score metric, evaluator layer: "output" or the evaluator's deepest layer)
TRANSFER_METRICS = {
    "recognized": ("top1_correct", "output"),
    "passes": ("passes", "deepest"),
    "transfers": ("transfers", "deepest"),
}
IMAGE_SETS = ["metamer", "pixel_control"]
UNIT_KEYS = [*CONDITION, "relation", "image_set", "metric"]
MATRIX_KEYS = ["optimizer", "init", "generator", "layer", "image_set", "evaluator"]


def transfer_matrix(scores: pd.DataFrame, reference_scores: pd.DataFrame) -> pd.DataFrame:
    """Recognizability of each condition's images by each evaluator: one row per (optimizer,
    init, generator, layer, image set, evaluator) with ``recognizability`` (mean top-1
    correct), ``count`` (images scored) and ``reference_recognizability`` (the evaluator's mean
    top-1 correct on the references: the ceiling).

    Rows are in the order of first appearance (the configured order) of (optimizer, init), then
    (generator, layer), image set and evaluator.
    """
    top1 = scores[scores["metric"] == "top1_correct"]
    cells = (top1.groupby(MATRIX_KEYS, sort=False)["value"]
             .agg(recognizability="mean", count="count").reset_index())
    order = [cells.groupby(keys, sort=False).ngroup() for keys in
             (["optimizer", "init"], ["generator", "layer"], "image_set", "evaluator")]
    cells = cells.iloc[np.lexsort(order[::-1])].reset_index(drop=True)
    reference_top1 = reference_scores[reference_scores["metric"] == "top1_correct"]
    ceiling = reference_top1.groupby("evaluator")["value"].mean()
    return cells.assign(reference_recognizability=cells["evaluator"].map(ceiling))


def model_facts(models: Mapping[str, Mapping], training: Mapping[str, Mapping]) -> pd.DataFrame:
    """Per model: architecture ``family``, training ``recipe`` and ``style``, ``seed``.

    ``family`` is the spec's ``family`` if given (e.g. a robust ResNet-50 of RobustBench is of
    family ``resnet50``), else its architecture (RobustBench: its name). External models are one
    seed each: their seed is missing.
    """
    rows = []
    for name, spec in models.items():
        if zoo.trained_by_pipeline(spec):
            recipe, seed = spec["training"], spec["seed"]
        else:
            recipe = f"{spec['source']}:{spec.get('weights', spec.get('threat_model'))}"
            seed = None
        rows.append({"model": name, "source": spec["source"],
                     "family": spec.get("family") or spec.get("architecture") or spec["name"],
                     "recipe": recipe, "style": zoo.training_style(spec, training), "seed": seed})
    return pd.DataFrame(rows).set_index("model")


def relation(members: Sequence[str], evaluator: str, facts: pd.DataFrame) -> str:
    """How ``evaluator`` relates to a generator made of ``members`` (the closest member)."""
    if evaluator in members:
        return "same model"
    mine = facts.loc[evaluator]
    theirs = facts.loc[list(members)]
    same_family = theirs["family"] == mine["family"]
    if (same_family & (theirs["recipe"] == mine["recipe"])).any():
        return "other seed"
    return "other training" if same_family.any() else "other architecture"


def generator_style(members: Sequence[str], facts: pd.DataFrame) -> str:
    """The members' training style, or ``mixed``."""
    styles = set(facts.loc[list(members), "style"])
    return styles.pop() if len(styles) == 1 else "mixed"


def generator_styles(members: Mapping[str, Sequence[str]], facts: pd.DataFrame
                     ) -> dict[str, str]:
    """:func:`generator_style` of every generator."""
    return {generator: generator_style(group, facts) for generator, group in members.items()}


def relation_units(scores: pd.DataFrame, facts: pd.DataFrame,
                   members: Mapping[str, Sequence[str]],
                   evaluator_layers: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One row per (condition, relation, image set, metric, metamer): the metric averaged over
    that relation's evaluators (``value``) and their count (``evaluators``)."""
    scored = scores[scores["image_set"].isin(IMAGE_SETS) & (scores["evaluator"] != "pixels")]
    deepest = deepest_layers(evaluator_layers)
    frames = []
    for name, (metric, layer) in TRANSFER_METRICS.items():
        rows = scored[scored["metric"] == metric]
        if layer == "deepest":
            rows = rows[rows["evaluator_layer"] == rows["evaluator"].map(deepest)]
        else:
            rows = rows[rows["evaluator_layer"] == layer]
        frames.append(rows.assign(metric=name))
    rows = pd.concat(frames, ignore_index=True)
    pairs = rows[["generator", "evaluator"]].drop_duplicates()
    pairs["relation"] = [relation(members[generator], evaluator, facts)
                         for generator, evaluator in zip(pairs["generator"], pairs["evaluator"])]
    rows = rows.merge(pairs, on=["generator", "evaluator"])
    return (rows.groupby([*UNIT_KEYS, "metamer"], sort=False)["value"]
            .agg(value="mean", evaluators="count").reset_index())


def mean_ci(units: pd.DataFrame, seed: int) -> pd.Series:
    """The mean of units' ``value``, its 95% bootstrap CI resampling metamers (``ci_*``), and
    the counts of metamers and of (metamer, evaluator) pairs behind it."""
    low, high = bootstrap_mean_ci(units["value"].to_numpy(), seed=seed)
    return pd.Series({"mean": units["value"].mean(), "ci_low": low, "ci_high": high,
                      "metamers": len(units), "pairs": int(units["evaluators"].sum())})


def layer_ranks(generators: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per (generator, layer): its rank among the generator's generating layers, 0 (earliest)
    to 1 (deepest), as the config lists them from early to late; one layer counts as deepest."""
    rows = [{"generator": generator, "layer": layer,
             "layer_rank": index / (len(layers) - 1) if len(layers) > 1 else 1.0}
            for generator, layers in generators.items() for index, layer in enumerate(layers)]
    return pd.DataFrame(rows)


def transfer_summary(units: pd.DataFrame, facts: pd.DataFrame,
                     members: Mapping[str, Sequence[str]],
                     generators: Mapping[str, Sequence[str]], seed: int = 0) -> pd.DataFrame:
    """Per (condition, relation, image set, metric): mean over metamers with a 95% bootstrap CI,
    the counts of metamers and of (metamer, evaluator) pairs, and the generator's style and
    layer rank."""
    summary = (units.groupby(UNIT_KEYS, sort=True)[["value", "evaluators"]]
               .apply(mean_ci, seed=seed).reset_index())
    summary["generator_style"] = summary["generator"].map(generator_styles(members, facts))
    summary = summary.merge(layer_ranks(generators), on=["generator", "layer"], how="left")
    summary["relation"] = pd.Categorical(summary["relation"], RELATIONS)
    return (summary.sort_values([*UNIT_KEYS]).reset_index(drop=True)
            .astype({"relation": str, "metamers": int, "pairs": int}))


def depth_contrasts(units: pd.DataFrame, facts: pd.DataFrame,
                    members: Mapping[str, Sequence[str]],
                    generators: Mapping[str, Sequence[str]], seed: int = 0) -> pd.DataFrame:
    """Per (optimizer, init, depth, generator style, relation, image set, metric), pooled over
    generators: depth ``earliest`` / ``deepest`` is each generator's first / last generating
    layer (a generator with one layer counts as deepest only). Bootstrap units are metamers of
    each (generator, layer)."""
    ranks = layer_ranks(generators)
    ranks = ranks[ranks["layer_rank"].isin([0.0, 1.0])]
    ranks["depth"] = np.where(ranks["layer_rank"] == 1.0, "deepest", "earliest")
    pooled = units.merge(ranks[["generator", "layer", "depth"]], on=["generator", "layer"])
    pooled["generator_style"] = pooled["generator"].map(generator_styles(members, facts))
    keys = ["optimizer", "init", "depth", "generator_style", "relation", "image_set", "metric"]
    contrasts = (pooled.groupby(keys, sort=True)[["value", "evaluators"]]
                 .apply(mean_ci, seed=seed).reset_index())
    contrasts["generators"] = (pooled.groupby(keys, sort=True)["generator"].nunique()
                               .to_numpy())
    return contrasts.astype({"metamers": int, "pairs": int})
