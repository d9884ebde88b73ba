"""How many training pairs the criterion's null needs: its maximum of each measure at 10k, 100k
and 1M pairs, per default generating layer.

The null is built as the pipeline builds it (``criterion.null`` with ``source: train``): blocks
of distinct Fashion-MNIST training images (``data.distinct_sample``), the model's own training
augmentation, every pair within a block (``stats.pair_measures``). One pass over the blocks of
the largest count gives the maxima at each smaller count (its first blocks); the time is the
pass's time until that count. For each measure's maximum at the largest count it also prints the
pixel-space L2 distance between that pair's two images (small: near-duplicate images).

    PYTHONPATH=src nice python benchmarks/null_stability.py \\
        --models /work/baseline/resources/models [--pairs 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from metamers import activations, criteria, stages, stats, store, train
from metamers.config import SCHEMA_PATH, member_layers, validate_config
from metamers.data import distinct_sample

REPO = Path(__file__).resolve().parents[1]


def generating_layers(config: dict) -> list[tuple[str, str]]:
    """(model, layer) of every generating layer of the config, generator sets' members included."""
    found = []
    for generator, layers in config["generation"]["generators"].items():
        for layer in layers:
            found.extend(member_layers(config["generator_sets"], generator, layer).items())
    return list(dict.fromkeys(found))


def block_maxima(values: dict[str, np.ndarray]) -> dict[str, tuple[float, int]]:
    return {measure: (float(pair_values.max()), int(pair_values.argmax()))
            for measure, pair_values in values.items()}


def stability(model: torch.nn.Module, layer: str, images: torch.Tensor, block: int,
              counts: list[int]) -> tuple[list[dict], dict]:
    """Running maxima at each pair count (with seconds), and per measure the pixel distance of
    the images of its largest pair."""
    extractor = activations.feature_extractor(model, [layer])
    rows, best, best_pair = [], {}, {}
    started, collected = time.perf_counter(), 0
    upper = np.triu_indices(block, k=1)
    for start in range(0, len(images), block):
        part = images[start:start + block]
        with torch.no_grad():
            values = activations.flat(extractor(part)[layer]).float().numpy()
        measured = stats.pair_measures(values, criteria.MEASURES)
        # the block's pairs up to each pair count that ends in it, then up to its end
        ends = [count - collected for count in counts[len(rows):]
                if count - collected <= len(upper[0])]
        for end in sorted({*ends, min(len(upper[0]), counts[-1] - collected)}):
            for measure, (maximum, index) in block_maxima(
                    {m: v[:end] for m, v in measured.items()}).items():
                if maximum > best.get(measure, -np.inf):
                    best[measure] = maximum
                    best_pair[measure] = (part[upper[0][index]], part[upper[1][index]])
            if end in ends:
                rows.append({"pairs": collected + end, **best,
                             "seconds": time.perf_counter() - started})
        collected += min(len(upper[0]), counts[-1] - collected)
        if collected >= counts[-1]:
            break
    distances = {measure: float((first - second).norm())
                 for measure, (first, second) in best_pair.items()}
    return rows, distances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--models", type=Path, default=REPO / "resources" / "models")
    parser.add_argument("--pairs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--block-images", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="models to measure (all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.config.read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the pipeline reads it
    data = config["data"]
    counts = sorted(args.pairs)
    print("| model | layer | width | block | pairs | spearman max | pearson max | snr_db max "
          "| seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for name, layer in generating_layers(config):
        if args.only and name not in args.only:
            continue
        spec = config["models"][name]
        model = stages.load_zoo_model(args.models / f"{name}.pt", spec, torch.device("cpu"))
        shape = store.read_json(args.models / f"{name}.json")["input_shape"]
        probe = activations.extract(model, torch.zeros(1, *shape), [layer],
                                    torch.device("cpu"))[layer]
        block = criteria.block_images(probe.shape[1], args.block_images)
        images, dropped = distinct_sample(data, True,
                                          criteria.images_for_pairs(counts[-1], block),
                                          args.seed)
        recipe = config["training"][spec["training"]]
        torch.manual_seed(args.seed)
        if recipe.get("style") == "augmented":
            images = train.augment(images, recipe["crop_padding"], recipe["erasing_probability"])
        rows, distances = stability(model, layer, images, block, counts)
        for row in rows:
            print(f"| {name} | {layer} | {probe.shape[1]} | {block} | {row['pairs']:,} | "
                  f"{row['spearman']:.5f} | {row['pearson']:.5f} | {row['snr_db']:.2f} | "
                  f"{row['seconds']:.1f} |", flush=True)
        notes.append(f"{name} {layer}: {dropped} duplicate images passed over; pixel L2 "
                     "distance of the largest pair: "
                     + ", ".join(f"{m} {d:.2f}" for m, d in distances.items()))
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
