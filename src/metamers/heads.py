"""Graph surgery for synthesis: the part of a model after its generating layer (its head).

A check between two synthesis steps classifies metamers from the step's own activations at the
generating layer, running only the model's head, instead of the whole model from the images.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from metamers.activations import LOGITS


def layer_to_logits(extractor: torch.fx.GraphModule, layer: str) -> nn.Module | None:
    """The part of a model after ``layer``, cut from its ``extractor`` (``feature_extractor``
    of ``layer`` with the logits, left as it is): a module taking the layer's activations
    (unflattened, (N, ...)) to ``{LOGITS: (N, classes)}``, or None where that part also reads
    something computed before ``layer`` (a skip connection across it, e.g. inside a residual
    block). The batch size read from a value before the layer (``x.size(0)``, EfficientNet's
    ``view(batch, -1)``) is read from the layer's activations instead; callers check the result
    against the whole model (see :func:`head_agrees`)."""
    head = torch.fx.GraphModule(extractor, copy.deepcopy(extractor.graph))
    graph = head.graph
    inputs = [node for node in graph.nodes if node.op == "placeholder"]
    output = next(node for node in graph.nodes if node.op == "output")
    cut = output.args[0][layer]
    with graph.inserting_before(inputs[0]):
        activation = graph.placeholder("activation")
    cut.replace_all_uses_with(activation)
    output.args = ({LOGITS: output.args[0][LOGITS]},)
    after_cut = {activation}
    for node in graph.nodes:  # in execution order
        if any(value in after_cut for value in node.all_input_nodes):
            after_cut.add(node)
        elif node.op == "call_method" and node.target == "size" and node.args[1:] == (0,):
            node.args = (activation, 0)
    # only the graph's inputs and output are kept regardless of use: shape assertions on values
    # before the cut (ViT) go with them, as the check runs on activations the model computed
    graph.eliminate_dead_code(is_impure_node=lambda node: node.op in ("placeholder", "output"))
    if any(node.users for node in inputs):
        return None
    for node in inputs:
        graph.erase_node(node)
    graph.lint()
    head.recompile()
    return head.eval().requires_grad_(False)


@torch.no_grad()
def head_agrees(head: nn.Module, layer_activations: torch.Tensor, logits: torch.Tensor) -> bool:
    """Whether ``head`` (:func:`layer_to_logits`) turns ``layer_activations`` (N, ...) into
    ``logits`` (N, classes), the whole model's on the same images (to float rounding)."""
    try:
        head_logits = head(layer_activations.clone())[LOGITS]
    except RuntimeError:  # e.g. a shape the cut got wrong
        return False
    return head_logits.shape == logits.shape and bool(
        torch.allclose(head_logits, logits, rtol=1e-4, atol=1e-5))
