"""The layer names of a config's models, for choosing ``layers`` and ``generation.generators``.

Each model's architecture is built bare, without weights, so the names are known before any
checkpoint is at hand; they are the names the pipeline resolves (:func:`metamers.zoo.layer_names`).
A model trained by the pipeline that has a card (``metamers.layout.MODEL_CARD``) is listed
from the card; without one, its architecture is built for the shape of the data set's test
images.

    python -m metamers.layers [--configfile config/imagenet.yaml] [MODEL ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch import nn

from metamers import layout, store, zoo
from metamers.config import SCHEMA_PATH, read_config_file, validate_config
from metamers.data import load_sample

MODELS_DIR = Path(layout.MODEL_CARD).parent


def bare_architecture(spec: dict, data_spec: dict) -> nn.Module:
    """A model's architecture without weights, wrapped as the pipeline wraps it."""
    if not zoo.trained_by_pipeline(spec):
        return zoo.model_source(spec).build(spec)
    # One test image gives the shape; normalisation statistics do not change names.
    test_image, _, _ = load_sample(data_spec, train=False, choose=lambda labels: np.arange(1))
    channels = test_image.images.shape[1]
    data_info = {"channels": channels, "image_size": test_image.images.shape[-1],
                 "class_names": test_image.class_names,
                 "mean": [0.0] * channels, "std": [1.0] * channels}
    return zoo.model_source(spec).build(spec, data_info)


def model_layers(config: dict, models: list[str] | None = None,
                 models_dir: Path = MODELS_DIR) -> dict[str, list[str]]:
    """{model: layer names} for ``models`` of ``config`` (default: every model, in config order).

    Local models are read from their card in ``models_dir`` where there is one.
    """
    specs = config["models"]
    models = list(specs) if models is None else list(models)
    unknown = [name for name in models if name not in specs]
    if unknown:
        raise ValueError(f"No model(s) {unknown} in the config; its models are: "
                         f"{', '.join(specs)}.")
    listing = {}
    for name in models:
        card_path = Path(models_dir) / Path(layout.MODEL_CARD.format(model=name)).name
        if zoo.trained_by_pipeline(specs[name]) and card_path.exists():
            listing[name] = list(store.read_json(card_path)["layers"])
        else:
            listing[name] = zoo.layer_names(bare_architecture(specs[name], config["data"]))
    return listing


def format_layers(listing: dict[str, list[str]]) -> str:
    """``model: n layers`` and then its names, one per line, for every model."""
    lines = []
    for name, layers in listing.items():
        lines.append(f"{name}: {len(layers)} layers")
        lines.extend(f"  {layer}" for layer in layers)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="metamers-layers",
        description="Print the layer names of a config's models (bare architectures, no "
                    "weights needed).")
    parser.add_argument("--configfile", type=Path, default=Path("config/config.yaml"),
                        help="the config (default: %(default)s)")
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="models of the config (default: all)")
    arguments = parser.parse_args(argv)
    config = read_config_file(arguments.configfile)
    validate_config(config, SCHEMA_PATH, [arguments.configfile])
    try:
        listing = model_layers(config, arguments.models or None)
    except ValueError as error:
        parser.error(str(error))
    print(format_layers(listing))


if __name__ == "__main__":
    main()
