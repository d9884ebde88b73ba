"""Statistics on activations: row-wise correlations, null distributions, bootstrap, RSA, CKA.

Activations are 2-D arrays (images, features). Spearman ranks use average ranks for ties (as
``scipy.stats.spearmanr``): ReLU layers hold many exact zeros, which tie. The success check's
Spearman correlation (:func:`rank_once`, :func:`spearman_to_ranked`) also takes torch tensors
and then runs on their device (a GPU's sort instead of the host's).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


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
        from scipy import stats as scipy_stats  # imported where used: 0.8 s per job

        return scipy_stats.rankdata(np.asarray(values, np.float64), axis=1)
    return _rank_float32_rows(values)


def _ordered_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 whose unsigned order is the floats' order (-0.0 and 0.0 tie)."""
    bits = (values + np.float32(0)).view(np.uint32)  # + 0 turns -0.0 into 0.0: they tie
    # negative floats: every bit flipped; others: the sign bit set (branch-free, SIMD)
    flips = (bits.view(np.int32) >> 31).view(np.uint32) | np.uint32(1 << 31)
    return bits ^ flips


def _rank_float32_rows(values: np.ndarray) -> np.ndarray:
    """Exact average ranks from one sort of 64-bit keys per row (the float's bits made to order
    as unsigned integers, above the column index): NumPy sorts integers with SIMD, several
    times faster than the stable argsort of ``rankdata``, which dominated the success check."""
    rows, width = values.shape
    keys = _ordered_bits(values).astype(np.uint64)
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


RANKED_BLOCK_VALUES = 1 << 18  # values correlated at once by spearman_to_ranked


@dataclass(frozen=True)
class RankedRows:
    """Rows ranked once, to be correlated with many others by :func:`spearman_to_ranked`:
    twice their average ranks (integers) and the centred sum of squares of those; arrays, or
    tensors on the device of the tensors they were ranked from."""

    doubled_ranks: np.ndarray | torch.Tensor  # (N, D) uint32 (tensors: int64)
    sum_squares: np.ndarray | torch.Tensor    # (N,) float64

    def __getitem__(self, rows) -> RankedRows:
        return RankedRows(self.doubled_ranks[rows], self.sum_squares[rows])


def rank_once(values: np.ndarray | torch.Tensor) -> RankedRows:
    """:class:`RankedRows` of ``values`` (a row holding NaN correlates as NaN)."""
    if isinstance(values, torch.Tensor):
        nan_rows = values.isnan().any(1, keepdim=True)
        doubled = _doubled_ranks_tensor(values).masked_fill_(nan_rows, 0)
        sum_squares = (doubled.double() - (values.shape[1] + 1.0)).square_().sum(1)
        return RankedRows(doubled, sum_squares.masked_fill_(nan_rows[:, 0], float("nan")))
    values = np.asarray(values)
    if values.shape[1] >= 2**31:
        raise ValueError(f"rows of {values.shape[1]} values are too wide to rank as uint32")
    ranks = rank_rows(values)
    nan_rows = np.isnan(ranks).any(1)
    doubled = np.where(nan_rows[:, None], 0, 2 * np.nan_to_num(ranks)).astype(np.uint32)
    sum_squares = np.sum((doubled - (values.shape[1] + 1.0)) ** 2, axis=1)
    sum_squares[nan_rows] = np.nan
    return RankedRows(doubled, sum_squares)


def spearman_to_ranked(values: np.ndarray | torch.Tensor, ranked: RankedRows) -> np.ndarray:
    """:func:`spearman_rows` of ``values`` against rows ranked by :func:`rank_once`.

    float32 rows take one sort of 64-bit keys, each value's ordered bits above the other row's
    doubled rank, and no rank array: the sum of products of ranks is read off the sorted keys,
    with tied runs corrected from their sums (2-4x faster than ranking ``values`` and
    correlating the ranks).
    The sums are of integers: exact in float64 while they stay below 2^53 (e.g. 40 rows of
    25,088 values), within float64 rounding beyond.
    """
    if isinstance(values, torch.Tensor):
        return _spearman_to_ranked_tensor(values, ranked)
    values = np.asarray(values)
    rows, width = values.shape
    block = max(1, RANKED_BLOCK_VALUES // max(width, 1))
    if rows > block:  # a few rows at a time: faster, and leaves the caches to the model
        return np.concatenate([spearman_to_ranked(values[start:start + block],
                                                  ranked[start:start + block])
                               for start in range(0, rows, block)])
    middle = width + 1.0  # the mean doubled rank
    if values.dtype != np.float32:
        own = 2 * rank_rows(values) - middle
        products = np.sum(own * (ranked.doubled_ranks - middle), axis=1)
        own_squares = np.sum(own**2, axis=1)
    else:
        halves = np.empty((rows, width, 2), np.uint32)  # little-endian uint64: (low, high)
        halves[..., 0] = ranked.doubled_ranks
        halves[..., 1] = _ordered_bits(values)
        halves.view(np.uint64).sort(axis=1)  # the view is (rows, width, 1)
        other = halves[..., 0].astype(np.float64)  # the other row's doubled ranks, in order
        # untied, the k-th smallest value (from 0) has doubled rank 2k + 2. Not a BLAS
        # product: BLAS threads left spinning after it slow the next torch pass several-fold.
        products = np.einsum("ij,j->i", other, np.arange(2.0, 2.0 * width + 1.0, 2.0))
        tie_correction, tie_cubes = _tied_runs(halves[..., 1], other)
        products += tie_correction - width * middle**2
        own_squares = (float(width) ** 3 - width - tie_cubes) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        spearman = products / np.sqrt(own_squares * ranked.sum_squares)
    spearman[np.isnan(values).any(1)] = np.nan
    return spearman


def _doubled_ranks_tensor(values: torch.Tensor) -> torch.Tensor:
    """Twice the average ranks within each row (int64), on the tensor's device, from one sort
    per row: a tied run at sorted positions s..e (from 0) has doubled rank s + e + 2."""
    rows, width = values.shape
    ordered, order = torch.sort(values, dim=1)
    positions = torch.arange(width, device=values.device).expand(rows, width)
    starts_run = torch.ones_like(ordered, dtype=torch.bool)
    starts_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]  # -0.0 == 0.0: they tie
    ends_run = torch.ones_like(starts_run)
    ends_run[:, :-1] = starts_run[:, 1:]
    first = torch.where(starts_run, positions, 0).cummax(1).values
    last = torch.where(ends_run, positions, width).flip(1).cummin(1).values.flip(1)
    return torch.empty_like(first).scatter_(1, order, first + last + 2)


def _spearman_to_ranked_tensor(values: torch.Tensor, ranked: RankedRows) -> np.ndarray:
    """:func:`spearman_to_ranked` on the tensors' device. The sums are of integers, exact in
    float64 below 2^53 as on the host path, so both give the same correlations."""
    middle = values.shape[1] + 1.0
    own = _doubled_ranks_tensor(values).double() - middle
    products = (own * (ranked.doubled_ranks.double() - middle)).sum(1)
    spearman = products / torch.sqrt(own.square_().sum(1) * ranked.sum_squares)
    return spearman.masked_fill_(values.isnan().any(1), float("nan")).cpu().numpy()


def _tied_runs(sorted_bits: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of sorted values (as ordered bits) and the other row's doubled ranks in the same
    order: what ties add to the sum of products of doubled ranks, and the sum of t^3 - t over
    tied runs of length t. A run at positions s..e has doubled rank s + e + 2 where untied
    ranks would be 2k + 2: it adds sum_k (s + e - 2k) * other_k."""
    rows, width = sorted_bits.shape
    tied = np.zeros((rows, width + 1), bool)  # tied[:, k]: value k - 1 equals value k
    np.equal(sorted_bits[:, 1:], sorted_bits[:, :-1], out=tied[:, 1:width])
    edges = np.flatnonzero(tied[:, 1:] != tied[:, :-1])  # each run's first, then last position
    if len(edges) == 0:
        return np.zeros(rows), np.zeros(rows)
    first, last = edges[0::2], edges[1::2]
    # sums over runs in one pass: reduceat's even segments are the runs (first..last)
    bounds = edges + np.arange(len(edges)) % 2  # first, last + 1, first, last + 1, ...
    padded = np.zeros(rows * width + 1)
    padded[:-1] = other.reshape(-1)
    run_sums = np.add.reduceat(padded, bounds)[0::2]
    padded[:-1] *= np.tile(np.arange(width, dtype=np.float64), rows)
    run_moments = np.add.reduceat(padded, bounds)[0::2]
    row = first // width
    start, end = (first % width).astype(np.float64), (last % width).astype(np.float64)
    correction = np.bincount(row, (start + end) * run_sums - 2 * run_moments, minlength=rows)
    lengths = end - start + 1
    cubes = np.bincount(row, lengths**3 - lengths, minlength=rows)
    return correction, cubes


def spearman_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``first`` with the same row of ``second``."""
    return pearson_rows(rank_rows(first), rank_rows(second))


def correlation_matrix(values: np.ndarray, method: str = "spearman") -> np.ndarray:
    """(N, N) correlations between all rows of ``values`` (``pearson`` or ``spearman``)."""
    rows = rank_rows(values) if method == "spearman" else np.asarray(values, np.float64)
    standardized = _standardize_rows(rows)
    return standardized @ standardized.T


def snr_db_rows(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Signal-to-noise ratio in dB of each row of ``values`` against the same row of
    ``reference``: 10 log10(||reference||^2 / ||values - reference||^2) (Feather et al.'s
    ``compute_snr_db``, the reference as the signal). Identical rows give inf."""
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(np.sum(reference**2, axis=1)
                             / np.sum((values - reference) ** 2, axis=1))


def pair_measures(activations: np.ndarray, measures: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each measure (``spearman``, ``pearson``, ``snr_db``) between every pair i < j of rows of
    (B, D) ``activations``, row i as the reference (the signal of ``snr_db``): (B (B - 1) / 2,)
    values per measure, in ``np.triu_indices(B, 1)`` order. Each row is ranked and standardised
    once and every pair read off one (B, B) product, not B^2 / 2 separate correlations.
    A pair with an all-zero row gets 0 for every measure (Feather et al.'s null), as does a
    constant row's correlation."""
    activations = np.asarray(activations)
    upper = np.triu_indices(len(activations), k=1)
    zero = ~np.any(activations != 0, axis=1)
    either_zero = zero[upper[0]] | zero[upper[1]]
    values = {}
    for measure in measures:
        if measure == "snr_db":
            rows = activations.astype(np.float64)
            gram = rows @ rows.T
            squares = np.diag(gram)
            noise = squares[upper[0]] + squares[upper[1]] - 2 * gram[upper]
            # near-identical rows: the product's cancellation error, not the noise; exactly
            close = np.flatnonzero(noise < 1e-6 * (squares[upper[0]] + squares[upper[1]]))
            noise[close] = np.sum((rows[upper[1][close]] - rows[upper[0][close]]) ** 2, axis=1)
            with np.errstate(divide="ignore"):
                pair_values = 10 * np.log10(squares[upper[0]] / noise)
        else:
            rows = rank_rows(activations) if measure == "spearman" else activations
            standardized = np.nan_to_num(_standardize_rows(np.asarray(rows, np.float64)))
            pair_values = np.clip((standardized @ standardized.T)[upper], -1.0, 1.0)
        values[measure] = np.where(either_zero, 0.0, pair_values)
    return values


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


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0, resamples: int = 2000,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (:func:`bootstrap_mean_cis`)."""
    low, high = bootstrap_mean_cis([values], seed, resamples, level)[0]
    return float(low), float(high)


BOOTSTRAP_BLOCK_VALUES = 1 << 22  # resampled values held at once by bootstrap_mean_cis


def bootstrap_mean_cis(samples: Sequence[np.ndarray], seed: int = 0, resamples: int = 2000,
                       level: float = 0.95) -> np.ndarray:
    """(len(samples), 2): each sample's percentile bootstrap confidence interval of the mean
    (``scipy.stats.bootstrap``), non-finite values dropped; a constant or single-value sample
    gets its mean twice, an empty one NaN. Each sample is resampled with the draws that
    ``default_rng(seed)`` makes for its size, so its interval does not depend on the others;
    the samples of one size go through one vectorised call (a call per sample costs ms)."""
    cleaned = [np.asarray(values, np.float64) for values in samples]
    cleaned = [values[np.isfinite(values)] for values in cleaned]
    intervals = np.full((len(cleaned), 2), np.nan)
    by_size: dict[int, list[int]] = {}
    for index, values in enumerate(cleaned):
        if len(values) >= 2 and np.any(values != values[0]):
            by_size.setdefault(len(values), []).append(index)
        elif len(values):
            intervals[index] = values.mean()
    if not by_size:
        return intervals
    from scipy import stats as scipy_stats  # imported where used: 0.8 s per job

    for size, indices in by_size.items():
        batch = max(1, min(resamples, BOOTSTRAP_BLOCK_VALUES // (len(indices) * size)))
        result = scipy_stats.bootstrap((np.stack([cleaned[i] for i in indices]),), np.mean,
                                       n_resamples=resamples, batch=batch, axis=-1,
                                       confidence_level=level, method="percentile",
                                       rng=np.random.default_rng(seed))
        intervals[indices, 0] = result.confidence_interval.low
        intervals[indices, 1] = result.confidence_interval.high
    return intervals


def rdm(activations: np.ndarray) -> np.ndarray:
    """Representational dissimilarity matrix: 1 - Pearson correlation between rows."""
    return 1.0 - correlation_matrix(activations, method="pearson")


def rsa(first_activations: np.ndarray, second_activations: np.ndarray, permutations: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Spearman correlation between two RDMs' upper triangles and its permutation p-value.

    The p-value permutes the items (rows and columns together) of the second RDM, the standard
    test for RDM relatedness (Kriegeskorte et al. 2008); it is (1 + #{r_perm >= r}) / (1 + n).
    Permuting items only reorders the RDM's entries, so ranks are computed once, and every
    permutation's Spearman correlation is a Pearson correlation of reordered ranks, whose mean
    and norm the reordering keeps: one matrix-vector product gives them all.
    """
    first_rdm, second_rdm = rdm(first_activations), rdm(second_activations)
    rows, cols = np.triu_indices(len(first_rdm), k=1)
    first_ranks = rank_rows(first_rdm[rows, cols][None])[0]
    first_ranks -= first_ranks.mean()
    second_ranks = np.zeros_like(second_rdm)
    second_ranks[rows, cols] = rank_rows(second_rdm[rows, cols][None])[0]
    second_ranks[rows, cols] -= second_ranks[rows, cols].mean()
    second_ranks = second_ranks + second_ranks.T
    # row 0: the items in their order (the observed correlation); then each permutation's
    orderings = second_ranks.ravel().take(_permuted_pairs(len(second_rdm), permutations, seed))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant RDM: NaN, as Pearson's
        correlations = (orderings @ first_ranks
                        / (np.linalg.norm(first_ranks) * np.linalg.norm(orderings[0])))
    observed, null = correlations[0], correlations[1:]
    exceed = int(np.sum(null >= observed))
    return float(observed), float((1 + exceed) / (1 + permutations))


@functools.lru_cache(maxsize=4)
def _permuted_pairs(items: int, permutations: int, seed: int) -> np.ndarray:
    """Flat indices into an (items, items) matrix of its upper triangle's entries, in item
    order (row 0) and under ``permutations`` random item orders (drawn from ``seed``): the
    same for every RSA of a job, so drawn once."""
    rows, cols = np.triu_indices(items, k=1)
    rng = np.random.default_rng(seed)
    orders = np.stack([np.arange(items)] + [rng.permutation(items) for _ in range(permutations)])
    pairs = orders[:, rows] * items + orders[:, cols]
    pairs.flags.writeable = False
    return pairs


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
