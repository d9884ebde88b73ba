"""Loading a saved zoo model, and its layer names.

Fetching from an external source saves the normalised model's state dict as
``resources/models/{model}.pt``; from then on every source loads the same way
(:func:`load_model`, the architecture built without weights), with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names

from metamers.store import CHECKPOINT_LOAD_ERRORS
from metamers.zoo.registry import model_source


def fetch_external(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    """An external model with pretrained weights read from local files, and its card's facts."""
    return model_source(spec).fetch(spec, Path(model_dir))


def layer_names(model: nn.Module) -> list[str]:
    """The model's graph node names (eval mode), usable as layers everywhere in the pipeline.

    Besides every node (``net.layer4.1.relu_1``), each module that holds several nodes is listed
    after its last one (``net.layer4.1``, ``net.layer4``): ``create_feature_extractor`` resolves a
    module's name to that last node, its output. Modules holding the output node are left out,
    so the last name is always the model's output (its logits).
    """
    nodes = get_graph_node_names(model)[1]
    output_parts = nodes[-1].split(".")
    output_modules = {".".join(output_parts[:depth]) for depth in range(1, len(output_parts))}
    names: list[str] = []
    for node, following in zip(nodes, [*nodes[1:], ""]):
        names.append(node)
        parts = node.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:depth])
            if not following.startswith(module + ".") and module not in output_modules:
                names.append(module)
    # A module entered more than once resolves to its last node: keep its last mention.
    last_mention = {name: index for index, name in enumerate(names)}
    return [name for index, name in enumerate(names) if last_mention[name] == index]


def load_model(weights_path: Path, info: dict, spec: dict,
               device: str | torch.device = "cpu") -> nn.Module:
    """Load a zoo model saved by the pipeline, in eval mode with frozen parameters."""
    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise FileNotFoundError(f"Model weights {weights_path} are missing: build them with "
                                f"`snakemake {weights_path}`.")
    model = model_source(spec).build(spec, info.get("data"))
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise ValueError(f"Model weights {weights_path} are not a readable checkpoint "
                         f"({error}): delete the file and rebuild it with "
                         f"`snakemake {weights_path}`.") from error
    if not isinstance(state, dict):
        raise TypeError(f"Model weights {weights_path} hold a {type(state).__name__}, not a "
                        f"state dict: delete the file and rebuild it with "
                        f"`snakemake {weights_path}`.")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"Model weights {weights_path} do not fit the configured "
                         f"architecture ({error}): was the config edited? Rebuild them with "
                         f"`snakemake {weights_path}`.") from error
    model.eval().requires_grad_(False)
    return model.to(device)


def check_layers(model_name: str, requested: list[str], available: list[str]) -> None:
    """Raise a clear error for layers that the model does not have."""
    unknown = [layer for layer in requested if layer not in available]
    if unknown:
        raise ValueError(f"Model {model_name!r} has no layer(s) {unknown}; its layers are: "
                         f"{', '.join(available)}.")
