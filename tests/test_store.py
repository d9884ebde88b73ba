"""HDF5 / Parquet / JSON round trips, clear errors on broken files, atomic writes."""

from __future__ import annotations

import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from metamers import criteria, store
from metamers.records import SynthesisResult


@pytest.fixture
def synthesis_result() -> SynthesisResult:
    rng = np.random.default_rng(0)
    count = 3
    loss = rng.random((6, count)).astype(np.float32)
    loss[4:, 1] = np.nan
    return SynthesisResult(
        metamers=rng.random((count, 1, 8, 8)).astype(np.float32),
        initial_images=rng.random((count, 1, 8, 8)).astype(np.float32),
        loss=loss, iterations_to_success=np.array([2, 4, -1]),
        success=np.array([True, True, False]), final_spearman=rng.random((count, 2)),
        final_pearson=rng.random((count, 2)), final_snr_db=rng.random((count, 2)) * 20,
        thresholds=[{"spearman": 0.5, "snr_db": 10.0}, {"pearson": 0.5}],
        predicted_class=np.array([[1, 1], [2, 2], [0, 3]]),
        reference_class=np.array([[1, 1], [2, 2], [0, 0]]),
        iterations_run=np.array([2, 4, 5]), wall_time=1.5, member_names=["cnn_a", "cnn_b"],
        stop_reason=np.array(["success", "success", "non-finite loss"]))


def test_metamers_round_trip(tmp_path, synthesis_result):
    path = tmp_path / "results" / "metamers.h5"
    attrs = {"optimizer": {"name": "Adam", "kwargs": {"lr": 0.05}}, "seed": 7, "layer": "relu2",
             "compile": None}
    store.write_metamers(path, synthesis_result, np.arange(3), np.array([4, 5, 6]),
                         np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), attrs)
    content = store.read_metamers(path)
    for name in ("metamers", "initial_images", "iterations_to_success", "success",
                 "final_spearman", "final_pearson", "final_snr_db", "predicted_class",
                 "reference_class", "iterations_run", "stop_reason"):
        np.testing.assert_array_equal(content[name], getattr(synthesis_result, name), name)
    result = synthesis_result  # each member's deciding measures passed where above their bar
    np.testing.assert_array_equal(content["passes_spearman"][:, 0], result.final_spearman[:, 0] > 0.5)
    np.testing.assert_array_equal(content["passes_snr_db"][:, 0], result.final_snr_db[:, 0] > 10)
    np.testing.assert_array_equal(content["passes_pearson"][:, 1], result.final_pearson[:, 1] > 0.5)
    assert not content["passes_pearson"][:, 0].any() and not content["passes_snr_db"][:, 1].any()
    assert content["attrs"]["thresholds"] == result.thresholds
    np.testing.assert_array_equal(content["loss"], synthesis_result.loss)  # NaNs included
    np.testing.assert_array_equal(content["reference_index"], np.arange(3))
    np.testing.assert_array_equal(content["reference_label"], [4, 5, 6])
    np.testing.assert_array_equal(content["pixel_distance"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(content["initial_distance"], [4.0, 5.0, 6.0])
    assert content["attrs"]["optimizer"] == attrs["optimizer"]
    assert content["attrs"]["seed"] == 7 and content["attrs"]["layer"] == "relu2"
    assert content["attrs"]["compile"] is None
    assert content["attrs"]["members"] == ["cnn_a", "cnn_b"]
    assert content["attrs"]["wall_time_s"] == 1.5
    assert "torch" in content["attrs"]["versions"]
    assert list(path.parent.iterdir()) == [path]


def test_references_round_trip(tmp_path):
    path = tmp_path / "references.h5"
    images = np.random.default_rng(1).random((4, 1, 5, 5)).astype(np.float32)
    store.write_references(path, images, np.array([0, 0, 1, 1]), np.array([10, 3, 7, 9]),
                           ["shirt", "shoe"], {"seed": 0})
    content = store.read_references(path)
    np.testing.assert_array_equal(content["images"], images)
    np.testing.assert_array_equal(content["labels"], [0, 0, 1, 1])
    np.testing.assert_array_equal(content["source_index"], [10, 3, 7, 9])
    assert content["class_names"] == ["shirt", "shoe"]


def null_of(values: np.ndarray) -> criteria.NullDistribution:
    """A null whose every measure holds ``values``."""
    return criteria.NullDistribution({measure: np.asarray(values)
                                      for measure in criteria.MEASURES}, "train")


def test_null_round_trip(tmp_path):
    path = tmp_path / "null.h5"
    rng = np.random.default_rng(2)
    null = criteria.NullDistribution({measure: np.sort(rng.random(45))
                                      for measure in criteria.MEASURES}, "references")
    store.write_null(path, null, 90.0, {"layer": "relu1"})
    read = store.read_null(path)
    assert read.source == "references" and read.pairs == 45
    for measure in criteria.MEASURES:
        np.testing.assert_array_equal(read.values[measure], null.values[measure])
    content = store.read_null_attrs(path)
    assert content["layer"] == "relu1" and content["pairs"] == 45
    assert content["maxima"]["pearson"] == null.values["pearson"][-1]
    assert content["thresholds"]["snr_db"] == np.percentile(null.values["snr_db"], 90)


def test_activations_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    activations = {
        "cnn_a": {"metamer": {"relu1": rng.random((3, 20)).astype(np.float32),
                              "__logits__": rng.random((3, 10)).astype(np.float32)},
                  "reference": {"relu1": rng.random((3, 20)).astype(np.float32)}},
        "cnn_b": {"metamer": {"fc_relu": rng.random((3, 7)).astype(np.float32)}},
    }
    path = tmp_path / "activations.h5"
    store.write_activations(path, activations, {"projection_dim": 512})
    content = store.read_activations(path)
    assert content.keys() == activations.keys()
    for model, image_sets in activations.items():
        assert content[model].keys() == image_sets.keys()
        for image_set, layers in image_sets.items():
            assert content[model][image_set].keys() == layers.keys()
            for layer, values in layers.items():
                np.testing.assert_array_equal(content[model][image_set][layer], values)


def test_table_and_json_round_trip(tmp_path):
    table = pd.DataFrame({"generator": ["cnn_a", "cnn_b"], "metamer": [0, 1],
                          "value": [0.5, np.nan], "success": [True, False]})
    store.write_table(tmp_path / "scores.parquet", table)
    pd.testing.assert_frame_equal(store.read_table(tmp_path / "scores.parquet"), table)
    card = {"layers": ["relu1", "logits"], "test_accuracy": 0.8, "nested": {"a": 1}}
    store.write_json(tmp_path / "card.json", card)
    assert store.read_json(tmp_path / "card.json") == card


def test_missing_files_name_the_file(tmp_path):
    missing = tmp_path / "absent.h5"
    for reader in (store.read_metamers, store.read_references, store.read_null,
                   store.read_activations, store.read_table, store.read_json):
        with pytest.raises(FileNotFoundError, match=r"absent\.h5"):
            reader(missing)


def test_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(np.random.default_rng(4).bytes(2048))
    with pytest.raises(OSError, match=r"corrupt\.h5.*not a readable HDF5 file"):
        store.read_metamers(path)


def test_missing_dataset_names_the_file_and_the_dataset(tmp_path):
    path = tmp_path / "null.h5"
    store.write_null(path, null_of(np.arange(3.0)), "max", {})
    with pytest.raises(KeyError, match=r"null\.h5.*images"):
        store.read_references(path)


def test_atomic_write_leaves_nothing_when_the_writer_raises(tmp_path, synthesis_result):
    path = tmp_path / "out" / "metamers.h5"
    bad_distance = np.array(["not", "a", "number"], dtype=object)
    with pytest.raises(ValueError, match="not"):
        store.write_metamers(path, synthesis_result, np.arange(3), np.arange(3), bad_distance,
                             np.zeros(3), {})
    assert list(path.parent.iterdir()) == []
    with pytest.raises(RuntimeError, match="interrupted"), store.atomic_path(path) as partial:
        partial.write_text("half")
        raise RuntimeError("interrupted")
    assert list(path.parent.iterdir()) == []


def _write_slowly(path: Path, text: str, started, release) -> None:
    with store.atomic_path(path) as partial:
        partial.write_text(text)
        started.set()
        release.wait(10)


def test_two_processes_may_write_one_file_at_once(tmp_path):
    """Jobs side by side may write the same file (two training jobs unpacking the data set):
    each writes its own temporary file, and both succeed."""
    path = tmp_path / "data" / "train-images"
    context = multiprocessing.get_context("fork")
    release = context.Event()
    writers = []
    for text in ("first", "second"):
        started = context.Event()
        writers.append(context.Process(target=_write_slowly,
                                       args=(path, text, started, release)))
        writers[-1].start()
        assert started.wait(10)
    release.set()
    for writer in writers:
        writer.join(10)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert path.read_text() in ("first", "second")
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_atomic_write_keeps_the_old_file_until_success(tmp_path):
    path = tmp_path / "card.json"
    store.write_json(path, {"version": 1})
    with pytest.raises(ValueError, match="boom"), store.atomic_path(path) as partial:
        partial.write_text('{"version": 2}')
        raise ValueError("boom")
    assert store.read_json(path) == {"version": 1}
    assert [entry.name for entry in tmp_path.iterdir()] == ["card.json"]


def _full_disk(path: Path) -> None:
    """Every write to ``path`` through ``store.atomic_path`` meets a full disk: its temporary
    file is a link to /dev/full (ENOSPC on write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(f".{path.name}.{os.getpid()}.partial").symlink_to("/dev/full")


def test_a_full_disk_names_the_file_being_written(tmp_path):
    weights = tmp_path / "models" / "cnn.pt"
    _full_disk(weights)
    # torch.save's own message names no file: "[enforce fail at ...] unexpected pos"
    expected = rf"While writing {re.escape(str(weights))}: RuntimeError: .*unexpected pos.*disk"
    with pytest.raises(RuntimeError, match=expected), store.atomic_path(weights) as partial:
        torch.save({"weight": torch.zeros(1000)}, partial)
    null = tmp_path / "nulls" / "relu2.h5"
    _full_disk(null)
    expected = rf"(?s)While writing {re.escape(str(null))}: .*No space left"
    with pytest.raises(OSError, match=expected):
        store.write_null(null, np.arange(3.0), 99.0, {})
    assert [item for item in tmp_path.rglob("*") if item.is_file()] == []


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway
        pytest.skip("this user may write into read-only folders")
    return folder


def _folder_that_is_a_file(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.write_text("a file where a folder should be")
    return folder


@pytest.mark.parametrize("make_folder", [_read_only_folder, _folder_that_is_a_file])
def test_an_unwritable_folder_names_the_file_being_written(tmp_path, make_folder):
    path = make_folder(tmp_path) / "scores.parquet"
    with pytest.raises(OSError, match=rf"While writing {re.escape(str(path))}: .*not writable"):
        store.write_table(path, pd.DataFrame({"score": [1.0]}))
    with (pytest.raises((OSError, RuntimeError), match=rf"While writing {re.escape(str(path))}"),
          store.atomic_path(path) as partial):
        torch.save({}, partial)


def test_files_of_another_schema_version_are_refused_by_name(tmp_path):
    import h5py

    path = tmp_path / "old_null.h5"
    store.write_null(path, null_of(np.arange(3.0)), "max", {})
    with h5py.File(path, "r+") as handle:
        del handle.attrs["schema_version"]
    with pytest.raises(ValueError, match=r"old_null\.h5 has schema version None.*rebuild"):
        store.read_null(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["schema_version"] = store.SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema version"):
        store.read_null(path)


def test_truncated_file_gives_a_clear_error(tmp_path, synthesis_result):
    path = tmp_path / "metamers.h5"
    store.write_metamers(path, synthesis_result, np.arange(3), np.arange(3), np.zeros(3),
                         np.zeros(3), {})
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(OSError, match=r"metamers\.h5.*not a readable HDF5 file.*rebuild"):
        store.read_metamers(path)


def test_dataset_hashes_see_values_not_metadata(tmp_path):
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    store.write_null(first, null_of(np.arange(3.0)), "max", {"written": "first"})
    store.write_null(second, null_of(np.arange(3.0)), "max", {"written": "second"})
    assert store.dataset_hashes(first) == store.dataset_hashes(second)
    store.write_null(second, null_of(np.arange(3.0) + 1e-12), "max", {})
    assert store.dataset_hashes(first) != store.dataset_hashes(second)
