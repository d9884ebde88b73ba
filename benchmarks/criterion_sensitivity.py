"""Do the transfer answers depend on where metamers stop? Issue 20, item 5.

On a finished run (``--run-dir``, the default config), each variant regenerates every metamer
with another stopping rule and evaluates it exactly as the run did: the run's criterion (its
representation test), evaluators and null files. Only the metamers differ.

| variant | metamers stop |
|---|---|
| `strict` | the run itself: when they pass the config's criterion (default: Feather et al.'s) |
| `lenient` | when they pass `config/lenient.yaml` (Spearman above the 99th percentile of the references' null, class match): the pipeline's old rule |
| `run_on` | never: every metamer runs the whole budget (`generation.stop_on_success: false`), to a lower loss |
| `step_x3` | as `strict`, but generation's optimisers take 3x their step (`lr`): the same rule reached in bigger steps |
| `step_x3_check1` | as `step_x3`, checked every iteration (`generation.check_every: 1`): less overshoot past the rule |

Each variant runs in a sibling folder ``RUN.<variant>``: the run's code, config, models,
references and null files copied (times kept), then two Snakemake calls with
``--rerun-triggers mtime`` (so only missing files are made): generation under the variant's
overlay, then the evaluation under the run's own config. ``lenient`` builds its references'
nulls for generation and then puts the run's nulls back. A variant whose folder already holds
``results/scores.parquet`` is not run again.

    PYTHONPATH=src python benchmarks/criterion_sensitivity.py --run-dir RUN --cores 2

Prints, and writes to ``RUN/sensitivity.md``: per variant, success at the generating layer by
its own rule and by the run's criterion, iterations, loss and pixel distance at the stop; then
the findings' contrasts (recognised, passes test, transfers; metamers only) side by side, a
``*`` marking a variant's mean whose 95% CI is disjoint from the strict one's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from metamers import layout, sensitivity, store
from metamers.config import SCHEMA_PATH, member_layers, validate_config
from metamers.criteria import Criterion, Thresholds

VARIANTS = ["lenient", "run_on", "step_x3", "step_x3_check1"]
STEP_FACTOR = 3


def overlays(config: dict) -> dict[str, str | dict]:
    """Each variant's overlay on the run's config: a file of the run, or a config slice."""
    larger_step = {"optimizers": {
        name: {"kwargs": {"lr": STEP_FACTOR * config["optimizers"][name]["kwargs"]["lr"]}}
        for name in config["generation"]["optimizers"]}}
    return {"lenient": "config/lenient.yaml",
            "run_on": {"generation": {"stop_on_success": False}},
            "step_x3": larger_step,
            "step_x3_check1": {**larger_step, "generation": {"check_every": 1}}}


def read_config(run: Path) -> dict:
    config = yaml.safe_load((run / "config/config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)
    return config


def snakemake(folder: Path, cores: int, configfiles: list[str], target: str) -> None:
    command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--rerun-triggers",
               "mtime", "--configfile", *configfiles, "--", target]
    print("$", " ".join(command[1:]), f"  (in {folder})", flush=True)
    environment = {**os.environ, "PYTHONPATH": str(folder / "src")}  # the run's own code
    subprocess.run(command, cwd=folder, env=environment, check=True)


def copy_run(run: Path, folder: Path) -> None:
    """The run without what a variant remakes (metamers and all after them; the decoders, which
    no criterion changes, are kept); times kept."""
    def ignored(directory: str, names: list[str]) -> list[str]:
        if Path(directory) == run:
            return [name for name in names if name in (".snakemake", "logs")]
        if Path(directory) == run / "results":
            return [name for name in names if name not in ("nulls", "activations", "decoders")]
        if Path(directory) == run / "results/activations":
            return [name for name in names if name != "references.h5"]
        return []

    shutil.copytree(run, folder, ignore=ignored, symlinks=True)


def make_variant(run: Path, variant: str, overlay: str | dict, cores: int) -> Path:
    folder = run.with_name(f"{run.name}.{variant}")
    if (folder / "results/scores.parquet").exists():
        print(f"{variant}: {folder} is done; not run again", flush=True)
        return folder
    if not folder.exists():
        copy_run(run, folder)
    if isinstance(overlay, dict):
        (folder / f"config/{variant}.yaml").write_text(yaml.safe_dump(overlay))
        overlay = f"config/{variant}.yaml"
    nulls, kept = folder / "results/nulls", folder / "results/nulls.run"
    if variant == "lenient" and not kept.exists():
        nulls.rename(kept)
    snakemake(folder, cores, ["config/config.yaml", overlay],
              "results/generation_study.parquet")
    if kept.exists():
        shutil.rmtree(nulls)
        kept.rename(nulls)
    snakemake(folder, cores, ["config/config.yaml"], "results/transfer_summary.parquet")
    return folder


def conditions(config: dict) -> list[tuple[str, str, str, str]]:
    generation = config["generation"]
    return [(generator, layer, optimizer, init)
            for generator, layers in generation["generators"].items() for layer in layers
            for optimizer in generation["optimizers"] for init in generation["inits"]]


def generation_table(run: Path, folders: dict[str, Path], config: dict) -> pd.DataFrame:
    """Per variant and generating layer: its metamers judged by the run's criterion and
    nulls at the generating layer (``metamers.sensitivity.generation_row``)."""
    criterion = Criterion.from_config(config["criterion"])
    rows = []
    for generator, layer, optimizer, init in conditions(config):
        members = member_layers(config["generator_sets"], generator, layer)
        thresholds = [Thresholds.of(criterion, store.read_null(
            run / layout.NULL.format(model=model, layer=member_layer)))
                      for model, member_layer in members.items()]
        for variant, folder in folders.items():
            path = folder / layout.METAMERS.format(generator=generator, layer=layer,
                                                   optimizer=optimizer, init=init)
            rows.append({"variant": variant, "generator": generator, "layer": layer,
                         "optimizer": optimizer, "init": init,
                         **sensitivity.generation_row(store.read_metamers(path), thresholds)})
    return pd.DataFrame(rows)


def report(generation: pd.DataFrame, compared: pd.DataFrame, variants: list[str]) -> str:
    per_variant = (generation.groupby(["variant", "optimizer"], sort=False)
                   [["own_success", "judged_success", "iterations_run", "loss_at_stop",
                     "pixel_distance"]].median())
    lines = ["## Where metamers stop: generation", "",
             ("Medians over generating layers of each layer's success rate and medians; "
              "`judged_success`: by the run's criterion at the generating layer."), "",
             per_variant.to_markdown(floatfmt=".3f"), "",
             "## Where metamers stop: the findings' contrasts", "",
             "Means in % over metamers; `*`: its 95% CI is disjoint from the strict one's.", "",
             *sensitivity.contrast_markdown(compared, variants)]
    for variant, (changed, cells) in sensitivity.changed_cells(compared, variants).items():
        lines.append(f"- {variant}: {changed} of {cells} cells differ from strict beyond their "
                     "95% CIs.")
    lines += ["", "## Per generating layer", "",
              generation.to_markdown(index=False, floatfmt=".3f")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    run = args.run_dir.resolve()
    config = read_config(run)
    overlay = overlays(config)
    folders = {"strict": run, **{variant: make_variant(run, variant, overlay[variant], args.cores)
                                 for variant in args.variants}}
    contrasts = {variant: sensitivity.run_contrasts(
        store.read_table(folder / "results/scores.parquet"), config)
        for variant, folder in folders.items()}
    text = report(generation_table(run, folders, config),
                  sensitivity.compare_contrasts(contrasts), list(folders))
    (run / "sensitivity.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
