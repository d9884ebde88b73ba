"""A learned start for metamer synthesis (issue 20, item 4), against the uniform-noise start.

A decoder (Mahendran and Vedaldi 2015; Dosovitskiy and Brox 2016) is trained on the training
split to map a generating layer's activations back to the image; its output for a reference's
activations is that reference's starting image. The synthesis is then the pipeline's own
(:class:`metamers.generate.MetamerSynthesis` with the config's first ``generation.optimizers``
entry or ``--optimizer``, ``fake_relu``, ``l1_weight``, ``max_iterations`` and ``check_every``), judged by the
config's criterion against a finished run's null file of that layer, on all of the run's
references. The decoder only ever sees training images; the references are the test split's.

A start near the reference in pixels can pass for being near. So besides success, each row
gives the median pixel distance of start and metamer to the reference, and the share of pixel
controls (the reference plus noise at each metamer's distance, ``scores.pixel_control``) that
pass the same criterion measures at the layer.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/learned_start.py --run-dir RUN \\
        --layers resnet_s0/layer2,resnet_s0/layer3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from metamers import activations, criteria, data, inits, scores, stages, store
from metamers.config import SCHEMA_PATH, validate_config
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.records import SynthesisResult
from metamers.runtime import configure

HIDDEN_UNITS = 1024
DEVICE = torch.device("cpu")


def train_decoder(layer_activations: torch.Tensor, images: torch.Tensor, epochs: int = 5,
                  batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> nn.Module:
    """An MLP from (N, D) activations (divided by their standard deviation) to (N, C, H, W)
    images in [0, 1] (sigmoid output), trained by Adam on the pixels' mean squared error."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pixels = images[0].numel()
    decoder = nn.Sequential(nn.Linear(layer_activations.shape[1], HIDDEN_UNITS), nn.ReLU(),
                            nn.Linear(HIDDEN_UNITS, pixels), nn.Sigmoid(),
                            nn.Unflatten(1, tuple(images.shape[1:])))
    scale = float(layer_activations.std())
    optimizer = torch.optim.Adam(decoder.parameters(), lr)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            loss = nn.functional.mse_loss(decoder(layer_activations[batch] / scale),
                                          images[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    decoder.eval()
    return nn.Sequential(_Scale(1 / scale), decoder)


class _Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.factor


def layer_activations(model: nn.Module, images: torch.Tensor, layer: str, name: str
                      ) -> torch.Tensor:
    return torch.from_numpy(activations.extract(model, images, [layer], DEVICE, name, 500)[layer])


def synthesize(members: list[Member], references: torch.Tensor, starts: torch.Tensor,
               config: dict, optimizer: str) -> SynthesisResult:
    """The pipeline's synthesis of ``references`` from ``starts`` with the config's
    ``optimizer`` and ``generation`` settings."""
    generation = config["generation"]
    synthesis = MetamerSynthesis(members, references, DEVICE, True, None,
                                 generation["fake_relu"], generation["l1_weight"])
    synthesis.setup(starts, OptimizerSettings.from_config(config["optimizers"][optimizer]))
    return synthesis.synthesize(generation["max_iterations"], generation["check_every"])


def row(label: str, start: str, starts: np.ndarray, result: SynthesisResult,
        references: np.ndarray,
        control_pass: float) -> str:
    iterations = result.iterations_to_success
    passed = iterations >= 0
    stop = result.loss[result.iterations_run, np.arange(len(passed))]  # the loss at its stop
    return (f"| {label} | {start} | {np.median(scores.pixel_distance(starts, references)):.2f} "
            f"| {passed.sum()}/{len(passed)} "
            f"| {np.median(iterations[passed]) if passed.any() else '-'} "
            f"| {np.median(scores.pixel_distance(result.metamers, references)):.2f} "
            f"| {np.median(stop):.4f} | {result.wall_time:.1f} | {control_pass:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--layers", required=True, help="comma-separated model/layer")
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--optimizer", help="a name of the config's optimizers (default: the "
                        "first of generation.optimizers)")
    args = parser.parse_args()
    run = args.run_dir
    config = yaml.safe_load((run / "config/config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)
    configure(1, config["seed"])
    optimizer = args.optimizer or config["generation"]["optimizers"][0]
    rule = criteria.Criterion.from_config(config["criterion"])
    train = data.load_dataset({**config["data"], "root": str(run / config["data"]["root"])},
                              train=True)
    train_images = train.images[:args.train_images]
    reference_set = store.read_references(
        run / "resources/references" / f"{config['data']['name']}.h5")
    references = torch.from_numpy(reference_set["images"])
    print(f"{len(references)} references; decoder: {args.train_images} training images, "
          f"{args.epochs} epochs; synthesis: {optimizer}, "
          f"budget {config['generation']['max_iterations']}")
    print("| layer | start | start dist. | pass | median it. | metamer dist. | loss at stop "
          "| wall s | pixel controls pass |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in args.layers.split(","):
        name, layer = label.split("/")
        model = stages.load_zoo_model(run / "resources/models" / f"{name}.pt",
                                      config["models"][name], DEVICE)
        null = store.read_null(run / "results/nulls" / name / f"{layer}.h5")
        members = [Member(name, model, layer, criteria.Thresholds.of(rule, null))]
        started = time.perf_counter()
        decoder = train_decoder(layer_activations(model, train_images, layer, name),
                                train_images, args.epochs, seed=config["seed"])
        trained = time.perf_counter() - started
        reference_activations = layer_activations(model, references, layer, name)
        with torch.no_grad():
            learned = decoder(reference_activations)
        uniform = inits.initial_images("uniform", references, config["seed"], 0.5)
        for start, starts in (("uniform", uniform), (f"decoder ({trained:.0f} s)", learned)):
            configure(1, config["seed"])
            result = synthesize(members, references, starts, config, optimizer)
            controls = scores.pixel_control(
                reference_set["images"],
                scores.pixel_distance(result.metamers, reference_set["images"]), config["seed"])
            control_pass = rule.check_measures(
                layer_activations(model, torch.from_numpy(controls), layer, name).numpy(),
                reference_activations.numpy(), null).passed.mean()
            print(row(label, start, starts.numpy(), result, reference_set["images"],
                      control_pass), flush=True)


if __name__ == "__main__":
    main()
