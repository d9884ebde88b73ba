"""The metamer success criterion (Feather et al. 2023) and its null distribution.

A metamer succeeds at its generating layer when (1) the generator's prediction on it equals its
prediction on the reference and (2) each configured measure between its activations and its
reference's (Spearman rho, Pearson r, dB SNR: :data:`MEASURES`) exceeds that measure's threshold
in the null distribution of the same measure between pairs of different images at that layer:
by default the null's maximum, over random pairs of distinct training images (Feather et al.'s
``make_null_distributions.py``). :class:`Criterion` holds the settings (``criterion:`` in the
config), :class:`NullDistribution` the null of one (model, layer), as stored in its null file.
Generation, the evaluation's representation test and the findings use the same two.

A measure whose null maximum is its ceiling (Spearman or Pearson 1.0, SNR inf: a pair of
different images that the layer maps to the same ranks or values) cannot be exceeded: with the
``max`` threshold that measure is *uninformative* at that layer. The criterion then decides by
the other measures, and says so (``CriterionResult.uninformative``, the null file's attrs, the
log); with no informative measure left it raises instead of failing every metamer.
docs/criterion.md has the definitions and the measured nulls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from metamers.stats import (
    RankedRows,
    pair_measures,
    pearson_rows,
    rank_once,
    snr_db_rows,
    spearman_rows,
    spearman_to_ranked,
)

MEASURES = ("spearman", "pearson", "snr_db")
CEILINGS = {"spearman": 1.0, "pearson": 1.0, "snr_db": np.inf}
CEILING_TOLERANCE = 1e-9
_ROW_MEASURES = {"spearman": spearman_rows, "pearson": pearson_rows, "snr_db": snr_db_rows}


def measure_rows(values: np.ndarray, reference_values: np.ndarray,
                 measures: Iterable[str] = MEASURES,
                 reference_ranks: RankedRows | None = None) -> dict[str, np.ndarray]:
    """Each measure between each row of (N, D) ``values`` and the same row of
    ``reference_values`` (the signal of ``snr_db``): (N,) float64 per measure. A constant row
    has no correlation (NaN), which fails any threshold. Correlations are clipped to [-1, 1]
    (rounding can put identical rows at 1 + 2e-16, above a null maximum of 1).
    ``reference_ranks``: the references ranked once (:func:`stats.rank_once`), for callers
    that correlate several sets of rows with them."""
    measured = {measure: (spearman_to_ranked(np.asarray(values), reference_ranks)
                          if measure == "spearman" and reference_ranks is not None
                          else _ROW_MEASURES[measure](values, reference_values))
                for measure in measures}
    for measure in set(measures) & {"spearman", "pearson"}:
        measured[measure] = np.clip(measured[measure], -1.0, 1.0)
    return measured


@dataclass(frozen=True)
class NullDistribution:
    """Null values of each measure between pairs of different images at one (model, layer).

    ``values[measure]``: (pairs,) sorted; ``source``: ``train`` or ``references``.
    """

    values: dict[str, np.ndarray]
    source: str

    @property
    def pairs(self) -> int:
        return len(next(iter(self.values.values())))

    def maximum(self, measure: str) -> float:
        return float(self.values[measure][-1])

    def threshold(self, measure: str, rule: str | float = "max") -> float:
        """The bar a metamer's ``measure`` must exceed: the null's maximum (``"max"``) or the
        given percentile (0-100) of it."""
        if rule == "max":
            return self.maximum(measure)
        return float(np.percentile(self.values[measure], float(rule)))

    def informative(self, measure: str, rule: str | float = "max") -> bool:
        """Whether a value can exceed the threshold: it is below the measure's ceiling by more
        than float rounding (a row's correlation with itself computes within 1e-15 of 1)."""
        return self.threshold(measure, rule) < CEILINGS[measure] - CEILING_TOLERANCE


def null_from_blocks(blocks: Iterable[np.ndarray], pairs: int, source: str,
                     measures: tuple[str, ...] = MEASURES) -> NullDistribution:
    """The null of ``pairs`` pairs: every pair of rows within each (B, D) activation block
    (:func:`stats.pair_measures`), block after block, the last block's pairs cut to fit."""
    parts: dict[str, list[np.ndarray]] = {measure: [] for measure in measures}
    collected = 0
    for block in blocks:
        values = pair_measures(block, measures)
        take = min(pairs - collected, len(values[measures[0]]))
        for measure in measures:
            parts[measure].append(values[measure][:take])
        collected += take
        if collected >= pairs:
            break
    if collected < pairs:
        raise ValueError(f"the image blocks gave {collected} pairs, {pairs} were asked for")
    return NullDistribution({measure: np.sort(np.concatenate(parts[measure]))
                             for measure in measures}, source)


BLOCK_VALUES = 1 << 26  # activation values in one block of the null (512 MiB as float64)


def block_images(width: int, most: int) -> int:
    """Images per block of the null for activations ``width`` values wide: at most ``most``,
    and at most :data:`BLOCK_VALUES` values in all (at least 2)."""
    return max(2, min(most, BLOCK_VALUES // width))


def images_for_pairs(pairs: int, block: int) -> int:
    """Images for ``pairs`` pairs within blocks of ``block`` images (the last block whole)."""
    return -(-pairs // (block * (block - 1) // 2)) * block


def reference_null(reference_activations: np.ndarray, measures: tuple[str, ...] = MEASURES,
                   max_pairs: int | None = None, seed: int = 0) -> NullDistribution:
    """The null over all pairs of (N, D) reference activations (config/lenient.yaml's, and data
    sets without a training split), or a seeded sample of ``max_pairs`` of them."""
    if len(reference_activations) < 2:
        raise ValueError("The null distribution needs at least two reference images.")
    values = pair_measures(reference_activations, measures)
    count = len(values[measures[0]])
    if max_pairs is not None and count > max_pairs:
        chosen = np.random.default_rng(seed).choice(count, size=max_pairs, replace=False)
        values = {measure: pair_values[chosen] for measure, pair_values in values.items()}
    return NullDistribution({measure: np.sort(pair_values)
                             for measure, pair_values in values.items()}, "references")


@dataclass(frozen=True)
class CriterionResult:
    """Per metamer (N,): every measure's value and whether it exceeds its threshold (all of
    :data:`MEASURES`; the criterion's own decide), whether the class matches (None: not
    asked), and overall success. ``thresholds`` per measure; the criterion's measures in
    ``uninformative`` do not decide (their threshold is the ceiling)."""

    values: dict[str, np.ndarray]
    passes: dict[str, np.ndarray]
    thresholds: dict[str, float]
    uninformative: tuple[str, ...]
    class_matches: np.ndarray | None
    passed: np.ndarray


@dataclass(frozen=True)
class Criterion:
    """The success criterion's settings: which measures, the threshold rule (``"max"`` of the
    null or a percentile), and whether the predicted class must match the reference's."""

    measures: tuple[str, ...] = MEASURES
    threshold: str | float = "max"
    class_match: bool = True

    @classmethod
    def from_config(cls, section: dict) -> Criterion:
        """From the config's ``criterion`` slice (schema defaults filled in)."""
        return cls(tuple(section["measures"]), section["threshold"], section["class_match"])

    def thresholds(self, null: NullDistribution) -> dict[str, float]:
        return {measure: null.threshold(measure, self.threshold) for measure in self.measures}

    def uninformative(self, null: NullDistribution) -> tuple[str, ...]:
        return tuple(measure for measure in self.measures
                     if not null.informative(measure, self.threshold))

    def check_measures(self, values: np.ndarray, reference_values: np.ndarray,
                       null: NullDistribution, reference_ranks: RankedRows | None = None
                       ) -> CriterionResult:
        """The measures' part alone, on (N, D) activations of metamers and of their references
        at one layer (``reference_ranks``: those ranked once, :func:`measure_rows`): the
        representation test of an evaluator layer. Strictly greater than the threshold; NaN
        fails. ``null`` holds every measure of :data:`MEASURES`."""
        deciding = Thresholds.of(self, null).measures  # raises where no measure decides
        measured = measure_rows(values, reference_values, MEASURES, reference_ranks)
        thresholds = {measure: null.threshold(measure, self.threshold) for measure in MEASURES}
        passes = {measure: np.nan_to_num(measured[measure], nan=-np.inf) > thresholds[measure]
                  for measure in MEASURES}
        passed = np.logical_and.reduce([passes[measure] for measure in deciding])
        return CriterionResult(measured, passes, thresholds, self.uninformative(null), None,
                               passed)

    def check(self, values: np.ndarray, reference_values: np.ndarray, null: NullDistribution,
              predictions: np.ndarray, reference_predictions: np.ndarray) -> CriterionResult:
        """The whole criterion at a generating layer: :meth:`check_measures`, and where
        ``class_match`` the (N,) predicted classes on metamers equal those on references."""
        result = self.check_measures(values, reference_values, null)
        if not self.class_match:
            return result
        class_matches = np.asarray(predictions) == np.asarray(reference_predictions)
        return replace(result, class_matches=class_matches,
                       passed=result.passed & class_matches)


@dataclass(frozen=True)
class Thresholds:
    """What the metamers of one generating layer must clear: a bar per deciding measure
    (strictly greater; NaN fails) and, with ``class_match``, the reference's predicted class.
    The synthesis's form of a :class:`Criterion` applied to one :class:`NullDistribution`."""

    measures: dict[str, float]
    class_match: bool = True

    @classmethod
    def of(cls, criterion: Criterion, null: NullDistribution) -> Thresholds:
        """The criterion's informative measures' thresholds in ``null``."""
        uninformative = criterion.uninformative(null)
        deciding = {measure: threshold for measure, threshold
                    in criterion.thresholds(null).items() if measure not in uninformative}
        if not deciding:
            raise ValueError(f"every measure of the criterion {criterion.measures} has a null "
                             "maximum at its ceiling: at this layer no metamer can pass; choose "
                             "other measures or a percentile.")
        return cls(deciding, criterion.class_match)

    @classmethod
    def spearman(cls, threshold: float) -> Thresholds:
        """Spearman rho above ``threshold`` and the class: the lenient rule's shape."""
        return cls({"spearman": threshold})


@dataclass
class CriterionCheck:
    """Per metamer: its Spearman correlation, whether the class matches, and overall success;
    ``values``: every measure of :data:`MEASURES` where computed (a synthesis's checks)."""

    spearman: np.ndarray
    class_matches: np.ndarray
    passed: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)


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


class SuccessCheck:
    """The success criterion of one generator member against its references, as a synthesis
    applies it: the references' generating-layer activations (ranked once), their predicted
    classes and the :class:`Thresholds`, set up once per synthesis, then :meth:`check` at
    every check.

    On a GPU the activations are ranked on the device (which spares the host a sort of every
    value at every check); elsewhere on the host (whose sort of ordered bits is several times
    faster than torch's).
    """

    def __init__(self, reference_activations: torch.Tensor, reference_predictions: np.ndarray,
                 thresholds: Thresholds | float):
        """``reference_activations`` (N, ...) at the generating layer, ``reference_predictions``
        (N,) the member's classes of the references, ``thresholds`` (a float: Spearman rho
        alone, :meth:`Thresholds.spearman`)."""
        flat = reference_activations.reshape(reference_activations.shape[0], -1)
        self.reference_ranks = rank_once(self._for_ranking(flat))
        self.reference_values = flat.cpu().numpy()
        self.reference_predictions = np.asarray(reference_predictions)
        self.thresholds = (thresholds if isinstance(thresholds, Thresholds)
                           else Thresholds.spearman(thresholds))

    @staticmethod
    def _for_ranking(activations: torch.Tensor) -> torch.Tensor | np.ndarray:
        """(n, ...) -> (n, D): the tensor on a GPU, else an array."""
        values = activations.reshape(activations.shape[0], -1)
        return values if values.device.type == "cuda" else values.cpu().numpy()

    def measure(self, activations: torch.Tensor, rows: slice | np.ndarray
                ) -> dict[str, np.ndarray]:
        """Every measure of :data:`MEASURES` between metamers' ``activations`` (n, ...) and
        their references ``rows``: (n,) each, correlations clipped to [-1, 1]."""
        spearman = spearman_to_ranked(self._for_ranking(activations), self.reference_ranks[rows])
        values = activations.reshape(activations.shape[0], -1).cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            measured = measure_rows(values, self.reference_values[rows], ("pearson", "snr_db"))
        return {"spearman": np.clip(spearman, -1.0, 1.0), **measured}

    def check(self, activations: torch.Tensor, rows: slice | np.ndarray,
              classify: Callable[[np.ndarray], np.ndarray],
              classify_all: bool = False) -> tuple[CriterionCheck, np.ndarray]:
        """The criterion for metamers of the references ``rows``, from their generating-layer
        ``activations`` (n, ...): every measure first, then ``classify(positions)`` (the
        member's (k,) classes of the metamers at those positions among the n) only where the
        deciding measures pass, or everywhere with ``classify_all`` (a final record). Returns
        the check and the (n,) predicted classes, -1 where not classified (no match)."""
        values = self.measure(activations, rows)
        measured = np.logical_and.reduce([
            np.nan_to_num(values[measure], nan=-np.inf) > threshold
            for measure, threshold in self.thresholds.measures.items()])
        candidates = np.arange(len(measured)) if classify_all else np.flatnonzero(measured)
        predictions = np.full(len(measured), -1, dtype=np.int64)
        if len(candidates):
            predictions[candidates] = classify(candidates)
        class_matches = predictions == self.reference_predictions[rows]
        passed = measured & class_matches if self.thresholds.class_match else measured
        return CriterionCheck(values["spearman"], class_matches, passed, values), predictions
