"""The metamer success criterion (Feather et al. 2023) and its null distribution.

A metamer succeeds at its generating layer when (1) the Spearman correlation between its
activations and its reference's exceeds a high percentile of the null distribution of Spearman
correlations between *different* references at that layer, and (2) the generator's predicted
class on it equals its prediction on the reference.

The threshold is a percentile (default 99th), not the null's maximum: in low-dimensional layers
(e.g. 10 logits) different images can rank their units identically, so the null's maximum can be
1.0 and nothing could pass. Ties (ReLU zeros) get average ranks. In such layers the criterion
says "ranked as alike as all but the top 1% of different-image pairs", a weaker statement than in
a wide layer; read it together with the pixel distance and the evaluation's controls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from metamers.stats import (
    RankedRows,
    null_correlations,
    null_threshold,
    spearman_rows,
    spearman_to_ranked,
)


@dataclass
class NullDistribution:
    """Sorted Spearman correlations between different references at one (model, layer)."""

    correlations: np.ndarray
    percentile: float

    @property
    def threshold(self) -> float:
        return null_threshold(self.correlations, self.percentile)


def compute_null(reference_activations: np.ndarray, percentile: float,
                 max_pairs: int | None = None, seed: int = 0) -> NullDistribution:
    """The null distribution from (N, D) reference activations (all pairs or a seeded sample)."""
    if len(reference_activations) < 2:
        raise ValueError("The null distribution needs at least two reference images.")
    return NullDistribution(
        null_correlations(reference_activations, "spearman", max_pairs, seed), percentile)


@dataclass
class CriterionCheck:
    """Per metamer: its Spearman correlation, whether the class matches, and overall success."""

    spearman: np.ndarray
    class_matches: np.ndarray
    passed: np.ndarray


def check_criterion(metamer_activations: np.ndarray | torch.Tensor,
                    reference_activations: np.ndarray | RankedRows,
                    metamer_predictions: np.ndarray, reference_predictions: np.ndarray,
                    threshold: float, correlate_all: bool = True) -> CriterionCheck:
    """Apply the success criterion to (N, D) activations and (N,) predicted classes.

    ``reference_activations`` may come ranked (``stats.rank_once``): a synthesis ranks its
    references once, not at every check; ranked from tensors, they correlate with the metamers'
    tensor on its device.
    ``correlate_all=False`` computes the Spearman correlation only where the class matches
    (elsewhere NaN): those metamers fail whatever it is, and ranking a wide layer costs more
    than the forward pass that produced it. The pass/fail outcome is the same either way.
    """
    class_matches = np.asarray(metamer_predictions) == np.asarray(reference_predictions)
    rows = slice(None) if correlate_all or class_matches.all() else class_matches
    spearman = np.full(len(class_matches), np.nan)
    if np.any(class_matches) or correlate_all:
        metamers = (metamer_activations[rows] if isinstance(metamer_activations, torch.Tensor)
                    else np.asarray(metamer_activations)[rows])
        if isinstance(reference_activations, RankedRows):
            spearman[rows] = spearman_to_ranked(metamers, reference_activations[rows])
        else:
            spearman[rows] = spearman_rows(np.asarray(metamers),
                                           np.asarray(reference_activations)[rows])
    passed = np.nan_to_num(spearman, nan=-np.inf) > threshold
    return CriterionCheck(spearman, class_matches, passed & class_matches)


def check_correlation_first(metamer_activations: np.ndarray | torch.Tensor,
                            reference_ranks: RankedRows,
                            classify: Callable[[np.ndarray], np.ndarray],
                            reference_predictions: np.ndarray,
                            threshold: float) -> tuple[CriterionCheck, np.ndarray]:
    """The criterion in the other order: the Spearman correlation of every metamer first, then
    ``classify(rows)`` (predicted classes of those metamers) only where it passes. For a check
    that has the generating layer's activations already: only metamers near their reference
    pay for the model's classification. Returns the check and the predicted classes
    (-1 where not computed, which counts as no match). The pass/fail outcome is
    :func:`check_criterion`'s.
    """
    spearman = spearman_to_ranked(metamer_activations, reference_ranks)
    candidates = np.flatnonzero(np.nan_to_num(spearman, nan=-np.inf) > threshold)
    predictions = np.full(len(spearman), -1, dtype=np.int64)
    if len(candidates):
        predictions[candidates] = classify(candidates)
    class_matches = predictions == np.asarray(reference_predictions)
    passed = np.zeros(len(spearman), bool)
    passed[candidates] = class_matches[candidates]
    return CriterionCheck(spearman, class_matches, passed), predictions


class SuccessCheck:
    """The success criterion of one generator member against its references, as a synthesis
    applies it: the references' generating-layer activations ranked once, their predicted
    classes and the threshold, set up once per synthesis, then :meth:`check` at every check.

    On a GPU the activations are ranked on the device (which spares the host a sort of every
    value at every check); elsewhere on the host (whose sort of ordered bits is several times
    faster than torch's).
    """

    def __init__(self, reference_activations: torch.Tensor, reference_predictions: np.ndarray,
                 threshold: float):
        """``reference_activations`` (N, ...) at the generating layer, ``reference_predictions``
        (N,) the member's classes of the references, ``threshold`` on the Spearman rho."""
        from metamers.stats import rank_once  # here: the class is appended self-contained

        self.reference_ranks = rank_once(self._for_ranking(reference_activations))
        self.reference_predictions = np.asarray(reference_predictions)
        self.threshold = threshold

    @staticmethod
    def _for_ranking(activations: torch.Tensor) -> torch.Tensor | np.ndarray:
        """(n, ...) -> (n, D): the tensor on a GPU, else an array."""
        values = activations.reshape(activations.shape[0], -1)
        return values if values.device.type == "cuda" else values.cpu().numpy()

    def check(self, activations: torch.Tensor, rows: slice | np.ndarray,
              classify: Callable[[np.ndarray], np.ndarray],
              classify_all: bool = False) -> tuple[CriterionCheck, np.ndarray]:
        """The criterion for metamers of the references ``rows``, from their generating-layer
        ``activations`` (n, ...): the Spearman correlation of every metamer first, then
        ``classify(positions)`` (the member's (k,) classes of the metamers at those positions
        among the n) only where it passes, or everywhere with ``classify_all`` (a final
        record). Returns the check and the (n,) predicted classes, -1 where not classified
        (which counts as no match). The pass/fail outcome is :func:`check_criterion`'s."""
        spearman = spearman_to_ranked(self._for_ranking(activations), self.reference_ranks[rows])
        correlates = np.nan_to_num(spearman, nan=-np.inf) > self.threshold
        candidates = np.arange(len(spearman)) if classify_all else np.flatnonzero(correlates)
        predictions = np.full(len(spearman), -1, dtype=np.int64)
        if len(candidates):
            predictions[candidates] = classify(candidates)
        class_matches = predictions == self.reference_predictions[rows]
        return CriterionCheck(spearman, class_matches, correlates & class_matches), predictions
