"""Peak memory of activation extraction: 10,000 metamers through the test config's largest
layer (and its other layers), as ``stages.metamer_activations`` extracts them.

The model is the test config's first model, randomly initialised (memory does not depend on
the weights); images are uniform noise. Peak resident memory is read from the kernel
(``ru_maxrss``) after the extraction, next to the memory held before it.

    python benchmarks/activation_memory.py --images 10000
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch
import yaml

from metamers import activations, zoo
from metamers.runtime import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "test.yaml")
    parser.add_argument("--images", type=int, default=10000)
    args = parser.parse_args()
    keep_freed_memory()  # as every job does (runtime.configure)
    config = yaml.safe_load(args.config.read_text())
    name, spec = next(iter(config["models"].items()))
    data_info = {"channels": 1, "image_size": 28, "class_names": [str(i) for i in range(10)],
                 "mean": [0.3], "std": [0.3]}
    model = zoo.build_local(spec, data_info).eval().requires_grad_(False)
    evaluation = config.get("evaluation", {})
    images = torch.rand(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    widths = {layer: activations.extract(model, images[:1], [layer], torch.device("cpu"),
                                         name)[layer].shape[1] for layer in spec["layers"]}
    before = peak_rss_mib()
    started = time.perf_counter()
    extracted = activations.extract_sets(
        model, {"metamer": images, "pixel_control": images, "initial": images}, spec["layers"],
        torch.device("cpu"), name, evaluation.get("batch_size", 256),
        evaluation.get("projection_dim", 4096))
    seconds = time.perf_counter() - started
    shapes = {layer: values.shape for layer, values in extracted["metamer"].items()}
    print(f"{name}: layers {widths} (raw widths), stored {shapes}")
    print(f"{args.images} metamers x 3 image sets in {seconds:.1f} s; peak RSS "
          f"{peak_rss_mib():.0f} MiB (held before extraction: {before:.0f} MiB; target < 2048)")


if __name__ == "__main__":
    main()
