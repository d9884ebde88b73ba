"""Layer listing (metamers.layers): bare architectures, no weights; the CLI and the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from snakemake_cli import run_snakemake

from metamers import layers, store, zoo

REPO = Path(__file__).resolve().parents[1]
IMAGENET_CONFIG = REPO / "config" / "imagenet.yaml"
TEST_CONFIG = REPO / "config" / "test.yaml"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_every_layer_named_by_the_imagenet_config_is_listed():
    config = load(IMAGENET_CONFIG)
    listing = layers.model_layers(config, models_dir=Path("/nonexistent"))
    assert list(listing) == list(config["models"])
    generators = config["generation"]["generators"]
    for name, spec in config["models"].items():
        named = spec["layers"] + generators.get(name, [])
        for generator_set in config["generator_sets"].values():
            named += [member_layers[name] for member_layers in generator_set["layers"].values()
                      if name in member_layers]
        zoo.check_layers(name, named, listing[name])
    # The names are the pipeline's: its wrapping, and the output (logits) last.
    assert listing["vgg16"][-1] == "net.classifier.6"
    assert listing["vit_b_16"][-1] == "net.heads.head"
    assert "net.model.layer4" in listing["resnet50_linf"]


def test_unknown_model_names_the_configs_models():
    config = load(IMAGENET_CONFIG)
    with pytest.raises(ValueError, match="vgg19.*resnet50, vgg16"):
        layers.model_layers(config, ["vgg16", "vgg19"])


def test_cli_builds_a_local_model_for_the_data_shape(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no card in resources/models; Fashion-MNIST unpacks here
    layers.main(["--configfile", str(TEST_CONFIG), "cnn_a"])
    lines = capsys.readouterr().out.splitlines()
    fashion_mnist = {"channels": 1, "image_size": 28, "class_names": [str(label) for label in range(10)],
                     "mean": [0.5], "std": [0.25]}
    expected = zoo.layer_names(zoo.build_local(load(TEST_CONFIG)["models"]["cnn_a"],
                                               fashion_mnist))
    assert lines[0] == f"cnn_a: {len(expected)} layers"
    assert [line.strip() for line in lines[1:]] == expected
    assert {"relu1", "relu2", "fc_relu"} <= set(expected)


def test_a_local_models_card_is_read_where_there_is_one(tmp_path):
    store.write_json(tmp_path / "cnn_b.json", {"layers": ["images", "relu1", "logits"]})
    listing = layers.model_layers(load(TEST_CONFIG), ["cnn_b"], models_dir=tmp_path)
    assert listing == {"cnn_b": ["images", "relu1", "logits"]}


def test_cli_refuses_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        layers.main(["--configfile", str(TEST_CONFIG), "cnn_z"])
    assert exit_info.value.code == 2
    assert "cnn_z" in capsys.readouterr().err


def test_snakemake_list_layers_prints_the_configs_models(tmp_path):
    completed = run_snakemake(tmp_path, "--cores", "1", "list_layers", "--configfile",
                              str(TEST_CONFIG))
    assert completed.returncode == 0, completed.stderr[-5000:]
    headers = re.findall(r"^(\w+): \d+ layers$", completed.stdout, flags=re.MULTILINE)
    assert sorted(headers) == sorted(load(TEST_CONFIG)["models"])
    assert "  relu2\n" in completed.stdout
