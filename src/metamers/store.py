"""Input and output: HDF5 (images, activations, nulls), Parquet (scores), JSON (model cards).

Writers go through a temporary file in the target's folder and rename it at the end, so an
interrupted job never leaves a half-written file that looks complete. Every HDF5 file carries
``schema_version``; readers check it and the datasets they need, and say which file is broken
and how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # torch's import costs seconds: the preflight and plots read files without it
    from metamers.criteria import NullDistribution
    from metamers.records import SynthesisResult


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    An ``OSError`` or ``RuntimeError`` on the way (a full disk, a folder without write
    permission; torch.save reports a full disk as a ``RuntimeError`` without a path) is raised
    again with ``path`` and the fix in its message, the original chained to it.
    """
    path = Path(path)
    # one name per process: jobs running side by side may write the same file (the data set)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:
        message = (f"While writing {path}: {type(error).__name__}: {error}. If the disk is full "
                   f"or {path.parent} is not writable, free space or fix its permissions (or "
                   "run in another folder) and rerun.")
        raise (OSError if isinstance(error, OSError) else RuntimeError)(message) from error
    finally:
        if partial.exists():
            partial.unlink()


# What torch.load raises on a truncated file or one that is not a checkpoint (the weights-only
# unpickler fails in several ways, depending on the bytes it meets).
CHECKPOINT_LOAD_ERRORS = (OSError, RuntimeError, EOFError, IndexError, KeyError, ValueError,
                          pickle.UnpicklingError)
SCHEMA_VERSION = 2  # of every HDF5 file; 2 added the metamers' stop_reason


@contextmanager
def open_h5(path: Path, required: tuple[str, ...] = ()):
    """Open an HDF5 file for reading, with a clear error if it is missing, corrupt or partial."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build it with `snakemake {path}`.")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise OSError(f"{path} is not a readable HDF5 file ({error}); delete it and rebuild it "
                      f"with `snakemake {path}`.") from error
    with handle:
        version = handle.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path} has schema version {version} (none: written before "
                             f"versions were recorded), this code reads {SCHEMA_VERSION}: "
                             f"delete it and rebuild it with `snakemake {path}`.")
        missing = [name for name in required if name not in handle]
        if missing:
            raise KeyError(f"{path} lacks {missing}: it was written by another version or "
                           f"is incomplete; delete it and rebuild it with `snakemake {path}`.")
        yield handle


def _write_attrs(handle: h5py.File, attrs: dict) -> None:
    handle.attrs["schema_version"] = SCHEMA_VERSION
    for key, value in attrs.items():
        # JSON for what HDF5 attributes cannot hold: mappings, lists, None
        handle.attrs[key] = (json.dumps(value) if isinstance(value, (dict, list)) or value is None
                             else value)


def write_json(path: Path, content: dict) -> None:
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build it with `snakemake {path}`.")
    return json.loads(path.read_text())


def write_references(path: Path, images: np.ndarray, labels: np.ndarray,
                     source_index: np.ndarray, class_names: list[str], attrs: dict) -> None:
    """Reference images (N, C, H, W) float32 in [0, 1], their labels and data-set indices."""
    from metamers.runtime import library_versions  # imports torch

    with atomic_path(path) as partial, h5py.File(partial, "w") as handle:
        handle.create_dataset("images", data=images.astype(np.float32), compression="gzip")
        handle.create_dataset("labels", data=labels.astype(np.int64))
        handle.create_dataset("source_index", data=source_index.astype(np.int64))
        _write_attrs(handle, {**attrs, "class_names": class_names,
                              "versions": library_versions()})


def read_references(path: Path) -> dict:
    with open_h5(path, ("images", "labels", "source_index")) as handle:
        return {"images": handle["images"][()], "labels": handle["labels"][()],
                "source_index": handle["source_index"][()],
                "class_names": json.loads(handle.attrs["class_names"])}


def write_metamers(path: Path, result: SynthesisResult, reference_index: np.ndarray,
                   reference_labels: np.ndarray, pixel_distance: np.ndarray,
                   initial_distance: np.ndarray, attrs: dict) -> None:
    """One generation job's HDF5 file (schema in the README)."""
    from metamers.criteria import MEASURES  # criteria and runtime import torch
    from metamers.runtime import library_versions

    with atomic_path(path) as partial, h5py.File(partial, "w") as handle:
        handle.create_dataset("metamers", data=result.metamers, compression="gzip")
        handle.create_dataset("initial_images", data=result.initial_images, compression="gzip")
        handle.create_dataset("reference_index", data=reference_index.astype(np.int64))
        handle.create_dataset("reference_label", data=reference_labels.astype(np.int64))
        handle.create_dataset("loss", data=result.loss, compression="gzip")
        handle.create_dataset("iterations_to_success", data=result.iterations_to_success)
        handle.create_dataset("iterations_run", data=result.iterations_run)
        handle.create_dataset("success", data=result.success)
        for measure in MEASURES:  # each measure at the metamer's stop; passed its deciding bar
            values = getattr(result, f"final_{measure}")
            handle.create_dataset(f"final_{measure}", data=values)
            handle.create_dataset(f"passes_{measure}", data=np.stack([
                np.nan_to_num(values[:, member], nan=-np.inf) > bars.get(measure, np.nan)
                for member, bars in enumerate(result.thresholds)], 1))
        handle.create_dataset("predicted_class", data=result.predicted_class)
        handle.create_dataset("reference_class", data=result.reference_class)
        handle.create_dataset("pixel_distance", data=pixel_distance.astype(np.float64))
        handle.create_dataset("initial_distance", data=initial_distance.astype(np.float64))
        handle.create_dataset("stop_reason", data=result.stop_reason.astype("S"))
        _write_attrs(handle, {**attrs, "members": result.member_names,
                              "thresholds": result.thresholds,  # per member, deciding measures
                              "wall_time_s": result.wall_time, "versions": library_versions()})


METAMER_DATASETS = ("metamers", "initial_images", "reference_index", "loss",
                    "iterations_to_success", "success", "pixel_distance", "initial_distance",
                    "stop_reason")


def read_metamers(path: Path) -> dict:
    """Every dataset of a metamer file as arrays, plus its decoded attrs under ``attrs``."""
    with open_h5(path, METAMER_DATASETS) as handle:
        content = {name: handle[name][()] for name in handle}
        content["stop_reason"] = content["stop_reason"].astype(str)
        content["attrs"] = {key: _decode(value) for key, value in handle.attrs.items()}
    return content


def _decode(value):
    if isinstance(value, str) and (value[:1] in "[{" or value == "null"):
        return json.loads(value)
    return value.item() if isinstance(value, np.generic) else value


def write_null(path: Path, null: NullDistribution, threshold: str | float, attrs: dict) -> None:
    """One (model, layer)'s null file: a sorted dataset per measure (float64), and attrs with
    the source, pair count, maxima, the thresholds under the criterion's ``threshold`` rule
    (``max`` or a percentile) and the measures it leaves uninformative (docs/criterion.md)."""
    from metamers.runtime import library_versions  # imports torch

    with atomic_path(path) as partial, h5py.File(partial, "w") as handle:
        for measure, values in null.values.items():
            handle.create_dataset(measure, data=np.asarray(values, np.float64))
        measures = list(null.values)
        _write_attrs(handle, {
            **attrs, "source": null.source, "pairs": null.pairs,
            "maxima": {measure: null.maximum(measure) for measure in measures},
            "threshold_rule": threshold,
            "thresholds": {measure: null.threshold(measure, threshold) for measure in measures},
            "uninformative": [measure for measure in measures
                              if not null.informative(measure, threshold)],
            "versions": library_versions()})


def read_null(path: Path) -> NullDistribution:
    """The null of a file written by :func:`write_null` (every measure it holds)."""
    from metamers.criteria import MEASURES, NullDistribution  # imports torch

    with open_h5(path, ("spearman",)) as handle:
        measures = [measure for measure in MEASURES if measure in handle]
        return NullDistribution({measure: handle[measure][()] for measure in measures},
                                str(handle.attrs["source"]))


def read_null_attrs(path: Path) -> dict:
    """A null file's attrs, decoded: source, pairs, maxima, thresholds, layer, seed, ..."""
    with open_h5(path, ("spearman",)) as handle:
        return {key: _decode(value) for key, value in handle.attrs.items()}


def write_activations(path: Path, activations: dict[str, dict[str, dict[str, np.ndarray]]],
                      attrs: dict) -> None:
    """``activations[model][image_set][layer]`` -> group ``model/image_set/layer`` (chunked)."""
    from metamers.runtime import library_versions  # imports torch

    with atomic_path(path) as partial, h5py.File(partial, "w") as handle:
        for model, image_sets in activations.items():
            for image_set, layers in image_sets.items():
                for layer, values in layers.items():
                    # gzip level 1: 0.8x the time of the default level 4, 4% larger
                    handle.create_dataset(f"{model}/{image_set}/{layer}", data=values,
                                          chunks=True, compression="gzip", compression_opts=1)
        _write_attrs(handle, {**attrs, "versions": library_versions()})


def read_activations(path: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    with open_h5(path) as handle:
        return {model: {image_set: {layer: handle[model][image_set][layer][()]
                                    for layer in handle[model][image_set]}
                        for image_set in handle[model]}
                for model in handle}


def write_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as partial:
        table.to_parquet(partial, index=False)


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: build it with `snakemake {path}`.")
    return pd.read_parquet(path)


def dataset_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of every dataset's values in an HDF5 file, by dataset name: what two runs must
    share to be identical, whatever the files' metadata (time stamps, attrs)."""
    hashes = {}

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            values = np.ascontiguousarray(item[()])
            hashes[name] = hashlib.sha256(values.tobytes()).hexdigest()

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    return hashes
