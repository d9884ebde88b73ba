"""Metamer generation at equal quality: this project's default, its levers, Feather et al.'s
recipe and plenoptic, all judged by the strict criterion with a finished run's null files.

Every method runs on the same models, generating layers and references, and is judged by the
config's ``criterion`` (default: class match, and Spearman, Pearson and dB SNR at the generating
layer each above the maximum of the null over 100,000 pairs of training images;
docs/criterion.md) against the run's own null file of that (model, layer)
(``metamers.layout.NULL``), as ``metamers.stages.generate_metamers`` applies it.
Layers: every single-model generator layer of ``generation.generators`` (``--layers`` narrows).
References: the first ``--per-class`` of each class among the run's references.

Methods (``--methods``, comma-separated; ``name@budget`` overrides a budget)
------------------------------------------------------------------------------
default
    The pipeline's default synthesis, as the config sets it: ``generation``'s first optimiser
    (``adam_fine``) from its first init (``decoder``: the run's decoder file of the layer,
    ``results/decoders/{init}/{model}/{layer}.pt``), with its ``fake_relu`` and ``l1_weight``
    (:func:`method_plan`). Without a schedule, one run to a large budget
    (``--default-budget``) gives the success at every smaller budget as well:
    ``iterations_to_success <= B``.
<optimizer>[_<lever>...][:<init>][+fake_relu|+relu]
    ``<optimizer>`` is ``default`` or a name of the config's ``optimizers`` (e.g. ``ngd``,
    ``adam``), ``<init>`` a name of its ``inits`` (default: generation's first); ``+relu`` runs
    the generating layer's plain ReLU backward, ``+fake_relu`` Feather et al.'s. Levers, joined
    by ``_`` (e.g. ``ngd_lr0.1_fft:uniform``): ``lr<x>`` a step size of x; ``cosine`` the step
    decayed to 0 over the budget; ``step`` halved every budget/4 iterations; ``fft`` a Fourier
    preconditioning of the gradient (:func:`fourier_precondition`). Budget ``--lever-budget``
    unless ``@budget``. Scheduled ones depend on their budget, so they answer for it only.
feather
    Feather et al. 2023 (jenellefeather/model_metamers_pytorch): SGD lr 1 on the L2-normalised
    gradient, StepLR 3000 x 0.5 (8 rounds, 24,000 iterations), start 0.5 + N(0, 0.05^2)
    clamped, loss ||a - a_ref|| / ||a_ref|| (ours is its square: same normalised step),
    ``fake_relu`` at the generating layer; stopped when it passes, or at ``--feather-cap``
    (24,000 unless capped: the schedule does not depend on the cap, so a capped run is the full
    run cut short). Checked every ``--check-every`` iterations up to ``--feather-fine`` and
    every ``--feather-check-every`` after (:func:`run_feather`). ``feather+relu``: the same
    with the plain ReLU backward.
plenoptic
    ``plenoptic.Metamer`` defaults (MSE, range penalty 0.1, Adam lr 0.01 amsgrad, uniform
    start, stop 1e-4 over 50 iterations), one reference at a time, in chunks of
    ``--plenoptic-check-every`` iterations up to ``--plenoptic-budget``, clamped for checks.

Columns: success (strict), median iterations to success (over successes), ``x feather``: that
median over Feather's (his failures counted at 24,000, the issue's rule; ``>=`` where capped
below 24,000 with failures), seconds per successful metamer (the method's wall time on the
layer over its successes), median normalised squared loss at stop, the successes' median pixel
distance to their references (``dist``: equal quality, but how near) and the share of their
pixel controls that pass the criterion's measures too (``ctrl``: what nearness alone passes),
for methods without a schedule the smallest budget at which >= 95% pass (``B95``), and which
parts of the criterion the failures miss at their last check.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 19 python benchmarks/generation.py \\
        --run-dir /path/to/finished/run --per-class 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from metamers import activations, criteria, inits, layout, scores, stages, store
from metamers.config import SCHEMA_PATH, validate_config
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.runtime import configure

FEATHER_STEP_SIZE = 1.0
FEATHER_ITERATIONS_PER_ROUND = 3000
FEATHER_ROUNDS = 8
FEATHER_BUDGET = FEATHER_ITERATIONS_PER_ROUND * FEATHER_ROUNDS
FEATHER_NOISE_MEAN = 0.5
FEATHER_NOISE_SCALE = 1 / 20
PLENOPTIC_STOP_CRITERION = 1e-4
PLENOPTIC_STOP_ITERS_TO_CHECK = 50
TARGET_SUCCESS = 0.95
TARGET_RATIO = 1 / 20


def fourier_precondition(gradient: torch.Tensor, decay: float = 1.0) -> torch.Tensor:
    """``gradient`` (N, C, H, W) filtered by 1 / max(|f|, 1/max(H, W))^(2 decay) in the 2-D
    Fourier domain (frequencies in cycles per pixel).

    Gradient descent on z with images x = irfft2(s * z), s = 1/max(|f|, 1/size)^decay (lucent's
    ``param.image(fft=True)``, grey images: no colour decorrelation) moves x by
    irfft2(s^2 rfft2(g)): this, applied in pixel space. The filter is real, symmetric and
    positive, so the result is a descent direction; low frequencies are favoured, as in
    lucent. Its overall scale does not matter under gradient normalisation.
    """
    height, width = gradient.shape[-2:]
    frequency_y = torch.fft.fftfreq(height, device=gradient.device).view(-1, 1)
    frequency_x = torch.fft.rfftfreq(width, device=gradient.device).view(1, -1)
    radius = torch.sqrt(frequency_y**2 + frequency_x**2).clamp_min(1 / max(height, width))
    spectrum = torch.fft.rfft2(gradient.float()) * radius.pow(-2 * decay)
    return torch.fft.irfft2(spectrum, s=(height, width)).to(gradient.dtype)


def smallest_budget(iterations_to_success: np.ndarray, target: float = TARGET_SUCCESS
                    ) -> int | None:
    """The smallest budget B at which a share >= ``target`` of the metamers has
    ``0 <= iterations_to_success <= B`` (for a method without a schedule, whose trajectory does
    not depend on its budget); None if no budget the run reached gets there."""
    iterations = np.sort(iterations_to_success[iterations_to_success >= 0])
    needed = int(np.ceil(target * len(iterations_to_success) - 1e-9))
    if needed == 0:
        return 0
    return int(iterations[needed - 1]) if len(iterations) >= needed else None


def censored_median(iterations_to_success: np.ndarray, budget: int) -> float:
    """Median iterations over all metamers, those that never passed counted at ``budget``."""
    return float(np.median(np.where(iterations_to_success >= 0, iterations_to_success,
                                    budget)))


def loss_at_stop(loss: np.ndarray) -> np.ndarray:
    """(N,) each metamer's last finite loss in a (iterations + 1, N) trace (NaN once
    stopped)."""
    finite = np.isfinite(loss)
    last = finite.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
    values = loss[last, np.arange(loss.shape[1])]
    return np.where(finite.any(0), values, np.nan)


@dataclass
class Outcome:
    """One method at one (model, layer)."""

    iterations_to_success: np.ndarray  # (N,) -1 where it never passed
    final_loss: np.ndarray             # (N,) normalised squared loss at stop
    distance: np.ndarray               # (N,) pixel distance to the reference at stop
    wall_time: float
    budget: int
    extra: dict = field(default_factory=dict)

    @property
    def success(self) -> np.ndarray:
        return self.iterations_to_success >= 0

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())

    @property
    def median_iterations(self) -> float:
        passed = self.iterations_to_success[self.success]
        return float(np.median(passed)) if len(passed) else float("nan")

    @property
    def median_distance(self) -> float:
        """The successes' median pixel distance to their references (``scores.pixel_distance``):
        how near the reference a method's metamers are, at equal quality."""
        passed = self.distance[self.success]
        return float(np.median(passed)) if len(passed) else float("nan")

    @property
    def seconds_per_metamer(self) -> float:
        return self.wall_time / self.success.sum() if self.success.any() else float("nan")


class PreconditionedSynthesis(MetamerSynthesis):
    """``MetamerSynthesis`` whose gradient, once computed, goes through ``precondition``
    (before the gradient normalisation and the optimiser's step)."""

    precondition = None

    def _evaluate(self, keep_activations: bool):
        evaluation = super()._evaluate(keep_activations)
        if self.precondition is not None:
            gradient = self.parameter.grad
            gradient.copy_(self.precondition(gradient))
        return evaluation


class LayerOutput(nn.Module):
    """A model cut at one layer, returning a tensor (what plenoptic expects of a model)."""

    def __init__(self, extractor: nn.Module, layer: str):
        super().__init__()
        self.extractor = extractor
        self.layer = layer

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)[self.layer]


def feather_noise(reference_images: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(reference_images.shape, generator=generator)
    return (noise * FEATHER_NOISE_SCALE + FEATHER_NOISE_MEAN).clamp(0, 1)


@dataclass
class Plan:
    """How a batched method synthesises: its optimiser, its start (an entry of the config's
    ``inits`` by name, or ``"feather"``), ``fake_relu``, the loss's L1 weight and the Fourier
    preconditioning."""

    settings: OptimizerSettings
    init: str
    fake_relu: bool
    l1_weight: float
    fft: bool = False

    @property
    def unscheduled(self) -> bool:
        """Whether its trajectory is the same whatever its budget (no step schedule): its
        run to a budget answers every smaller budget too."""
        return self.settings.scheduler is None


FEATHER_SETTINGS = OptimizerSettings(
    name="SGD", kwargs={"lr": FEATHER_STEP_SIZE}, scheduler="StepLR",
    scheduler_kwargs={"step_size": FEATHER_ITERATIONS_PER_ROUND, "gamma": 0.5},
    gradient_normalization=True)


def _optimizer_and_levers(name: str, optimizers: dict, generation: dict
                          ) -> tuple[dict, list[str]]:
    """The optimiser entry a method name starts with (the longest name of ``optimizers``, or
    ``default``: generation's first) and the levers after it."""
    parts = name.split("_")
    for cut in range(len(parts), 0, -1):
        base = "_".join(parts[:cut])
        if base == "default":
            return optimizers[generation["optimizers"][0]], parts[cut:]
        if base in optimizers:
            return optimizers[base], parts[cut:]
    raise ValueError(f"unknown method {name!r}: give default, feather, plenoptic or a name of "
                     f"the config's optimizers ({', '.join(optimizers)}), levers after '_'")


def method_plan(method: str, budget: int, config: dict) -> Plan:
    """The plan of a batched method ``<optimizer>[_<lever>...][:<init>][+fake_relu|+relu]``.

    ``<optimizer>`` is ``default`` (generation's first optimiser) or a name of the config's
    ``optimizers``; ``<init>`` a name of its ``inits`` (default: generation's first). Like the
    pipeline, it runs with generation's ``fake_relu`` and ``l1_weight``; ``+fake_relu`` and
    ``+relu`` force the generating layer's backward. ``feather`` is Feather et al.'s recipe.
    """
    generation = config["generation"]
    method, _, flag = method.partition("+")
    if flag not in ("", "fake_relu", "relu"):
        raise ValueError(f"unknown flag {flag!r} in {method!r}: use +fake_relu or +relu")
    fake = {"fake_relu": True, "relu": False}.get(flag, generation["fake_relu"])
    if method == "feather":
        return Plan(FEATHER_SETTINGS, "feather", flag != "relu", 0.0)
    name, _, init_name = method.partition(":")
    init_name = init_name or generation["inits"][0]
    if init_name not in config["inits"]:
        raise ValueError(f"unknown init {init_name!r} in {method!r}: give a name of the "
                         f"config's inits ({', '.join(config['inits'])})")
    optimizer, levers = _optimizer_and_levers(name, config["optimizers"], generation)
    plan = Plan(OptimizerSettings.from_config(optimizer), init_name, fake,
                generation["l1_weight"])
    for lever in levers:  # e.g. ngd_lr0.1_fft_cosine
        if lever.startswith("lr"):
            plan.settings.kwargs = {**plan.settings.kwargs, "lr": float(lever[2:])}
        elif lever == "cosine":
            plan.settings.scheduler = "CosineAnnealingLR"
            plan.settings.scheduler_kwargs = {"T_max": budget}
        elif lever == "step":
            plan.settings.scheduler = "StepLR"
            plan.settings.scheduler_kwargs = {"step_size": max(1, budget // 4), "gamma": 0.5}
        elif lever == "fft":
            plan.fft = True
        else:
            raise ValueError(f"unknown lever {lever!r} in method {method!r}")
    return plan


def decoder_paths(run: Path, init: str, members: list[Member]) -> dict[str, Path]:
    """Each member's decoder file in a finished run (rule ``train_decoder``'s output)."""
    return {member.name: run / layout.DECODER.format(init=init, model=member.name,
                                                     layer=member.layer)
            for member in members}


def run_batched(members: list[Member], references: dict, method: str, budget: int,
                check_every: int, config: dict, run: Path | None, seed: int) -> Outcome:
    """One batched method on ``references`` (the reference file's ``images`` and ``labels``
    for the chosen references), its start made as the pipeline makes it (a learned one from
    the decoder files of ``run``); ``B95`` where it has no schedule."""
    plan = method_plan(method, budget, config)
    configure(None, seed)
    images = torch.from_numpy(references["images"])
    synthesis = PreconditionedSynthesis(members, images, torch.device("cpu"),
                                        channels_last=True, fake_relu=plan.fake_relu,
                                        l1_weight=plan.l1_weight)
    if plan.fft:
        synthesis.precondition = fourier_precondition
    if plan.init == "feather":
        starts = feather_noise(images, seed)
    else:
        init = config["inits"][plan.init]
        paths = (decoder_paths(run, plan.init, members)
                 if init["kind"] in inits.LEARNED_KINDS else None)
        starts = stages.starting_images(init, members, paths, references, seed,
                                        torch.device("cpu"))
    synthesis.setup(starts, plan.settings)
    result = synthesis.synthesize(budget, check_every)
    outcome = Outcome(result.iterations_to_success, loss_at_stop(result.loss),
                      scores.pixel_distance(result.metamers, references["images"]),
                      result.wall_time, budget, {"fails": failing_parts(result)})
    if plan.unscheduled:
        outcome.extra["B95"] = smallest_budget(outcome.iterations_to_success)
    return outcome


def run_feather(members: list[Member], references: dict, method: str, budget: int,
                check_every: int, sparse_check_every: int, fine: int, config: dict,
                seed: int) -> Outcome:
    """Feather et al.'s recipe checked every ``check_every`` iterations up to ``fine``, then
    every ``sparse_check_every`` up to ``budget``. Two runs from the same start: its schedule
    does not depend on the budget, so the first is the second cut short, and a metamer's first
    pass is the fine run's where it passed there (checking every 5 to 24,000 would cost more
    than the steps at wide layers)."""
    coarse = run_batched(members, references, method, budget, sparse_check_every, config,
                         None, seed)
    if fine <= 0:
        return coarse
    early = run_batched(members, references, method, min(fine, budget), check_every, config,
                        None, seed)
    iterations = np.where(early.success, early.iterations_to_success,
                          coarse.iterations_to_success)
    final_loss = np.where(early.success, early.final_loss, coarse.final_loss)
    distance = np.where(early.success, early.distance, coarse.distance)
    fails = coarse.extra["fails"]  # its metamers are not monotone: one may pass at 75, not 100
    return Outcome(iterations, final_loss, distance, coarse.wall_time, budget,
                   {"fails": f"{fails} (at the sparse checks)" if fails else ""})


def run_plenoptic(members: list[Member], references: dict, budget: int,
                  check_every: int, seed: int) -> Outcome:
    """plenoptic's Metamer, defaults throughout, one reference at a time, checked in chunks."""
    import plenoptic as po

    references = torch.from_numpy(references["images"])
    synthesis = MetamerSynthesis(members, references, torch.device("cpu"))
    model = LayerOutput(synthesis.objective.extractors[0], members[0].layer).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    started = time.perf_counter()
    iterations_to_success, final_loss, metamers = [], [], []
    for index in range(len(references)):
        torch.manual_seed(seed + index)  # plenoptic's default start is torch.rand_like
        metamer = po.Metamer(references[index:index + 1], model)
        metamer.setup()
        iterations, converged, passed = 0, False, -1
        while True:
            images = metamer.metamer.detach().clamp(0, 1)
            if synthesis.check(images, torch.tensor([index]))[2][0]:
                passed = iterations
                break
            if iterations >= budget or converged:
                break
            with contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                metamer.synthesize(min(check_every, budget - iterations),
                                   stop_criterion=PLENOPTIC_STOP_CRITERION,
                                   stop_iters_to_check=PLENOPTIC_STOP_ITERS_TO_CHECK)
            iterations = len(metamer.losses) - 1
            converged = any("converged" in str(warning.message) for warning in caught)
        metamers.append(metamer.metamer.detach().clamp(0, 1))
        with torch.no_grad():
            final_loss.append(float(synthesis.objective.loss_per_image(
                metamers[-1], torch.tensor([index]))[0]))
        iterations_to_success.append(passed)
    return Outcome(np.array(iterations_to_success), np.array(final_loss),
                   scores.pixel_distance(torch.cat(metamers).numpy(), references.numpy()),
                   time.perf_counter() - started, budget)


def pixel_control_share(member: Member, reference_images: np.ndarray, outcome: Outcome,
                        rule: criteria.Criterion, null: criteria.NullDistribution,
                        seed: int) -> float:
    """The share of the successes' pixel controls (each reference plus Gaussian noise at its
    metamer's distance, ``scores.pixel_control``) that pass the criterion's measures at the
    generating layer: how many would pass for nearness alone (NaN without successes)."""
    if not outcome.success.any():
        return float("nan")
    passed_references = reference_images[outcome.success]
    controls = scores.pixel_control(passed_references, outcome.distance[outcome.success], seed)
    layer_values = [activations.extract(member.model, torch.from_numpy(images), [member.layer],
                                        torch.device("cpu"), member.name)[member.layer]
                    for images in (controls, passed_references)]
    return float(rule.check_measures(*layer_values, null).passed.mean())


def failing_parts(result) -> str:
    """Which parts of the criterion the metamers that failed miss at their last check: counts
    per measure below its threshold and of class mismatches, e.g. ``spearman 8, class 1``."""
    failed = ~result.success
    counts = {measure: int((failed & ~(np.nan_to_num(getattr(result, f"final_{measure}")[:, 0],
                                                     nan=-np.inf) > threshold)).sum())
              for measure, threshold in result.thresholds[0].items()}
    counts["class"] = int((failed & (result.predicted_class[:, 0]
                                     != result.reference_class[:, 0])).sum())
    return ", ".join(f"{part} {count}" for part, count in counts.items() if count)


def parse_methods(text: str, budgets: dict[str, int]) -> list[tuple[str, int]]:
    """``name[@budget]`` entries -> (name, budget), the budget defaulting by family."""
    planned = []
    for entry in text.split(","):
        name, _, budget = entry.partition("@")
        family = name.split("+")[0].split(":")[0]
        default = budgets.get(family, budgets["lever"])
        planned.append((name, int(budget) if budget else default))
    return planned


def describe(layer: str, label: str, outcome: Outcome, feather: float | None,
             feather_capped: bool) -> str:
    ratio = "n/a"
    if feather and outcome.success.any():
        ratio = (">=" if feather_capped else "") + f"{outcome.median_iterations / feather:.3f}"
    budget95 = outcome.extra.get("B95", "")
    return (f"{layer:<40} {label:<30} {outcome.success.sum():>3}/{len(outcome.success):<3} "
            f"{100 * outcome.success_rate:>5.0f}% {outcome.median_iterations:>8g} "
            f"{ratio:>9} {outcome.seconds_per_metamer:>9.2f} "
            f"{np.nanmedian(outcome.final_loss):>9.4f} {outcome.median_distance:>6.2f} "
            f"{outcome.extra.get('controls', float('nan')):>5.0%} "
            f"{budget95!s:>6} {outcome.wall_time:>8.1f}  "
            f"{outcome.extra.get('fails', '')}")


HEADER = (f"{'model/layer':<40} {'method@budget':<30} {'pass':>7} {'rate':>6} {'med it':>8} "
          f"{'x feather':>9} {'s/metamer':>9} {'loss stop':>9} {'dist':>6} {'ctrl':>5} {'B95':>6} "
          f"{'wall s':>8}  "
          "failed on")


def summarise_run(run: Path, generation: dict) -> None:
    """The run's own metamers (every reference, its budget), per generator layer and
    optimiser: strict success, median iterations to success, and the budget at which >= 95%
    passed (from ``iterations_to_success``: valid for optimisers without a schedule)."""
    print(f"{'generator/layer':<40} {'optimizer':<10} {'pass':>7} {'med it':>7} {'B95':>6}")
    for name, generator_layers in generation["generators"].items():
        for layer in generator_layers:
            for optimizer in generation["optimizers"]:
                for init in generation["inits"]:
                    path = run / layout.METAMERS.format(generator=name, layer=layer,
                                                        optimizer=optimizer, init=init)
                    if not path.exists():
                        continue
                    content = store.read_metamers(path)
                    iterations = content["iterations_to_success"]
                    passed = iterations >= 0
                    median = np.median(iterations[passed]) if passed.any() else float("nan")
                    print(f"{name + '/' + layer:<40} {optimizer:<10} "
                          f"{f'{passed.sum()}/{len(passed)}':>7} {median:>7g} "
                          f"{smallest_budget(iterations)!s:>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path,
                        help="a finished pipeline run: its models, references and null files")
    parser.add_argument("--config", default=None,
                        help="default: the run's config/config.yaml")
    parser.add_argument("--per-class", type=int, default=1, help="references per class")
    parser.add_argument("--layers", default=None,
                        help="comma-separated model/layer to run (default: every single-model "
                        "generator layer of generation.generators)")
    parser.add_argument("--methods", default="default,default+relu,feather,plenoptic",
                        help="comma-separated name[@budget] (see the module's docstring)")
    parser.add_argument("--default-budget", type=int, default=5000)
    parser.add_argument("--lever-budget", type=int, default=2000)
    parser.add_argument("--feather-cap", type=int, default=FEATHER_BUDGET)
    parser.add_argument("--feather-check-every", type=int, default=50)
    parser.add_argument("--feather-fine", type=int, default=500,
                        help="Feather's first iterations checked every --check-every")
    parser.add_argument("--plenoptic-budget", type=int, default=2000)
    parser.add_argument("--plenoptic-check-every", type=int, default=50)
    parser.add_argument("--check-every", type=int, default=None,
                        help="default: the config's generation.check_every")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-summary", action="store_true",
                        help="only summarise the run's own metamer files, synthesise nothing")
    args = parser.parse_args()

    run = args.run_dir
    config = yaml.safe_load(Path(args.config or run / "config/config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the pipeline reads it
    generation = config["generation"]
    check_every = args.check_every or generation["check_every"]
    if args.run_summary:
        summarise_run(run, generation)
        return
    rule = criteria.Criterion.from_config(config["criterion"])
    budgets = {"default": args.default_budget, "feather": min(args.feather_cap, FEATHER_BUDGET),
               "plenoptic": args.plenoptic_budget, "lever": args.lever_budget}
    planned = parse_methods(args.methods, budgets)
    configure(args.threads, args.seed)

    reference_set = store.read_references(
        run / layout.REFERENCES.format(dataset=config["data"]["name"]))
    labels = reference_set["labels"]
    chosen = np.concatenate([np.flatnonzero(labels == label)[:args.per_class]
                             for label in np.unique(labels)])
    references = {"images": reference_set["images"][chosen],
                  "labels": reference_set["labels"][chosen]}
    layers = [(name, layer) for name, generator_layers in generation["generators"].items()
              if name in config["models"] for layer in generator_layers]
    if args.layers:
        wanted = args.layers.split(",")
        layers = [(name, layer) for name, layer in layers if f"{name}/{layer}" in wanted]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); criterion "
          f"{rule}; {len(chosen)} references ({args.per_class} per class); "
          f"checks every {check_every} (feather and plenoptic every "
          f"{args.feather_check_every}/{args.plenoptic_check_every})", flush=True)
    print(HEADER, flush=True)

    for name, layer in layers:
        spec = config["models"][name]
        model = stages.load_zoo_model(run / layout.MODEL_WEIGHTS.format(model=name), spec,
                                      torch.device("cpu"))
        null = store.read_null(run / layout.NULL.format(model=name, layer=layer))
        thresholds = criteria.Thresholds.of(rule, null)
        members = [Member(name, model, layer, thresholds)]
        label = f"{name}/{layer}"
        print(f"# {label}: thresholds {({k: round(v, 4) for k, v in thresholds.measures.items()})}"
              f"{' uninformative ' + str(rule.uninformative(null)) if rule.uninformative(null) else ''}",
              flush=True)
        feather, feather_capped = None, False
        for method, budget in sorted(planned, key=lambda entry: entry[0] != "feather"):
            if method == "plenoptic":
                outcome = run_plenoptic(members, references, budget,
                                        args.plenoptic_check_every, args.seed)
            elif method.split("+")[0] == "feather":
                outcome = run_feather(members, references, method, budget, check_every,
                                      args.feather_check_every, args.feather_fine, config,
                                      args.seed)
            else:
                outcome = run_batched(members, references, method, budget, check_every,
                                      config, run, args.seed)
            outcome.extra["controls"] = pixel_control_share(
                members[0], references["images"], outcome, rule, null, args.seed)
            if method == "feather":
                feather = censored_median(outcome.iterations_to_success, FEATHER_BUDGET)
                feather_capped = budget < FEATHER_BUDGET and not outcome.success.all()
            print(describe(label, f"{method}@{budget}", outcome, feather, feather_capped),
                  flush=True)
            print(f"  {method} iterations to success: {outcome.iterations_to_success.tolist()}",
                  flush=True)


if __name__ == "__main__":
    main()
