"""Metamer generation, side by side: this project's default, Feather et al.'s recipe, plenoptic.

Same models, layers and reference images for every method, and one success criterion for all:
``metamers.criteria.check_criterion`` with the threshold at the ``--null-percentile`` of the null
(``metamers.criteria.reference_null`` on the references' activations; config/lenient.yaml's rule,
not the default criterion of docs/criterion.md), checked every ``--check-every``
iterations; "iterations to success" is the first check that passes.

Methods
-------
default
    ``config/config.yaml``: the first of ``generation.optimizers`` (``ngd``: SGD, Nesterov
    momentum, normalised gradient) from the first of ``generation.inits`` (``uniform`` noise),
    with the ``generation`` budget, through :class:`metamers.generate.MetamerSynthesis` (all
    references in one batch).
feather
    Feather et al. 2023 (github.com/jenellefeather/model_metamers_pytorch,
    ``analysis_scripts/make_metamers_imagenet_16_category_val_400_only_save_metamer_layers.py``
    with ``robustness/attacker.py`` + ``robustness/attack_steps.py:L2Step``): gradient descent
    whose step is the gradient divided by its per-image L2 norm, step size 1.0, 3000 iterations
    per round, 8 rounds, step size halved after each round (24000 iterations), pixels clamped to
    [0, 1]; start 0.5 + N(0, 1/20^2) noise, clamped. Here: ``SGD(lr=1)`` + gradient normalisation
    + ``StepLR(step_size=3000, gamma=0.5)`` through ``MetamerSynthesis``, budget capped by
    ``--feather-cap``. Their loss is ||a - a_ref|| / ||a_ref|| and ours its square; with a
    normalised gradient the step is the same. Not reproduced: their ``fake_relu`` (the ReLU at
    the generating layer passes gradient as if it were the identity).
plenoptic
    ``plenoptic.Metamer`` with its defaults (MSE loss, range penalty 0.1, Adam lr 0.01 with
    amsgrad, uniform-noise start, convergence stop 1e-4 over 50 iterations), one reference at a
    time, synthesised in chunks of ``--check-every`` iterations up to ``--plenoptic-budget``.
    Its metamer is clamped to [0, 1] before each check (plenoptic only penalises the range).

Times: "s/metamer" is the method's total wall time for a layer (failures included) divided by
its successes, the cost of one metamer; "latency" is the median time from the start until a
metamer passed (a batched method's metamers share their batch's time).

    python benchmarks/generation.py            # ~5 min on 2 CPU cores (CNN trained here)
    python benchmarks/generation.py --quick    # ~1 min

With a finished pipeline run, ``--models-dir resources/models`` (the default) loads ``cnn_s0``
and ``resnet_s0`` instead of training; the ResNet's three layers add several minutes, most of
them spent by metamers that never pass and run to their budget.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from metamers import activations, criteria, inits, stages
from metamers.config import SCHEMA_PATH, validate_config
from metamers.data import load_dataset
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.references import sample_balanced
from metamers.runtime import configure

METHODS = ("default", "feather", "plenoptic")

# Feather et al.'s recipe, from their make_metamers_*.py defaults and submit_*.sh (-I 3000 -N 8).
FEATHER_STEP_SIZE = 1.0
FEATHER_ITERATIONS_PER_ROUND = 3000
FEATHER_ROUNDS = 8
FEATHER_NOISE_MEAN = 0.5
FEATHER_NOISE_SCALE = 1 / 20

# plenoptic.Metamer.synthesize's convergence defaults.
PLENOPTIC_STOP_CRITERION = 1e-4
PLENOPTIC_STOP_ITERS_TO_CHECK = 50


@dataclass
class Outcome:
    """One method on one (model, layer): per-reference results and the total wall time."""

    iterations_to_success: np.ndarray  # (N,) -1 where it never passed
    seconds_to_success: np.ndarray     # (N,) NaN where it never passed
    wall_time: float
    budget: int

    @property
    def success(self) -> np.ndarray:
        return self.iterations_to_success >= 0

    @property
    def median_iterations(self) -> float:
        return (float(np.median(self.iterations_to_success[self.success]))
                if self.success.any() else float("nan"))

    @property
    def seconds_per_metamer(self) -> float:
        return self.wall_time / self.success.sum() if self.success.any() else float("nan")

    @property
    def median_latency(self) -> float:
        return (float(np.median(self.seconds_to_success[self.success]))
                if self.success.any() else float("nan"))


class TimedSynthesis(MetamerSynthesis):
    """``MetamerSynthesis`` that also records when each metamer first passed the criterion."""

    def start_clock(self) -> None:
        self.started = time.perf_counter()
        self.seconds_to_success = np.full(len(self.reference_images), np.nan)

    def check(self, images: torch.Tensor, indices: torch.Tensor, classify_all: bool = True):
        return self._clock(indices, super().check(images, indices, classify_all))

    def check_activations(self, activations: list[torch.Tensor], images: torch.Tensor,
                          indices: torch.Tensor):
        return self._clock(indices, super().check_activations(activations, images, indices))

    def _clock(self, indices: torch.Tensor, checked: tuple) -> tuple:
        """Note the time of the first pass of each metamer in a check's result."""
        elapsed = time.perf_counter() - self.started
        passed_indices = indices.cpu().numpy()[checked[2]]
        fresh = passed_indices[np.isnan(self.seconds_to_success[passed_indices])]
        self.seconds_to_success[fresh] = elapsed
        return checked


class LayerOutput(nn.Module):
    """A model cut at one layer, returning a tensor (what plenoptic expects of a model)."""

    def __init__(self, extractor: nn.Module, layer: str):
        super().__init__()
        self.extractor = extractor
        self.layer = layer

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)[self.layer]


def run_batched(synthesis: TimedSynthesis, starts: torch.Tensor, settings: OptimizerSettings,
                budget: int, check_every: int) -> Outcome:
    synthesis.start_clock()
    synthesis.setup(starts, settings)
    result = synthesis.synthesize(budget, check_every)
    return Outcome(result.iterations_to_success, synthesis.seconds_to_success,
                   result.wall_time, budget)


def run_plenoptic(synthesis: MetamerSynthesis, budget: int, check_every: int,
                  seed: int) -> Outcome:
    """plenoptic's Metamer, defaults throughout, one reference at a time, checked in chunks."""
    model = LayerOutput(synthesis.objective.extractors[0], synthesis.members[0].layer).eval()
    started = time.perf_counter()
    per_image = [plenoptic_metamer(synthesis, model, index, budget, check_every, seed)
                 for index in range(len(synthesis.reference_images))]
    iterations_to_success, seconds_to_success = (np.array(values) for values in zip(*per_image))
    return Outcome(iterations_to_success.astype(np.int64), seconds_to_success.astype(float),
                   time.perf_counter() - started, budget)


def plenoptic_metamer(synthesis: MetamerSynthesis, model: nn.Module, index: int, budget: int,
                      check_every: int, seed: int) -> tuple[int, float]:
    """One reference's plenoptic metamer: (iterations, seconds) to success, or (-1, NaN)."""
    import plenoptic as po

    started = time.perf_counter()
    torch.manual_seed(seed + index)  # plenoptic's default start is torch.rand_like
    metamer = po.Metamer(synthesis.reference_images[index:index + 1], model)
    metamer.setup()

    def passes() -> bool:
        images = metamer.metamer.detach().clamp(0, 1)
        return bool(synthesis.check(images, torch.tensor([index]))[2][0])

    iterations, converged = 0, False
    while True:
        if passes():
            return iterations, time.perf_counter() - started
        if iterations >= budget or converged:  # plenoptic stops once its loss has converged
            return -1, float("nan")
        # tqdm's bars go to stderr; plenoptic warns when the loss has converged.
        with contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metamer.synthesize(min(check_every, budget - iterations),
                               stop_criterion=PLENOPTIC_STOP_CRITERION,
                               stop_iters_to_check=PLENOPTIC_STOP_ITERS_TO_CHECK)
        iterations = len(metamer.losses) - 1
        converged = any("converged" in str(warning.message) for warning in caught)


def plenoptic_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plenoptic")
    except PackageNotFoundError:
        return "(not installed)"


def feather_settings() -> OptimizerSettings:
    return OptimizerSettings(name="SGD", kwargs={"lr": FEATHER_STEP_SIZE}, scheduler="StepLR",
                             scheduler_kwargs={"step_size": FEATHER_ITERATIONS_PER_ROUND,
                                               "gamma": 0.5},
                             gradient_normalization=True, constraint="clamp")


def feather_noise(reference_images: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(reference_images.shape, generator=generator)
    return (noise * FEATHER_NOISE_SCALE + FEATHER_NOISE_MEAN).clamp(0, 1)


def load_models(args, config: dict, device: torch.device, scratch: Path):
    """[(name, model, layers)]: from ``--models-dir`` where present, else a CNN trained here."""
    loaded = []
    for name in args.models.split(","):
        spec = config["models"][name]
        weights = Path(args.models_dir) / f"{name}.pt"
        if weights.exists():
            loaded.append((name, stages.load_zoo_model(weights, spec, device), spec["layers"]))
    if loaded:
        return loaded
    name = "cnn_s0"
    spec = config["models"][name]
    training = {**config["training"][spec["training"]], "epochs": 1}
    if args.quick:
        training["max_train_images"] = 20000
    print(f"no models in {args.models_dir}: training {name} ({spec['architecture']}) for 1 epoch "
          f"on {training.get('max_train_images', 'all')} Fashion-MNIST images", flush=True)
    started = time.perf_counter()
    weights = scratch / f"{name}.pt"
    card = stages.train_local_model(spec, training, config["data"], weights,
                                    weights.with_suffix(".json"), str(device), args.threads)
    print(f"trained in {time.perf_counter() - started:.0f}s, test accuracy "
          f"{card['test_accuracy']:.3f}", flush=True)
    return [(name, stages.load_zoo_model(weights, spec, device), spec["layers"])]


def ratio(value: float, baseline: float) -> str:
    if not (np.isfinite(value) and np.isfinite(baseline)) or baseline == 0:
        return "n/a"
    return f"{value / baseline:.2f}x"


def describe(method: str, outcome: Outcome, baseline: Outcome) -> str:
    return (f"{method:<9} success {outcome.success.sum():>2}/{len(outcome.success):<2} "
            f"median iters {outcome.median_iterations:>6.0f} "
            f"({ratio(outcome.median_iterations, baseline.median_iterations):>7}) "
            f"s/metamer {outcome.seconds_per_metamer:>7.3f} "
            f"({ratio(outcome.seconds_per_metamer, baseline.seconds_per_metamer):>7}) "
            f"latency {outcome.median_latency:>6.2f}s  budget {outcome.budget}  "
            f"wall {outcome.wall_time:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--models-dir", default="resources/models")
    parser.add_argument("--models", default="cnn_s0,cnn_robust_s0,resnet_s0",
                        help="config models to load from --models-dir where present")
    parser.add_argument("--per-class", type=int, default=2, help="references per class")
    parser.add_argument("--check-every", type=int, default=None,
                        help="default: the config's generation.check_every")
    parser.add_argument("--null-percentile", type=float, default=99.0,
                        help="percentile of the references' Spearman null (config/lenient.yaml)")
    parser.add_argument("--feather-cap", type=int, default=2000,
                        help="iteration cap for the Feather recipe (its full budget is 24000)")
    parser.add_argument("--plenoptic-budget", type=int, default=None,
                        help="default: the config's generation.max_iterations")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="cnn_s0 only, 1 reference per class, Feather capped at 500, "
                        "plenoptic budget 200, training on 20000 images")
    args = parser.parse_args()
    if args.quick:
        args.per_class = 1
        args.feather_cap = min(args.feather_cap, 500)
        args.plenoptic_budget = args.plenoptic_budget or 200
        args.models = args.models.split(",")[0]

    configure(args.threads, args.seed)
    device = torch.device("cpu")
    config = yaml.safe_load(Path(args.config).read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the pipeline reads it
    generation = config["generation"]
    percentile = args.null_percentile
    default_budget = generation["max_iterations"]
    args.check_every = args.check_every or generation["check_every"]
    default_optimizer = config["optimizers"][generation["optimizers"][0]]
    default_init = config["inits"][generation["inits"][0]]
    feather_full = FEATHER_ITERATIONS_PER_ROUND * FEATHER_ROUNDS
    feather_budget = min(args.feather_cap, feather_full)
    plenoptic_budget = args.plenoptic_budget or default_budget
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"criterion: Spearman > {percentile:g}th percentile of the null, class matches, "
          f"checked every {args.check_every} iterations")
    print(f"default:   {default_optimizer} + init {default_init}, budget {default_budget}")
    print(f"feather:   SGD lr {FEATHER_STEP_SIZE} on the L2-normalised gradient, StepLR "
          f"{FEATHER_ITERATIONS_PER_ROUND} x gamma 0.5, init {FEATHER_NOISE_MEAN} + "
          f"N(0, {FEATHER_NOISE_SCALE:g}^2); budget capped at {feather_budget} of the recipe's "
          f"{feather_full} ({FEATHER_ROUNDS} rounds x {FEATHER_ITERATIONS_PER_ROUND})")
    print(f"plenoptic {plenoptic_version()}: Metamer defaults (Adam lr 0.01 amsgrad, mse + 0.1 range penalty, "
          f"uniform start, stop {PLENOPTIC_STOP_CRITERION:g}/{PLENOPTIC_STOP_ITERS_TO_CHECK}), "
          f"one image at a time, budget {plenoptic_budget}")

    test_set = load_dataset(config["data"], train=False)
    reference_indices = sample_balanced(test_set.labels, args.per_class, args.seed)
    reference_images = test_set.images[reference_indices]
    print(f"{len(reference_images)} references ({args.per_class} per class, seed {args.seed})",
          flush=True)

    results: dict[tuple[str, str], dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        zoo = load_models(args, config, device, Path(scratch))
    # training calls configure() too: same seeds and settings whether or not it ran
    configure(args.threads, args.seed)
    for name, model, layers in zoo:
        for layer in layers:
            values = activations.extract(model, reference_images, [layer], device,
                                         model_name=name)[layer]
            threshold = criteria.reference_null(values).threshold("spearman", percentile)
            synthesis = TimedSynthesis([Member(name, model, layer, threshold)],
                                       reference_images, device)
            print(f"\n== {name} / {layer}: {values.shape[1]} units, null threshold "
                  f"{threshold:.4f}", flush=True)
            outcomes = {}
            for method in methods:
                if method == "default":
                    outcomes[method] = run_batched(
                        synthesis, inits.initial_images(default_init["kind"], reference_images,
                                                        args.seed,
                                                        default_init.get("strength", 0.5)),
                        OptimizerSettings.from_config(default_optimizer),
                        default_budget, args.check_every)
                elif method == "feather":
                    outcomes[method] = run_batched(
                        synthesis, feather_noise(reference_images, args.seed), feather_settings(),
                        feather_budget, args.check_every)
                else:
                    outcomes[method] = run_plenoptic(synthesis, plenoptic_budget,
                                                     args.check_every, args.seed)
                baseline = outcomes.get("default", outcomes[methods[0]])
                print(describe(method, outcomes[method], baseline), flush=True)
            results[(name, layer)] = outcomes

    print("\n== summary (ratios: method / default; s/metamer = wall time / successes)")
    header = (f"{'model/layer':<22} {'method':<9} {'success':>7} {'med iters':>9} "
              f"{'iters ratio':>11} {'s/metamer':>9} {'time ratio':>10} {'latency s':>9}")
    print(header)
    print("-" * len(header))
    for (name, layer), outcomes in results.items():
        baseline = outcomes.get("default", outcomes[methods[0]])
        for method, outcome in outcomes.items():
            print(f"{name + '/' + layer:<22} {method:<9} "
                  f"{f'{outcome.success.sum()}/{len(outcome.success)}':>7} "
                  f"{outcome.median_iterations:>9.0f} "
                  f"{ratio(outcome.median_iterations, baseline.median_iterations):>11} "
                  f"{outcome.seconds_per_metamer:>9.3f} "
                  f"{ratio(outcome.seconds_per_metamer, baseline.seconds_per_metamer):>10} "
                  f"{outcome.median_latency:>9.2f}")


if __name__ == "__main__":
    main()
