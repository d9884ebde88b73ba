"""The (model, layer) generators a benchmark measures: from ``--generators`` or the config."""

from __future__ import annotations


def generator_pairs(config: dict, chosen: str | None) -> list[tuple[str, str]]:
    """``chosen`` as ``model:layer,...``, or every single-model generator of ``config`` (sets of
    models are left out: their floor is the members' sum, measured per member)."""
    if chosen:
        return [tuple(pair.split(":", 1)) for pair in chosen.split(",")]
    generation = config["generation"]
    return [(name, layer) for name, layers in generation["generators"].items()
            if name in config["models"] for layer in layers]
