"""Figures of the pipeline: each function draws the tables or arrays it is given as one vector
PDF; what they hold is computed in :mod:`metamers.analysis` and :mod:`metamers.transfer`.

Conditions are dicts with the keys of ``scores.CONDITION`` (generator, layer, optimizer, init);
tables follow the schemas in docs/evaluation.md. A function that reshapes its table to draw it
(the transfer matrix's grids) returns what it drew, so tests can check it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from metamers.scores import CONDITION
from metamers.store import atomic_path

CEILING_ROW = "references (ceiling)"
MAX_PANEL_COLUMNS = 3  # panels per row in multi-condition figures
IMAGE_SET_STYLES = {"metamer": "-", "pixel_control": "--", "initial": ":"}


def condition_label(condition: Mapping, keys: Sequence[str] = CONDITION) -> str:
    """``generator · layer · optimizer · init`` (or the given subset of keys)."""
    return " · ".join(str(condition[key]) for key in keys)


def _conditions_in_order(table: pd.DataFrame, keys: Sequence[str] = CONDITION) -> list[dict]:
    """Distinct conditions in order of first appearance (the configured order)."""
    return table[list(keys)].drop_duplicates().to_dict("records")


def _condition_colors(conditions: Sequence[Mapping],
                      keys: Sequence[str] = CONDITION) -> dict[str, tuple]:
    return _colors([condition_label(condition, keys) for condition in conditions])


def _colors(labels: Sequence[str]) -> dict[str, tuple]:
    """A distinct colour per label: tab10 up to ten labels, evenly spaced hues beyond."""
    return dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl",
                                              len(labels))))


def save_figure(figure: plt.Figure, target: Path | PdfPages) -> None:
    """Write ``figure`` as a PDF file, or as the next page of an open ``PdfPages``."""
    if isinstance(target, PdfPages):
        target.savefig(figure, bbox_inches="tight")
    else:
        with atomic_path(target) as partial:
            figure.savefig(partial, format="pdf", bbox_inches="tight")
    plt.close(figure)


@contextmanager
def pdf_pages(path: Path) -> Iterator[PdfPages]:
    """A multi-page PDF at ``path``: one page per (optimizer, init) run in per-run figures."""
    with atomic_path(path) as partial, PdfPages(partial) as pages:
        yield pages


def runs(conditions: Sequence[Mapping]) -> dict[tuple[str, str], list[int]]:
    """Indices of ``conditions`` grouped by (optimizer, init), in order of first appearance."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for index, condition in enumerate(conditions):
        grouped.setdefault((condition["optimizer"], condition["init"]), []).append(index)
    return grouped


# --- transfer matrix -----------------------------------------------------------------------


def recognizability_grids(transfer_matrix: pd.DataFrame, image_set: str = "metamer"
                          ) -> dict[tuple[str, str], pd.DataFrame]:
    """A ``transfer.transfer_matrix`` table as one grid per (optimizer, init): rows
    ``generator · layer``, columns evaluators, both in the table's order, and a last row
    ``CEILING_ROW`` with the references' recognizability."""
    cells = transfer_matrix[transfer_matrix["image_set"] == image_set]
    cells = cells.assign(row=[condition_label(row, ("generator", "layer"))
                              for row in cells[["generator", "layer"]].to_dict("records")])
    rows = list(dict.fromkeys(cells["row"]))
    evaluators = list(dict.fromkeys(cells["evaluator"]))
    ceiling = (cells.groupby("evaluator", sort=False)["reference_recognizability"].first()
               .reindex(evaluators))
    grids = {}
    for (optimizer, init), group in cells.groupby(["optimizer", "init"], sort=False):
        grid = group.pivot(index="row", columns="evaluator", values="recognizability")
        grid = grid.reindex(index=rows, columns=evaluators)
        grid.loc[CEILING_ROW] = ceiling
        grid.index.name, grid.columns.name = "generator · layer", "evaluator"
        grids[(optimizer, init)] = grid
    return grids


def plot_transfer_matrix(transfer_matrix: pd.DataFrame, members: Mapping[str, Sequence[str]],
                         class_count: int, path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """Heatmaps of metamer recognizability from a ``transfer.transfer_matrix`` table, one panel
    per (optimizer, init); returns the drawn grids (:func:`recognizability_grids`).

    ``members[generator]`` lists the models a generator optimised (itself, or a set's members):
    those evaluator cells are outlined as self-evaluations. Chance (1 / ``class_count``) is
    marked on the colour bar.
    """
    matrices = recognizability_grids(transfer_matrix)
    chance = 1.0 / class_count
    first = next(iter(matrices.values()))
    width = 1.6 + 0.9 * first.shape[1]
    height = 1.4 + 0.45 * first.shape[0]
    columns = min(len(matrices), MAX_PANEL_COLUMNS)
    rows = math.ceil(len(matrices) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns + 2.0, height * rows),
                                squeeze=False, sharey=True, layout="constrained")
    for axis in axes.flat[len(matrices):]:
        axis.set_visible(False)
    for index, (axis, ((optimizer, init), matrix)) in enumerate(zip(axes.flat, matrices.items())):
        sns.heatmap(matrix, ax=axis, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f",
                    linewidths=0.5, linecolor="white", cbar=False)
        for row_index, row in enumerate(matrix.index[:-1]):
            generator = row.split(" · ")[0]
            for column_index, evaluator in enumerate(matrix.columns):
                if evaluator in members.get(generator, [generator]):
                    axis.add_patch(Rectangle((column_index + 0.04, row_index + 0.04), 0.92,
                                             0.92, fill=False, edgecolor="red", linewidth=2))
        axis.axhline(len(matrix) - 1, color="black", linewidth=2)
        axis.set_title(f"optimizer {optimizer} · init {init}", fontsize=10)
        axis.tick_params(axis="y", rotation=0)
        axis.tick_params(axis="x", rotation=30)
        if index % columns:
            axis.set_ylabel("")
    colorbar = figure.colorbar(axes.flat[0].collections[0], ax=axes, shrink=0.8,
                               label="recognizability (top-1 correct)")
    colorbar.ax.axhline(chance, color="white", linewidth=2)
    ticks = sorted([*(tick for tick in (0.0, 0.25, 0.5, 0.75, 1.0) if abs(tick - chance) > 0.06),
                    chance])
    colorbar.set_ticks(ticks, labels=[f"chance {tick:.2f}" if tick == chance else f"{tick:g}"
                                      for tick in ticks])
    figure.suptitle(f"Metamer recognizability (chance = {chance:.2f}); "
                    "red box: evaluator is (a member of) the generator", fontsize=10)
    save_figure(figure, path)
    return matrices


# --- generation ----------------------------------------------------------------------------


def plot_convergence(curves: pd.DataFrame, path: Path) -> None:
    """Loss against iteration (log y) from ``analysis.loss_quantiles``: one panel per
    (generator, layer), one line per (optimizer, init), median over metamers with the
    interquartile band."""
    panels = _conditions_in_order(curves, ("generator", "layer"))
    runs = [condition_label(run, ("optimizer", "init"))
            for run in _conditions_in_order(curves, ("optimizer", "init"))]
    colors = dict(zip(runs, sns.color_palette("tab10", len(runs))))
    columns = min(len(panels), MAX_PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns + 1.5, 3.4 * rows),
                                squeeze=False, layout="constrained")
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, panel in zip(axes.flat, panels):
        in_panel = curves[(curves["generator"] == panel["generator"])
                          & (curves["layer"] == panel["layer"])]
        for (optimizer, init), curve in in_panel.groupby(["optimizer", "init"], sort=False):
            run = f"{optimizer} · {init}"
            axis.plot(curve["iteration"], curve["median"], color=colors[run], label=run)
            axis.fill_between(curve["iteration"], curve["q25"], curve["q75"],
                              color=colors[run], alpha=0.2, linewidth=0)
        axis.set_yscale("log")
        axis.set_title(condition_label(panel, ("generator", "layer")))
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3, which="both")
    for axis in axes[:, 0]:
        axis.set_ylabel("loss (median, IQR band)")
    axes[0, -1].legend(title="optimizer · init", fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.0, 1.0))
    save_figure(figure, path)


def _show_image(axis: plt.Axes, image: np.ndarray) -> None:
    """A (C, H, W) image in [0, 1]; one channel is shown in grayscale."""
    image = np.clip(np.asarray(image, np.float64), 0, 1)
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axis.imshow(np.moveaxis(image, 0, -1), interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def grid_indices(count: int, per_condition: int) -> np.ndarray:
    """Evenly spaced metamer indices, so the grid spans the (class-balanced) references."""
    return np.unique(np.linspace(0, count - 1, min(per_condition, count)).round().astype(int))


def plot_metamer_grid(reference_images: np.ndarray, class_names: Sequence[str],
                      conditions: Sequence[Mapping], metamer_sets: Sequence[Mapping],
                      per_condition: int, path: Path) -> None:
    """For each condition, ``per_condition`` references (top row) above their metamers; one
    page per (optimizer, init), its (generator, layer) conditions in rows of three.

    ``metamer_sets`` are ``store.read_metamers`` contents (metamers, reference_index,
    reference_label, pixel_distance); each metamer is captioned with its L2 pixel distance.
    """
    columns = min(per_condition, min(len(content["metamers"]) for content in metamer_sets))
    with pdf_pages(path) as pages:
        for (optimizer, init), indices in runs(conditions).items():
            panel_columns = min(len(indices), MAX_PANEL_COLUMNS)
            panel_rows = math.ceil(len(indices) / panel_columns)
            figure = plt.figure(figsize=((1.3 * columns + 0.4) * panel_columns,
                                         2.8 * panel_rows + 0.4))
            subfigures = np.atleast_2d(figure.subfigures(panel_rows, panel_columns))
            for subfigure in subfigures.flat[len(indices):]:
                subfigure.set_visible(False)
            for subfigure, index in zip(subfigures.flat, indices):
                _metamer_panel(subfigure, reference_images, class_names, metamer_sets[index],
                               columns, condition_label(conditions[index],
                                                        ("generator", "layer")))
            figure.suptitle(f"optimizer {optimizer} · init {init}", fontsize=11, y=1.03)
            save_figure(figure, pages)


def _metamer_panel(subfigure, reference_images: np.ndarray, class_names: Sequence[str],
                   content: Mapping, columns: int, title: str) -> None:
    axes = subfigure.subplots(2, columns, squeeze=False)
    chosen = grid_indices(len(content["metamers"]), columns)
    for column, index in enumerate(chosen):
        reference = int(content["reference_index"][index])
        _show_image(axes[0, column], reference_images[reference])
        axes[0, column].set_title(class_names[int(content["reference_label"][index])],
                                  fontsize=8)
        _show_image(axes[1, column], content["metamers"][index])
        axes[1, column].set_xlabel(f"d = {content['pixel_distance'][index]:.2f}", fontsize=8)
    for axis in axes[:, len(chosen):].ravel():
        axis.set_visible(False)
    axes[0, 0].set_ylabel("reference", fontsize=8)
    axes[1, 0].set_ylabel("metamer", fontsize=8)
    subfigure.suptitle(title, fontsize=10)


def plot_generation_study(generation: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """Two pages, one panel per generator · layer, one box or bar per optimizer · init:
    iterations to success of the successful metamers with the success rate (from ``summary``,
    ``scores.generation_summary`` of ``generation``) above each box (page 1), and the median
    pixel distance of metamers to their references with that of their starting images
    (page 2)."""
    table = generation.assign(
        target=generation["generator"] + " · " + generation["layer"],
        run=generation["optimizer"] + " · " + generation["init"])
    rates = summary.assign(target=summary["generator"] + " · " + summary["layer"],
                           run=summary["optimizer"] + " · " + summary["init"])
    targets = list(dict.fromkeys(table["target"]))
    run_labels = list(dict.fromkeys(table["run"]))
    common = {"x": "run", "order": run_labels, "hue": "run", "hue_order": run_labels,
              "palette": _colors(run_labels), "legend": False}
    succeeded = table[table["success"]]
    with pdf_pages(path) as pages:
        figure, axes = _target_panels(targets, len(run_labels))
        for axis, target in zip(axes.flat, targets):
            in_target = succeeded[succeeded["target"] == target]
            sns.boxplot(data=in_target, y="iterations_to_success", ax=axis, showfliers=False,
                        fill=False, **common)
            sns.stripplot(data=in_target, y="iterations_to_success", ax=axis, size=2.5,
                          alpha=0.6, **common)
            for row in rates[rates["target"] == target].itertuples():
                axis.annotate(f"{row.success_rate:.0%}", (run_labels.index(row.run), 1),
                              xycoords=("data", "axes fraction"), xytext=(0, -3),
                              textcoords="offset points", ha="center", va="top",
                              rotation=90, fontsize=7)
            axis.set_ylim(0, in_target["iterations_to_success"].max() * 1.3 + 1
                          if len(in_target) else 1.0)
            _finish_target_panel(axis, target, "iterations to success")
        figure.suptitle("Iterations to success (successful metamers; label: success rate)")
        save_figure(figure, pages)

        figure, axes = _target_panels(targets, len(run_labels))
        for axis, target in zip(axes.flat, targets):
            in_target = table[table["target"] == target]
            sns.barplot(data=in_target, y="pixel_distance", estimator="median",
                        errorbar=("pi", 50), ax=axis, **common)
            starts = in_target.groupby("run")["initial_distance"].median()
            axis.scatter([run_labels.index(run) for run in starts.index], starts.to_numpy(),
                         marker="_", s=120, color="black", zorder=3, label="start (median)")
            _finish_target_panel(axis, target, "pixel distance to reference (L2)")
        axes.flat[0].legend(fontsize=7, loc="upper left")
        figure.suptitle("Median pixel distance of metamers (bar: IQR) and of their starts (—)")
        save_figure(figure, pages)


def _target_panels(targets: Sequence[str], runs_count: int) -> tuple[plt.Figure, np.ndarray]:
    columns = min(len(targets), MAX_PANEL_COLUMNS)
    rows = math.ceil(len(targets) / columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                                figsize=(columns * max(3.5, 0.3 * runs_count + 1.0),
                                         rows * 3.6))
    for axis in axes.flat[len(targets):]:
        axis.set_visible(False)
    return figure, axes


def _finish_target_panel(axis: plt.Axes, target: str, label: str) -> None:
    axis.set_title(target, fontsize=9)
    axis.set_xlabel("optimizer · init", fontsize=8)
    axis.set_ylabel(label, fontsize=8)
    axis.tick_params(axis="x", rotation=90, labelsize=7)
    axis.grid(alpha=0.3, axis="y")


# --- evaluation ----------------------------------------------------------------------------


def plot_representation_test(curves: pd.DataFrame, layers: Mapping[str, Sequence[str]],
                             path: Path, image_sets: Sequence[str] = ("metamer", "pixel_control")
                             ) -> None:
    """Mean Spearman correlation (top) and fraction passing (bottom) over each evaluator's
    layers in configured order, from ``analysis.representation_curves``; one page per
    (optimizer, init), one colour per generating (generator, layer), metamers solid (band: 95%
    bootstrap CI), pixel controls dashed."""
    with pdf_pages(path) as pages:
        for run in _conditions_in_order(curves, ("optimizer", "init")):
            optimizer, init = run["optimizer"], run["init"]
            in_run = curves[(curves["optimizer"] == optimizer) & (curves["init"] == init)]
            figure = _representation_page(in_run, layers, image_sets)
            figure.suptitle(f"Representation test · optimizer {optimizer} · init {init}")
            save_figure(figure, pages)


def _representation_page(curves: pd.DataFrame, layers: Mapping[str, Sequence[str]],
                         image_sets: Sequence[str]) -> plt.Figure:
    targets = _conditions_in_order(curves, ("generator", "layer"))
    colors = _condition_colors(targets, ("generator", "layer"))
    metrics = {"spearman": "mean Spearman r\n(metamer vs reference)",
               "passes": "fraction passing\n(the criterion's measures)"}
    figure, axes = plt.subplots(len(metrics), len(layers), squeeze=False, sharey="row",
                                figsize=(3.6 * len(layers) + 1.0, 5.6), layout="constrained")
    for column, (evaluator, evaluator_layers) in enumerate(layers.items()):
        for row, (metric, label) in enumerate(metrics.items()):
            axis = axes[row, column]
            panel = curves[(curves["evaluator"] == evaluator) & (curves["metric"] == metric)]
            for (image_set, generator, layer), curve in panel.groupby(
                    ["image_set", "generator", "layer"], sort=False):
                if image_set not in image_sets:
                    continue
                color = colors[f"{generator} · {layer}"]
                axis.plot(curve["depth"], curve["mean"], IMAGE_SET_STYLES[image_set],
                          color=color, marker="o", markersize=3)
                if image_set == "metamer":
                    axis.fill_between(curve["depth"], curve["ci_low"], curve["ci_high"],
                                      color=color, alpha=0.12, linewidth=0)
            axis.set_xticks(range(len(evaluator_layers)), evaluator_layers)
            axis.set_ylim(-0.05 if metric == "passes" else None, 1.05)
            axis.grid(alpha=0.3)
            if row == 0:
                axis.set_title(f"evaluator {evaluator}")
            else:
                axis.set_xlabel("evaluator layer (shallow → deep)")
            if column == 0:
                axis.set_ylabel(label)
    handles = [Line2D([], [], color=color, label=label) for label, color in colors.items()]
    handles += [Line2D([], [], color="black", linestyle=IMAGE_SET_STYLES[image_set],
                       label=image_set) for image_set in image_sets]
    figure.legend(handles=handles, loc="outside right center", fontsize=8,
                  title="generator · layer")
    return figure


def plot_rsa(rdms: Sequence[np.ndarray], points: Sequence[np.ndarray],
             conditions: Sequence[Mapping], rsa_scores: pd.DataFrame,
             reference_labels: np.ndarray, class_names: Sequence[str], evaluator: str,
             layer: str, path: Path) -> None:
    """RDMs of references and each condition's metamers at one evaluator layer (top), their
    2-D PCA coordinates coloured by class (middle), and the RSA correlations there with their
    permutation p-values (bottom); one page per (optimizer, init).

    ``rdms`` and ``points`` are ``analysis.representational_geometry``'s: the references first,
    then one per condition; ``rsa_scores`` are ``analysis.rsa_scores`` at that layer.
    """
    with pdf_pages(path) as pages:
        for (optimizer, init), indices in runs(conditions).items():
            run = rsa_scores[(rsa_scores["optimizer"] == optimizer)
                             & (rsa_scores["init"] == init)]
            figure = _rsa_page([rdms[0], *(rdms[index + 1] for index in indices)],
                               [points[0], *(points[index + 1] for index in indices)],
                               [conditions[index] for index in indices], run,
                               reference_labels, class_names)
            figure.suptitle(f"Representational similarity at {evaluator} · {layer} · "
                            f"optimizer {optimizer} · init {init}")
            save_figure(figure, pages)


def _rsa_page(rdms: Sequence[np.ndarray], points: Sequence[np.ndarray],
              conditions: Sequence[Mapping], rsa_scores: pd.DataFrame,
              reference_labels: np.ndarray, class_names: Sequence[str]) -> plt.Figure:
    order = np.argsort(reference_labels, kind="stable")
    matrices = [matrix[np.ix_(order, order)] for matrix in rdms]
    vmax = max(float(np.nanmax(matrix)) for matrix in matrices)
    titles = ["references"] + [condition_label(condition, ("generator", "layer"))
                               for condition in conditions]
    columns = len(titles)
    mosaic = [[f"rdm{column}" for column in range(columns)],
              [f"pca{column}" for column in range(columns)],
              ["rsa"] * columns]
    figure, axes = plt.subplot_mosaic(mosaic, figsize=(2.7 * columns + 1.6, 9.0),
                                      height_ratios=[1, 1, 0.9], layout="constrained")
    for column, (matrix, title) in enumerate(zip(matrices, titles)):
        axis = axes[f"rdm{column}"]
        image = axis.imshow(matrix, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    axes["rdm0"].set_ylabel("RDM (images sorted by class)", fontsize=8)
    figure.colorbar(image, ax=axes[f"rdm{columns - 1}"], label="1 - Pearson r", shrink=0.9)

    palette = sns.color_palette("tab10", len(class_names))
    colors = [palette[int(label) % len(palette)] for label in reference_labels]
    for column, title in enumerate(titles):
        axis = axes[f"pca{column}"]
        if column:
            for start, end in zip(points[0], points[column]):
                axis.plot(*np.stack([start, end]).T, color="lightgray", linewidth=0.6,
                          zorder=1)
            axis.scatter(*points[column].T, c=colors, marker="x", s=20, zorder=3)
        axis.scatter(*points[0].T, c=colors, marker="o", s=16, zorder=2,
                     alpha=0.5 if column else 1.0)
        axis.set_xlabel("PC 1 of references", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.sharex(axes["pca0"])
        axis.sharey(axes["pca0"])
    axes["pca0"].set_ylabel("PC 2 of references", fontsize=8)
    present = sorted({int(label) for label in reference_labels})
    handles = [Line2D([], [], marker="o", linestyle="", color=palette[label % len(palette)],
                      label=class_names[label]) for label in present]
    handles += [Line2D([], [], marker="o", linestyle="", color="black", label="reference"),
                Line2D([], [], marker="x", linestyle="", color="black", label="metamer")]
    axes[f"pca{columns - 1}"].legend(handles=handles, loc="center left", fontsize=7,
                                     bbox_to_anchor=(1.02, 0.5), title="class")
    _rsa_bars(axes["rsa"], rsa_scores, titles[1:])
    return figure


def _rsa_bars(axis: plt.Axes, rsa_scores: pd.DataFrame, conditions: Sequence[str]) -> None:
    """RSA per condition (``generator · layer`` labels, in order), one bar per image set,
    labelled with its permutation p-value."""
    rsa_rows = rsa_scores.assign(condition=[condition_label(row, ("generator", "layer"))
                                            for _, row in rsa_scores.iterrows()])
    image_sets = [name for name in IMAGE_SET_STYLES if name in set(rsa_rows["image_set"])]
    sns.barplot(data=rsa_rows, x="condition", y="mean", hue="image_set", hue_order=image_sets,
                order=conditions, ax=axis, palette="Set2")
    by_set = rsa_rows.set_index(["image_set", "condition"])["p_value"]
    for container, image_set in zip(axis.containers, image_sets):
        p_values = [by_set.get((image_set, condition), np.nan) for condition in conditions]
        axis.bar_label(container, labels=[f"p={p:.3f}" for p in p_values], fontsize=7,
                       padding=2)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylim(min(0, rsa_rows["mean"].min() - 0.1), 1.15)
    axis.set_ylabel("RSA with references\n(Spearman r of RDMs)")
    axis.set_xlabel("generator · layer")
    axis.legend(title="image set", fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))


def plot_agreement(table: pd.DataFrame, correlations: Mapping[str, float], path: Path,
                   image_sets: Sequence[str] = ("metamer", "pixel_control")) -> None:
    """Recognizability against the representation test (deepest layer) per condition and
    evaluator: the points of ``analysis.agreement_table`` (markers by ``image_sets``), and in
    the title the Pearson r of ``analysis.agreement_correlations`` over the metamer points and
    over every point drawn."""
    metamers = table[table["image_set"] == "metamer"]
    figure, axis = plt.subplots(figsize=(5.8, 4.6))
    sns.scatterplot(data=table, x="fraction_passing", y="recognizability", hue="evaluator",
                    style="image_set", style_order=list(image_sets), s=60, alpha=0.75, ax=axis)
    axis.plot([0, 1], [0, 1], color="lightgray", linestyle=":", zorder=0)
    axis.set_xlim(-0.05, 1.05)
    axis.set_ylim(-0.05, 1.05)
    axis.set_xlabel("fraction passing the representation test\n(evaluator's deepest layer)")
    axis.set_ylabel("recognizability (top-1 correct)")

    def text(value: float) -> str:
        return "undefined (constant)" if np.isnan(value) else f"{value:.2f}"

    axis.set_title(f"Agreement of the two tests: Pearson r = {text(correlations['metamer'])}\n"
                   f"(metamers, n = {len(metamers)}); all points: "
                   f"r = {text(correlations['all'])} "
                   f"(n = {len(table)})", fontsize=9)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save_figure(figure, path)
