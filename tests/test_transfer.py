"""Transfer by evaluator relation, findings.md and the transfer figures, on hand-made scores."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from metamers import findings, transfer, transfer_plots, zoo
from metamers.config import SCHEMA_PATH, validate_config

REPO = Path(__file__).resolve().parents[1]
TRAINING = {"standard": {"style": "standard"},
            "robust": {"style": "adversarial", "norm": "linf"}}
MODELS = {
    "cnn_s0": {"source": "local", "architecture": "small_cnn", "seed": 0, "training": "standard"},
    "cnn_s1": {"source": "local", "architecture": "small_cnn", "seed": 1, "training": "standard"},
    "cnn_robust": {"source": "local", "architecture": "small_cnn", "seed": 0,
                   "training": "robust"},
    "mlp": {"source": "local", "architecture": "mlp", "seed": 0, "training": "standard"},
    "r50_linf": {"source": "robustbench", "name": "Salman2020Do_R50", "threat_model": "Linf",
                 "family": "resnet50"},
    "r50": {"source": "torchvision", "architecture": "resnet50", "weights": "IMAGENET1K_V2"},
}
MEMBERS = {"cnn_s0": ["cnn_s0"], "cnn_robust": ["cnn_robust"], "pair": ["cnn_s0", "mlp"]}
GENERATORS = {"cnn_s0": ["relu1", "fc_relu"], "cnn_robust": ["fc_relu"], "pair": ["deep"]}
EVALUATOR_LAYERS = {"cnn_s0": ["relu1", "fc_relu"], "cnn_s1": ["relu1", "fc_relu"],
                    "cnn_robust": ["relu1", "fc_relu"], "mlp": ["hidden1", "hidden2"]}
METAMERS = 4


@pytest.fixture
def facts() -> pd.DataFrame:
    return transfer.model_facts(MODELS, TRAINING)


def test_model_facts_read_family_style_and_seed(facts):
    assert facts.loc["cnn_robust", "style"] == "adversarial linf"
    assert facts.loc["cnn_s1", "seed"] == 1 and facts.loc["cnn_s1", "family"] == "small_cnn"
    assert facts.loc["r50_linf", "family"] == "resnet50"
    assert facts.loc["r50_linf", "style"] == "adversarial linf"
    assert facts.loc["r50", "style"] == "standard"


def test_training_style_is_one_function_for_every_source(facts):
    l2 = {**TRAINING, "robust_l2": {"style": "adversarial", "norm": "l2"}}
    spec = {**MODELS["cnn_robust"], "training": "robust_l2"}
    assert zoo.training_style(spec, l2) == "adversarial l2"
    assert zoo.training_style(MODELS["cnn_s0"], TRAINING) == "standard"
    for name, spec in MODELS.items():
        assert facts.loc[name, "style"] == zoo.training_style(spec, TRAINING)
        if not zoo.trained_by_pipeline(spec):
            assert facts.loc[name, "style"] == zoo.training_style(spec)


@pytest.mark.parametrize("members, evaluator, expected", [
    (["cnn_s0"], "cnn_s0", "same model"),
    (["cnn_s0"], "cnn_s1", "other seed"),
    (["cnn_s0"], "cnn_robust", "other training"),
    (["cnn_s0"], "mlp", "other architecture"),
    (["r50"], "r50_linf", "other training"),
    (["cnn_s0", "mlp"], "mlp", "same model"),
    (["cnn_s0", "mlp"], "cnn_s1", "other seed"),
])
def test_relation_is_the_closest_member(facts, members, evaluator, expected):
    assert transfer.relation(members, evaluator, facts) == expected


def test_shipped_config_spans_every_relation():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the pipeline reads it
    facts = transfer.model_facts(config["models"], config["training"])
    relations = {transfer.relation([generator], evaluator, facts)
                 for generator in config["generation"]["generators"] if generator in facts.index
                 for evaluator in config["models"]}
    assert relations == set(transfer.RELATIONS)
    assert len(set(facts["family"])) >= 4 and len(set(facts["style"])) >= 4
    standard_cnn = facts[(facts["family"] == "small_cnn") & (facts["style"] == "standard")]
    assert standard_cnn["seed"].nunique() >= 3


def _scores() -> pd.DataFrame:
    """top1 and deepest-layer transfer scores: the metamer's value depends on the evaluator
    (1 for cnn models, 0 for the MLP); pixel controls score 0.25 everywhere."""
    rows = []
    for generator, layers in GENERATORS.items():
        for layer in layers:
            for evaluator, evaluator_layers in EVALUATOR_LAYERS.items():
                metamer_value = 0.0 if evaluator == "mlp" else 1.0
                for metamer in range(METAMERS):
                    for image_set, value in (("metamer", metamer_value),
                                             ("pixel_control", 0.25)):
                        common = {"generator": generator, "layer": layer, "optimizer": "ngd",
                                  "init": "uniform", "image_set": image_set,
                                  "metamer": metamer, "evaluator": evaluator}
                        rows.append({**common, "evaluator_layer": "output",
                                     "metric": "top1_correct", "value": value})
                        for evaluator_layer in evaluator_layers:  # only the deepest counts
                            deepest = evaluator_layer == evaluator_layers[-1]
                            rows.append({**common, "evaluator_layer": evaluator_layer,
                                         "metric": "passes", "value": value if deepest else 0.5})
                    rows.append({**common, "image_set": "metamer", "evaluator": "pixels",
                                 "evaluator_layer": "pixels", "metric": "pixel_distance",
                                 "value": 3.0})
    return pd.DataFrame(rows)


def test_transfer_summary_groups_evaluators_by_relation(facts):
    units = transfer.relation_units(_scores(), facts, MEMBERS, EVALUATOR_LAYERS)
    summary = transfer.transfer_summary(units, facts, MEMBERS, GENERATORS)
    cnn = summary[(summary["generator"] == "cnn_s0") & (summary["layer"] == "fc_relu")
                  & (summary["image_set"] == "metamer")].set_index(["metric", "relation"])
    assert cnn.loc[("recognized", "other seed"), "mean"] == 1.0
    assert cnn.loc[("recognized", "other architecture"), "mean"] == 0.0
    assert cnn.loc[("passes", "other seed"), "mean"] == 1.0  # deepest layer, not the 0.5s
    assert cnn.loc[("recognized", "same model"), "pairs"] == METAMERS
    assert (cnn["metamers"] == METAMERS).all()
    assert (cnn["layer_rank"] == 1.0).all() and (cnn["generator_style"] == "standard").all()
    control = summary[summary["image_set"] == "pixel_control"]
    assert np.allclose(control["mean"], 0.25)
    pair = summary[(summary["generator"] == "pair") & (summary["metric"] == "recognized")
                   & (summary["image_set"] == "metamer")].set_index("relation")["mean"]
    # evaluators cnn_s0 and mlp are members: (1 + 0) / 2 per metamer
    assert pair["same model"] == 0.5 and pair["other seed"] == 1.0
    assert set(summary["relation"]) <= set(transfer.RELATIONS)
    assert (summary["ci_low"] <= summary["mean"]).all()
    assert (summary["mean"] <= summary["ci_high"]).all()


def test_depth_contrasts_pool_earliest_and_deepest_layers(facts):
    units = transfer.relation_units(_scores(), facts, MEMBERS, EVALUATOR_LAYERS)
    contrasts = transfer.depth_contrasts(units, facts, MEMBERS, GENERATORS)
    deepest = contrasts[(contrasts["depth"] == "deepest") & (contrasts["metric"] == "recognized")
                        & (contrasts["image_set"] == "metamer")]
    seeds = deepest[deepest["relation"] == "other seed"].set_index("generator_style")
    # cnn_s0 at fc_relu and the pair (cnn_s0 + mlp) at deep both have cnn_s1 as other seed
    assert seeds.loc["standard", "generators"] == 2
    assert seeds.loc["standard", "metamers"] == 2 * METAMERS
    architectures = deepest[deepest["relation"] == "other architecture"].set_index(
        "generator_style")
    assert architectures.loc["adversarial linf", "mean"] == 0.0  # cnn_robust seen by the mlp
    assert architectures.loc["standard", "generators"] == 1  # the pair has the mlp inside
    earliest = contrasts[contrasts["depth"] == "earliest"]
    assert set(earliest["generator_style"]) == {"standard"}  # only cnn_s0 has two layers


def test_findings_state_measured_numbers_with_ci_and_n(facts):
    units = transfer.relation_units(_scores(), facts, MEMBERS, EVALUATOR_LAYERS)
    contrasts = transfer.depth_contrasts(units, facts, MEMBERS, GENERATORS)
    zoo = facts.assign(test_accuracy=0.875, robust_accuracy=np.nan, attack=None)
    text = findings.findings_markdown(contrasts, zoo)
    assert "## Optimizer ngd, init uniform" in text
    deepest = text.split("### Deepest generating layer of each generator")[1].split("###")[0]
    rows = [line for line in deepest.splitlines() if line.startswith("| other architectures |")]
    # one row per generator style, standard first: counts, then recognised / passes / transfers
    assert rows[0].startswith("| other architectures | standard | 4 | 1 | 4 | 0.0% [0.0-0.0] "
                              "(pc 25.0%) |")
    assert rows[1].startswith("| other architectures | adversarial linf |")
    assert rows[0].count("|") == rows[1].count("|") == 9
    assert ("| other seeds (same architecture and training) | standard | 8 | 2 | 8 | "
            "100.0% [100.0-100.0]") in deepest
    passes = contrasts[(contrasts["depth"] == "deepest") & (contrasts["metric"] == "passes")
                       & (contrasts["relation"] == "other architecture")
                       & (contrasts["generator_style"] == "standard")]
    metamers, controls = (passes[passes["image_set"] == image_set].iloc[0]
                          for image_set in ("metamer", "pixel_control"))
    assert rows[0].split(" | ")[6] == (
        f"{100 * metamers['mean']:.1f}% [{100 * metamers['ci_low']:.1f}-"
        f"{100 * metamers['ci_high']:.1f}] (pc {100 * controls['mean']:.1f}%)")
    assert "0.875" in text


def test_transfer_figures_have_a_page_per_run(facts, tmp_path):
    units = transfer.relation_units(_scores(), facts, MEMBERS, EVALUATOR_LAYERS)
    summary = transfer.transfer_summary(units, facts, MEMBERS, GENERATORS)
    other_run = summary.assign(optimizer="adam")
    both = pd.concat([summary, other_run], ignore_index=True)
    transfer_plots.plot_transfer_figures(both, 10, tmp_path / "architecture.pdf",
                                         tmp_path / "seeds.pdf")
    for name in ("architecture.pdf", "seeds.pdf"):
        assert len(re.findall(rb"/Type /Page\b", (tmp_path / name).read_bytes())) == 2
    assert transfer_plots.seed_generators(summary) == ["cnn_s0", "pair"]
    drawn = transfer_plots.plot_transfer_by_relation(both, tmp_path / "seeds_only.pdf",
                                                     "generator", generators=["cnn_s0"])
    assert set(drawn["generator"]) == {"cnn_s0"} and set(drawn["optimizer"]) == {"ngd", "adam"}
    with pytest.raises(ValueError, match="No transfer rows"):
        transfer_plots.plot_transfer_by_relation(both, tmp_path / "none.pdf", "generator",
                                                 generators=["absent"])
