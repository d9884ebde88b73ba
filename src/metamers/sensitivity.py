"""How the transfer answers depend on where metamers stop: the same evaluation (the run's
criterion, evaluators and contrasts) of metamers stopped by different rules, side by side.

``benchmarks/criterion_sensitivity.py`` makes the variants; this module judges their metamers
by one criterion at the generating layer and writes the comparison tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from metamers import transfer
from metamers.config import generator_members
from metamers.criteria import MEASURES, Thresholds

CONTRAST_KEYS = ["optimizer", "init", "depth", "generator_style", "relation", "metric"]
RELATION_ORDER = {relation: rank for rank, relation in enumerate(transfer.RELATIONS)}
METRICS = {"recognized": "recognised", "passes": "passes test", "transfers": "transfers"}


def passes_thresholds(content: dict, thresholds: Sequence[Thresholds]) -> np.ndarray:
    """(N,) whether each metamer of a metamer file passes ``thresholds`` (one per member) at its
    stop, from the stored final measures and classes: the class where asked, and every
    deciding measure strictly above its bar (NaN fails)."""
    passed = np.ones(len(content["success"]), dtype=bool)
    for member, bars in enumerate(thresholds):
        for measure, bar in bars.measures.items():
            values = np.nan_to_num(content[f"final_{measure}"][:, member], nan=-np.inf)
            passed &= values > bar
        if bars.class_match:
            passed &= (content["predicted_class"][:, member]
                       == content["reference_class"][:, member])
    return passed


def generation_row(content: dict, thresholds: Sequence[Thresholds]) -> dict:
    """One condition's metamers: success by their own rule and by ``thresholds``, iterations
    run, normalised loss and pixel distance at their stop (medians)."""
    iterations = content["iterations_run"].astype(int)
    loss_at_stop = content["loss"][iterations, np.arange(len(iterations))]
    return {"own_success": float(np.mean(content["success"])),
            "judged_success": float(np.mean(passes_thresholds(content, thresholds))),
            "iterations_run": float(np.median(iterations)),
            "loss_at_stop": float(np.nanmedian(loss_at_stop)),
            "pixel_distance": float(np.median(content["pixel_distance"])),
            **{f"final_{measure}": float(np.nanmedian(content[f"final_{measure}"].min(1)))
               for measure in MEASURES}}


def compare_contrasts(contrasts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The metamers' rows of each variant's ``transfer.depth_contrasts`` side by side: per
    contrast key, ``mean``, ``ci_low``, ``ci_high`` and ``metamers`` of each variant (column
    ``(variant, field)``), and ``differs`` per variant after the first: its 95% CI and the
    first variant's are disjoint."""
    fields = ["mean", "ci_low", "ci_high", "metamers"]
    frames = {variant: table[table["image_set"] == "metamer"].set_index(CONTRAST_KEYS)[fields]
              for variant, table in contrasts.items()}
    joined = pd.concat(frames, axis=1)
    first, *others = contrasts
    for variant in others:
        joined[(variant, "differs")] = ((joined[(variant, "ci_low")] > joined[(first, "ci_high")])
                                        | (joined[(variant, "ci_high")]
                                           < joined[(first, "ci_low")]))
    return joined


def _percent(value: float) -> str:
    return "" if pd.isna(value) else f"{100 * value:.1f}"


def contrast_markdown(compared: pd.DataFrame, variants: Sequence[str]) -> list[str]:
    """Per (optimizer, init, depth), one table: a row per relation and generator style, per
    metric each variant's mean % (``*``: its CI is disjoint from the first variant's)."""
    lines: list[str] = []
    header = [f"{METRICS[metric]}: {variant}" for metric in METRICS for variant in variants]
    for (optimizer, init, depth), block in compared.groupby(level=[0, 1, 2], sort=False):
        lines += [f"#### {optimizer}, {init}, {depth} generating layer", "",
                  "| relation | generator style | " + " | ".join(header) + " |",
                  "|---|---|" + "---|" * len(header)]
        rows = block.reset_index()
        order = sorted(range(len(rows)), key=lambda row: (
            RELATION_ORDER[rows["relation"].iloc[row]],
            rows["generator_style"].iloc[row] != "standard", rows["generator_style"].iloc[row]))
        rows = rows.iloc[order]
        for (relation, style), row_block in rows.groupby(["relation", "generator_style"],
                                                         sort=False):
            cells = []
            for metric in METRICS:
                chosen = row_block[row_block["metric"] == metric]
                for variant in variants:
                    if chosen.empty:
                        cells.append("")
                        continue
                    cell = _percent(chosen[(variant, "mean")].iloc[0])
                    if (variant, "differs") in chosen and bool(chosen[(variant, "differs")]
                                                               .iloc[0]):
                        cell += "*"
                    cells.append(cell)
            lines.append(f"| {relation} | {style} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def changed_cells(compared: pd.DataFrame, variants: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per variant after the first: (cells whose CI is disjoint from the first's, cells)."""
    counts = {}
    for variant in variants[1:]:
        differs = compared[(variant, "differs")]
        measured = compared[(variant, "mean")].notna() & compared[(variants[0], "mean")].notna()
        counts[variant] = (int(differs[measured].sum()), int(measured.sum()))
    return counts


def run_contrasts(scores: pd.DataFrame, config: dict) -> pd.DataFrame:
    """``transfer.depth_contrasts`` of a run's score table under its (validated) config, as
    its ``transfer_answers`` stage computes them for findings.md."""
    models, generators = config["models"], config["generation"]["generators"]
    members = {name: generator_members(config["generator_sets"], name) for name in generators}
    evaluators = config["evaluation"]["evaluators"] or list(models)
    facts = transfer.model_facts(models, config.get("training", {}))
    units = transfer.relation_units(scores, facts, members,
                                    {name: models[name]["layers"] for name in evaluators})
    return transfer.depth_contrasts(units, facts, members, generators, config["seed"])
