"""Cross-reference checks of a config that the JSON schema cannot express.

The schema (``workflow/schemas/config.schema.yaml``) checks keys, types and ranges and fills
defaults; :func:`check_config` then checks that every name refers to something that exists.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import torch

from metamers.inits import INIT_KINDS

# Data sets of a few labelled test images (data.load_dataset): no training split for a null.
TEST_ONLY_DATA = ("foolbox_imagenet", "foolbox_mnist", "imagenet_samples")
# Names become folder and file names of outputs: no separators, no leading dot, no "..".
SAFE_NAME = re.compile(r"^(?!\.)(?!.*\.\.)[A-Za-z0-9_.\-]+$")


class ConfigError(ValueError):
    """A config that names something that does not exist; the message says what and where."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _require_safe_names(names, where: str) -> None:
    for name in names:
        _require(bool(SAFE_NAME.match(name)),
                 f"{where}: {name!r} is used in output paths; use letters, digits, '_', '-' "
                 "and '.' (no '/', no '..', not starting with '.').")


def _writes_inside_resources(data: dict) -> None:
    """The pipeline writes into ``data.root`` (Fashion-MNIST unpacked there, or a download):
    then it must stay inside resources/."""
    writes = data["name"] == "fashion_mnist" or data.get("download", False)
    root = PurePosixPath(data.get("root", "resources/data"))
    inside = not root.is_absolute() and root.parts[:1] == ("resources",) and ".." not in root.parts
    _require(not writes or inside,
             f"data.root={str(root)!r}: the pipeline writes its data files there, so it must be "
             "a folder inside resources/ (e.g. resources/data).")


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` naming the first dangling reference in ``config``."""
    models, sets = config["models"], config.get("generator_sets", {})
    _writes_inside_resources(config["data"])
    _require_safe_names(models, "models")
    _require_safe_names(sets, "generator_sets")
    _require_safe_names(config["optimizers"], "optimizers")
    _require_safe_names(config["inits"], "inits")
    for generator, layers in config["generation"]["generators"].items():
        _require_safe_names(layers, f"generation.generators.{generator}")
    training = config.get("training", {})
    for name, spec in models.items():
        where = f"models.{name}"
        _require(name not in sets, f"{where}: model names must differ from generator set names.")
        if spec["source"] == "local":
            _require("architecture" in spec, f"{where}: a local model needs `architecture`.")
            _require(spec.get("training") in training,
                     f"{where}.training={spec.get('training')!r} is not a key of `training` "
                     f"({sorted(training)}).")
        elif spec["source"] == "torchvision":
            _require("architecture" in spec and "weights" in spec,
                     f"{where}: a torchvision model needs `architecture` and `weights`.")
        elif spec["source"] == "package":
            _require("architecture" in spec, f"{where}: a package model needs `architecture`.")
        elif spec["source"] == "advertorch_lenet5":
            # zoo.ADVERTORCH_WEIGHTS' keys, spelled out: zoo imports torchvision (slow at start)
            _require(spec.get("weights") in ("clntrained", "advtrained"),
                     f"{where}: an advertorch_lenet5 model needs `weights: clntrained` or "
                     "`weights: advtrained`.")
        else:
            for key in ("name", "dataset", "threat_model", "num_classes"):
                _require(key in spec, f"{where}: a robustbench model needs `{key}`.")
    for name, spec in sets.items():
        for member in spec["members"]:
            _require(member in models, f"generator_sets.{name}: member {member!r} is not a "
                                       f"model (models: {sorted(models)}).")
        for alias, layers in spec["layers"].items():
            _require(sorted(layers) == sorted(spec["members"]),
                     f"generator_sets.{name}.layers.{alias} must give one layer per member "
                     f"{spec['members']}, not {sorted(layers)}.")
    generation = config["generation"]
    for generator, layers in generation["generators"].items():
        _require(generator in models or generator in sets,
                 f"generation.generators: {generator!r} is neither a model nor a generator set.")
        if generator in sets:
            unknown = [layer for layer in layers if layer not in sets[generator]["layers"]]
            _require(not unknown, f"generation.generators.{generator}: layer aliases {unknown} "
                                  f"are not in generator_sets.{generator}.layers.")
    for key, kind in (("optimizers", "optimizer"), ("inits", "init")):
        for name in generation[key]:
            _require(name in config[key], f"generation.{key}: {kind} {name!r} is not defined "
                                          f"under `{key}` ({sorted(config[key])}).")
    for name, optimizer in config["optimizers"].items():
        _require(hasattr(torch.optim, optimizer["name"]),
                 f"optimizers.{name}.name={optimizer['name']!r} is not a torch.optim optimizer "
                 "(e.g. SGD, Adam, AdamW, RMSprop, LBFGS).")
        scheduler = optimizer.get("scheduler")
        _require(not scheduler or hasattr(torch.optim.lr_scheduler, scheduler),
                 f"optimizers.{name}.scheduler={scheduler!r} is not a torch.optim.lr_scheduler "
                 "class (e.g. StepLR, CosineAnnealingLR, ReduceLROnPlateau).")
        _require(optimizer["name"] != "LBFGS" or optimizer.get("constraint") != "clamp",
                 f"optimizers.{name}: L-BFGS stalls with constraint 'clamp'; set constraint: "
                 "sigmoid (or none with a range_penalty).")
    for name, init in config["inits"].items():
        _require(init["kind"] in INIT_KINDS, f"inits.{name}.kind must be one of {INIT_KINDS}.")
    null_source = config.get("criterion", {}).get("null_distribution", {}).get("source")
    _require(null_source != "train" or config["data"]["name"] not in TEST_ONLY_DATA,
             f"criterion.null_distribution.source=train: data set {config['data']['name']!r} "
             "has no training split; set criterion.null_distribution.source: references (the "
             "weaker null of pairs of references, docs/criterion.md).")
    for name in config.get("evaluation", {}).get("evaluators") or []:
        _require(name in models, f"evaluation.evaluators: {name!r} is not a model.")
