"""Feather et al.'s ``fake_relu``: ReLU forward, identity backward.

At a generating layer that is a ReLU, units that are zero in the metamer and not in the
reference get no gradient through the ReLU, so the metamer cannot bring them back and the rank
correlation stalls (docs/criterion.md). Feather et al. (``imagenet_models/custom_modules.py``)
replace that one ReLU by one whose backward passes the gradient unchanged; the forward values,
and so the loss and every criterion measure, stay those of the model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from metamers.runtime import get_logger

log = get_logger("metamers.fake_relu")

RELU_FUNCTIONS = (torch.relu, torch.relu_, nn.functional.relu, nn.functional.relu_)


class FakeReLU(torch.autograd.Function):
    """``max(x, 0)`` forward; the incoming gradient unchanged backward (any shape)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        return values.clamp(min=0)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return gradient


def fake_relu(values: torch.Tensor) -> torch.Tensor:
    """:class:`FakeReLU` applied to ``values``."""
    return FakeReLU.apply(values)


def _is_relu(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.ReLU)
    if node.op == "call_function":
        return node.target in RELU_FUNCTIONS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def is_relu_layer(extractor: torch.fx.GraphModule, layer: str) -> bool:
    """Whether the node that ``extractor`` returns as ``layer`` is a ReLU."""
    output = next(node for node in extractor.graph.nodes if node.op == "output")
    node = output.args[0].get(layer)
    return node is not None and _is_relu(node, dict(extractor.named_modules()))


def with_fake_relu(extractor: torch.fx.GraphModule, layer: str) -> torch.fx.GraphModule:
    """A copy of ``extractor`` (``activations.feature_extractor``) whose node returned as
    ``layer`` runs :func:`fake_relu` instead of its ReLU (an ``nn.ReLU`` module, ``torch.relu``,
    ``F.relu`` or ``.relu()``). The modules are shared, not changed. Raises ValueError if that
    node is not a ReLU (e.g. a pooling or a residual block's sum after its ReLU)."""
    graph = copy.deepcopy(extractor.graph)
    output = next(node for node in graph.nodes if node.op == "output")
    if layer not in output.args[0]:
        raise ValueError(f"{layer!r} is not an output of this extractor: {list(output.args[0])}")
    node = output.args[0][layer]
    modules = dict(extractor.named_modules())
    if not _is_relu(node, modules):
        raise ValueError(f"layer {layer!r} is node {node.name!r} ({node.op} {node.target}), "
                         "not a ReLU: fake_relu replaces a ReLU only")
    node.op, node.target = "call_function", fake_relu
    node.args, node.kwargs = node.args[:1], {}
    return torch.fx.GraphModule(extractor, graph).eval()


def where_relu(extractor: torch.fx.GraphModule, layer: str, name: str) -> torch.fx.GraphModule:
    """``extractor`` with fake_relu at ``layer`` if that is a ReLU, else as it is (logged)."""
    if is_relu_layer(extractor, layer):
        return with_fake_relu(extractor, layer)
    log.info("fake_relu: %s at %s is not a ReLU; its gradient is the model's own", name, layer)
    return extractor
