"""Jointly optimised metamers: seeded set construction, held-out evaluation, the summary's
counts, the findings table, the figure, and the pipeline's plan for the overlay."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_cli import run_snakemake

from metamers import joint, joint_plots, stages, store
from metamers.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
POOL = {"a": {"early": "a1", "late": "a2"}, "b": {"early": "b1", "late": "b2"},
        "c": {"early": "c1", "late": "c2"}, "d": {"early": "d1", "late": "d2"}}
EVALUATORS = ["a", "b", "c", "d", "robust", "seed"]
DEEPEST = {name: f"{name}_deep" for name in EVALUATORS}
CONFIG = {
    "models": {name: {"source": "local"} for name in EVALUATORS},
    "generator_sets": {},
    "generation": {"optimizers": ["ngd"], "inits": ["uniform"]},
    "joint": {"pool": POOL, "depths": ["early", "late"], "sizes": [1, 2, 3], "draws": 2,
              "seed": 0, "compare": {"robust": {"early": "r1", "late": "r2"}},
              "optimizer": "ngd", "init": "uniform"},
}
METAMERS = 5
SUCCESS = np.array([True, True, False, True, True])


def test_draws_are_seeded_distinct_and_of_every_size():
    first = joint.draw_sets(list(POOL), [1, 2, 3, 4], 2, seed=0)
    assert first == joint.draw_sets(list(reversed(POOL)), [1, 2, 3, 4], 2, seed=0)
    assert first != joint.draw_sets(list(POOL), [1, 2, 3, 4], 2, seed=1)
    for size in (1, 2, 3, 4):
        members = [item.members for item in first if item.size == size]
        assert len(members) == min(2, len(list(itertools.combinations(POOL, size))))
        assert len(set(members)) == len(members) and all(len(m) == size for m in members)
    # a size's draws do not depend on which other sizes are drawn
    assert [item for item in first if item.size == 3] == joint.draw_sets(list(POOL), [3], 2, 0)


def test_a_set_of_one_model_is_that_model_at_its_own_layer():
    rows = [row for row in joint.design(CONFIG) if row["group"] == joint.POOL and row["size"] == 1]
    assert rows and all(row["generator"] == row["members"][0] for row in rows)
    assert all(row["layer"] == POOL[row["generator"]][row["depth"]] for row in rows)
    assert all(len(spec["members"]) > 1 for spec in joint.generator_sets(CONFIG).values())


def test_sets_map_depths_to_member_layers_and_exclude_members_from_evaluators():
    sets = joint.generator_sets(CONFIG)
    for row in joint.design(CONFIG):
        if row["group"] == joint.POOL and row["size"] > 1:
            assert sets[row["generator"]]["layers"][row["layer"]] == {
                member: POOL[member][row["depth"]] for member in row["members"]}
        groups = joint.held_out(row["members"], EVALUATORS, list(POOL))
        assert not set(row["members"]) & set(itertools.chain(*groups.values()))
        assert set(groups["held out"]) == set(EVALUATORS) - set(row["members"])
        assert set(groups["outside pool"]) == {"robust", "seed"} - set(row["members"])


@pytest.mark.parametrize("edit, message", [
    (lambda joint_section: joint_section["pool"].update(z={"early": "z1", "late": "z2"}),
     "'z' is not a model"),
    (lambda joint_section: joint_section["pool"]["a"].pop("late"), "one layer per depth"),
    (lambda joint_section: joint_section.update(sizes=[5]), "pool of 4"),
    (lambda joint_section: joint_section.update(optimizer="adam"), "generation.optimizers"),
])
def test_bad_joint_sections_stop_with_a_message(edit, message):
    config = copy.deepcopy(CONFIG)
    edit(config["joint"])
    with pytest.raises(ConfigError, match=message):
        joint.design(config)


def _scores(members: list[str]) -> pd.DataFrame:
    """Every evaluator recognises and passes metamer i when i is even (members: always, with
    value 1, so that counting a member would move every mean); pixel controls score 0."""
    rows = []
    for evaluator, metamer, image_set in itertools.product(EVALUATORS, range(METAMERS),
                                                           ["metamer", "pixel_control"]):
        value = 0.0 if image_set == "pixel_control" else float(
            evaluator in members or metamer % 2 == 0)
        metrics = [("top1_correct", "output"), ("passes", DEEPEST[evaluator]),
                   ("passes", "shallow")]
        if image_set == "metamer":
            metrics.append(("transfers", DEEPEST[evaluator]))
        rows += [{"image_set": image_set, "metamer": metamer, "evaluator": evaluator,
                  "evaluator_layer": layer, "metric": metric, "value": value}
                 for metric, layer in metrics]
    return pd.DataFrame(rows)


def _content(seconds: float) -> dict:
    return {"success": SUCCESS, "pixel_distance": np.arange(METAMERS, dtype=float),
            "iterations_to_success": np.where(SUCCESS, 10, -1), "attrs": {"wall_time_s": seconds}}


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    rows = joint.design(CONFIG)
    units = pd.concat([joint.condition_units(row, _content(8.0), _scores(row["members"]),
                                             EVALUATORS, list(POOL), DEEPEST)
                       for row in rows], ignore_index=True)
    return joint.summarize(units, CONFIG["joint"]["depths"], seed=0)


def _pick(summary, group="pool", depth="late", size=2, evaluator_group="held out",
          image_set="metamer", metric="recognized") -> pd.Series:
    found = summary[(summary["group"] == group) & (summary["depth"] == depth)
                    & (summary["size"] == size) & (summary["evaluator_group"] == evaluator_group)
                    & (summary["image_set"] == image_set) & (summary["metric"] == metric)]
    assert len(found) == 1
    return found.iloc[0]


def test_summary_counts_match_the_inputs(summary):
    passing = int(SUCCESS.sum())
    for size in (1, 2, 3):
        row = _pick(summary, size=size)
        assert row["draws"] == 2 and row["metamers"] == 2 * passing
        assert row["pairs"] == 2 * passing * (len(EVALUATORS) - size)
        outside = _pick(summary, size=size, evaluator_group="outside pool")
        assert outside["pairs"] == 2 * passing * 2
        success = _pick(summary, size=size, evaluator_group="generator", metric="success")
        assert success["metamers"] == 2 * METAMERS and success["pairs"] == 2 * METAMERS * size
    robust = _pick(summary, group="robust", size=1)
    assert robust["draws"] == 1 and robust["pairs"] == passing * (len(EVALUATORS) - 1)


def test_summary_means_count_only_held_out_evaluators_and_passing_metamers(summary):
    even_share = np.mean(np.flatnonzero(SUCCESS) % 2 == 0)  # metamers 0 and 4 of 0, 1, 3, 4
    for metric in ("recognized", "passes", "transfers"):
        row = _pick(summary, metric=metric)
        assert row["mean"] == pytest.approx(even_share)
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert _pick(summary, image_set="pixel_control")["mean"] == 0.0
    success = _pick(summary, evaluator_group="generator", metric="success")
    assert success["mean"] == pytest.approx(SUCCESS.mean())
    seconds = _pick(summary, evaluator_group="generator", metric="seconds_per_success")
    assert seconds["mean"] == pytest.approx(8.0 / SUCCESS.sum())
    distance = _pick(summary, evaluator_group="generator", metric="pixel_distance")
    assert distance["mean"] == pytest.approx(np.arange(METAMERS)[SUCCESS].mean())


def test_findings_table_has_a_row_per_depth_and_size(summary):
    section = joint.findings_section(summary)
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert len(table) == 2 * (3 + 1)
    row = _pick(summary, depth="early", size=3)
    assert any(line.startswith("| early | N = 3 | 2 | 8/10 |") and
               f"{100 * row['mean']:.1f}% [{100 * row['ci_low']:.1f}" in line for line in table)
    assert [line.split(" | ")[:2] for line in table] == [
        ["| " + depth, label] for depth in ("early", "late")
        for label in ("N = 1", "N = 2", "N = 3", "robust (1 model)")]


def test_figure_has_a_transfer_page_and_a_cost_page(summary, tmp_path):
    path = tmp_path / "joint.pdf"
    joint_plots.plot_joint_transfer(summary, CONFIG["joint"]["depths"], path)
    assert path.read_bytes()[:4] == b"%PDF"
    assert len(re.findall(rb"/Type /Page\b", path.read_bytes())) == 2


def test_a_set_of_one_model_reproduces_its_single_model_metamers(job_inputs, tmp_path):
    """The design's N = 1 row is the model's own condition: generating it gives the single-model
    job's metamers bit for bit."""
    config = {**copy.deepcopy(CONFIG), "models": {"cnn": {}, "other": {}}}
    config["joint"].update(pool={"cnn": {"early": "relu1", "late": "relu2"},
                                 "other": {"early": "relu1", "late": "relu2"}},
                           sizes=[1], compare={})
    row = next(row for row in joint.design(config)
               if row["generator"] == "cnn" and row["depth"] == "late")
    single, joint_path = tmp_path / "single.h5", tmp_path / "joint.h5"
    stages.generate_metamers(**job_inputs, path=single)
    stages.generate_metamers(**{**job_inputs, "layers": {row["generator"]: row["layer"]}},
                             path=joint_path)
    assert store.dataset_hashes(single) == store.dataset_hashes(joint_path)


def plan_overlay(workdir: Path):
    """A dry run of config/test.yaml with a small joint overlay, in ``workdir``."""
    overlay = workdir / "joint.yaml"
    overlay.write_text(yaml.safe_dump({"joint": {
        "pool": {"cnn_a": {"early": "relu1", "late": "fc_relu"},
                 "mlp_a": {"early": "hidden1", "late": "hidden2"},
                 "cnn_b": {"early": "relu1", "late": "fc_relu"}},
        "depths": ["early", "late"], "sizes": [1, 2], "draws": 2,
        "compare": {"cnn_robust_a": {"early": "relu1", "late": "fc_relu"}},
        "optimizer": "adam"}}))
    return run_snakemake(workdir, "--cores", "1", "--dry-run", "results/findings.md",
                         "--configfile", str(REPO / "config/test.yaml"), str(overlay))


def test_overlay_plans_every_joint_condition_once(tmp_path):
    planned = plan_overlay(tmp_path)
    assert planned.returncode == 0, planned.stderr[-3000:]
    metamers = set(joint_metamer_outputs(planned.stdout))
    assert {f"results/metamers/joint_n2_d{draw}/{depth}/adam/uniform.h5"
            for draw in (0, 1) for depth in ("early", "late")} <= metamers
    assert "results/metamers/cnn_robust_a/relu1/adam/uniform.h5" in metamers
    assert not any("/sgd/" in path and "joint" in path for path in metamers)
    assert "results/joint_transfer.parquet" in planned.stdout


def joint_metamer_outputs(dry_run: str) -> list[str]:
    return [word.strip(",") for line in dry_run.splitlines() if "output:" in line
            for word in line.split() if word.startswith("results/metamers/")]


def test_a_truncated_joint_metamer_file_is_refused_before_any_job(tmp_path):
    """The preflight reads joint conditions' files like the default conditions' ones."""
    broken = tmp_path / "results/metamers/joint_n2_d0/early/adam/uniform.h5"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    planned = plan_overlay(tmp_path)
    assert planned.returncode != 0
    assert "joint_n2_d0/early/adam/uniform.h5" in planned.stdout + planned.stderr
