"""``findings.md``: the transfer answers as tables, every number read from the summaries.

Nothing here is a claim written by hand: each cell is a mean, its 95% bootstrap CI and its
pixel control from :func:`metamers.transfer.depth_contrasts`, and the zoo table is printed as
measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from metamers.store import atomic_path

RELATION_PHRASES = {
    "same model": "the generator itself",
    "other seed": "other seeds (same architecture and training)",
    "other training": "the same architecture trained otherwise",
    "other architecture": "other architectures",
}
METRIC_PHRASES = {
    "recognized": "recognised",
    "passes": "passes test",
    "transfers": "transfers",
}
COLUMN_NOTE = (
    "Columns: *recognised*, top-1 correct at the evaluator's output; *passes test*, the "
    "representation test (each of the criterion's measures between metamer and reference above "
    "its null threshold, at the evaluator's deepest layer; docs/criterion.md); *transfers*, "
    "passes that test and beats the pixel control. *metamers*, *generators*, *pairs*: the "
    "metamers, generators and (metamer, evaluator) pairs behind each row.")
DEPTH_PHRASES = {"deepest": "Deepest generating layer of each generator",
                 "earliest": "Earliest generating layer of each generator"}
ZOO_COLUMNS = ["family", "style", "seed", "test_accuracy", "robust_accuracy", "attack"]


def _style_order(style: str) -> tuple[bool, str]:
    return style != "standard", style


def _cell(rows: pd.DataFrame, metric: str, style: str) -> tuple[str, pd.Series | None]:
    """``mean [CI]`` of the metamers for one metric and generator style, ``(pc ...)`` beside
    where the pixel controls were scored; and the metamers' row (for its counts)."""
    chosen = rows[(rows["metric"] == metric) & (rows["generator_style"] == style)]
    metamer = chosen[chosen["image_set"] == "metamer"]
    if metamer.empty:
        return "", None
    row = metamer.iloc[0]
    text = (f"{100 * row['mean']:.1f}% [{100 * row['ci_low']:.1f}-"
            f"{100 * row['ci_high']:.1f}]")
    control = chosen[chosen["image_set"] == "pixel_control"]
    if not control.empty:
        text += f" (pc {100 * control['mean'].iloc[0]:.1f}%)"
    return text, row


def _depth_table(at_depth: pd.DataFrame) -> list[str]:
    """One row per (evaluator relation, generator style): counts, then each metric's mean with
    its 95% CI and the pixel controls' mean."""
    lines = ["| relation | generator style | metamers | generators | pairs | "
             + " | ".join(METRIC_PHRASES.values()) + " |",
             "|---|---|---|---|---|" + "---|" * len(METRIC_PHRASES)]
    for relation, phrase in RELATION_PHRASES.items():
        rows = at_depth[at_depth["relation"] == relation]
        for style in sorted(set(rows["generator_style"]), key=_style_order):
            cells = [_cell(rows, metric, style) for metric in METRIC_PHRASES]
            counted = next((row for _, row in cells if row is not None), None)
            if counted is None:
                continue
            lines.append(f"| {phrase} | {style} | {counted['metamers']} | "
                         f"{counted['generators']} | {counted['pairs']} | "
                         + " | ".join(text for text, _ in cells) + " |")
    return lines


def _zoo_markdown(zoo: pd.DataFrame) -> str:
    table = zoo.reindex(columns=ZOO_COLUMNS)
    table["seed"] = [None if pd.isna(seed) else int(seed) for seed in table["seed"]]
    table = table.astype(object).where(table.notna(), None)
    return table.to_markdown(floatfmt=".3f", missingval="")


def findings_markdown(contrasts: pd.DataFrame, zoo: pd.DataFrame) -> str:
    """The findings document: the zoo, then per (optimizer, init) and depth one table comparing
    generator training styles under each evaluator relation."""
    lines = ["# Findings", "",
             ("Written by the pipeline from `results/transfer_summary.parquet` and the model "
              "cards; every number is measured: means over metamers with 95% bootstrap CIs over "
              "metamers in brackets; pc: the pixel controls (the reference plus noise at the "
              "metamer's distance). Regenerate with `snakemake results/findings.md`. Metamers "
              "stop when they pass the configured criterion (docs/criterion.md); how these "
              "answers change when they stop elsewhere: docs/sensitivity.md."), "",
             "## Zoo", "", _zoo_markdown(zoo), "", COLUMN_NOTE, ""]
    for (optimizer, init), run in contrasts.groupby(["optimizer", "init"], sort=False):
        lines += [f"## Optimizer {optimizer}, init {init}", ""]
        for depth in ("deepest", "earliest"):
            at_depth = run[run["depth"] == depth]
            if at_depth.empty:
                continue
            lines += [f"### {DEPTH_PHRASES[depth]}", "", *_depth_table(at_depth), ""]
    return "\n".join(lines)


def write_findings(path: Path, contrasts: pd.DataFrame, zoo: pd.DataFrame,
                   sections: Sequence[str] = ()) -> None:
    """Write ``findings.md`` atomically, with further markdown ``sections`` at its end."""
    with atomic_path(path) as partial:
        Path(partial).write_text("\n".join([findings_markdown(contrasts, zoo), *sections]))
