"""config/imagenet.yaml plans its whole DAG without weights or images at hand."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parents[1]
IMAGENET_CONFIG = REPO / "config" / "imagenet.yaml"


def test_imagenet_config_dry_runs_without_weights_or_data(tmp_path):
    config = yaml.safe_load(IMAGENET_CONFIG.read_text())
    assert not Path(config["data"]["root"]).exists()  # the placeholder: never read by a dry run
    environment = {**os.environ, "TORCH_HOME": str(tmp_path / "empty_torch_home")}
    workdir = tmp_path / "work"
    completed = run_snakemake(workdir, "--cores", "2", "--dry-run", "--configfile",
                              str(IMAGENET_CONFIG), env=environment)
    assert completed.returncode == 0, completed.stderr[-5000:]
    output = completed.stdout + completed.stderr
    job_counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE))
    assert int(job_counts["fetch_model"]) == len(config["models"])
    generation = config["generation"]
    conditions = sum(len(layers) for layers in generation["generators"].values())
    assert int(job_counts["generate_metamers"]) == (
        conditions * len(generation["optimizers"]) * len(generation["inits"]))
    assert not (tmp_path / "empty_torch_home").exists()
    assert {path.name for path in workdir.iterdir()} == {".snakemake"}
