"""The JSON schema (keys, types, ranges, defaults) and the cross-reference checks."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate
from snakemake_cli import run_snakemake

from metamers.config import (
    ConfigError,
    check_config,
    generator_members,
    main,
    member_layers,
    path_names,
    read_config_file,
    validate_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
ESCAPING_LAYER = "../../../../escdir/sub/x"
CONFIGS = ["config.yaml", "test.yaml", "imagenet.yaml", "imagenet_offline.yaml", "mnist_robust.yaml",
           "imagenet_offline_test.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / name).read_text())


@pytest.fixture
def test_config() -> dict:
    config = load("test.yaml")
    validate_config(config, SCHEMA)
    return config


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid(name):
    config = load(name)
    validate_config(config, SCHEMA)
    check_config(config)


@pytest.mark.parametrize("name", CONFIGS)
def test_defaults_are_filled_as_snakemake_fills_them(name):
    ours, snakemakes = load(name), load(name)
    validate_config(ours, SCHEMA)
    validate(snakemakes, SCHEMA)
    assert ours == snakemakes and ours != load(name)


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_read_strictly_as_yaml_reads_them(name):
    assert read_config_file(REPO_ROOT / "config" / name) == load(name)


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
    with pytest.raises(ConfigError, match=named) as error:
        validate_config(config, SCHEMA, ["my.yaml"])
    message = str(error.value)
    assert message.startswith(f"my.yaml does not fit the schema {SCHEMA}:")
    assert len(message) < 1000 and len(message.splitlines()) <= 4


def test_an_unknown_key_is_named_with_the_allowed_keys():
    config = load("test.yaml")
    config["generation"]["max_iteration"] = 5
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    assert str(error.value).splitlines()[1] == (
        "  generation: unknown key(s) ['max_iteration']; allowed: channels_last, check_every, "
        "checkpoint_every, compile, fake_relu, generators, inits, l1_weight, max_iterations, "
        "optimizers, stop_on_success")


def test_a_wrong_value_is_named_with_the_allowed_values():
    config = load("test.yaml")
    config["inits"]["uniform"]["kind"] = "sparkle"
    with pytest.raises(ConfigError, match=r"  inits\.uniform\.kind: 'sparkle' is not allowed; "
                                          r"choose one of 'uniform', 'gaussian', 'pink'"):
        validate_config(config, SCHEMA)


def test_schema_requires_the_main_sections():
    config = load("test.yaml")
    del config["generation"]
    with pytest.raises(ConfigError, match=r"\(top level\): missing required key\(s\) "
                                          r"\['generation'\]") as error:
        validate_config(config, SCHEMA)
    assert len(str(error.value)) < 1000


def test_many_problems_are_listed_in_a_few_lines():
    config = load("test.yaml")
    config.update(seed="zero", device="tpu")
    config["generation"].update(max_iterations=-1, check_every=0, null_percentile=100)
    config["evaluation"]["batch_size"] = 0
    config["references"]["per_class"] = 0
    with pytest.raises(ConfigError, match=r"\.\.\. and 2 more") as error:
        validate_config(config, SCHEMA)
    assert len(str(error.value)) < 1000 and len(str(error.value).splitlines()) == 8


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
    (lambda c: c["optimizers"].update({"../escape": dict(c["optimizers"]["adam"])}),
     "escape"),
    (lambda c: c["inits"].update({".hidden": {"kind": "uniform"}}), "hidden"),
    (lambda c: c["generation"]["generators"].update(cnn_a=["../../etc"]), "etc"),
    (lambda c: c["data"].update(root="/etc/data"), "data.root"),
    (lambda c: c["data"].update(root="resources/../../outside"), "data.root"),
    (lambda c: c["generator_sets"]["pair"]["layers"]["deep"].update(cnn_a=ESCAPING_LAYER),
     r"generator_sets\.pair\.layers\.deep\.cnn_a: '\.\./\.\./\.\./\.\./escdir/sub/x'"),
    (lambda c: c["generator_sets"]["pair"]["layers"].update({"a/b": {}}),
     r"generator_sets\.pair\.layers: 'a/b'"),
    (lambda c: c["models"]["cnn_a"]["layers"].append("x/../../y"), r"models\.cnn_a\.layers"),
    (lambda c: c["generation"].update(optimizers=["../adam"]), r"generation\.optimizers"),
    (lambda c: c.update(joint={"pool": {"cnn_a": {"early": ESCAPING_LAYER}}}),
     r"joint\.pool\.cnn_a\.early"),
    (lambda c: c["data"].update(name="foolbox_mnist"), "criterion.null_distribution.source"),
    (lambda c: c["inits"]["uniform"].update(epochs=3), r"inits\.uniform: \['epochs'\]"),
    (lambda c: c["inits"]["uniform"].update(architecture="conv"),
     r"inits\.uniform: \['architecture'\]"),
    (lambda c: c["inits"]["uniform"].update(activation_weight=1.0),
     r"inits\.uniform: \['activation_weight'\]"),
    (lambda c: c["inits"].update(learned={"kind": "decoder", "channels": 8}),
     r"inits\.learned: \['channels'\] apply to a conv decoder only.*architecture: conv"),
    (lambda c: (c["inits"].update(learned={"kind": "decoder"}),
                c["data"].update(name="foolbox_mnist"),
                c["criterion"]["null_distribution"].update(source="references")),
     r"inits\.learned: a decoder start is trained on the training split"),
])
def test_check_config_names_the_dangling_reference(test_config, change, named):
    config = copy.deepcopy(test_config)
    change(config)
    with pytest.raises(ConfigError, match=named):
        check_config(config)


def test_dotted_layer_names_are_path_safe(test_config):
    config = copy.deepcopy(test_config)
    layers = ["encoder.layers.encoder_layer_0", "_blocks.2", "net.layer4.1.relu_1"]
    config["generation"]["generators"]["cnn_a"] = layers
    config["generator_sets"]["pair"]["layers"]["deep"]["cnn_a"] = "_blocks.2"
    check_config(config)
    assert set(layers) <= {name for _, name in path_names(config)}


def test_generation_study_overlay_extends_the_default():
    config = load("config.yaml")
    update_config(config, load("generation_study.yaml"))  # what `--configfile a b` does
    validate(config, SCHEMA)
    check_config(config)
    assert config["generation"]["generators"] == load("config.yaml")["generation"]["generators"]
    # every start but decoder_long, whose decoders take minutes each (the overlay says so)
    assert set(config["inits"]) - set(config["generation"]["inits"]) == {"decoder_long"}


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seed: 0\ngeneration:\n  inits: [uniform\n  max_iterations: 5\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}, line 4, column 17: not "
                                          "valid YAML"):
        read_config_file(path)


@pytest.mark.parametrize("text, line, first", [
    ("seed: 0\ndevice: cpu\nseed: 1\n", 3, 1),
    ("generation:\n  inits: [a]\n  check_every: 5\n  inits: [b]\n", 4, 2),
    ("base: &base {a: 1}\nmerged:\n  <<: *base\n  a: 2\n  b: 3\n  b: 4\n", 6, 5),
])
def test_a_duplicated_key_names_the_file_and_the_line(tmp_path, text, line, first):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}, line {line}: key .* given "
                                          rf"twice in one mapping \(first at line {first}\)"):
        read_config_file(path)


def test_json_config_files_are_read_strictly(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"seed": 0, "data": {"name": "mnist"}}')
    assert read_config_file(path) == {"seed": 0, "data": {"name": "mnist"}}
    path.write_text('{"seed": 0, "data": {"name": "mnist", "name": "cifar10"}}')
    with pytest.raises(ConfigError, match=r"config\.json: key\(s\) \['name'\] given twice"):
        read_config_file(path)
    path.write_text('{"seed": 0,\n "data": }')
    with pytest.raises(ConfigError, match=r"config\.json, line 2, column 10: not valid JSON"):
        read_config_file(path)


def test_the_config_file_checker_prints_where_the_problem_is(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("seed: 0\n")
    bad.write_text("seed: 0\nseed: 1\n")
    assert main([str(good)]) == 0
    assert main([str(good), str(bad)]) == 1
    assert f"{bad}, line 2: key 'seed' is given twice" in capsys.readouterr().err


def _snakemake_dry_run(workdir: Path, *arguments: str) -> str:
    completed = run_snakemake(workdir, "--dry-run", *arguments)
    assert completed.returncode != 0
    return completed.stdout + completed.stderr


def test_snakemake_names_config_file_problems_in_a_few_lines(tmp_path):
    """A duplicated key in a --configfile, an unknown key, and a syntax error in the default
    config file (config/config.yaml of the working directory): the file, the line or the key
    path, in under 1 KB (Snakemake alone: no file or line, 62 KB for an unknown key)."""
    text = (REPO_ROOT / "config" / "test.yaml").read_text()
    twice = tmp_path / "twice.yaml"
    twice.write_text(text.replace("seed: 0\n", "seed: 0\nseed: 1\n", 1))
    output = _snakemake_dry_run(tmp_path, "--configfile", str(twice))
    assert f"{twice}, line 3: key 'seed' is given twice" in output and len(output) < 1500
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(text.replace("  max_iterations:", "  max_iteration: 5\n  max_iterations:"))
    output = _snakemake_dry_run(tmp_path, "--configfile", str(unknown))
    assert "generation: unknown key(s) ['max_iteration']; allowed: " in output
    assert len(output) < 1000
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("seed: 0\ndata: {name: [mnist}\n")
    output = _snakemake_dry_run(tmp_path)
    assert "config/config.yaml, line 2, column 20: not valid YAML" in output


def test_lenient_overlay_is_the_old_rule():
    config = load("config.yaml")
    update_config(config, load("lenient.yaml"))
    validate(config, SCHEMA)
    check_config(config)
    assert config["criterion"]["measures"] == ["spearman"]
    assert config["criterion"]["threshold"] == 99
    assert config["criterion"]["null_distribution"]["source"] == "references"


def test_a_generators_members_and_their_layers_come_from_its_set_or_itself():
    sets = {"pair": {"members": ["cnn", "resnet"],
                     "layers": {"mid": {"cnn": "relu2", "resnet": "layer2"}}}}
    assert generator_members(sets, "pair") == ["cnn", "resnet"]
    assert member_layers(sets, "pair", "mid") == {"cnn": "relu2", "resnet": "layer2"}
    assert generator_members(sets, "vgg") == ["vgg"]
    assert member_layers(sets, "vgg", "fc_relu") == {"vgg": "fc_relu"}
