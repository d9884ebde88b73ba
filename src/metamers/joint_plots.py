"""``joint_transfer.pdf``: held-out transfer and cost of jointly optimised metamers against the
number of models optimised at once (:mod:`metamers.joint`), one column per depth.

Page 1: recognised, passes and transfers by held-out evaluators; lines over N (bands: 95% CI
over metamers; caps: over draws), pixel controls dashed, robust single models as markers left
of N = 1. Page 2: success rate, pixel distance, iterations and seconds per passing metamer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from metamers.joint import POOL
from metamers.plots import pdf_pages, save_figure
from metamers.transfer_plots import METRIC_LABELS

DRAWN_GROUPS = ["held out", "outside pool"]
COST_LABELS = {
    "success": "success rate\n(criterion, every member)",
    "pixel_distance": "pixel distance to\nreference (L2)",
    "iterations_to_success": "iterations to success",
    "seconds_per_success": "synthesis seconds\nper passing metamer",
}
ROBUST_MARKERS = ["D", "s", "^", "v", "P"]
GROUP_LABELS = {"held out": "evaluators: every non-member",
                "outside pool": "evaluators: outside the pool (same at every N)",
                "generator": "metamers of N-model sets"}


def _line(axis: plt.Axes, rows: pd.DataFrame, color, dashed: bool) -> None:
    rows = rows.sort_values("size")
    axis.plot(rows["size"], rows["mean"], color=color, linestyle="--" if dashed else "-",
              marker="o", markersize=3)
    if dashed:
        return
    axis.fill_between(rows["size"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.2,
                      linewidth=0)
    axis.errorbar(rows["size"], rows["mean"], fmt="none", ecolor=color, capsize=3,
                  yerr=[rows["mean"] - rows["draw_ci_low"], rows["draw_ci_high"] - rows["mean"]])


def _robust(axis: plt.Axes, rows: pd.DataFrame, positions: dict[str, float], color) -> None:
    for index, (group, at) in enumerate(rows.groupby("group", sort=True)):
        row = at.iloc[0]
        axis.errorbar(positions[group], row["mean"], fmt=ROBUST_MARKERS[index % 5], color=color,
                      yerr=[[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]],
                      capsize=2, markersize=5)


def _panel(axis: plt.Axes, rows: pd.DataFrame, groups: Sequence[str], colors: dict,
           positions: dict[str, float]) -> None:
    for evaluator_group in groups:
        mine = rows[rows["evaluator_group"] == evaluator_group]
        for image_set in ("metamer", "pixel_control"):
            drawn = mine[mine["image_set"] == image_set]
            _line(axis, drawn[drawn["group"] == POOL], colors[evaluator_group],
                  dashed=image_set == "pixel_control")
        metamers = mine[(mine["image_set"] == "metamer") & (mine["group"] != POOL)]
        _robust(axis, metamers, positions, colors[evaluator_group])
    sizes = sorted(set(rows.loc[rows["group"] == POOL, "size"]))
    axis.set_xticks([*positions.values(), *sizes],
                    [*positions, *[f"N={size}" for size in sizes]], fontsize=7, rotation=30)


def _page(summary: pd.DataFrame, metrics: dict[str, str], groups: Sequence[str],
          title: str, depths: Sequence[str], pages) -> None:
    colors = dict(zip(groups, sns.color_palette("colorblind", len(groups))))
    compared = sorted(set(summary["group"]) - {POOL})
    positions = {group: 1.0 - 0.6 * (len(compared) - index)
                 for index, group in enumerate(compared)}
    figure, axes = plt.subplots(len(metrics), len(depths), squeeze=False, sharey="row",
                                figsize=(3.2 * len(depths), 2.3 * len(metrics) + 1),
                                layout="constrained")
    for column, depth in enumerate(depths):
        for row, (metric, label) in enumerate(metrics.items()):
            rows = summary[(summary["depth"] == depth) & (summary["metric"] == metric)]
            _panel(axes[row, column], rows, groups, colors, positions)
            axes[row, column].set_ylabel(label if column == 0 else "", fontsize=8)
        axes[0, column].set_title(f"depth: {depth}", fontsize=9)
    handles = [Line2D([], [], color=colors[group], label=GROUP_LABELS.get(group, group))
               for group in groups]
    if (summary["metric"].isin(list(metrics)) & (summary["image_set"] == "pixel_control")).any():
        handles.append(Line2D([], [], color="grey", linestyle="--", label="pixel control"))
    handles += [Line2D([], [], color="grey", marker=ROBUST_MARKERS[index % 5], linestyle="",
                       label=f"{group} (1 robust model)") for index, group in enumerate(compared)]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
                  fontsize=8)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, pages)


def plot_joint_transfer(summary: pd.DataFrame, depths: Sequence[str], path: Path) -> None:
    """Both pages of ``joint_transfer.pdf`` from :func:`metamers.joint.summarize`'s table."""
    with pdf_pages(path) as pages:
        _page(summary, METRIC_LABELS, DRAWN_GROUPS,
              "Held-out transfer of metamers of N models at once (band: 95% CI over metamers; "
              "caps: over draws)", depths, pages)
        _page(summary, COST_LABELS, ["generator"],
              "Success and cost against N (band: 95% CI over metamers; caps: over draws)",
              depths, pages)
