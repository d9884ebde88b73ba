"""Bad input stops with a message that names the problem and the fix, and loses nothing:
broken checkpoints, broken image folders, and a refused pipeline leaves earlier results as
they were."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from snakemake_cli import run_snakemake

from metamers import data, zoo

REPO = Path(__file__).resolve().parents[1]
SPEC = {"source": "local", "architecture": "small_cnn", "kwargs": {"width": 4}}
INFO = {"data": {"channels": 1, "image_size": 28, "class_names": [str(i) for i in range(10)],
                 "mean": [0.3], "std": [0.3]}}


def test_missing_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt.*snakemake"):
        zoo.load_model(tmp_path / "absent.pt", INFO, SPEC)


def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "cnn.pt"
    torch.save(zoo.build_local(SPEC, INFO["data"]).state_dict(), path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cnn\.pt are not a readable checkpoint.*snakemake"):
        zoo.load_model(path, INFO, SPEC)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights")
    with pytest.raises(ValueError, match=r"notes\.pt are not a readable checkpoint"):
        zoo.load_model(path, INFO, SPEC)
    torch.save([1, 2, 3], path)
    with pytest.raises(TypeError, match=r"notes\.pt hold a list, not a state dict"):
        zoo.load_model(path, INFO, SPEC)


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "wide.pt"
    torch.save(zoo.build_local({**SPEC, "kwargs": {"width": 8}}, INFO["data"]).state_dict(),
               path)
    with pytest.raises(ValueError, match=r"wide\.pt do not fit the configured architecture"):
        zoo.load_model(path, INFO, SPEC)


def _image_folder(root: Path, classes: list[str], per_class: int = 3) -> dict:
    for name in classes:
        (root / "test" / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.full((12, 12, 3), 40 * index, dtype=np.uint8)
            Image.fromarray(pixels).save(root / "test" / name / f"{index}.png")
    return {"name": "image_folder", "root": str(root), "image_size": 8}


def test_an_empty_image_folder_says_where_images_go(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no images in class sub-folders"):
        data.load_dataset({"name": "image_folder", "root": str(tmp_path), "image_size": 8},
                          train=False)


def test_a_single_class_folder_is_refused(tmp_path):
    spec = _image_folder(tmp_path, ["cats"])
    with pytest.raises(ValueError, match=r"single class \['cats'\].*at least two"):
        data.load_dataset(spec, train=False)


def test_an_unreadable_image_is_named(tmp_path):
    spec = _image_folder(tmp_path, ["cats", "dogs"])
    broken = tmp_path / "test" / "dogs" / "1.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"dogs/1\.png cannot be read.*replace or remove"):
        data.load_dataset(spec, train=False)
    with pytest.raises(ValueError, match=r"dogs/1\.png cannot be read"):
        data.load_sample(spec, False, lambda labels: np.arange(len(labels)))


def test_a_job_error_reaches_the_terminal_and_the_log(tmp_path):
    log = tmp_path / "job.log"
    script = (f"from metamers.joblog import send_stderr_to; send_stderr_to({str(log)!r}); "
              "import sys; print('progress', file=sys.stderr); "
              "raise ValueError('weights.pt is broken:\\n' + '\\n'.join(map(str, range(9))))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == ["ValueError: weights.pt is broken:", "0", "1", "2",
                                             "3", "...", f"(traceback in {log})"]
    logged = log.read_text()
    assert logged.startswith("progress\nTraceback") and logged.rstrip().endswith("8")


def _snakemake(workdir: Path, config: dict) -> subprocess.CompletedProcess:
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return run_snakemake(workdir, "results/metamers/cnn_a/relu9/adam/uniform.h5", "--cores",
                         "2", "--configfile", str(config_path))


def test_an_unknown_generating_layer_stops_before_any_job_and_leaves_earlier_results(
        tmp_path):
    """An unknown generating layer passes the schema (layers exist only once a model is
    built); the preflight stops the run with the valid names before any job starts."""
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["training"]["quick"]["max_train_images"] = 1000
    config["models"] = {"cnn_a": config["models"]["cnn_a"]}
    config["generator_sets"] = {}
    config["generation"]["generators"] = {"cnn_a": ["relu9"]}
    earlier = tmp_path / "results" / "scores.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier results")
    completed = _snakemake(tmp_path, config)
    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "no layer 'relu9' (generation.generators.cnn_a)" in output and "relu2" in output
    assert earlier.read_bytes() == b"earlier results"
    assert not (tmp_path / "resources/models").exists()  # no job started
