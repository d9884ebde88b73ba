"""metamers.layout names the files the workflow writes, so benchmarks can find them in a run."""

from __future__ import annotations

import itertools

from snakemake_cli import REPO, planned_outputs, run_snakemake

from metamers import layout
from metamers.config import read_config_file


def test_layout_paths_are_the_default_runs_files(tmp_path):
    config = read_config_file(REPO / "config/config.yaml")
    planned = run_snakemake(tmp_path, "--configfile", str(REPO / "config/config.yaml"),
                            "--dry-run")
    assert planned.returncode == 0, planned.stderr
    outputs = {path for line in planned_outputs(planned.stdout) for path in line.split(", ")}

    generation = config["generation"]
    expected = {layout.REFERENCES.format(dataset=config["data"]["name"])}
    for generator, layers in generation["generators"].items():
        if generator not in config["models"]:
            continue  # a generator set: its members' files are named by the members
        expected.add(layout.MODEL_WEIGHTS.format(model=generator))
        expected.add(layout.MODEL_CARD.format(model=generator))
        for layer, optimizer, init in itertools.product(
                layers, generation["optimizers"], generation["inits"]):
            expected.add(layout.NULL.format(model=generator, layer=layer))
            expected.add(layout.DECODER.format(init=init, model=generator, layer=layer))
            expected.add(layout.METAMERS.format(generator=generator, layer=layer,
                                                optimizer=optimizer, init=init))
    assert expected <= outputs, sorted(expected - outputs)
