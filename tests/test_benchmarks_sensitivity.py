"""benchmarks/criterion_sensitivity.py: its variants' overlays on the default config."""

from __future__ import annotations

import copy

import pytest
import yaml
from benchmark_module import benchmark_module
from snakemake.utils import update_config
from snakemake_cli import REPO

from metamers.config import SCHEMA_PATH, read_config_file, validate_config


@pytest.fixture(scope="module")
def sensitivity_script():
    with benchmark_module("criterion_sensitivity") as module:
        yield module


def overlaid(config: dict, overlay: str | dict) -> dict:
    """The config Snakemake runs with ``--configfile config.yaml OVERLAY``."""
    if isinstance(overlay, str):
        overlay = yaml.safe_load((REPO / overlay).read_text())
    merged = copy.deepcopy(config)
    update_config(merged, overlay)
    validate_config(merged, SCHEMA_PATH)
    return merged


def test_each_variant_changes_only_where_metamers_stop(sensitivity_script):
    config = read_config_file(REPO / "config/config.yaml")
    validate_config(config, SCHEMA_PATH)
    overlays = sensitivity_script.overlays(config)
    assert list(overlays) == sensitivity_script.VARIANTS
    variants = {name: overlaid(config, overlay) for name, overlay in overlays.items()}

    assert variants["lenient"]["criterion"]["null_distribution"]["source"] == "references"
    assert variants["run_on"]["generation"]["stop_on_success"] is False
    for name in config["generation"]["optimizers"]:
        step = config["optimizers"][name]["kwargs"]["lr"]
        for variant in ("step_x3", "step_x3_check1"):
            settings = variants[variant]["optimizers"][name]
            assert settings["kwargs"]["lr"] == pytest.approx(3 * step)
            assert settings["name"] == config["optimizers"][name]["name"]  # merged, not replaced
    assert variants["step_x3_check1"]["generation"]["check_every"] == 1
    unchanged = {key: value for key, value in variants["step_x3_check1"]["generation"].items()
                 if key != "check_every"}
    assert unchanged == {key: value for key, value in config["generation"].items()
                         if key != "check_every"}
    assert variants["step_x3"]["criterion"] == config["criterion"]
