"""benchmarks/generation.py: its helpers (budgets, medians, the Fourier preconditioning), its
method names, and its default run as the pipeline runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benchmark_module import benchmark_module

from metamers import criteria, inits, scores, stages, store
from metamers.generate import Member


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


CONFIG = {
    "optimizers": {"ngd": {"name": "SGD", "kwargs": {"lr": 0.1, "momentum": 0.9,
                                                     "nesterov": True},
                           "gradient_normalization": True},
                   "adam": {"name": "Adam", "kwargs": {"lr": 0.1}},
                   "adam_fine": {"name": "Adam", "kwargs": {"lr": 0.01}}},
    "inits": {"decoder": {"kind": "decoder", "strength": 0.5},
              "uniform": {"kind": "uniform", "strength": 0.5}},
    "generation": {"optimizers": ["adam_fine"], "inits": ["decoder"], "fake_relu": True,
                   "l1_weight": 0.1},
}


def test_default_is_the_configs_synthesis(generation):
    plan = generation.method_plan("default", 500, CONFIG)
    assert (plan.settings.name, plan.settings.kwargs) == ("Adam", {"lr": 0.01})
    assert (plan.init, plan.fake_relu, plan.l1_weight, plan.fft) == ("decoder", True, 0.1,
                                                                     False)
    assert plan.unscheduled
    assert not generation.method_plan("default+relu", 500, CONFIG).fake_relu


def test_method_names_combine_optimizer_levers_start_and_relu(generation):
    plan = generation.method_plan("ngd_lr0.3_fft_cosine:uniform+relu", 800, CONFIG)
    assert plan.settings.kwargs == {"lr": 0.3, "momentum": 0.9, "nesterov": True}
    assert (plan.settings.scheduler, plan.settings.scheduler_kwargs) == ("CosineAnnealingLR",
                                                                         {"T_max": 800})
    assert (plan.init, plan.fake_relu, plan.fft) == ("uniform", False, True)
    assert not plan.unscheduled
    assert CONFIG["optimizers"]["ngd"]["kwargs"]["lr"] == 0.1  # the config is not changed
    longest = generation.method_plan("adam_fine_lr0.001", 100, CONFIG)  # not adam + "fine"
    assert longest.settings.kwargs == {"lr": 0.001}
    feather = generation.method_plan("feather", 24000, CONFIG)
    assert feather.settings.scheduler_kwargs == {"step_size": 3000, "gamma": 0.5}
    assert (feather.init, feather.fake_relu, feather.l1_weight) == ("feather", True, 0.0)
    assert not generation.method_plan("feather+relu", 24000, CONFIG).fake_relu


@pytest.mark.parametrize("method, message", [("ngd_lr0.1_warp", "unknown lever"),
                                             ("ngd:pink", "unknown init 'pink'"),
                                             ("lbfgs", "unknown method 'lbfgs'"),
                                             ("default+gelu", "unknown flag 'gelu'")])
def test_bad_method_names_say_what_is_wrong(generation, method, message):
    with pytest.raises(ValueError, match=message):
        generation.method_plan(method, 100, CONFIG)


def test_default_runs_as_the_pipelines_job(generation, job_inputs, data_spec, tmp_path):
    """The benchmark's ``default`` on a run's files reproduces the pipeline's generation job:
    the same start (the run's decoder file), optimiser, fake_relu and L1 term."""
    run = tmp_path / "run"
    decoder_path = run / "results/decoders/decoder/cnn/relu2.pt"
    settings = {**inits.DECODER_SETTINGS, "train_images": 500, "epochs": 1, "batch_size": 64,
                "hidden_units": 32}
    stages.train_decoder(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                         "relu2", data_spec, settings, 0, decoder_path, "cpu", threads=1)
    budget = {"max_iterations": 40, "check_every": 5, "stop_on_success": True,
              "checkpoint_every": 0}
    metamers = tmp_path / "metamers.h5"
    stages.generate_metamers(**{**job_inputs, "budget": budget, "path": metamers,
                                "optimizer": CONFIG["optimizers"]["adam_fine"],
                                "init": CONFIG["inits"]["decoder"], "fake_relu": True,
                                "l1_weight": 0.1, "decoder_paths": {"cnn": decoder_path}})
    job = store.read_metamers(metamers)

    reference_set = store.read_references(job_inputs["references_path"])
    model = stages.load_zoo_model(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                                  torch.device("cpu"))
    rule = criteria.Criterion.from_config(job_inputs["criterion"])
    thresholds = criteria.Thresholds.of(rule, store.read_null(job_inputs["null_paths"]["cnn"]))
    members = [Member("cnn", model, "relu2", thresholds)]
    outcome = generation.run_batched(members, reference_set, "default", 40, 5, CONFIG, run, 0)
    np.testing.assert_array_equal(outcome.iterations_to_success, job["iterations_to_success"])
    np.testing.assert_array_equal(outcome.final_loss, generation.loss_at_stop(job["loss"]))
    np.testing.assert_allclose(outcome.distance, scores.pixel_distance(job["metamers"],
                                                                       reference_set["images"]))

    decoder_path.unlink()
    with pytest.raises(FileNotFoundError, match="results/decoders/decoder/cnn/relu2.pt"):
        generation.run_batched(members, reference_set, "default", 40, 5, CONFIG, run, 0)


def test_a_row_shows_a_median_between_two_iterations_unrounded(generation):
    outcome = generation.Outcome(np.array([0, 1, 0, 5]), np.full(4, 0.01), np.full(4, 1.5),
                                 1.0, 500)
    row = generation.describe("cnn/relu2", "default@500", outcome, 65.0, False)
    assert " 0.5 " in row and "0.008" in row and " 1.50 " in row


def test_pixel_controls_pass_near_the_reference_and_fail_far_from_it(generation, job_inputs):
    model = stages.load_zoo_model(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                                  torch.device("cpu"))
    rule = criteria.Criterion.from_config(job_inputs["criterion"])
    null = store.read_null(job_inputs["null_paths"]["cnn"])
    member = Member("cnn", model, "relu2", criteria.Thresholds.of(rule, null))
    images = store.read_references(job_inputs["references_path"])["images"]
    count = len(images)
    shares = [generation.pixel_control_share(
        member, images, generation.Outcome(np.zeros(count, int), np.zeros(count),
                                           np.full(count, distance), 1.0, 10), rule, null, 0)
              for distance in (0.01, 10.0)]
    assert shares == [1.0, 0.0]
    none_passed = generation.Outcome(np.full(count, -1), np.zeros(count), np.ones(count), 1.0, 10)
    assert np.isnan(generation.pixel_control_share(member, images, none_passed, rule, null, 0))
