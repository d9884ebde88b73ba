"""Batched metamer synthesis: optimisers, inits, schedulers, constraints, stopping, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import validate

from metamers import criteria, decoder, generate, inits
from metamers.activations import LOGITS, extract, feature_extractor
from metamers.data import load_dataset
from metamers.fake_relu import with_fake_relu
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings, build_optimizer

CPU = torch.device("cpu")
REPO_ROOT = Path(__file__).resolve().parents[1]

OPTIMIZERS = {
    "SGD": ("SGD", {"lr": 20.0}),
    "SGD_momentum": ("SGD", {"lr": 5.0, "momentum": 0.9}),
    "SGD_nesterov": ("SGD", {"lr": 5.0, "momentum": 0.9, "nesterov": True}),
    "Adam": ("Adam", {"lr": 0.05}),
    "AdamW": ("AdamW", {"lr": 0.05}),
    "RMSprop": ("RMSprop", {"lr": 0.01}),
    "LBFGS": ("LBFGS", {"lr": 1.0, "max_iter": 5, "line_search_fn": "strong_wolfe"}),
}
CONSTRAINTS = {"LBFGS": "sigmoid"}  # L-BFGS refuses the clamp


@pytest.fixture(scope="module")
def small_references(references):
    """Four references of four different classes: enough for a batch, cheap to optimise."""
    images, labels = references
    return images[::5].clone(), labels[::5].clone()


@pytest.fixture(scope="module")
def synthesis_at(trained_model, small_references, null_at):
    cache = {}

    def build(layer: str, channels_last: bool = False) -> MetamerSynthesis:
        if (layer, channels_last) not in cache:
            cache[layer, channels_last] = MetamerSynthesis(
                [Member("cnn", trained_model, layer,
                        null_at(layer).threshold("spearman", 99.0))],
                small_references[0], CPU, channels_last)
        return cache[layer, channels_last]

    return build


@pytest.fixture(scope="module")
def uniform_starts(small_references):
    return inits.initial_images("uniform", small_references[0], seed=0)


def assert_valid_images(images: np.ndarray, shape: tuple[int, ...]) -> None:
    assert images.shape == shape
    assert images.dtype == np.float32
    assert np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0


def initial_loss(synthesis: MetamerSynthesis, starts: torch.Tensor) -> np.ndarray:
    return synthesis.objective.loss_per_image(starts, torch.arange(len(starts)))


def synthesize(synthesis: MetamerSynthesis, starts: torch.Tensor, settings: OptimizerSettings,
               max_iterations: int, check_every: int = 10,
               stop_on_success: bool = True) -> generate.SynthesisResult:
    """A whole run: :meth:`~MetamerSynthesis.setup`, then :meth:`~MetamerSynthesis.synthesize`."""
    synthesis.setup(starts, settings)
    return synthesis.synthesize(max_iterations, check_every, stop_on_success)


@pytest.mark.parametrize("label", list(OPTIMIZERS))
def test_each_optimizer_gives_valid_images_and_lowers_the_loss(label, synthesis_at,
                                                                uniform_starts):
    name, kwargs = OPTIMIZERS[label]
    synthesis = synthesis_at("relu1")
    settings = OptimizerSettings(name, kwargs, constraint=CONSTRAINTS.get(label, "clamp"))
    result = synthesize(synthesis, uniform_starts, settings, 10, check_every=5,
                                  stop_on_success=False)
    assert_valid_images(result.metamers, tuple(uniform_starts.shape))
    assert result.loss.shape == (11, len(uniform_starts))
    assert np.isfinite(result.loss).all()
    # Row 0 is the loss of the starting images, for closure optimisers (L-BFGS) too.
    np.testing.assert_allclose(result.loss[0], initial_loss(synthesis, uniform_starts),
                               rtol=1e-5)
    assert (result.loss[-1] < 0.5 * result.loss[0]).all()
    np.testing.assert_array_equal(result.initial_images, uniform_starts.numpy())


def shipped_config() -> dict:
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    validate(config, str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.mark.parametrize("name", list(shipped_config()["optimizers"]))
def test_every_optimizer_of_the_default_config_lowers_the_loss(name, synthesis_at,
                                                                uniform_starts):
    settings = OptimizerSettings.from_config(shipped_config()["optimizers"][name])
    synthesis = synthesis_at("relu1")
    result = synthesize(synthesis, uniform_starts, settings, 10, check_every=5,
                                  stop_on_success=False)
    assert_valid_images(result.metamers, tuple(uniform_starts.shape))
    assert (result.loss[-1] < result.loss[0]).all()


# learned starts (kind decoder) decode a generator's activations: tests/test_decoder.py
@pytest.mark.parametrize("name", [name for name, init in shipped_config()["inits"].items()
                                  if init["kind"] not in inits.LEARNED_KINDS])
def test_every_init_of_the_default_config_gives_valid_starts(name, references):
    init = shipped_config()["inits"][name]
    images, labels = references
    starts = inits.initial_images(init["kind"], images, seed=0, strength=init["strength"],
                                  reference_labels=labels)
    assert_valid_images(starts.numpy(), tuple(images.shape))


@pytest.mark.parametrize("kind", inits.NOISE_KINDS + inits.NEAR_KINDS)
def test_each_init_kind_gives_valid_metamers(kind, synthesis_at, small_references, references):
    images, labels = small_references
    pool_images, pool_labels = references
    starts = inits.initial_images(kind, images, seed=1, strength=0.5, reference_labels=labels,
                                  pool_images=pool_images, pool_labels=pool_labels,
                                  reference_pool_index=torch.arange(0, 20, 5))
    result = synthesize(synthesis_at("relu1"), starts, OptimizerSettings(), 5, check_every=5,
                                              stop_on_success=False)
    assert_valid_images(result.metamers, tuple(images.shape))
    np.testing.assert_allclose(result.initial_images, starts.numpy())
    assert (result.loss[-1] < result.loss[0]).all()


@pytest.mark.parametrize("scheduler, scheduler_kwargs", [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 10}),
    ("ReduceLROnPlateau", {"patience": 1, "factor": 0.5}),
])
def test_schedulers_run(scheduler, scheduler_kwargs, synthesis_at, uniform_starts):
    settings = OptimizerSettings("Adam", {"lr": 0.05}, scheduler, scheduler_kwargs)
    result = synthesize(synthesis_at("relu1"), uniform_starts, settings, 10, check_every=5,
                                              stop_on_success=False)
    assert_valid_images(result.metamers, tuple(uniform_starts.shape))
    assert (result.loss[-1] < result.loss[0]).all()


def test_scheduler_changes_the_learning_rate(synthesis_at, uniform_starts):
    """StepLR with gamma 0 sets lr to 0 after one step: ten iterations equal one."""
    synthesis = synthesis_at("relu1")
    frozen = OptimizerSettings("SGD", {"lr": 5.0}, "StepLR", {"step_size": 1, "gamma": 0.0})
    plain = OptimizerSettings("SGD", {"lr": 5.0})
    ten = synthesize(synthesis, uniform_starts, frozen, 10, stop_on_success=False)
    one = synthesize(synthesis, uniform_starts, plain, 1, stop_on_success=False)
    ten_plain = synthesize(synthesis, uniform_starts, plain, 10, stop_on_success=False)
    np.testing.assert_array_equal(ten.metamers, one.metamers)
    assert not np.array_equal(ten_plain.metamers, one.metamers)


def test_gradient_normalization_gives_unit_steps(synthesis_at, small_references):
    """SGD on unit-norm gradients moves every image by exactly lr in L2."""
    starts = torch.full_like(small_references[0], 0.5)
    synthesis = synthesis_at("relu1")
    normalized = OptimizerSettings("SGD", {"lr": 0.1}, gradient_normalization=True,
                                   constraint="none")
    result = synthesize(synthesis, starts, normalized, 1, stop_on_success=False)
    steps = np.linalg.norm((result.metamers - starts.numpy()).reshape(len(starts), -1), axis=1)
    np.testing.assert_allclose(steps, 0.1, rtol=1e-4)
    raw = synthesize(synthesis, starts, OptimizerSettings("SGD", {"lr": 0.1}, constraint="none"),
                               1, stop_on_success=False)
    raw_steps = np.linalg.norm((raw.metamers - starts.numpy()).reshape(len(starts), -1), axis=1)
    assert not np.allclose(raw_steps, 0.1, rtol=1e-2)


def test_gradient_normalization_is_rejected_with_lbfgs(synthesis_at, uniform_starts):
    settings = OptimizerSettings("LBFGS", {"lr": 1.0}, gradient_normalization=True)
    with pytest.raises(ValueError, match="gradient_normalization"):
        synthesize(synthesis_at("relu1"), uniform_starts, settings, 2)


def test_lbfgs_with_the_clamp_is_rejected(synthesis_at, uniform_starts):
    with pytest.raises(ValueError, match="sigmoid"):
        synthesize(synthesis_at("relu1"), uniform_starts, OptimizerSettings("LBFGS", {}), 2)


@pytest.mark.parametrize("constraint, range_penalty", [
    ("sigmoid", 0.0), ("none", 0.0), ("none", 10.0), ("clamp", 0.0)])
def test_constraints_keep_images_in_the_unit_box(constraint, range_penalty, synthesis_at,
                                                 uniform_starts):
    settings = OptimizerSettings("Adam", {"lr": 0.1}, constraint=constraint,
                                 range_penalty=range_penalty)
    result = synthesize(synthesis_at("relu1"), uniform_starts, settings, 10, check_every=5,
                                              stop_on_success=False)
    assert_valid_images(result.metamers, tuple(uniform_starts.shape))
    assert (result.loss[-1] < result.loss[0]).all()


def test_unknown_names_raise_clear_errors(synthesis_at, uniform_starts):
    parameter = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Adamm"):
        build_optimizer(OptimizerSettings("Adamm"), parameter)
    with pytest.raises(ValueError, match="StepLRR"):
        build_optimizer(OptimizerSettings("Adam", scheduler="StepLRR"), parameter)
    with pytest.raises(ValueError, match="tanh"):
        synthesize(synthesis_at("relu1"), uniform_starts, OptimizerSettings(constraint="tanh"), 2)


def test_optimizer_settings_from_config():
    settings = OptimizerSettings.from_config({"name": "SGD", "kwargs": {"lr": 2.0},
                                              "scheduler": "StepLR",
                                              "scheduler_kwargs": {"step_size": 5},
                                              "gradient_normalization": True})
    assert settings == OptimizerSettings("SGD", {"lr": 2.0}, "StepLR", {"step_size": 5}, True,
                                         "clamp", 0.0)


@pytest.fixture(scope="module")
def second_model(train_small_cnn):
    return train_small_cnn(seed=1, images=2000)


def test_joint_metamer_satisfies_every_member(trained_model, second_model, small_references):
    images, _ = small_references
    layer = "relu2"
    models = {"cnn_a": trained_model, "cnn_b": second_model}
    thresholds = {}
    for name, model in models.items():
        values = extract(model, images, [layer], CPU)[layer]
        thresholds[name] = criteria.reference_null(values).threshold("spearman", 99.0)
    members = [Member(name, model, layer, thresholds[name]) for name, model in models.items()]
    result = synthesize(MetamerSynthesis(members, images, CPU),
                        inits.initial_images("uniform", images, seed=0), OptimizerSettings(),
                        300, check_every=10)
    assert result.member_names == ["cnn_a", "cnn_b"]
    assert result.final_spearman.shape == (len(images), 2)
    assert result.success.all()
    for column, (name, model) in enumerate(models.items()):
        metamer = extract(model, torch.from_numpy(result.metamers), [layer], CPU)
        reference = extract(model, images, [layer], CPU)
        check = criteria.check_criterion(metamer[layer], reference[layer],
                                         metamer["__logits__"].argmax(1),
                                         reference["__logits__"].argmax(1), thresholds[name])
        assert check.passed.all(), name
        np.testing.assert_allclose(check.spearman, result.final_spearman[:, column], atol=1e-6)


def test_channels_last_runs_a_copy_of_the_model(trained_model, small_references):
    synthesis = MetamerSynthesis([Member("cnn", trained_model, "relu2", 0.5)],
                                 small_references[0], CPU, channels_last=True)
    kernels = [p for p in synthesis.members[0].model.parameters() if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert all(p.is_contiguous() for p in trained_model.parameters())


def test_optimizers_run_their_fused_kernel_unless_the_config_picks_one():
    parameter = torch.zeros(2, 3, requires_grad=True)
    assert build_optimizer(OptimizerSettings("SGD"), parameter)[0].defaults["fused"] is True
    assert build_optimizer(OptimizerSettings("Adam"), parameter)[0].defaults["fused"] is True
    chosen = build_optimizer(OptimizerSettings("Adam", {"foreach": True}), parameter)[0]
    assert chosen.defaults["foreach"] is True and not chosen.defaults["fused"]
    assert "fused" not in build_optimizer(OptimizerSettings("RMSprop"), parameter)[0].defaults


def test_start_at_the_reference_succeeds_at_iteration_zero(synthesis_at, small_references):
    images, _ = small_references
    result = synthesize(synthesis_at("relu2"), images.clone(), OptimizerSettings(), 50,
                                              check_every=10)
    np.testing.assert_array_equal(result.iterations_to_success, 0)
    np.testing.assert_array_equal(result.iterations_run, 0)
    assert result.success.all()
    np.testing.assert_array_equal(result.metamers, images.numpy())
    np.testing.assert_allclose(result.loss[0], 0.0, atol=1e-12)
    assert np.isnan(result.loss[1:]).all()


def test_stopped_metamers_are_frozen_at_their_successful_image(synthesis_at, small_references,
                                                               uniform_starts):
    check_every = 3
    synthesis = synthesis_at("relu2")
    result = synthesize(synthesis, uniform_starts, OptimizerSettings(), 99,
                                  check_every=check_every)
    assert result.success.all()
    assert (result.iterations_to_success > 0).all()
    assert (result.iterations_to_success % check_every == 0).all()
    np.testing.assert_array_equal(result.iterations_run, result.iterations_to_success)
    # Re-checking the stored metamers reproduces the check made when each stopped.
    measures, predicted, passed = synthesis.check(torch.from_numpy(result.metamers),
                                                  torch.arange(len(uniform_starts)))
    assert passed.all()
    for measure in criteria.MEASURES:
        np.testing.assert_allclose(measures[measure], getattr(result, f"final_{measure}"),
                                   atol=1e-5)
    np.testing.assert_array_equal(predicted, result.predicted_class)
    np.testing.assert_array_equal(result.predicted_class, result.reference_class)
    for column, stop in enumerate(result.iterations_run):
        assert np.isfinite(result.loss[:stop + 1, column]).all()
        assert np.isnan(result.loss[stop + 1:, column]).all()


@pytest.mark.parametrize("layer", ["relu1", "relu2", "fc_relu"])
def test_the_default_optimizer_and_init_reach_the_criterion(layer, synthesis_at,
                                                            small_references, uniform_starts,
                                                            trained_model, data_spec):
    """The shipped default (first optimizer and init of config/config.yaml: a decoded start,
    its decoder fitted here to 2,000 training images) and its budget."""
    config = shipped_config()
    generation = config["generation"]
    init = config["inits"][generation["inits"][0]]
    assert init["kind"] == "decoder"
    settings = {**inits.decoder_settings(init), "train_images": 2000}
    training_images = load_dataset(data_spec, train=True).images[:settings["train_images"]]
    layer_decoder = decoder.train_decoder(trained_model, layer, training_images, settings, 0, CPU)
    starts = decoder.decoded_starts([layer_decoder], [trained_model], [layer], ["cnn"],
                                    small_references[0], CPU)
    synthesis = synthesis_at(layer)
    optimizer = OptimizerSettings.from_config(
        config["optimizers"][generation["optimizers"][0]])
    result = synthesize(synthesis, starts, optimizer, generation["max_iterations"],
                        generation["check_every"])
    assert result.success.all()
    # the decoded start is already nearer the reference's activations than noise is
    assert (initial_loss(synthesis, starts) < initial_loss(synthesis, uniform_starts)).all()


def test_iterations_to_success_is_the_first_passing_check(synthesis_at, uniform_starts):
    """Rerun each prefix of the optimisation and apply the criterion to its images."""
    check_every, budget = 5, 40
    synthesis = synthesis_at("relu2")
    settings = OptimizerSettings()
    stopping = synthesize(synthesis, uniform_starts, settings, budget, check_every)
    running = synthesize(synthesis, uniform_starts, settings, budget, check_every,
                                   stop_on_success=False)
    assert running.success.all()
    np.testing.assert_array_equal(stopping.iterations_to_success, running.iterations_to_success)
    assert np.isfinite(running.loss).all()
    first_pass = np.full(len(uniform_starts), -1)
    for iterations in range(0, budget + 1, check_every):
        prefix = synthesize(synthesis, uniform_starts, settings, iterations, check_every,
                                      stop_on_success=False)
        _, _, passed = synthesis.check(torch.from_numpy(prefix.metamers),
                                       torch.arange(len(uniform_starts)))
        first_pass[(first_pass < 0) & passed] = iterations
    np.testing.assert_array_equal(running.iterations_to_success, first_pass)


@pytest.mark.parametrize("interval, lines", [(1e9, 2), (0.0, 31)])
def test_progress_lines_are_the_first_last_and_one_per_interval(interval, lines, synthesis_at,
                                                                uniform_starts, monkeypatch,
                                                                caplog):
    monkeypatch.setattr(generate, "PROGRESS_SECONDS", interval)
    with caplog.at_level("INFO", logger="metamers.generate"):
        synthesize(synthesis_at("relu2"), uniform_starts, OptimizerSettings(), 30,
                   check_every=1, stop_on_success=False)
    progress = [record.getMessage() for record in caplog.records
                if record.getMessage().startswith("iteration ")]
    assert len(progress) == lines
    assert progress[0].startswith("iteration 0/30") and progress[-1].startswith("iteration 30/30")


class CountingCalls(torch.nn.Module):
    """Wraps a module and counts its forward calls and the images they ran on."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module, self.calls, self.images = module, 0, 0

    def forward(self, images):
        self.calls += 1
        self.images += len(images)
        return self.module(images)


def test_checks_between_steps_reuse_the_steps_forward_pass(trained_model, small_references,
                                                           uniform_starts):
    """A check before a step correlates that step's activations and classifies only
    metamers whose correlation passes (with threshold 2, none). Checks at iteration 0 (the
    pixels are not yet clamped) and at the budget's end (no step follows) run on their own."""
    synthesis = MetamerSynthesis([Member("cnn", trained_model, "relu1", 2.0)],
                                 small_references[0], CPU)
    objective = synthesis.objective
    objective.extractors = [CountingCalls(module) for module in objective.extractors]
    synthesis.checkers = [CountingCalls(module) for module in synthesis.checkers]
    result = synthesize(synthesis, uniform_starts, OptimizerSettings(), 20, check_every=5)
    assert synthesis.checkers[0].calls == 2  # the checks at 0 and 20
    assert objective.extractors[0].calls == 20 + 1  # the steps; the final loss
    assert not result.success.any()


def test_a_check_in_a_step_classifies_only_metamers_that_correlate(synthesis_at,
                                                                   uniform_starts):
    """The step's check classifies the metamers past the correlation threshold, from the step's
    activations on through the rest of the model, and they stop where the check made on its own
    would stop them."""
    synthesis = synthesis_at("relu2")
    checker, head = CountingCalls(synthesis.checkers[0]), CountingCalls(synthesis.heads[0])
    synthesis.checkers, synthesis.heads = [checker], [head]
    try:
        result = synthesize(synthesis, uniform_starts, OptimizerSettings(), 60, check_every=5)
    finally:
        synthesis.checkers, synthesis.heads = [checker.module], [head.module]
    stops = result.iterations_to_success
    assert result.success.all() and (stops > 0).all()
    at_the_end = int((stops == 60).sum())  # the budget's last check classifies all it checks
    assert checker.images == len(stops) + at_the_end  # the checks on their own: 0 and the end
    running_at_checks_in_steps = sum(int((stops >= k).sum()) for k in range(5, 60, 5))
    assert len(stops) - at_the_end <= head.images < running_at_checks_in_steps
    _, predicted, passed = synthesis.check(torch.from_numpy(result.metamers),
                                           torch.arange(len(uniform_starts)))
    assert passed.all()
    np.testing.assert_array_equal(predicted, result.predicted_class)


def test_a_check_in_a_step_runs_the_whole_model_where_the_layer_has_no_head(synthesis_at,
                                                                           uniform_starts):
    """Where the rest of the model reads values from before the layer, the step's check
    classifies from the images, with the same outcome."""
    synthesis = synthesis_at("relu2")
    with_head = synthesize(synthesis, uniform_starts, OptimizerSettings(), 30, check_every=5)
    synthesis.heads = [None]
    checker = CountingCalls(synthesis.checkers[0])
    synthesis.checkers = [checker]
    without_head = synthesize(synthesis, uniform_starts, OptimizerSettings(), 30, check_every=5)
    assert checker.images > len(uniform_starts)  # more than the check at iteration 0
    np.testing.assert_array_equal(with_head.iterations_to_success,
                                  without_head.iterations_to_success)
    np.testing.assert_array_equal(with_head.predicted_class, without_head.predicted_class)


def test_a_head_that_does_not_reproduce_the_logits_is_not_used(trained_model,
                                                               small_references, monkeypatch):
    """Checks classify from the images when the model cut at the layer gives other logits."""

    class Wrong(torch.nn.Module):
        def forward(self, activation):
            return {LOGITS: torch.zeros(len(activation), 10)}

    monkeypatch.setattr(generate, "layer_to_logits", lambda extractor, layer: Wrong())
    synthesis = MetamerSynthesis([Member("cnn", trained_model, "relu2", 0.5)],
                                 small_references[0], CPU)
    assert synthesis.heads == [None]


def test_metamers_of_the_output_layer(synthesis_at, uniform_starts):
    """Metamers can match the logits themselves (the model's last layer): they stop with the
    reference's class."""
    synthesis = synthesis_at("logits")
    result = synthesize(synthesis, uniform_starts, OptimizerSettings(), 40, check_every=5)
    assert result.success.any()
    np.testing.assert_array_equal(result.predicted_class[result.success],
                                  result.reference_class[result.success])


@pytest.mark.parametrize("channels_last", [False, True])
def test_same_seed_gives_bit_identical_metamers(synthesis_at, small_references, channels_last):
    images, _ = small_references

    def run(seed: int):
        starts = inits.initial_images("uniform", images, seed=seed)
        return synthesize(synthesis_at("relu1", channels_last), starts, OptimizerSettings(), 20,
                                                               check_every=5)

    first, second, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first.metamers, second.metamers)
    np.testing.assert_array_equal(first.loss, second.loss)
    np.testing.assert_array_equal(first.iterations_to_success, second.iterations_to_success)
    assert not np.array_equal(first.metamers, other.metamers)


class NaNForBrightCorner(torch.nn.Module):
    """A model whose layer is NaN for images with a bright top-left pixel, finite otherwise."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        poison = torch.where(images[:, :1, :1, :1] > 0.95, float("nan"), 1.0)
        return self.model(images * poison)


def test_non_finite_loss_stops_only_that_metamer(trained_model, small_references):
    references = small_references[0]
    starts = inits.initial_images("uniform", references, seed=0) * 0.5
    starts[1, :, 0, 0] = 1.0  # NaN from the first iteration on
    model = NaNForBrightCorner(trained_model).eval()
    synthesis = MetamerSynthesis([Member("nan", model, "model.relu2", 1.01)], references, CPU)
    settings = OptimizerSettings("Adam", {"lr": 0.01})
    result = synthesize(synthesis, starts, settings, 20, check_every=5, stop_on_success=False)
    assert list(result.stop_reason) == ["budget", "non-finite loss", "budget", "budget"]
    assert result.iterations_run[1] == 0
    np.testing.assert_array_equal(result.metamers[1], starts[1].numpy())
    assert np.isfinite(result.metamers).all()
    others = [0, 2, 3]
    assert np.isfinite(result.loss[:20, others]).all()
    assert (result.loss[19, others] < result.loss[0, others]).all()
    # its record is the criterion on its stored image, every part computed
    measures, predicted, _ = synthesis.check(torch.from_numpy(result.metamers[[1]]),
                                             torch.tensor([1]))
    for measure in criteria.MEASURES:
        np.testing.assert_array_equal(getattr(result, f"final_{measure}")[1], measures[measure][0])
    np.testing.assert_array_equal(result.predicted_class[1], predicted[0])
    assert (result.predicted_class[1] >= 0).all()


@pytest.mark.parametrize("label", ["SGD_nesterov", "Adam", "LBFGS"])
def test_resuming_from_a_save_is_bit_identical(label, trained_model, small_references, null_at,
                                               uniform_starts, tmp_path, monkeypatch):
    """A run that dies after its save at iteration 20, loaded into a new synthesis and run on,
    ends as the run without a break."""
    name, kwargs = OPTIMIZERS[label]
    scheduler = {"scheduler": "StepLR", "scheduler_kwargs": {"step_size": 7, "gamma": 0.5}}
    settings = OptimizerSettings(name, kwargs, constraint=CONSTRAINTS.get(label, "clamp"),
                                 **(scheduler if name != "LBFGS" else {}))

    def new_synthesis() -> MetamerSynthesis:
        member = Member("cnn", trained_model, "relu2",
                        null_at("relu2").threshold("spearman", 99.0))
        return MetamerSynthesis([member], small_references[0], CPU)

    uninterrupted = synthesize(new_synthesis(), uniform_starts, settings, 30, check_every=5,
                               stop_on_success=False)
    checkpoint = generate.Checkpoint(tmp_path / "state.pt", every=10, fingerprint="job")
    saved_iterations = []
    original_save = MetamerSynthesis.save

    def save_then_die(synthesis: MetamerSynthesis, path: Path, fingerprint: str = "") -> None:
        original_save(synthesis, path, fingerprint)
        saved_iterations.append(synthesis.iteration)
        if synthesis.iteration == 20:
            raise KeyboardInterrupt("killed")

    dying = new_synthesis()
    dying.setup(uniform_starts, settings)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(MetamerSynthesis, "save", save_then_die)
        dying.synthesize(30, check_every=5, stop_on_success=False, checkpoint=checkpoint)
    assert saved_iterations == [10, 20]
    resumed = new_synthesis()
    resumed.setup(uniform_starts, settings)
    assert generate.resume(resumed, checkpoint) and resumed.iteration == 20
    result = resumed.synthesize(30, check_every=5, stop_on_success=False,
                                checkpoint=checkpoint)
    for field_name in ("metamers", "initial_images", "loss", "iterations_to_success",
                       "iterations_run", "final_spearman", "predicted_class", "stop_reason"):
        np.testing.assert_array_equal(getattr(result, field_name),
                                      getattr(uninterrupted, field_name), err_msg=field_name)


def test_a_save_of_another_job_or_a_damaged_one_is_not_resumed(synthesis_at, uniform_starts,
                                                                tmp_path):
    settings = OptimizerSettings("Adam", {"lr": 0.05})
    synthesis = synthesis_at("relu2")
    synthesis.setup(uniform_starts, settings)
    synthesis.synthesize(8, check_every=4, stop_on_success=False)
    synthesis.save(tmp_path / "state.pt", "other job")
    (tmp_path / "damaged.pt").write_bytes((tmp_path / "state.pt").read_bytes()[:100])
    synthesis.setup(uniform_starts, settings)
    with pytest.raises(ValueError, match="other job"):
        synthesis.load(tmp_path / "state.pt", "this job")
    for path in ("state.pt", "damaged.pt"):
        checkpoint = generate.Checkpoint(tmp_path / path, every=100, fingerprint="this job")
        assert not generate.resume(synthesis, checkpoint)
        assert synthesis.iteration == 0 and synthesis.records is None


def test_the_life_cycle_is_enforced(synthesis_at, uniform_starts):
    """synthesize() needs setup() first; a run keeps the budget it started with."""
    synthesis = MetamerSynthesis(synthesis_at("relu1").members, synthesis_at("relu1")
                                 .reference_images, CPU)
    with pytest.raises(RuntimeError, match="setup"):
        synthesis.synthesize(5)
    synthesis.setup(uniform_starts, OptimizerSettings())
    synthesis.synthesize(4, check_every=2, stop_on_success=False)
    assert synthesis.iteration == 4
    with pytest.raises(ValueError, match="budget is 4"):
        synthesis.synthesize(6)


def test_the_success_check_classifies_only_where_the_correlation_passes(synthesis_at,
                                                                        small_references):
    """criteria.SuccessCheck: classes are asked for only where the Spearman rho passes (-1
    elsewhere), or for every metamer with ``classify_all``; the outcome is check_criterion's."""
    synthesis = synthesis_at("relu2")
    images = small_references[0].clone()
    images[1:3] = torch.rand(2, *images.shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = synthesis.checkers[0](images)
    success = synthesis.success_checks[0]
    asked = []

    def classify(positions: np.ndarray) -> np.ndarray:
        asked.append(positions.tolist())
        return outputs[LOGITS][positions].argmax(1).numpy()

    check, predicted = success.check(outputs["relu2"], slice(None), classify)
    full, predicted_all = success.check(outputs["relu2"], slice(None), classify,
                                        classify_all=True)
    assert asked == [[0, 3], [0, 1, 2, 3]]
    np.testing.assert_array_equal(check.passed, [True, False, False, True])
    np.testing.assert_array_equal(predicted[[1, 2]], -1)
    np.testing.assert_array_equal(predicted_all, outputs[LOGITS].argmax(1).numpy())
    expected = criteria.check_criterion(
        outputs["relu2"].flatten(1).numpy(), synthesis.objective.reference_targets[0]
        .flatten(1).numpy(), predicted_all, synthesis.reference_predictions[0],
        success.thresholds.measures["spearman"])
    np.testing.assert_array_equal(check.passed, expected.passed)
    np.testing.assert_array_equal(full.passed, expected.passed)
    np.testing.assert_allclose(full.spearman, expected.spearman, rtol=1e-12)


@pytest.mark.parametrize("layer, swapped", [("fc_relu", True), ("pool2", False)])
def test_fake_relu_passes_the_gradient_through_a_generating_relu(
        trained_model, small_references, uniform_starts, layer, swapped):
    """With fake_relu, the loss is the model's and the images' gradient is autograd's through
    the model with an identity-backward ReLU at the layer; a layer that is no ReLU keeps its
    gradient."""
    references = small_references[0]
    gradients, losses = {}, {}
    for fake in (False, True):
        synthesis = MetamerSynthesis([Member("cnn", trained_model, layer, 0.5)], references,
                                     CPU, fake_relu=fake)
        pixels = uniform_starts.clone().requires_grad_(True)
        losses[fake], _, _ = synthesis.objective.backward(pixels, torch.arange(4), 0.0)
        gradients[fake] = pixels.grad
    extractor = with_fake_relu(feature_extractor(trained_model, [layer]), layer) if swapped \
        else feature_extractor(trained_model, [layer])
    pixels = uniform_starts.clone().requires_grad_(True)
    target = extractor(references)[layer].flatten(1)
    error = (extractor(pixels)[layer].flatten(1) - target).pow(2).sum(1) / target.pow(2).sum(1)
    error.sum().backward()
    np.testing.assert_array_equal(losses[True], losses[False])
    torch.testing.assert_close(gradients[True], pixels.grad, rtol=1e-4, atol=1e-7)
    assert swapped == (not torch.equal(gradients[True], gradients[False]))
