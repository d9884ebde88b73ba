"""Figures of transfer by relation (``transfer_summary.parquet``): one page per (optimizer, init),
one row of panels per metric, bars per relation with 95% CIs, pixel controls as black diamonds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from metamers.plots import pdf_pages, save_figure
from metamers.transfer import RELATIONS

METRIC_LABELS = {
    "recognized": "recognised (top-1 correct)",
    "passes": "passes representation test\n(evaluator's deepest layer)",
    "transfers": "transfers (passes and\nbeats pixel control)",
}


def seed_generators(summary: pd.DataFrame) -> list[str]:
    """Generators that have evaluators of another seed (of their architecture and recipe)."""
    return list(dict.fromkeys(summary.loc[summary["relation"] == "other seed", "generator"]))


def plot_transfer_by_relation(summary: pd.DataFrame, path: Path, panel_key: str,
                              relations: Sequence[str] = RELATIONS,
                              generators: Sequence[str] | None = None,
                              chance: float | None = None) -> pd.DataFrame:
    """Bars of each metric per (generator · layer) and relation, panels by ``panel_key``
    (``generator_style`` or ``generator``); returns the drawn metamer rows."""
    drawn = summary[summary["relation"].isin(relations)]
    if generators is not None:
        drawn = drawn[drawn["generator"].isin(generators)]
    if drawn.empty:
        raise ValueError(f"No transfer rows to draw for relations {list(relations)}"
                         + (f" and generators {list(generators)}" if generators else "")
                         + ": the zoo needs evaluators of those relations.")
    colors = dict(zip(RELATIONS, sns.color_palette("colorblind", len(RELATIONS))))
    metrics = [metric for metric in METRIC_LABELS if metric in set(drawn["metric"])]
    with pdf_pages(path) as pages:
        for (optimizer, init), run in drawn.groupby(["optimizer", "init"], sort=False):
            panels = sorted(dict.fromkeys(run[panel_key]),
                            key=lambda panel: (panel != "standard", panel))
            widths = [run.loc[run[panel_key] == panel, ["generator", "layer"]]
                      .drop_duplicates().shape[0] for panel in panels]
            figure, axes = plt.subplots(
                len(metrics), len(panels), squeeze=False, sharey="row", layout="constrained",
                figsize=(2.0 + 0.3 * len(relations) * sum(widths), 2.4 * len(metrics) + 1.2),
                gridspec_kw={"width_ratios": widths})
            for column, panel in enumerate(panels):
                for row, metric in enumerate(metrics):
                    rows = run[(run[panel_key] == panel) & (run["metric"] == metric)]
                    _relation_bars(axes[row, column], rows, relations, colors)
                    axes[row, column].set_ylim(0, 1.05)
                    if chance is not None and metric == "recognized":
                        axes[row, column].axhline(chance, color="grey", linewidth=1,
                                                  linestyle=":")
                    axes[row, column].set_ylabel(METRIC_LABELS[metric] if column == 0 else "")
                axes[0, column].set_title(f"{panel_key.replace('_', ' ')}: {panel}", fontsize=9)
            handles = [Patch(color=colors[relation], label=relation) for relation in relations
                       if relation in set(run["relation"])]
            handles.append(Line2D([], [], color="black", marker="D", linestyle="",
                                  markersize=4, label="pixel control"))
            if chance is not None:
                handles.append(Line2D([], [], color="grey", linestyle=":", label="chance"))
            figure.legend(handles=handles, loc="outside lower center", ncol=len(handles),
                          fontsize=8)
            figure.suptitle(f"Transfer by evaluator relation · optimizer {optimizer} · init "
                            f"{init} (bars: mean over metamers, 95% bootstrap CI)", fontsize=10)
            save_figure(figure, pages)
    return drawn[drawn["image_set"] == "metamer"]


def _relation_bars(axis: plt.Axes, rows: pd.DataFrame, relations: Sequence[str],
                   colors: dict) -> None:
    positions = (rows.sort_values(["generator", "layer_rank"], kind="stable")
                 [["generator", "layer"]].drop_duplicates().reset_index(drop=True))
    present = [relation for relation in relations if relation in set(rows["relation"])]
    width = 0.8 / max(len(present), 1)
    for index, position in positions.iterrows():
        at = rows[(rows["generator"] == position["generator"])
                  & (rows["layer"] == position["layer"])]
        for offset, relation in enumerate(present):
            x = index - 0.4 + width * (offset + 0.5)
            metamer = at[(at["relation"] == relation) & (at["image_set"] == "metamer")]
            control = at[(at["relation"] == relation) & (at["image_set"] == "pixel_control")]
            if metamer.empty:
                continue
            mean = metamer["mean"].iloc[0]
            error = np.abs(np.array([[mean - metamer["ci_low"].iloc[0]],
                                     [metamer["ci_high"].iloc[0] - mean]]))
            axis.bar(x, mean, width, color=colors[relation], yerr=error, capsize=2,
                     error_kw={"linewidth": 0.8})
            if not control.empty:
                axis.plot(x, control["mean"].iloc[0], marker="D", color="black", markersize=4,
                          markeredgecolor="white", markeredgewidth=0.5)
    axis.set_xticks(range(len(positions)),
                    [f"{generator} · {layer}" for generator, layer in
                     zip(positions["generator"], positions["layer"])],
                    rotation=35, ha="right", fontsize=8)
    axis.set_xlim(-0.6, len(positions) - 0.4)


def plot_transfer_figures(summary: pd.DataFrame, class_count: int, architecture_path: Path,
                          seeds_path: Path) -> None:
    """``transfer_architecture.pdf`` (every generator, panels by training style) and
    ``transfer_seeds.pdf`` (generators with other-seed evaluators, a panel each)."""
    chance = 1.0 / class_count
    plot_transfer_by_relation(summary, architecture_path, "generator_style", chance=chance)
    generators = seed_generators(summary)
    if generators:
        plot_transfer_by_relation(summary, seeds_path, "generator", generators=generators,
                                  chance=chance)
    else:
        figure = plt.figure(figsize=(6, 1.5))
        figure.text(0.5, 0.5, "No generator has evaluators of another seed in this zoo:\n"
                    "add models of the same architecture and training with other seeds.",
                    ha="center", va="center")
        save_figure(figure, seeds_path)
