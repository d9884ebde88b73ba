"""A learned start for metamer synthesis (issue 20, item 4), against the uniform-noise start.

The pipeline's decoder (:mod:`metamers.decoder`, init kind ``decoder``; Mahendran and Vedaldi
2015; Dosovitskiy and Brox 2016) is trained on the training split to map a generating layer's
activations back to the image; its output for a reference's activations is that reference's
starting image. The synthesis is then the pipeline's own
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

from metamers import activations, criteria, data, decoder, inits, layout, scores, stages, store
from metamers.config import SCHEMA_PATH, validate_config
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.records import SynthesisResult
from metamers.runtime import configure

DEVICE = torch.device("cpu")


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
    parser.add_argument("--train-images", type=int,
                        default=inits.DECODER_SETTINGS["train_images"])
    parser.add_argument("--epochs", type=int, default=inits.DECODER_SETTINGS["epochs"])
    parser.add_argument("--architecture", choices=["mlp", "conv"], default="mlp",
                        help="the decoder's (metamers.decoder): conv at feature-map layers")
    parser.add_argument("--optimizer", help="a name of the config's optimizers (default: the "
                        "first of generation.optimizers)")
    args = parser.parse_args()
    run = args.run_dir
    config = yaml.safe_load((run / "config/config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)
    configure(1, config["seed"])
    optimizer = args.optimizer or config["generation"]["optimizers"][0]
    rule = criteria.Criterion.from_config(config["criterion"])
    settings = inits.decoder_settings({"train_images": args.train_images, "epochs": args.epochs,
                                       "architecture": args.architecture})
    train = data.load_dataset({**config["data"], "root": str(run / config["data"]["root"])},
                              train=True)
    train_images = train.images[decoder.training_sample_indices(len(train.images),
                                                                args.train_images,
                                                                config["seed"])]
    reference_set = store.read_references(
        run / layout.REFERENCES.format(dataset=config["data"]["name"]))
    references = torch.from_numpy(reference_set["images"])
    print(f"{len(references)} references; {args.architecture} decoder: {args.train_images} "
          f"training images, {args.epochs} epochs; synthesis: {optimizer}, "
          f"budget {config['generation']['max_iterations']}")
    print("| layer | start | start dist. | pass | median it. | metamer dist. | loss at stop "
          "| wall s | pixel controls pass |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in args.layers.split(","):
        name, layer = label.split("/")
        model = stages.load_zoo_model(run / layout.MODEL_WEIGHTS.format(model=name),
                                      config["models"][name], DEVICE)
        null = store.read_null(run / layout.NULL.format(model=name, layer=layer))
        members = [Member(name, model, layer, criteria.Thresholds.of(rule, null))]
        started = time.perf_counter()
        layer_decoder = decoder.train_decoder(model, layer, train_images, settings,
                                              config["seed"], DEVICE, name)
        trained = time.perf_counter() - started
        learned = decoder.decoded_starts([layer_decoder], [model], [layer], [name], references,
                                         DEVICE)
        reference_activations = layer_activations(model, references, layer, name)
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
