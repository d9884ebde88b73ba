"""Checks that need no job, run while Snakemake builds the DAG (``workflow/rules/common.smk``).

Snakemake deletes a job's old outputs when the job starts, so a mistake found inside a job
costs finished work. Everything here is found before any job starts: each model's layer names
(from its bare architecture, cached in :data:`LAYER_CACHE`), the device, the optimisers and
their keyword arguments, the reference images' pixels, and the files jobs would read.
What passed is remembered in :data:`PASSED_CACHE` (the optimisers' settings with torch's
version; each file's size and modification time with the HDF5 schema version), so a no-op
rerun neither imports torch nor opens a file. Nothing here writes a rule's output (only these
caches); ``docs/preflight.md`` says why it runs at DAG construction.
"""

from __future__ import annotations

import importlib.metadata
import json
import zipfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from metamers import layout, store
from metamers.zoo.registry import NOT_ARCHITECTURE, trained_by_pipeline

# Beside Snakemake's own records: a dry run writes nothing else into the working directory.
LAYER_CACHE = Path(".snakemake/metamers/layer_names.json")
PASSED_CACHE = Path(".snakemake/metamers/passed.json")
PARQUET_MAGIC = b"PAR1"
IMAGE_CHUNK = 256  # reference images read at a time


class PreflightError(ValueError):
    """A mistake found before any job started; the message names it, the file and the fix."""


def rebuild_command(path: str | Path) -> str:
    """The command that rebuilds one file of the pipeline from scratch."""
    return (f"`rm {path} && snakemake --cores all {path}` (with this run's --configfile, if "
            "any); files made from it are then older and rerun")


def check_device(device: str) -> None:
    """Refuse ``device: cuda`` where torch sees no CUDA device."""
    if not device.startswith("cuda"):
        return
    import torch  # seconds: only where the config asks for CUDA

    if not torch.cuda.is_available():
        raise PreflightError(
            f"The config asks for device: {device}, but torch finds no CUDA device on this "
            "machine (torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only "
            "torch). Set `device: auto` (CUDA where a job finds it, else the CPU) or "
            "`device: cpu`, or run on a machine with a GPU.")


def check_optimizers(optimizers: dict[str, dict]) -> None:
    """Every optimiser passes :func:`metamers.optimizers.check_optimizer` (a ``torch.optim``
    optimiser accepting its kwargs, its scheduler likewise, L-BFGS without what breaks it)."""
    from metamers.optimizers import OptimizerSettings, check_optimizer  # imports torch

    for name, settings in optimizers.items():
        try:
            check_optimizer(OptimizerSettings.from_config(settings))
        except ValueError as error:
            raise PreflightError(f"optimizers.{name}.{error}") from None


def requested_layers(config: dict, evaluators: list[str]) -> dict[str, dict[str, str]]:
    """``{model: {layer: where the config asks for it}}``: the evaluators' layers, the
    generating layers of models, of generator sets' members and of the joint overlay."""
    requested: dict[str, dict[str, str]] = defaultdict(dict)
    for name in evaluators:
        for layer in config["models"][name]["layers"]:
            requested[name].setdefault(layer, f"models.{name}.layers")
    sets = config.get("generator_sets", {})
    for generator, layers in config["generation"]["generators"].items():
        for layer in layers:
            if generator in sets:
                for member, member_layer in sets[generator]["layers"][layer].items():
                    requested[member].setdefault(
                        member_layer, f"generator_sets.{generator}.layers.{layer}")
            else:
                requested[generator].setdefault(layer, f"generation.generators.{generator}")
    for group in ("pool", "compare"):  # the joint overlay's sets draw from these
        for model, layers in (config.get("joint") or {}).get(group, {}).items():
            for depth, layer in layers.items():
                requested[model].setdefault(layer, f"joint.{group}.{model}.{depth}")
    return dict(requested)


def _architecture_key(spec: dict, data_spec: dict) -> str:
    architecture = {key: value for key, value in spec.items() if key not in NOT_ARCHITECTURE}
    if trained_by_pipeline(spec):  # built for the data set's image shape
        architecture["data"] = {key: data_spec.get(key) for key in ("name", "root", "image_size")}
    return json.dumps(architecture, sort_keys=True)


def _bare_layer_names(name: str, spec: dict, data_spec: dict) -> list[str] | None:
    """The layer names of a bare architecture. Where it cannot be built here (a package or
    the data set missing), those on the model's card if it was made before; else None, and
    the job that makes the model, which deletes nothing, says what is missing."""
    from metamers import layers, zoo  # torchvision's import is slow: only on a cache miss

    try:
        return zoo.layer_names(layers.bare_architecture(spec, data_spec))
    except (ImportError, OSError, ValueError, RuntimeError):
        card = Path(layout.MODEL_CARD.format(model=name))
        return list(store.read_json(card)["layers"]) if card.exists() else None


def model_layer_names(config: dict, names: list[str], cache_path: Path = LAYER_CACHE
                      ) -> dict[str, list[str] | None]:
    """``{model: layer names}``, from the cache where the architecture was seen before."""
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    listing, missed = {}, False
    for name in names:
        spec = config["models"][name]
        key = _architecture_key(spec, config["data"])
        if key not in cache:
            found = _bare_layer_names(name, spec, config["data"])
            if found is None:
                listing[name] = None
                continue
            cache[key], missed = found, True
        listing[name] = cache[key]
    if missed:
        store.write_json(cache_path, cache)
    return listing


def check_layers(config: dict, evaluators: list[str], cache_path: Path = LAYER_CACHE) -> None:
    """Every requested layer exists in its model's architecture."""
    requested = requested_layers(config, evaluators)
    available = model_layer_names(config, sorted(requested), cache_path)
    for name, layers in requested.items():
        if available[name] is None:
            continue
        unknown = {layer: where for layer, where in layers.items()
                   if layer not in available[name]}
        if unknown:
            listed = "; ".join(f"{layer!r} ({where})" for layer, where in unknown.items())
            raise PreflightError(
                f"Model {name!r} has no layer {listed}. Its layers are: "
                f"{', '.join(available[name])}. Fix the config (every model's names: "
                "`python -m metamers.layers --configfile CONFIG`).")


def check_pixels(images: np.ndarray, source: str, fix: str) -> None:
    """Images must be finite and in [0, 1]: every metamer and score is made from them."""
    finite = np.isfinite(images)
    if not finite.all():
        raise PreflightError(f"{source} holds {int((~finite).sum())} NaN or infinite pixel "
                             f"values (of {images.size}). {fix}")
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise PreflightError(f"{source} holds pixels outside [0, 1] (min {low:g}, max "
                             f"{high:g}). {fix}")


def check_references(path: Path) -> None:
    """The reference images of an existing references file are finite and in [0, 1]."""
    if not Path(path).exists():
        return
    fix = f"Rebuild it: {rebuild_command(path)}."
    with h5py.File(path, "r") as handle:
        if "images" not in handle:
            raise PreflightError(f"{path} holds no images. {fix}")
        images = handle["images"]
        for start in range(0, len(images), IMAGE_CHUNK):
            check_pixels(images[start:start + IMAGE_CHUNK], str(path), fix)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be what its suffix says (None: it looks whole)."""
    suffix = path.suffix
    try:
        if suffix == ".parquet":
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(4)
                handle.seek(max(size - 4, 0))
                tail = handle.read(4)
            if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
                return "no Parquet magic bytes at both ends: truncated or not Parquet"
        elif suffix == ".h5":
            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("schema_version")
            if version != store.SCHEMA_VERSION:
                return f"schema version {version}, this code reads {store.SCHEMA_VERSION}"
        elif suffix == ".pt":
            with zipfile.ZipFile(path):
                pass
        elif suffix == ".json":
            json.loads(path.read_text())
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def check_readable(paths: list[str]) -> None:
    """Every existing file that jobs read looks whole (a header and footer check, not a read)."""
    for path in map(Path, paths):
        if path.exists():
            reason = _unreadable(path)
            if reason:
                raise PreflightError(f"{path} is not readable ({reason}); jobs of this "
                                     f"pipeline read it. Rebuild it: {rebuild_command(path)}.")


def repair_mark(inventory: Path, inputs: list[str]) -> str:
    """The repair mark of an inventory (``workflow/rules/inventory.smk``): the one it records,
    or a new one (the time now) where a file it found present is missing.

    Snakemake rebuilds a missing file only for a job that must run, so a deleted metamer whose
    scores exist stays missing for a named target. As the inventory job's parameter, a new mark
    makes that job run, and Snakemake then rebuilds every missing file it takes as input, and
    what is made from them. The job records the mark it ran with, so the next run sees no
    change. A new mark is never one recorded before, whatever Snakemake recorded.
    """
    if not Path(inventory).exists():
        return ""
    recorded = store.read_json(inventory)
    present = set(recorded.get("files", []))
    if any(path in present and not Path(path).exists() for path in inputs):
        return datetime.now(timezone.utc).isoformat()
    return recorded.get("repair", "")


def _stamp(path: Path) -> list[int]:
    """What a file's check is remembered by: its size and modification time (ns)."""
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def run(config: dict, evaluators: list[str], read_files: list[str], references: str,
        cache_path: Path = LAYER_CACHE, passed_path: Path = PASSED_CACHE) -> None:
    """Every check, cheapest first; raise :class:`PreflightError` at the first mistake.

    Checks that passed before on the same settings (optimisers and torch's version) or the same
    files (size, modification time and HDF5 schema version) are not repeated."""
    passed = json.loads(passed_path.read_text()) if passed_path.exists() else {}
    recorded = json.dumps(passed, sort_keys=True)
    check_device(config["device"])
    optimizers = json.dumps([config["optimizers"], importlib.metadata.version("torch")],
                            sort_keys=True)
    if passed.get("optimizers") != optimizers:
        check_optimizers(config["optimizers"])
        passed["optimizers"] = optimizers
    check_layers(config, evaluators, cache_path)
    if passed.get("schema_version") != store.SCHEMA_VERSION:
        passed = {"optimizers": passed["optimizers"], "schema_version": store.SCHEMA_VERSION}
    stamps = {path: _stamp(Path(path)) for path in dict.fromkeys([*read_files, references])
              if Path(path).exists()}
    unseen = [path for path, stamp in stamps.items() if passed.get("files", {}).get(path) != stamp]
    if unseen:
        check_readable([path for path in unseen if path in read_files])
    if references in unseen:
        check_references(Path(references))
    passed["files"] = stamps
    if json.dumps(passed, sort_keys=True) != recorded:
        store.write_json(passed_path, passed)

