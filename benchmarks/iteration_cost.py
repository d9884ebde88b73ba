"""Cost of one generation iteration against its floor, and batched throughput.

1. Per (model, generating layer): seconds per iteration of the pipeline's synthesis
   (:class:`metamers.generate.MetamerSynthesis`, the config's first optimiser) divided by the
   seconds of a bare forward + backward of the same model truncated at that layer
   (``create_feature_extractor``) on the same batch, the backward started from a fixed gradient
   at the layer (no loss), in the model's own memory layout. The pipeline runs conv nets in
   channels-last layout (``generation.channels_last``), so a second ratio divides by the same
   floor in that layout: the pipeline's overhead alone. The column ``calls`` times the step's tensor
   calls written plainly in a bare loop (:func:`calls_iteration`), the work an eager step does
   beyond the floor without the pipeline's code around it. Synthesis time per iteration is the
   difference of a long and a short run divided by the difference of their iterations, so set-up
   and the checks at both ends cancel. Three synthesis timings: the step alone (no check between),
   and with the success check every ``check_every`` iterations, which correlates the step's
   activations with the reference's (a sort per metamer) and classifies, running the model on
   from the layer, only where the correlation passes: ``far`` with threshold 2 (no correlation
   passes, the least a check costs) and ``near`` with threshold -2 (every metamer correlates and is
   classified, the most a check costs). No metamer stops. Each timing runs at least
   ``--sample-seconds`` (at least 50 iterations: small layers run more, so that a timing is not
   a few milliseconds of a noisy machine). Medians of ``--repeats``, each timing all six in
   turn. Target: <= 1.15.
2. Batched throughput, metamer-iterations per second, over batch sizes 1..256 for one model and
   layer (``--throughput``); the ratio of the best batch size to batch size 1.

On a GPU (``--device``, default CUDA when present) every timing synchronises the device before
it reads the clock. ``--clock cpu`` reads the process's CPU time instead of the wall clock: on
a shared CPU machine it counts this process's work only (with ``--threads 1``).

    python benchmarks/iteration_cost.py --models-dir resources/models    # after a pipeline run
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torchvision.models.feature_extraction import create_feature_extractor
from zoo_generators import generator_pairs

from metamers import inits, stages, store
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings, build_optimizer, normalize_per_image_
from metamers.runtime import configure, pick_device

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter  # what every timing reads (``--clock``)


def synthesis_seconds(synthesis: MetamerSynthesis, starts: torch.Tensor,
                      settings: OptimizerSettings, iterations: int, check_every: int) -> float:
    started = clock()
    synthesis.setup(starts, settings)
    synthesis.synthesize(iterations, check_every, stop_on_success=False)
    return clock() - started


def pipeline_iteration(model, layer: str, references: torch.Tensor,
                       settings: OptimizerSettings, channels_last: bool, check_every: int,
                       short: int, long: int, threshold: float = 2.0) -> float:
    """Seconds per iteration of the pipeline's synthesis (nobody stops; its results end on the
    CPU, so the device is synchronised)."""
    device = next(model.parameters()).device
    synthesis = MetamerSynthesis([Member("model", model, layer, threshold)], references, device,
                                 channels_last)
    starts = inits.initial_images("uniform", references, seed=0)
    synthesis_seconds(synthesis, starts, settings, 2, check_every)  # warm-up
    return ((synthesis_seconds(synthesis, starts, settings, long, check_every)
             - synthesis_seconds(synthesis, starts, settings, short, check_every))
            / (long - short))


def bare_iteration(model, layer: str, references: torch.Tensor, iterations: int,
                   channels_last: bool = False) -> float:
    """Seconds of forward to ``layer`` + backward from a fixed gradient there, nothing else
    (the floor: no loss, no optimiser step), in channels-last layout if ``channels_last``."""
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    truncated = create_feature_extractor(model, return_nodes={layer: layer})
    with torch.no_grad():
        upstream = torch.randn_like(truncated(references)[layer])
    images = inits.initial_images("uniform", references, seed=0).to(references.device)
    images.requires_grad_(True)
    truncated(images)[layer].backward(upstream)  # warm-up (kernel choice on a GPU)
    synchronize(images.device)
    started = clock()
    for _ in range(iterations):
        truncated(images)[layer].backward(upstream)
    synchronize(images.device)
    return (clock() - started) / iterations


def calls_iteration(model, layer: str, references: torch.Tensor, settings: OptimizerSettings,
                    channels_last: bool, iterations: int) -> float:
    """Seconds of the tensor calls of a step, one after another in a bare loop, without the
    pipeline's Python around them: forward to ``layer``, a - a_ref and its norm per image, the
    backward from a - a_ref, the gradient's normalisation (if ``settings`` has it), the
    optimiser's step and the clamp (constraint ``clamp``), in the pipeline's layout. Between the floor and the step: what an eager step
    cannot leave out, apart from the loss's few host operations."""
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    truncated = create_feature_extractor(model, return_nodes={layer: layer})
    with torch.no_grad():
        target = truncated(references)[layer]
    layer_dims = tuple(range(1, target.ndim))
    parameter = inits.initial_images("uniform", references, seed=0).to(references.device)
    parameter.requires_grad_(True)
    optimizer = build_optimizer(settings, parameter)[0]

    def iterate() -> None:
        parameter.grad = None
        images = parameter.sigmoid() if settings.constraint == "sigmoid" else parameter
        activation = truncated(images)[layer]
        difference = activation.detach() - target
        torch.linalg.vector_norm(difference, dim=layer_dims)
        activation.backward(difference)
        if settings.gradient_normalization:
            normalize_per_image_(parameter.grad)
        optimizer.step()
        if settings.constraint == "clamp":
            parameter.detach().clamp_(0, 1)

    iterate()  # the first step makes the optimiser's state
    synchronize(references.device)
    started = clock()
    for _ in range(iterations):
        iterate()
    synchronize(references.device)
    return (clock() - started) / iterations


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, layer: str, references: torch.Tensor, settings: OptimizerSettings,
            channels_last: bool, check_every: int, iterations: int, repeats: int) -> np.ndarray:
    """Medians of ``repeats`` of the six timings (s per iteration): bare, bare in the
    pipeline's layout, the step's calls, the step alone, checks far, checks near."""
    # one repeat measures all six in turn, so drifts in machine load hit each alike
    return np.median([
        (bare_iteration(model, layer, references, iterations),
         bare_iteration(model, layer, references, iterations, channels_last),
         calls_iteration(model, layer, references, settings, channels_last, iterations),
         pipeline_iteration(model, layer, references, settings, channels_last, 1000, 10,
                            10 + iterations),
         pipeline_iteration(model, layer, references, settings, channels_last,
                            check_every, 10, 10 + iterations),
         pipeline_iteration(model, layer, references, settings, channels_last,
                            check_every, 10, 10 + iterations, threshold=-2.0))
        for _ in range(repeats)], axis=0)


def cost_table(models: dict, pairs: list[tuple[str, str]], references: torch.Tensor,
               settings: OptimizerSettings, channels_last: bool, check_every: int,
               args: argparse.Namespace) -> None:
    """Print the timings of each (model, layer) of ``pairs`` and the ratios' summary."""
    print(f"{'model/layer':<45} {'bare ms':>8} {'own ms':>8} {'calls ms':>8} {'ratio':>6} "
          f"{'step ms':>8} {'ratio':>6} "
          f"{'own':>5} {'far ms':>8} {'ratio':>6} {'near ms':>8} {'ratio':>6} {'iters':>6}")
    ratios = {label: [] for label in ("calls", "step", "own", "far", "near")}
    for name, layer in pairs:
        model = models[name]
        iterations = max(50, math.ceil(args.sample_seconds
                                       / bare_iteration(model, layer, references, 10)))
        bare, own, calls, step, far, near = measure(model, layer, references, settings,
                                                    channels_last, check_every, iterations,
                                                    args.repeats)
        for label, value in [("calls", calls / bare), ("step", step / bare),
                             ("own", step / own), ("far", far / bare), ("near", near / bare)]:
            ratios[label].append(value)
        print(f"{name + '/' + layer:<45} {1000 * bare:>8.2f} {1000 * own:>8.2f} "
              f"{1000 * calls:>8.2f} {calls / bare:>6.2f} "
              f"{1000 * step:>8.2f} {step / bare:>6.2f} {step / own:>5.2f} "
              f"{1000 * far:>8.2f} {far / bare:>6.2f} {1000 * near:>8.2f} "
              f"{near / bare:>6.2f} {iterations:>6}", flush=True)
    for label, key in [("the step's tensor calls in a bare loop", "calls"),
                       ("step alone", "step"),
                       ("step alone, to the floor in the pipeline's layout", "own"),
                       (f"checks every {check_every}, far", "far"),
                       (f"checks every {check_every}, near", "near")]:
        values = np.array(ratios[key])
        print(f"ratio to bare, {label}: median {np.median(values):.2f}, max "
              f"{np.max(values):.2f}, <= 1.15 on {np.sum(values <= 1.15)} of {len(values)}")


def throughput_curve(model, layer: str, references: torch.Tensor,
                     settings: OptimizerSettings, channels_last: bool, check_every: int,
                     batch_sizes: list[int], repeats: int) -> None:
    """Print metamer-iterations per second at each batch size."""
    throughput = {}
    for batch in batch_sizes:
        batch_references = references[torch.arange(batch) % len(references)]
        seconds = np.median([pipeline_iteration(model, layer, batch_references, settings,
                                                channels_last, check_every, 5, 25)
                             for _ in range(repeats)])
        throughput[batch] = batch / seconds
        print(f"batch {batch:>4}: {throughput[batch]:>9.1f}  "
              f"({throughput[batch] / throughput[batch_sizes[0]]:.1f}x batch "
              f"{batch_sizes[0]})", flush=True)
    best = max(throughput, key=throughput.get)
    print(f"best batch {best}: {throughput[best] / throughput[batch_sizes[0]]:.1f}x the "
          f"throughput at batch {batch_sizes[0]}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--models-dir", default="resources/models")
    parser.add_argument("--references", default="resources/references/fashion_mnist.h5")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--generators", default=None,
                        help="model:layer,... (default: every zoo generator of the config)")
    parser.add_argument("--throughput", default="resnet_s0:layer3",
                        help="model:layer of the throughput curve ('' for none)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256")
    parser.add_argument("--sample-seconds", type=float, default=0.15,
                        help="least duration of one timing of the floor")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: the process's CPU time, steadier than wall time on a "
                             "shared machine (CPU runs only)")
    return parser.parse_args()


def main() -> None:
    global clock
    args = arguments()
    configure(args.threads, 0)
    clock = CLOCKS[args.clock]
    device = pick_device(args.device)
    logging.getLogger("metamers.generate").setLevel(logging.WARNING)  # no progress lines
    config = yaml.safe_load(Path(args.config).read_text())
    generation = config["generation"]
    settings = OptimizerSettings.from_config(config["optimizers"][generation["optimizers"][0]])
    check_every = generation["check_every"]
    channels_last = generation.get("channels_last", True)
    references = torch.from_numpy(store.read_references(args.references)["images"]).to(device)
    print(f"{device}, batch {len(references)}, optimizer {generation['optimizers'][0]}, "
          f"check every {check_every}, channels-last {channels_last}, {args.threads} threads, "
          f"{args.clock} clock, medians of {args.repeats}; 'calls': the step's tensor calls "
          "in a bare loop; 'own': the step over the floor in the pipeline's layout")
    pairs = generator_pairs(config, args.generators)
    throughput = args.throughput.split(":", 1) if args.throughput else None
    models = {name: stages.load_zoo_model(Path(args.models_dir) / f"{name}.pt",
                                          config["models"][name], device)
              for name in {name for name, _ in pairs} | set(throughput[:1] or [])}
    cost_table(models, pairs, references, settings, channels_last, check_every, args)
    if throughput:
        name, layer = throughput
        print(f"\nthroughput, {name}/{layer}: metamer-iterations per second")
        throughput_curve(models[name], layer, references, settings, channels_last,
                         check_every, [int(size) for size in args.batch_sizes.split(",")],
                         args.repeats)


if __name__ == "__main__":
    main()
