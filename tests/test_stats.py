"""Row-wise correlations, null percentiles, RSA, CKA and the bootstrap against known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from metamers import stats


@pytest.fixture
def relu_rows() -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like activations: many exact zeros (ties) and some repeated positive values."""
    rng = np.random.default_rng(0)
    first = np.maximum(rng.standard_normal((6, 40)), 0)
    second = np.maximum(first + 0.7 * rng.standard_normal((6, 40)), 0)
    first[:, :5] = 1.5  # ties among positive values too
    return first, second


def test_pearson_rows_equals_scipy(relu_rows):
    first, second = relu_rows
    expected = [scipy_stats.pearsonr(a, b).statistic for a, b in zip(first, second)]
    np.testing.assert_allclose(stats.pearson_rows(first, second), expected, atol=1e-12)


def test_spearman_rows_equals_scipy_with_ties(relu_rows):
    first, second = relu_rows
    assert (first == 0).sum() > 20 and (second == 0).sum() > 20
    expected = [scipy_stats.spearmanr(a, b).statistic for a, b in zip(first, second)]
    np.testing.assert_allclose(stats.spearman_rows(first, second), expected, atol=1e-12)


def test_constant_row_has_no_correlation():
    values = stats.pearson_rows(np.zeros((1, 5)), np.arange(5.0)[None])
    assert np.isnan(values[0])


def test_correlation_matrix_matches_scipy():
    rng = np.random.default_rng(1)
    values = np.maximum(rng.standard_normal((5, 30)), 0)
    expected = scipy_stats.spearmanr(values, axis=1).statistic
    np.testing.assert_allclose(stats.correlation_matrix(values, "spearman"), expected, atol=1e-12)
    np.testing.assert_allclose(stats.correlation_matrix(values, "pearson"), np.corrcoef(values),
                               atol=1e-12)


def test_pair_measures_are_the_distinct_pairs_of_the_correlation_matrix():
    rng = np.random.default_rng(2)
    values = rng.standard_normal((8, 20))
    pairs = stats.pair_measures(values, ("pearson", "spearman"))
    upper = np.triu_indices(8, k=1)
    assert len(pairs["pearson"]) == 8 * 7 // 2
    np.testing.assert_allclose(pairs["pearson"], np.corrcoef(values)[upper], atol=1e-12)
    np.testing.assert_allclose(pairs["spearman"],
                               scipy_stats.spearmanr(values, axis=1).statistic[upper], atol=1e-12)


def test_snr_db_rows_is_the_reference_power_over_the_difference_power():
    reference = np.array([[3.0, 4.0], [1.0, 0.0]])
    values = np.array([[3.0, 4.5], [1.0, 0.0]])
    np.testing.assert_allclose(stats.snr_db_rows(values, reference), [10 * np.log10(100), np.inf])


def test_pair_snr_of_near_identical_rows_is_exact():
    """The pairs' SNR comes from one product of the rows, whose rounding would swamp the tiny
    difference of near-identical rows: those are computed directly."""
    rng = np.random.default_rng(5)
    row = rng.random((1, 5000)) + 1.0
    rows = np.concatenate([row, row + 1e-7 * rng.standard_normal((1, 5000))])
    np.testing.assert_allclose(stats.pair_measures(rows, ("snr_db",))["snr_db"],
                               stats.snr_db_rows(rows[1:], rows[:1]), rtol=1e-9)


def random_image_null(rng: np.random.Generator, images: int = 30, pixels: int = 100):
    return np.sort(stats.pair_measures(rng.random((images, pixels)), ("spearman",))["spearman"])


def test_identical_pair_sits_at_the_top_of_the_null():
    rng = np.random.default_rng(3)
    image = rng.random((1, 100))
    identical = stats.spearman_rows(image, image)
    np.testing.assert_allclose(identical, 1.0)
    assert stats.null_percentile(identical, random_image_null(rng))[0] == 100.0


def test_null_percentile_ties_and_nan():
    null = np.array([0.1, 0.2, 0.2, 0.3])
    np.testing.assert_allclose(stats.null_percentile([0.0, 0.2, 0.5, 0.3], null),
                               [0.0, 50.0, 100.0, 87.5])
    assert np.isnan(stats.null_percentile([np.nan], null)[0])


def test_random_pairs_have_uniform_percentiles():
    rng = np.random.default_rng(4)
    null = random_image_null(rng, images=60)
    pairs = 2000
    fresh = stats.spearman_rows(rng.random((pairs, 100)), rng.random((pairs, 100)))
    percentiles = stats.null_percentile(fresh, null)
    assert abs(percentiles.mean() - 50) < 3
    np.testing.assert_allclose(np.percentile(percentiles, [10, 50, 90]), [10, 50, 90], atol=4)
    assert scipy_stats.kstest(percentiles / 100, "uniform").pvalue > 0.001


def clustered(rng: np.random.Generator, items: int = 24, features: int = 50) -> np.ndarray:
    centres = rng.standard_normal((4, features))
    return centres[np.arange(items) % 4] + 0.5 * rng.standard_normal((items, features))


def test_rsa_of_a_matrix_with_itself_is_one():
    values = clustered(np.random.default_rng(5))
    correlation, p_value = stats.rsa(values, values, permutations=200)
    assert correlation == pytest.approx(1.0)
    assert p_value == pytest.approx(1 / 201)


def test_rsa_with_row_permuted_copy_is_near_zero():
    rng = np.random.default_rng(6)
    values = rng.standard_normal((24, 50))
    correlation, p_value = stats.rsa(values, values[rng.permutation(24)], permutations=200)
    assert abs(correlation) < 0.2
    assert p_value > 0.05


def test_rsa_is_unaffected_by_a_shared_item_order_and_detects_noisy_copies():
    rng = np.random.default_rng(7)
    values = clustered(rng)
    noisy = values + 0.5 * rng.standard_normal(values.shape)
    correlation, p_value = stats.rsa(values, noisy, permutations=200)
    assert 0.3 < correlation < 1.0 and p_value < 0.01


def test_linear_cka_invariances():
    rng = np.random.default_rng(8)
    values = rng.standard_normal((40, 12))
    rotation, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    assert stats.linear_cka(values, values) == pytest.approx(1.0)
    assert stats.linear_cka(values, values @ rotation) == pytest.approx(1.0)
    assert stats.linear_cka(values, 7.5 * values) == pytest.approx(1.0)
    assert stats.linear_cka(values, values + 3.0) == pytest.approx(1.0)
    assert stats.linear_cka(values, rng.standard_normal((40, 12))) < 0.6


def test_linear_cka_is_not_invariant_to_anisotropic_scaling():
    rng = np.random.default_rng(9)
    values = rng.standard_normal((40, 6))
    stretched = values * np.array([10.0, 1, 1, 1, 1, 0.1])
    assert stats.linear_cka(values, stretched) < 0.9


def test_bootstrap_mean_ci_contains_the_mean():
    values = np.random.default_rng(10).normal(3.0, 1.0, size=50)
    low, high = stats.bootstrap_mean_ci(values, seed=0, resamples=500)
    assert low < values.mean() < high
    assert high - low < 1.0
    assert (low, high) == stats.bootstrap_mean_ci(values, seed=0, resamples=500)


def test_bootstrap_mean_ci_degenerate_inputs():
    assert stats.bootstrap_mean_ci(np.full(5, 2.0)) == (2.0, 2.0)
    assert stats.bootstrap_mean_ci(np.array([1.0, np.nan, 1.0])) == (1.0, 1.0)
    low, high = stats.bootstrap_mean_ci(np.array([]))
    assert np.isnan(low) and np.isnan(high)


def test_bootstrap_mean_cis_equal_scipy_on_each_sample_alone():
    """Batched by size, each interval is scipy's for that sample alone, with the same seed."""
    rng = np.random.default_rng(11)
    samples = [rng.normal(size=12), rng.normal(size=30), (rng.random(12) > 0.5).astype(float),
               np.array([1.0, np.nan, 3.0, 2.0]), np.full(4, 2.0), np.array([])]
    intervals = stats.bootstrap_mean_cis(samples, seed=3, resamples=300)
    for values, (low, high) in zip(samples[:4], intervals):
        finite = values[np.isfinite(values)]
        expected = scipy_stats.bootstrap((finite,), np.mean, n_resamples=300,
                                         confidence_level=0.95, method="percentile",
                                         rng=np.random.default_rng(3)).confidence_interval
        np.testing.assert_allclose([low, high], [expected.low, expected.high], atol=1e-12)
    assert tuple(intervals[4]) == (2.0, 2.0) and np.isnan(intervals[5]).all()
    np.testing.assert_array_equal(stats.bootstrap_mean_cis(samples[1:2], seed=3, resamples=300),
                                  intervals[1:2])


def test_rsa_permutation_null_equals_scipy_loop():
    """The vectorised permutation test equals permuting the RDM and calling scipy each time."""
    rng = np.random.default_rng(5)
    first = rng.normal(size=(12, 30))
    second = first + 2.0 * rng.normal(size=(12, 30))
    observed, p_value = stats.rsa(first, second, permutations=200, seed=9)
    first_rdm, second_rdm = stats.rdm(first), stats.rdm(second)
    rows, cols = np.triu_indices(12, k=1)
    expected = scipy_stats.spearmanr(first_rdm[rows, cols], second_rdm[rows, cols]).statistic
    orders = np.random.default_rng(9)
    exceed = 0
    for _ in range(200):
        order = orders.permutation(12)
        permuted = second_rdm[np.ix_(order, order)][rows, cols]
        exceed += scipy_stats.spearmanr(first_rdm[rows, cols], permuted).statistic >= expected - 1e-12
    assert observed == pytest.approx(expected, abs=1e-12)
    assert p_value == pytest.approx((1 + exceed) / 201)


@pytest.mark.parametrize("shape", [(40, 3000), (7, 5), (2, 2)])
def test_float32_ranks_equal_scipy_with_ties_signed_zeros_and_nan(shape):
    """The fast float32 ranking gives rankdata's numbers exactly (ties share their mean)."""
    rng = np.random.default_rng(0)
    values = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    values[:, : shape[1] // 2] = np.round(values[:, : shape[1] // 2], 1)  # more ties
    values[0, :2] = [-0.0, -1.5]  # -0.0 ties with 0.0; negatives rank first
    values[-1, -1] = np.inf
    expected = scipy_stats.rankdata(values.astype(np.float64), axis=1)
    np.testing.assert_array_equal(stats.rank_rows(values), expected)
    values[0, 0] = np.nan
    ranks = stats.rank_rows(values)
    assert np.isnan(ranks[0]).all()
    np.testing.assert_array_equal(ranks[1:], expected[1:])


def test_float32_single_column_ranks_are_one():
    np.testing.assert_array_equal(stats.rank_rows(np.zeros((3, 1), np.float32)), np.ones((3, 1)))


def tied_rows(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Rows to correlate with ``others`` (float32) row by row: ties (ReLU zeros, rounded
    values), -0.0, inf, a constant row (3) and NaN rows (4 in the first, 5 in the second)."""
    rng = np.random.default_rng(1)
    values = np.maximum(rng.normal(size=(9, 300)), 0).astype(dtype)
    others = np.maximum(values + rng.normal(size=values.shape), 0).astype(np.float32)
    values[:, :150] = np.round(values[:, :150], 1)
    others[1, :100] = 0.25
    values[2, :3] = [-0.0, -2.0, np.inf]
    values[3] = 1.0  # constant: no correlation
    values[4, 7] = np.nan
    others[5, 9] = np.nan
    return values, others


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spearman_to_ranked_rows_equals_scipy(dtype):
    """Against rows ranked once (:func:`tied_rows`), in float32 (the sorted-key path) and
    float64 (the general path)."""
    values, others = tied_rows(dtype)
    expected = np.array([scipy_stats.spearmanr(row, other).statistic
                         for row, other in zip(values.astype(np.float64), others)])
    got = stats.spearman_to_ranked(values, stats.rank_once(others))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[[3, 4, 5]]).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_spearman_of_tensors_equals_the_host_path(device):
    """The check's Spearman correlation ranked on the tensors' device (:func:`tied_rows`, and a
    selection of rows) equals the host's bit for bit."""
    values, others = tied_rows()
    expected = stats.spearman_to_ranked(values, stats.rank_once(others))
    ranked = stats.rank_once(torch.from_numpy(others).to(device))
    got = stats.spearman_to_ranked(torch.from_numpy(values).to(device), ranked)
    assert np.isnan(got[[3, 4, 5]]).all()
    np.testing.assert_array_equal(got, expected)
    rows = np.array([0, 2, 6])
    np.testing.assert_array_equal(
        stats.spearman_to_ranked(torch.from_numpy(values[rows]).to(device), ranked[rows]),
        expected[rows])


def test_rank_once_keeps_doubled_ranks_and_rows_select():
    values = np.array([[3.0, 1.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    ranked = stats.rank_once(values)
    np.testing.assert_array_equal(ranked.doubled_ranks, [[8, 3, 3, 6], [5, 5, 5, 5]])
    np.testing.assert_array_equal(ranked.sum_squares, [(8 - 5)**2 + 2 * (3 - 5)**2 + 1, 0])
    np.testing.assert_array_equal(ranked[[1]].doubled_ranks, [[5, 5, 5, 5]])
