"""The JSON schema (keys, types, ranges, defaults) and the cross-reference checks."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from metamers.config import ConfigError, check_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = ["config.yaml", "test.yaml", "imagenet.yaml", "imagenet_offline.yaml", "mnist_robust.yaml",
           "imagenet_offline_test.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / name).read_text())


@pytest.fixture
def test_config() -> dict:
    config = load("test.yaml")
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid(name):
    config = load(name)
    validate(config, SCHEMA)
    check_config(config)


def test_validation_fills_defaults_and_keeps_given_values(test_config):
    generation = test_config["generation"]
    assert generation["max_iterations"] == 150  # given
    assert generation["stop_on_success"] is True  # default
    assert generation["channels_last"] is True and generation["compile"] is None
    adam = test_config["optimizers"]["adam"]
    assert adam["constraint"] == "clamp" and adam["gradient_normalization"] is False
    assert adam["scheduler"] is None and adam["range_penalty"] == 0.0
    assert test_config["training"]["quick"]["style"] == "standard"
    assert test_config["training"]["quick"]["lr"] == 0.002
    assert test_config["inits"]["uniform"]["strength"] == 0.5
    assert test_config["evaluation"]["batch_size"] == 256
    assert test_config["evaluation"]["projection_dim"] == 512
    assert test_config["data"]["source_dir"] == "/usr/share/datasets/fashion-mnist"
    assert test_config["models"]["cnn_a"]["seed"] == 0
    criterion = test_config["criterion"]  # Feather et al.'s measures, a percentile threshold
    assert criterion["measures"] == ["spearman", "pearson", "snr_db"]
    assert criterion["threshold"] == 95 and criterion["class_match"] is True
    assert criterion["null_distribution"] == {"source": "train", "pairs": 5000, "augment": True,
                                              "block_images": 256}


@pytest.mark.parametrize("change, named", [
    (lambda c: c["generation"].update(max_iteration=5), "max_iteration"),
    (lambda c: c["optimizers"]["adam"].update(learning_rate=0.1), "learning_rate"),
    (lambda c: c.update(extra_section={}), "extra_section"),
    (lambda c: c["generation"].update(max_iterations=-5), "-5"),
    (lambda c: c["generation"].update(null_percentile=99), "null_percentile"),
    (lambda c: c.update(criterion={"threshold": 100.5}), "100.5"),
    (lambda c: c.update(criterion={"measures": ["kendall"]}), "kendall"),
    (lambda c: c.update(criterion={"null_distribution": {"source": "test"}}), "test"),
    (lambda c: c["inits"]["uniform"].update(kind="sparkle"), "sparkle"),
    (lambda c: c["optimizers"]["adam"].update(constraint="tanh"), "tanh"),
    (lambda c: c["references"].update(per_class=0), "per_class"),
    (lambda c: c["models"]["cnn_a"].update(source="hub"), "hub"),
    (lambda c: c["generation"].update(max_iterations=0), "0"),
    (lambda c: c["generation"].update(check_every="ten"), "ten"),
    (lambda c: c["generation"].update(compile="fast"), "fast"),
    (lambda c: c["training"]["quick"].update(epochs=0), "0"),
    (lambda c: c["training"]["quick"].update(norm="l1"), "l1"),
    (lambda c: c["evaluation"].update(batch_size=2.5), "2.5"),
])
def test_schema_rejects_wrong_keys_and_values_by_name(change, named):
    config = load("test.yaml")
    change(config)
    with pytest.raises(WorkflowError, match=named) as error:
        validate(config, SCHEMA)
    assert "validat" in str(error.value).lower()


def test_schema_requires_the_main_sections():
    config = load("test.yaml")
    del config["generation"]
    with pytest.raises(WorkflowError, match="generation"):
        validate(config, SCHEMA)


@pytest.mark.parametrize("change, named", [
    (lambda c: c["generation"]["optimizers"].append("lbfgs"), "lbfgs"),
    (lambda c: c["generation"]["inits"].append("pink"), "pink"),
    (lambda c: c["generator_sets"]["pair"]["members"].append("cnn_z"), "cnn_z"),
    (lambda c: c["models"]["cnn_b"].update(training="slow"), "slow"),
    (lambda c: c["generation"]["generators"].update(vgg=["relu1"]), "vgg"),
    (lambda c: c["generation"]["generators"].update(pair=["shallow"]), "shallow"),
    (lambda c: c["evaluation"].update(evaluators=["cnn_a", "resnet"]), "resnet"),
    (lambda c: c["generator_sets"]["pair"]["layers"]["deep"].pop("cnn_b"), "deep"),
    (lambda c: c["models"].update({"a/b": dict(c["models"]["cnn_a"])}), "a/b"),
    (lambda c: c["optimizers"].update(bfgs={"name": "LBFGS", "constraint": "clamp"}),
     "optimizers.bfgs"),
    (lambda c: c["optimizers"]["adam"].update(name="Adamm"), "Adamm"),
    (lambda c: c["optimizers"]["adam"].update(scheduler="StepLr"), "StepLr"),
    (lambda c: c["optimizers"].update({"../escape": dict(c["optimizers"]["adam"])}),
     "escape"),
    (lambda c: c["inits"].update({".hidden": {"kind": "uniform"}}), "hidden"),
    (lambda c: c["generation"]["generators"].update(cnn_a=["../../etc"]), "etc"),
    (lambda c: c["data"].update(root="/etc/data"), "data.root"),
    (lambda c: c["data"].update(root="resources/../../outside"), "data.root"),
    (lambda c: c["data"].update(name="foolbox_mnist"), "criterion.null_distribution.source"),
])
def test_check_config_names_the_dangling_reference(test_config, change, named):
    config = copy.deepcopy(test_config)
    change(config)
    with pytest.raises(ConfigError, match=named):
        check_config(config)


def test_generation_study_overlay_extends_the_default():
    config = load("config.yaml")
    update_config(config, load("generation_study.yaml"))  # what `--configfile a b` does
    validate(config, SCHEMA)
    check_config(config)
    assert config["generation"]["generators"] == load("config.yaml")["generation"]["generators"]
    assert set(config["generation"]["inits"]) == set(config["inits"])


def test_lenient_overlay_is_the_old_rule():
    config = load("config.yaml")
    update_config(config, load("lenient.yaml"))
    validate(config, SCHEMA)
    check_config(config)
    assert config["criterion"]["measures"] == ["spearman"]
    assert config["criterion"]["threshold"] == 99
    assert config["criterion"]["null_distribution"]["source"] == "references"
