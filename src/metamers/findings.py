"""``findings.md``: the transfer answers in sentences, every number read from the tables.

Nothing here is a claim written by hand: each sentence is a template filled with a mean, its 95%
bootstrap CI and its counts from :func:`metamers.transfer.depth_contrasts`, and the zoo table is
printed as measured.
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
    "recognized": "Recognised (top-1 correct)",
    "passes": "Pass the representation test (each of the criterion's measures with the "
              "reference above its null threshold, at the evaluator's deepest layer; "
              "docs/criterion.md)",
    "transfers": "Transfer (pass that test and beat the pixel control)",
}
DEPTH_PHRASES = {"deepest": "Deepest generating layer of each generator",
                 "earliest": "Earliest generating layer of each generator"}
ZOO_COLUMNS = ["family", "style", "seed", "test_accuracy", "robust_accuracy", "attack"]


def _percent(row: pd.Series) -> str:
    return (f"{100 * row['mean']:.1f}% [95% CI {100 * row['ci_low']:.1f}-"
            f"{100 * row['ci_high']:.1f}%] of metamers of {row['generator_style']} generators "
            f"(n = {row['metamers']} metamers from {row['generators']} generator(s), "
            f"{row['pairs']} metamer-evaluator pairs")


def _style_order(style: str) -> tuple[bool, str]:
    return style != "standard", style


def _relation_line(rows: pd.DataFrame, relation: str) -> str | None:
    """One bullet: each generator style's mean, CI and counts, pixel control beside."""
    metamers = rows[rows["image_set"] == "metamer"]
    if metamers.empty:
        return None
    parts = []
    for style in sorted(metamers["generator_style"], key=_style_order):
        row = metamers[metamers["generator_style"] == style].iloc[0]
        control = rows[(rows["image_set"] == "pixel_control")
                       & (rows["generator_style"] == style)]
        control_text = (f"; pixel controls {100 * control['mean'].iloc[0]:.1f}%"
                        if not control.empty else "")
        parts.append(f"{_percent(row)}{control_text})")
    return f"- by {RELATION_PHRASES[relation]}: " + " vs ".join(parts) + "."


def _zoo_markdown(zoo: pd.DataFrame) -> str:
    table = zoo.reindex(columns=ZOO_COLUMNS)
    table["seed"] = [None if pd.isna(seed) else int(seed) for seed in table["seed"]]
    table = table.astype(object).where(table.notna(), None)
    return table.to_markdown(floatfmt=".3f", missingval="")


def findings_markdown(contrasts: pd.DataFrame, zoo: pd.DataFrame) -> str:
    """The findings document: the zoo, then per (optimizer, init), depth and metric, one line
    per evaluator relation comparing generator training styles."""
    lines = ["# Findings", "",
             ("Written by the pipeline from `results/transfer_summary.parquet` and the model "
              "cards; every number is measured (means over metamers, 95% bootstrap CIs over "
              "metamers). Regenerate with `snakemake results/findings.md`."), "",
             "## Zoo", "", _zoo_markdown(zoo), ""]
    for (optimizer, init), run in contrasts.groupby(["optimizer", "init"], sort=False):
        lines += [f"## Optimizer {optimizer}, init {init}", ""]
        for depth in ("deepest", "earliest"):
            at_depth = run[run["depth"] == depth]
            if at_depth.empty:
                continue
            lines += [f"### {DEPTH_PHRASES[depth]}", ""]
            for metric, metric_phrase in METRIC_PHRASES.items():
                relation_lines = [_relation_line(at_depth[(at_depth["metric"] == metric)
                                                          & (at_depth["relation"] == relation)],
                                                 relation)
                                  for relation in RELATION_PHRASES]
                lines += [f"{metric_phrase}:", "",
                          *[line for line in relation_lines if line], ""]
    return "\n".join(lines)


def write_findings(path: Path, contrasts: pd.DataFrame, zoo: pd.DataFrame,
                   sections: Sequence[str] = ()) -> None:
    """Write ``findings.md`` atomically, with further markdown ``sections`` at its end."""
    with atomic_path(path) as partial:
        Path(partial).write_text("\n".join([findings_markdown(contrasts, zoo), *sections]))
