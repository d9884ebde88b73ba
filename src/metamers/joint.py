"""Jointly optimised metamers: are metamers of N models at once less idiosyncratic?

A *pool* of generators gives one layer per relative depth (e.g. early, middle, late). For each
set size N in ``sizes``, ``draws`` seeded random N-model subsets of the pool are optimised
jointly (one image per reference matching every member). A set of one model is that model
itself, so N = 1 reuses its single-model metamers. Every metamer is scored only by *held-out*
evaluators, models that are not members: the rest of the pool, other seeds of members, robust
CNNs. Single robust models (``compare``) are scored the same way: the alternative that costs one
model per iteration.

Held-out transfer is computed over the metamers that pass the generation criterion (the
``success`` field of the metamer files); success, cost and pixel distance are reported beside.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metamers import store
from metamers.config import ConfigError

POOL = "pool"  # the ``group`` of pool sets; a compared single model's group is its name
EVALUATOR_GROUPS = ["held out", "held-out pool", "outside pool"]
GENERATION_METRICS = ["success", "pixel_distance", "iterations_to_success", "seconds_per_success"]
SUMMARY_KEYS = ["group", "depth", "size", "evaluator_group", "image_set", "metric"]


@dataclass(frozen=True)
class JointSet:
    """One drawn set: its generator name (the model itself when N = 1), members, N, draw."""

    name: str
    members: tuple[str, ...]
    size: int
    draw: int


def draw_sets(pool: Sequence[str], sizes: Sequence[int], draws: int, seed: int
              ) -> list[JointSet]:
    """``draws`` distinct N-model subsets of ``pool`` for each N (all when fewer exist).

    Seeded per N, and from the sorted pool: adding a size or reordering the pool changes no
    other draw.
    """
    models = sorted(pool)
    sets = []
    for size in sizes:
        combinations = list(itertools.combinations(models, size))
        rng = np.random.default_rng([seed, size])
        chosen = rng.choice(len(combinations), min(draws, len(combinations)), replace=False)
        for draw, index in enumerate(sorted(chosen)):
            members = combinations[index]
            name = members[0] if size == 1 else f"joint_n{size}_d{draw}"
            sets.append(JointSet(name, members, size, draw))
    return sets


def check_joint(config: Mapping) -> None:
    """Raise :class:`ConfigError` where the ``joint`` section names what does not exist."""
    joint, models = config["joint"], config["models"]
    depths = joint["depths"]
    for model, layers in {**joint["pool"], **joint.get("compare", {})}.items():
        if model not in models:
            raise ConfigError(f"joint: {model!r} is not a model (models: {sorted(models)}).")
        if sorted(layers) != sorted(depths):
            raise ConfigError(f"joint: {model} must give one layer per depth {depths}, "
                              f"not {sorted(layers)}.")
    if max(joint["sizes"]) > len(joint["pool"]):
        raise ConfigError(f"joint.sizes: {max(joint['sizes'])} models from a pool of "
                          f"{len(joint['pool'])}.")
    clashes = {item.name for item in _sets(joint) if item.size > 1} & {
        *models, *config.get("generator_sets", {})}
    if clashes:
        raise ConfigError(f"joint: set names {sorted(clashes)} are taken by models or sets.")
    for key, section in (("optimizer", "optimizers"), ("init", "inits")):
        choice = _choice(config, key)
        if choice not in config["generation"][section]:
            raise ConfigError(f"joint.{key}={choice!r} is not in generation.{section} "
                              f"{config['generation'][section]}.")


def _choice(config: Mapping, key: str) -> str:
    """The joint section's ``optimizer`` or ``init``; unset: the first of generation's."""
    return config["joint"].get(key) or config["generation"][f"{key}s"][0]


def _sets(joint: Mapping) -> list[JointSet]:
    return draw_sets(list(joint["pool"]), joint["sizes"], joint["draws"], joint["seed"])


def generator_sets(config: Mapping) -> dict[str, dict]:
    """The drawn sets of two or more models as ``generator_sets`` entries (layer aliases are
    the depths); empty without a ``joint`` section."""
    if "joint" not in config:
        return {}
    joint = config["joint"]
    return {item.name: {"members": list(item.members),
                        "layers": {depth: {member: joint["pool"][member][depth]
                                           for member in item.members}
                                   for depth in joint["depths"]}}
            for item in _sets(joint) if item.size > 1}


def design(config: Mapping) -> list[dict]:
    """One row per (drawn set or compared model, depth): its condition (``generator``,
    ``layer``, ``optimizer``, ``init``), ``group``, ``depth``, ``size``, ``draw`` and
    ``members``. Checks the section first; empty without one."""
    if "joint" not in config:
        return []
    check_joint(config)
    joint = config["joint"]
    rows = []
    for depth in joint["depths"]:
        for item in _sets(joint):
            layer = joint["pool"][item.name][depth] if item.size == 1 else depth
            rows.append({"generator": item.name, "layer": layer, "group": POOL,
                         "size": item.size, "draw": item.draw, "members": list(item.members),
                         "depth": depth})
        for model, layers in joint.get("compare", {}).items():
            rows.append({"generator": model, "layer": layers[depth], "group": model, "size": 1,
                         "draw": 0, "members": [model], "depth": depth})
    choices = {key: _choice(config, key) for key in ("optimizer", "init")}
    return [{**row, **choices} for row in rows]


def held_out(members: Sequence[str], evaluators: Sequence[str], pool: Sequence[str]
             ) -> dict[str, list[str]]:
    """Evaluators of a metamer by group: every non-member (``held out``), non-members of the
    pool (``held-out pool``) and evaluators outside the pool (``outside pool``)."""
    others = [name for name in evaluators if name not in members]
    return {"held out": others,
            "held-out pool": [name for name in others if name in pool],
            "outside pool": [name for name in others if name not in pool]}


def evaluation_units(scores: pd.DataFrame, members: Sequence[str], success: np.ndarray,
                     evaluators: Sequence[str], pool: Sequence[str],
                     deepest: Mapping[str, str]) -> pd.DataFrame:
    """One condition's scores -> per successful metamer, evaluator group, image set and
    transfer metric (``recognized``, ``passes``, ``transfers``; as in
    :data:`metamers.transfer.TRANSFER_METRICS`): the metric averaged over the group's
    evaluators (``value``) and their count (``evaluators``)."""
    from metamers.transfer import IMAGE_SETS, TRANSFER_METRICS  # torch: not at DAG time

    scored = scores[scores["image_set"].isin(IMAGE_SETS)
                    & scores["metamer"].isin(np.flatnonzero(success))]
    frames = []
    for name, (metric, layer) in TRANSFER_METRICS.items():
        rows = scored[scored["metric"] == metric]
        wanted = rows["evaluator"].map(deepest) if layer == "deepest" else layer
        frames.append(rows[rows["evaluator_layer"] == wanted].assign(metric=name))
    rows = pd.concat(frames, ignore_index=True)
    units = [rows[rows["evaluator"].isin(names)]
             .groupby(["image_set", "metric", "metamer"])["value"]
             .agg(value="mean", evaluators="count").reset_index().assign(evaluator_group=group)
             for group, names in held_out(members, evaluators, pool).items() if names]
    if not units:
        raise ValueError(f"every evaluator is a member of {list(members)}: none is held out.")
    return pd.concat(units, ignore_index=True)


def generation_units(content: Mapping, size: int) -> pd.DataFrame:
    """One metamer file -> per metamer: ``success`` (every metamer), and for those that pass,
    ``pixel_distance`` to the reference, ``iterations_to_success`` and ``seconds_per_success``
    (the job's synthesis wall time shared equally among its successful metamers, so the mean
    over metamers is wall time per successful metamer)."""
    success = np.asarray(content["success"], bool)
    passed = np.flatnonzero(success)
    seconds = content["attrs"]["wall_time_s"] / max(len(passed), 1)
    frames = [pd.DataFrame({"metamer": np.arange(len(success)), "metric": "success",
                            "value": success.astype(float)})]
    for metric, values in (("pixel_distance", content["pixel_distance"][passed]),
                           ("iterations_to_success",
                            content["iterations_to_success"][passed].astype(float)),
                           ("seconds_per_success", np.full(len(passed), seconds))):
        frames.append(pd.DataFrame({"metamer": passed, "metric": metric, "value": values}))
    return pd.concat(frames, ignore_index=True).assign(
        evaluator_group="generator", image_set="metamer", evaluators=size)


def condition_units(row: Mapping, content: Mapping, scores: pd.DataFrame,
                    evaluators: Sequence[str], pool: Sequence[str],
                    deepest: Mapping[str, str]) -> pd.DataFrame:
    """Evaluation and generation units of one design row, tagged with its group, depth, size
    and draw."""
    units = pd.concat([
        evaluation_units(scores, row["members"], content["success"], evaluators, pool, deepest),
        generation_units(content, row["size"])], ignore_index=True)
    return units.assign(**{key: row[key] for key in ("group", "depth", "size", "draw")})


def _mean_cis(units: pd.DataFrame, seed: int) -> pd.Series:
    """:func:`metamers.transfer.mean_ci`, and the CI resampling the draws' means."""
    from metamers.stats import bootstrap_mean_ci  # torch: not at DAG time
    from metamers.transfer import mean_ci

    over_metamers = mean_ci(units, seed)
    per_draw = units.groupby("draw")["value"].mean().to_numpy()
    draw_low, draw_high = bootstrap_mean_ci(per_draw, seed=seed)
    return pd.Series({**over_metamers[["mean", "ci_low", "ci_high"]],
                      "draw_ci_low": draw_low, "draw_ci_high": draw_high,
                      **over_metamers[["metamers", "pairs"]],
                      "draws": units["draw"].nunique()})


def summarize(units: pd.DataFrame, depths: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """Per (group, depth, size, evaluator group, image set, metric): the mean over metamers
    (pooled over draws), 95% bootstrap CIs resampling metamers (``ci_*``) and resampling the
    draws' means (``draw_ci_*``), and the counts of metamers, (metamer, evaluator) pairs and
    draws behind it."""
    summary = (units.groupby(SUMMARY_KEYS, sort=True)[["value", "evaluators", "draw"]]
               .apply(_mean_cis, seed=seed).reset_index())
    summary["depth"] = pd.Categorical(summary["depth"], list(depths))
    summary["group"] = pd.Categorical(summary["group"],
                                      [POOL, *sorted(set(summary["group"]) - {POOL})])
    return (summary.sort_values(SUMMARY_KEYS).reset_index(drop=True)
            .astype({"depth": str, "group": str, "metamers": int, "pairs": int, "draws": int}))


def write_joint_transfer(rows: Sequence[Mapping], metamer_paths: Sequence[Path],
                         score_paths: Sequence[Path], evaluators: Sequence[str],
                         pool: Sequence[str], deepest: Mapping[str, str],
                         depths: Sequence[str], seed: int, path: Path) -> pd.DataFrame:
    """Write and return :func:`summarize` of every design row (``rows[i]``'s metamers and
    scores at ``metamer_paths[i]`` and ``score_paths[i]``)."""
    units = pd.concat([condition_units(row, store.read_metamers(metamers),
                                       store.read_table(scores), evaluators, pool, deepest)
                       for row, metamers, scores in zip(rows, metamer_paths, score_paths,
                                                        strict=True)], ignore_index=True)
    summary = summarize(units, depths, seed)
    store.write_table(path, summary)
    return summary


def _percent(row: pd.Series | None, with_ci: bool = True) -> str:
    if row is None:
        return ""
    text = f"{100 * row['mean']:.1f}%"
    return f"{text} [{100 * row['ci_low']:.1f}-{100 * row['ci_high']:.1f}]" if with_ci else text


def _find(rows: pd.DataFrame, evaluator_group: str, image_set: str, metric: str
          ) -> pd.Series | None:
    found = rows[(rows["evaluator_group"] == evaluator_group) & (rows["image_set"] == image_set)
                 & (rows["metric"] == metric)]
    return found.iloc[0] if len(found) else None


def _table_row(depth: str, label: str, rows: pd.DataFrame) -> str:
    from metamers.transfer import IMAGE_SETS

    success = _find(rows, "generator", "metamer", "success")
    cells = [depth, label, str(success["draws"]),
             f"{success['mean'] * success['metamers']:.0f}/{success['metamers']}",
             _percent(success, with_ci=False)]
    for group, metric in (("held out", "recognized"), ("held out", "passes"),
                          ("held out", "transfers"), ("outside pool", "transfers")):
        metamer, control = (_find(rows, group, image_set, metric) for image_set in IMAGE_SETS)
        control_text = f" (pc {_percent(control, with_ci=False)})" if control is not None else ""
        cells.append(_percent(metamer) + control_text)
    for metric, digits in (("pixel_distance", 2), ("iterations_to_success", 1),
                           ("seconds_per_success", 2)):
        value = _find(rows, "generator", "metamer", metric)
        cells.append("" if value is None else f"{value['mean']:.{digits}f}")
    return "| " + " | ".join(cells) + " |"


def findings_section(summary: pd.DataFrame) -> str:
    """``findings.md``'s section on jointly optimised metamers: one table row per (depth, set
    size or compared model), every number read from ``summary``."""
    header = ["depth", "generators", "draws", "metamers passing", "success",
              "recognised by held-out", "pass held-out test", "transfer to held-out",
              "transfer outside pool", "pixel distance", "iterations", "s per success"]
    lines = ["## Jointly optimised metamers (N models at once)", "",
             ("Written from `results/joint_transfer.parquet`. Sets of N models drawn from the "
              "pool, optimised jointly; each metamer that passes the criterion for every member "
              "is judged only by models that are not members (transfer: passes the "
              "representation test at the evaluator's deepest layer and beats its pixel "
              "control). Means over metamers with 95% bootstrap CIs over metamers; pc: the "
              "pixel controls at the same distance; robust CNNs: single-model metamers, the "
              "alternative at the cost of one model. Pixel distance (L2), iterations to "
              "success and synthesis seconds per passing metamer are the generation's cost."),
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for depth in dict.fromkeys(summary["depth"]):  # summarize's order: early to late
        at_depth = summary[summary["depth"] == depth]
        for (group, size), rows in at_depth.groupby(["group", "size"], sort=False):
            label = f"N = {size}" if group == POOL else f"{group} (1 model)"
            lines.append(_table_row(depth, label, rows))
    return "\n".join([*lines, ""])
