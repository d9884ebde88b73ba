"""Class-balanced, seeded samples of reference images."""

from __future__ import annotations

import numpy as np
import torch


def sample_balanced(labels: torch.Tensor, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of every class, drawn without replacement."""
    labels_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels_array):
        candidates = np.flatnonzero(labels_array == label)
        if len(candidates) < per_class:
            raise ValueError(f"Class {label} has {len(candidates)} images, fewer than "
                             f"references.per_class={per_class}; lower it.")
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    # grouped by class, in the class order, so figures and RDMs read block-wise
    return np.concatenate([np.sort(group) for group in chosen])


def choose_references(labels: torch.Tensor, per_class: int | None, seed: int,
                      count: int | None = None) -> np.ndarray:
    """The reference sample: ``per_class`` images of every class (None: every image), then the
    first ``count`` of them (None: all)."""
    chosen = (np.arange(len(labels)) if per_class is None
              else sample_balanced(labels, per_class, seed))
    return chosen[:count] if count else chosen
