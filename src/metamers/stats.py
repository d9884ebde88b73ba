"""Statistics on activations: row-wise correlations, null distributions, bootstrap, RSA, CKA.

Activations are 2-D arrays (images, features). Spearman ranks use average ranks for ties (as
``scipy.stats.spearmanr``): ReLU layers hold many exact zeros, which tie.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats


def _standardize_rows(values: np.ndarray) -> np.ndarray:
    centered = values - values.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centered, axis=1, keepdims=True)
    # A constant row (e.g. an all-zero ReLU map) has no defined correlation: it stays NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        return centered / norms


def pearson_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``first`` with the same row of ``second``."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    return np.sum(_standardize_rows(first) * _standardize_rows(second), axis=1)


def rank_rows(values: np.ndarray) -> np.ndarray:
    """Average ranks within each row (float64; a row holding NaN is all NaN), as
    ``scipy.stats.rankdata(axis=1)``; float32 rows (activations) take a faster exact path."""
    values = np.asarray(values)
    if values.dtype != np.float32 or values.shape[1] >= 2**32:
        return scipy_stats.rankdata(np.asarray(values, np.float64), axis=1)
    return _rank_float32_rows(values)


def _rank_float32_rows(values: np.ndarray) -> np.ndarray:
    """Exact average ranks from one sort of 64-bit keys per row (the float's bits made to order
    as unsigned integers, above the column index): NumPy sorts integers with SIMD, several
    times faster than the stable argsort of ``rankdata``, which dominated the success check."""
    rows, width = values.shape
    bits = (values + np.float32(0)).view(np.uint32)  # + 0 turns -0.0 into 0.0: they tie
    keys = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31)).astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(width, dtype=np.uint64)
    keys.sort(axis=1)
    order = (keys & np.uint64(0xFFFFFFFF)).astype(np.intp)
    keys >>= np.uint64(32)  # the sorted values' bits: equal bits are ties
    starts_run = np.ones((rows, width), bool)
    np.not_equal(keys[:, 1:], keys[:, :-1], out=starts_run[:, 1:])
    first = np.flatnonzero(starts_run)  # runs never cross rows: every row starts one
    lengths = np.diff(first, append=rows * width)
    average = first % width + (lengths + 1) / 2
    ranks = np.empty((rows, width))
    np.put_along_axis(ranks, order, np.repeat(average, lengths).reshape(rows, width), axis=1)
    ranks[np.isnan(values).any(1)] = np.nan
    return ranks


def spearman_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``first`` with the same row of ``second``."""
    return pearson_rows(rank_rows(first), rank_rows(second))


def standardized_ranks(values: np.ndarray) -> np.ndarray:
    """Rows' average ranks, centred and scaled to unit norm: what :func:`spearman_rows` computes
    for each side; computed once for references that many checks compare against."""
    return _standardize_rows(rank_rows(values))


def spearman_to_standardized(values: np.ndarray, standardized: np.ndarray) -> np.ndarray:
    """:func:`spearman_rows` of ``values`` against rows already passed through
    :func:`standardized_ranks` (same numbers, half the ranking)."""
    return np.sum(_standardize_rows(rank_rows(values)) * standardized, axis=1)


def correlation_matrix(values: np.ndarray, method: str = "spearman") -> np.ndarray:
    """(N, N) correlations between all rows of ``values`` (``pearson`` or ``spearman``)."""
    rows = rank_rows(values) if method == "spearman" else np.asarray(values, np.float64)
    standardized = _standardize_rows(rows)
    return standardized @ standardized.T


def null_correlations(reference_activations: np.ndarray, method: str = "spearman",
                      max_pairs: int | None = None, seed: int = 0) -> np.ndarray:
    """Correlations between *different* references (i < j): the null for metamer correlations.

    All pairs, or a seeded sample of ``max_pairs`` of them.
    """
    matrix = correlation_matrix(reference_activations, method)
    upper_rows, upper_cols = np.triu_indices(len(matrix), k=1)
    values = matrix[upper_rows, upper_cols]
    values = values[np.isfinite(values)]
    if max_pairs is not None and len(values) > max_pairs:
        values = np.random.default_rng(seed).choice(values, size=max_pairs, replace=False)
    return np.sort(values)


def null_percentile(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each value within the null: the share of null values strictly below.

    Ties count half, so a value equal to every null value sits at 50, and one above all at 100.
    """
    null = np.sort(np.asarray(null))
    values = np.asarray(values, np.float64)
    below = np.searchsorted(null, values, side="left")
    at_or_below = np.searchsorted(null, values, side="right")
    percentile = 100.0 * (below + at_or_below) / (2.0 * len(null))
    return np.where(np.isfinite(values), percentile, np.nan)


def null_threshold(null: np.ndarray, percentile: float) -> float:
    """The given percentile of the null, the bar a metamer's correlation must exceed."""
    return float(np.percentile(null, percentile))


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0, resamples: int = 2000,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (``scipy.stats.bootstrap``)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean()) if len(values) else float("nan")
        return mean, mean
    result = scipy_stats.bootstrap((values,), np.mean, n_resamples=resamples,
                                   confidence_level=level, method="percentile",
                                   rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def rdm(activations: np.ndarray) -> np.ndarray:
    """Representational dissimilarity matrix: 1 - Pearson correlation between rows."""
    return 1.0 - correlation_matrix(activations, method="pearson")


def rsa(first_activations: np.ndarray, second_activations: np.ndarray, permutations: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Spearman correlation between two RDMs' upper triangles and its permutation p-value.

    The p-value permutes the items (rows and columns together) of the second RDM, the standard
    test for RDM relatedness (Kriegeskorte et al. 2008); it is (1 + #{r_perm >= r}) / (1 + n).
    Permuting items only reorders the RDM's entries, so ranks are computed once and every
    permutation's Spearman correlation is a Pearson correlation of reordered ranks.
    """
    first_rdm, second_rdm = rdm(first_activations), rdm(second_activations)
    rows, cols = np.triu_indices(len(first_rdm), k=1)
    first_ranks = rank_rows(first_rdm[rows, cols][None])
    second_ranks = np.zeros_like(second_rdm)
    second_ranks[rows, cols] = rank_rows(second_rdm[rows, cols][None])[0]
    second_ranks = second_ranks + second_ranks.T
    observed = pearson_rows(first_ranks, second_ranks[rows, cols][None])[0]
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(len(second_rdm)) for _ in range(permutations)])
    permuted_ranks = second_ranks[orders[:, rows], orders[:, cols]]
    null = pearson_rows(np.broadcast_to(first_ranks, permuted_ranks.shape), permuted_ranks)
    exceed = int(np.sum(null >= observed))
    return float(observed), float((1 + exceed) / (1 + permutations))


def linear_cka(first_activations: np.ndarray, second_activations: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two sets of rows.

    Computed from the (N, N) Gram matrices, ||X^T Y||_F^2 = <XX^T, YY^T>, so its cost grows with
    the layer's width only linearly.
    """
    first = np.asarray(first_activations, np.float64)
    second = np.asarray(second_activations, np.float64)
    first_gram = (first - first.mean(axis=0)) @ (first - first.mean(axis=0)).T
    second_gram = (second - second.mean(axis=0)) @ (second - second.mean(axis=0)).T
    return float(np.sum(first_gram * second_gram)
                 / np.sqrt(np.sum(first_gram**2) * np.sum(second_gram**2)))
