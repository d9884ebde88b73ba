"""benchmarks/generation.py: its pure helpers (budgets, medians, the Fourier preconditioning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def generation():
    with benchmark_module("generation") as module:
        yield module


def test_smallest_budget_is_the_iteration_of_the_95th_percent_success(generation):
    iterations = np.array([5] * 18 + [40, -1])  # 19 of 20 pass by 40: 95%
    assert generation.smallest_budget(iterations) == 40
    assert generation.smallest_budget(np.array([5] * 17 + [40, -1, -1])) is None
    assert generation.smallest_budget(np.array([10, 20, 30, 40]), target=0.5) == 20


def test_censored_median_counts_failures_at_the_budget(generation):
    assert generation.censored_median(np.array([100, -1, -1]), 24000) == 24000
    assert generation.censored_median(np.array([100, 200, -1]), 24000) == 200


def test_loss_at_stop_is_the_last_finite_row(generation):
    trace = np.array([[1.0, 2.0], [0.5, np.nan], [0.25, np.nan]])
    np.testing.assert_array_equal(generation.loss_at_stop(trace), [0.25, 2.0])


def test_fourier_preconditioning_is_a_low_pass_descent_direction(generation):
    gradient = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    filtered = generation.fourier_precondition(gradient)
    assert filtered.shape == gradient.shape
    assert ((filtered * gradient).sum((1, 2, 3)) > 0).all()  # a descent direction
    constant = torch.ones(1, 1, 28, 28)  # the mean passes with the largest gain: 28^2
    torch.testing.assert_close(generation.fourier_precondition(constant), constant * 28**2)
    checkerboard = (-1.0) ** (torch.arange(28).view(-1, 1) + torch.arange(28)).view(1, 1, 28, 28)
    gain = generation.fourier_precondition(checkerboard) / checkerboard  # |f| = sqrt(1/2)
    torch.testing.assert_close(gain, torch.full_like(gain, 2.0))


def test_method_names_combine_levers(generation):
    ngd = {"name": "SGD", "kwargs": {"lr": 1.0, "momentum": 0.9, "nesterov": True},
           "gradient_normalization": True}
    settings, start, fake, fft = generation.method_plan("ngd_lr0.1_fft_cosine+fake_relu", 800,
                                                         ngd)
    assert settings.kwargs == {"lr": 0.1, "momentum": 0.9, "nesterov": True}
    assert (settings.scheduler, settings.scheduler_kwargs) == ("CosineAnnealingLR",
                                                               {"T_max": 800})
    assert (start, fake, fft) == ("default", True, True)
    assert generation.unscheduled("ngd_lr0.1_fft+fake_relu")
    assert not generation.unscheduled("ngd_lr0.1_cosine")
    feather = generation.method_plan("feather", 24000, ngd)
    assert feather[0].scheduler_kwargs == {"step_size": 3000, "gamma": 0.5} and feather[2]
    with pytest.raises(ValueError, match="unknown lever"):
        generation.method_plan("ngd_lr0.1_warp", 100, ngd)
