"""Success under the strict criterion with and without the loss's L1 term (issue 20).

On a finished run of the default config (``--run-dir``), regenerates every single-model
condition of its generators with the library (``stages.generate_metamers``: the run's models,
null files, references, optimisers, init and its decoder files, and budget) at each ``--weights`` value of
``generation.l1_weight``, and prints per layer and optimiser: metamers passing, median
iterations to success and wall time. Metamer files go to ``--out`` (a file already there is
read, not made again), so a rerun only prints.

    PYTHONPATH=src python benchmarks/l1_weight.py --run-dir RUN --out /tmp/l1 --weights 0 0.1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from metamers import inits, layout, stages, store
from metamers.config import SCHEMA_PATH, validate_config
from metamers.zoo import registry


def metamer_file(run: Path, out: Path, config: dict, generator: str, layer: str,
                 optimizer: str, weight: float) -> Path:
    """The metamers of one condition at ``weight``, made unless ``out`` already holds them."""
    path = out / f"{generator}_{layer}_{optimizer}_l1_{weight}.h5"
    if path.exists():
        return path
    generation, init = config["generation"], config["generation"]["inits"][0]
    decoder_paths = ({generator: run / layout.DECODER.format(init=init, model=generator,
                                                             layer=layer)}
                     if config["inits"][init]["kind"] in inits.LEARNED_KINDS else None)
    stages.generate_metamers(
        {generator: run / layout.MODEL_WEIGHTS.format(model=generator)},
        {generator: registry.build_spec(config["models"][generator])},
        {generator: layer}, {generator: run / layout.NULL.format(model=generator, layer=layer)},
        run / layout.REFERENCES.format(dataset=config["data"]["name"]),
        config["optimizers"][optimizer],
        config["inits"][init],
        {"max_iterations": generation["max_iterations"], "check_every": generation["check_every"],
         "stop_on_success": True, "checkpoint_every": 0},
        config["criterion"], config["seed"], path, device="cpu", threads=1,
        fake_relu=generation["fake_relu"], l1_weight=weight, decoder_paths=decoder_paths)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1])
    args = parser.parse_args()
    config = yaml.safe_load((args.run_dir / "config" / "config.yaml").read_text())
    validate_config(config, SCHEMA_PATH)
    args.out.mkdir(parents=True, exist_ok=True)
    print("| layer | optimizer | " + " | ".join(f"w={w}" for w in args.weights) + " |")
    print("| --- | --- |" + " --- |" * len(args.weights))
    for generator, layers in config["generation"]["generators"].items():
        if generator not in config["models"]:  # a set of models: not measured here
            continue
        for layer in layers:
            for optimizer in config["generation"]["optimizers"]:
                cells = []
                for weight in args.weights:
                    content = store.read_metamers(metamer_file(
                        args.run_dir, args.out, config, generator, layer, optimizer, weight))
                    passed = content["success"].astype(bool)
                    median = (np.median(content["iterations_to_success"][passed])
                              if passed.any() else float("nan"))
                    cells.append(f"{passed.sum()}/{len(passed)}, median {median:g}, "
                                 f"{content['attrs']['wall_time_s']:.1f} s")
                print(f"| {generator}/{layer} | {optimizer} | " + " | ".join(cells) + " |",
                      flush=True)


if __name__ == "__main__":
    main()
