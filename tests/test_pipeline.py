"""End-to-end: the whole pipeline on config/test.yaml in a temporary directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_cli import planned_outputs, run_snakemake

from metamers import store

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "config" / "test.yaml"
FIGURES = ["transfer_matrix", "transfer_architecture", "transfer_seeds", "convergence",
           "metamer_grid", "generation_study", "representation_test", "rsa", "agreement"]
TABLES = ["scores", "summary", "reference_scores", "generation_study", "transfer_summary", "zoo"]
_GENERATION = yaml.safe_load(TEST_CONFIG.read_text())["generation"]
CONDITIONS = (sum(len(layers) for layers in _GENERATION["generators"].values())
              * len(_GENERATION["optimizers"]) * len(_GENERATION["inits"]))


def snakemake(workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "--cores", "2", *arguments)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    """Run every target of the test config once; later tests read what it made."""
    workdir = tmp_path_factory.mktemp("pipeline")
    completed = snakemake(workdir, "--configfile", str(TEST_CONFIG))
    assert completed.returncode == 0, completed.stderr[-5000:]
    return workdir


def test_every_target_exists(pipeline_run):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for name in config["models"]:
        assert (pipeline_run / f"resources/models/{name}.pt").stat().st_size > 0
    for figure in FIGURES:
        pdf = pipeline_run / f"results/{figure}.pdf"
        assert pdf.read_bytes()[:4] == b"%PDF", figure
    for table in TABLES:
        assert len(pd.read_parquet(pipeline_run / f"results/{table}.parquet")) > 0
    assert (pipeline_run / "results/findings.md").read_text().startswith("# Findings")


def test_models_beat_chance(pipeline_run):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for name, spec in config["models"].items():
        card = store.read_json(pipeline_run / f"resources/models/{name}.json")
        assert card["test_accuracy"] > 0.6 > 3 * card["chance_accuracy"], name
        assert set(spec["layers"]) <= set(card["layers"])
    robust = store.read_json(pipeline_run / "resources/models/cnn_robust_a.json")
    assert 0.1 < robust["robust_accuracy"] < robust["test_accuracy"]
    assert robust["attack"] == {"norm": "linf", "epsilon": 0.1, "steps": 5, "images": 200}


def test_transfer_answers_group_every_relation_of_the_zoo(pipeline_run):
    summary = pd.read_parquet(pipeline_run / "results/transfer_summary.parquet")
    relations = set(summary.loc[summary["generator"] == "cnn_a", "relation"])
    assert relations == {"same model", "other seed", "other training", "other architecture"}
    assert set(summary["generator_style"]) == {"standard", "adversarial linf"}
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    zoo = pd.read_parquet(pipeline_run / "results/zoo.parquet").set_index("model")
    assert zoo.loc["mlp_a", "family"] == "mlp" and zoo.loc["cnn_b", "seed"] == 1
    findings = (pipeline_run / "results/findings.md").read_text()
    mean = summary[(summary["generator"] == "cnn_robust_a")
                   & (summary["relation"] == "other architecture")
                   & (summary["metric"] == "recognized") & (summary["image_set"] == "metamer")
                   & (summary["optimizer"] == "adam")]["mean"].item()
    assert f"| {100 * mean:.1f}% [" in findings


def test_metamer_files_hold_valid_images(pipeline_run):
    paths = sorted((pipeline_run / "results/metamers").rglob("*.h5"))
    assert len(paths) == 6
    for path in paths:
        content = store.read_metamers(path)
        metamers = content["metamers"]
        assert metamers.dtype == np.float32 and metamers.shape == (20, 1, 28, 28)
        assert metamers.min() >= 0.0 and metamers.max() <= 1.0
        assert content["success"].dtype == bool
        never = content["iterations_to_success"] == -1
        np.testing.assert_array_equal(never, ~content["success"])
        assert content["success"].mean() >= 0.9
        assert np.all(content["pixel_distance"] > 0.5), "metamers must differ from references"
        with h5py.File(path) as handle:
            for key in ("seed", "optimizer", "init", "versions", "wall_time_s"):
                assert key in handle.attrs


def test_scores_are_in_range(pipeline_run):
    scores = pd.read_parquet(pipeline_run / "results/scores.parquet")
    expected_columns = {"generator", "layer", "optimizer", "init", "metamer", "evaluator",
                        "evaluator_layer", "metric", "value", "image_set"}
    assert expected_columns <= set(scores.columns)
    by_metric = scores.groupby("metric")["value"]
    assert by_metric.min()[["pearson", "spearman"]].min() >= -1.0 - 1e-9
    assert by_metric.max()[["pearson", "spearman"]].max() <= 1.0 + 1e-9
    assert set(scores.loc[scores.metric == "top1_correct", "value"].unique()) <= {0.0, 1.0}
    assert scores.loc[scores.metric == "pixel_distance", "value"].min() >= 0
    percentiles = scores.loc[scores.metric == "spearman_percentile", "value"].dropna()
    assert percentiles.between(0, 100).all()


def test_references_are_recognised(pipeline_run):
    references = pd.read_parquet(pipeline_run / "results/reference_scores.parquet")
    recognizability = references[references.metric == "top1_correct"].groupby(
        "evaluator")["value"].mean()
    assert (recognizability > 0.6).all()


def test_metamers_beat_their_pixel_control_at_the_generating_layer(pipeline_run):
    summary = pd.read_parquet(pipeline_run / "results/summary.parquet")
    own = summary[(summary.generator == "cnn_a") & (summary.evaluator == "cnn_a")
                  & (summary.evaluator_layer == "relu2") & (summary.metric == "spearman")]
    mean = own.set_index(["optimizer", "image_set"])["mean"]
    for optimizer in ("adam", "sgd"):
        assert mean[(optimizer, "metamer")] > mean[(optimizer, "pixel_control")]


def test_editing_one_learning_rate_reruns_only_that_optimizer(pipeline_run, tmp_path):
    unchanged = snakemake(pipeline_run, "--configfile", str(TEST_CONFIG), "--dry-run")
    assert unchanged.returncode == 0, unchanged.stderr
    assert planned_outputs(unchanged.stdout) == []
    config = yaml.safe_load(TEST_CONFIG.read_text())
    reordered_config = tmp_path / "reordered.yaml"  # same values, keys sorted
    reordered_config.write_text(yaml.safe_dump(config, sort_keys=True))
    reordered = snakemake(pipeline_run, "--configfile", str(reordered_config), "--dry-run")
    assert planned_outputs(reordered.stdout) == [], "reordering keys is not a change"
    config["optimizers"]["sgd"]["kwargs"]["lr"] = 3.0
    edited_config = tmp_path / "edited.yaml"
    edited_config.write_text(yaml.safe_dump(config))
    edited = snakemake(pipeline_run, "--configfile", str(edited_config), "--dry-run")
    assert edited.returncode == 0, edited.stderr
    outputs = " ".join(planned_outputs(edited.stdout))
    assert "results/metamers/cnn_a/relu2/sgd/uniform.h5" in outputs
    assert "results/metamers/pair/deep/sgd/uniform.h5" in outputs
    assert "/adam/" not in outputs
    assert "resources/models" not in outputs and "results/nulls" not in outputs


def test_the_report_holds_every_figure_with_its_caption(pipeline_run):
    completed = snakemake(pipeline_run, "--configfile", str(TEST_CONFIG), "--report",
                          "results/report.html")
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = (pipeline_run / "results/report.html").read_text(errors="replace")
    for figure in FIGURES:
        assert f"{figure}.pdf" in report, figure
    assert "findings.md" in report
    assert "Transfer by how the evaluator relates to the generator" in report


def _planned_after_edit(pipeline_run: Path, tmp_path: Path, edit) -> list[str]:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    edit(config)
    edited_config = tmp_path / "edited.yaml"
    edited_config.write_text(yaml.safe_dump(config))
    planned = snakemake(pipeline_run, "--configfile", str(edited_config), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    return planned_outputs(planned.stdout)


def test_adding_an_evaluator_regenerates_no_metamer(pipeline_run, tmp_path):
    def add_evaluator(config):
        config["models"]["mlp_b"] = {**config["models"]["mlp_a"], "seed": 1}

    outputs = " ".join(_planned_after_edit(pipeline_run, tmp_path, add_evaluator))
    assert "resources/models/mlp_b.pt" in outputs
    assert "results/activations/cnn_a/relu2/adam/uniform.h5" in outputs
    assert "results/scores.parquet" in outputs and "results/transfer_matrix.pdf" in outputs
    assert "results/findings.md" in outputs
    assert "results/metamers" not in outputs
    # the new evaluator's layers get their nulls; no other null is rebuilt
    assert set(re.findall(r"results/nulls[^/]*/([^/]+)/", outputs)) == {"mlp_b"}
    assert "resources/models/cnn_a" not in outputs


def test_adding_an_evaluation_layer_reruns_only_evaluation(pipeline_run, tmp_path):
    """Training and generation do not read the layers a model is scored at."""
    def add_layer(config):
        config["models"]["cnn_a"]["layers"].append("pool1")

    outputs = " ".join(_planned_after_edit(pipeline_run, tmp_path, add_layer))
    assert "results/activations/cnn_a/relu2/adam/uniform.h5" in outputs
    assert "results/activations/references.h5" in outputs
    assert "results/scores.parquet" in outputs and "results/findings.md" in outputs
    assert "resources/models" not in outputs and "results/metamers" not in outputs
    # the new layer gets its null; no other null is rebuilt
    assert set(re.findall(r"results/nulls[^/]*/([^ ,]+)\.h5", outputs)) == {"cnn_a/pool1"}


def test_editing_a_plot_option_reruns_only_plots(pipeline_run, tmp_path):
    def more_images(config):
        config["plots"] = {"grid_per_condition": 2}

    outputs = _planned_after_edit(pipeline_run, tmp_path, more_images)
    assert outputs and all(output.startswith("results/") and output.endswith(".pdf")
                           for output in " ".join(outputs).replace(",", " ").split()), outputs


def drop_snr(criterion):
    criterion.update(measures=["spearman", "pearson"])


@pytest.mark.parametrize("edit", [
    drop_snr,
    lambda criterion: criterion.update(threshold="max"),
    lambda criterion: criterion["null_distribution"].update(pairs=6000),
])
def test_a_changed_criterion_reruns_generation_and_after_but_not_before(pipeline_run, tmp_path,
                                                                       edit):
    outputs = " ".join(_planned_after_edit(pipeline_run, tmp_path,
                                           lambda config: edit(config["criterion"])))
    for condition in ("cnn_a/relu2/adam/uniform", "pair/deep/sgd/uniform"):
        for kind, extension in (("metamers", "h5"), ("activations", "h5"),
                                ("scores", "parquet")):
            assert f"results/{kind}/{condition}.{extension}" in outputs
    for final in ("results/generation_summary.parquet", "results/scores.parquet",
                  "results/transfer_matrix.pdf", "results/findings.md"):
        assert final in outputs
    assert "resources/models" not in outputs and "resources/references" not in outputs
    assert "results/activations/references.h5" not in outputs
    # the nulls hold thresholds and pairs, not which measures decide
    assert ("results/nulls/" in outputs) == (edit is not drop_snr)


def _with_learned_start(config: dict) -> None:
    config["inits"]["learned"] = {"kind": "decoder", "train_images": 2000, "epochs": 3,
                                  "batch_size": 32, "hidden_units": 64}
    config["generation"]["inits"].append("learned")


def test_a_learned_start_trains_one_decoder_per_member_layer(pipeline_run, tmp_path):
    """Adding a ``decoder`` init trains a decoder at each generating (model, layer), a joint
    generator's members included, and generates only its own conditions."""
    outputs = " ".join(_planned_after_edit(pipeline_run, tmp_path, _with_learned_start))
    decoders = set(re.findall(r"results/decoders/learned/([^ ,]+)\.pt", outputs))
    assert decoders == {"cnn_a/relu2", "cnn_robust_a/fc_relu", "cnn_a/fc_relu", "cnn_b/fc_relu"}
    assert "results/metamers/pair/deep/sgd/learned.h5" in outputs
    assert "results/starts/learned" not in outputs  # its starts are scored per condition
    assert "/uniform." not in outputs and "resources/models" not in outputs


def test_a_learned_start_runs_from_decoder_to_scores(pipeline_run, tmp_path):
    """In a copy of the finished run (later tests compare the run's files with others)."""
    run = tmp_path / "run"
    shutil.copytree(pipeline_run, run, symlinks=True)
    config = yaml.safe_load(TEST_CONFIG.read_text())
    _with_learned_start(config)
    edited_config = tmp_path / "learned.yaml"
    edited_config.write_text(yaml.safe_dump(config))
    target = "results/scores/cnn_a/relu2/adam/learned.parquet"
    completed = snakemake(run, target, "--configfile", str(edited_config))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "rule train_model" not in completed.stdout  # the copy's models are up to date
    metamers = store.read_metamers(run / "results/metamers/cnn_a/relu2/adam/learned.h5")
    uniform = store.read_metamers(run / "results/metamers/cnn_a/relu2/adam/uniform.h5")
    # decoded starts lie nearer their references than uniform noise does
    assert np.median(metamers["initial_distance"]) < 0.6 * np.median(uniform["initial_distance"])
    scores = store.read_table(run / target)
    assert set(scores["image_set"]) == {"metamer", "pixel_control", "initial"}
    assert set(scores["init"]) == {"learned"}


def test_bad_config_key_stops_with_its_name(tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["generation"]["max_iteration"] = 10
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text(yaml.safe_dump(config))
    completed = snakemake(tmp_path, "--configfile", str(bad_config), "--dry-run")
    assert completed.returncode != 0
    assert "max_iteration" in completed.stdout + completed.stderr


def test_rerunning_a_generation_job_is_bit_identical(pipeline_run):
    """Runs last: it rewrites one metamer file (same content, newer time stamp)."""
    target = "results/metamers/cnn_a/relu2/adam/uniform.h5"
    before = store.read_metamers(pipeline_run / target)
    completed = snakemake(pipeline_run, "--configfile", str(TEST_CONFIG), "--force", target)
    assert completed.returncode == 0, completed.stderr[-3000:]
    after = store.read_metamers(pipeline_run / target)
    for name in ("metamers", "initial_images", "loss", "iterations_to_success"):
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_the_generation_study_needs_no_evaluation(tmp_path):
    planned = snakemake(tmp_path, "results/generation_summary.parquet", "--configfile",
                        str(TEST_CONFIG), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    outputs = " ".join(planned_outputs(planned.stdout))
    assert "results/metamers/cnn_a/relu2/sgd/uniform.h5" in outputs
    assert "results/activations" not in outputs and "results/scores" not in outputs


def test_the_slurm_profile_plans_the_whole_workflow(tmp_path):
    """The cluster profile parses and plans every rule (submission itself needs a cluster);
    no --cores, as on a cluster."""
    planned = run_snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"),
                            "--configfile", str(TEST_CONFIG), "--dry-run")
    assert planned.returncode == 0, planned.stderr + planned.stdout
    for rule in ("train_model", "generate_metamers", "plot_transfer_matrix"):
        assert f"rule {rule}:" in planned.stdout
    # each condition's activations and scores: one job (one submission), not two
    assert planned.stdout.count("rule evaluate_condition:") == CONDITIONS


def _cluster_is_up() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def slurm_cluster():
    """A reachable SLURM cluster: the one configured here, or a local single-node one started
    with scripts/start_local_slurm.sh (needs root on Debian, as in CI) and stopped afterwards
    (a slurm.conf left without its controller slows every later Snakemake start by 9 s)."""
    script = REPO / "scripts" / "start_local_slurm.sh"
    started_here = not _cluster_is_up()
    if started_here:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("no SLURM cluster, and starting the local one needs root on Debian: "
                        "run `sudo bash scripts/start_local_slurm.sh`")
        started = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                                 check=False)
        assert started.returncode == 0, started.stdout + started.stderr
    assert _cluster_is_up()
    yield
    if started_here:
        subprocess.run(["bash", str(script), "stop"], capture_output=True, check=False)


def _dataset_hashes(root: Path) -> dict[str, dict[str, str]]:
    """Hashes of every HDF5 dataset under ``root``, by file (not the files' metadata)."""
    return {str(path.relative_to(root)): store.dataset_hashes(path)
            for path in sorted(root.rglob("*.h5"))}


def test_a_second_run_on_one_core_is_bit_identical(pipeline_run, tmp_path):
    """Same config and seed, separate directory, --cores 1 against 2: every HDF5 dataset and
    Parquet table equal (every job runs torch at one thread)."""
    completed = run_snakemake(tmp_path, "--cores", "1", "--configfile", str(TEST_CONFIG))
    assert completed.returncode == 0, completed.stderr[-5000:]
    for folder in ("resources", "results"):
        assert _dataset_hashes(tmp_path / folder) == _dataset_hashes(pipeline_run / folder)
    tables = sorted(path.relative_to(pipeline_run)
                    for path in (pipeline_run / "results").rglob("*.parquet"))
    assert len(tables) > 10
    for table in tables:  # wall times are measurements, not results
        first, second = (pd.read_parquet(root / table).filter(regex="^(?!wall_time)")
                         for root in (tmp_path, pipeline_run))
        pd.testing.assert_frame_equal(first, second)


def test_the_slurm_profile_runs_every_job_through_sbatch(pipeline_run, slurm_cluster,
                                                         tmp_path):
    """The test config through profiles/slurm on a real (local) cluster: every job is
    submitted with sbatch, and the outputs equal the local run's."""
    completed = run_snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"),
                              "--slurm-init-seconds-before-status-checks", "5",
                              "--configfile", str(TEST_CONFIG))
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-5000:]
    job_ids = re.findall(r"SLURM jobid (\d+)", log)
    local_jobs = len(re.findall(r"^localrule ", log, flags=re.MULTILINE))
    submitted = len(re.findall(r"^rule ", log, flags=re.MULTILINE))
    # each condition's activations and scores: one submission
    assert len(re.findall(r"^rule evaluate_condition:", log, flags=re.MULTILINE)) == CONDITIONS
    assert submitted > 20 and len(set(job_ids)) == submitted, (submitted, job_ids)
    assert local_jobs >= 1  # rule all
    for folder in ("results/metamers", "results/nulls", "resources/references"):
        assert _dataset_hashes(tmp_path / folder) == _dataset_hashes(pipeline_run / folder)
    for table in ("scores", "transfer_summary"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / f"results/{table}.parquet"),
                                      pd.read_parquet(pipeline_run / f"results/{table}.parquet"))
