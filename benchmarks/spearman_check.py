"""The success check's Spearman correlation, two ways, on every generator layer of the zoo.

``ranked``: :func:`metamers.stats.spearman_to_ranked` against references ranked once
(:func:`metamers.stats.rank_once`), as synthesis checks now do. ``ranks``: rank each metamer's
values (:func:`metamers.stats.rank_rows`), centre and scale them, and take the dot product
with the references' ranks standardised once, as checks did before. Both on the activations of uniform-noise starts of
the references (what a check sees early on) and on the references themselves (many ties); the
columns give milliseconds per check of all references, their ratio, and the largest difference
between the two results.

    python benchmarks/spearman_check.py --models-dir resources/models    # after a pipeline run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from metamers import inits, stages, stats, store
from metamers.activations import extract
from metamers.runtime import configure

CPU = torch.device("cpu")


def milliseconds(repeats: int, function, *arguments) -> float:
    """Median milliseconds of ``function(*arguments)`` over ``repeats`` calls, after one
    warm-up."""
    function(*arguments)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(*arguments)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def standardized(rows: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (their dot products are Pearson correlations)."""
    centered = rows - rows.mean(axis=1, keepdims=True)
    return centered / np.linalg.norm(centered, axis=1, keepdims=True)


def correlate_ranks(values: np.ndarray, reference_ranks: np.ndarray) -> np.ndarray:
    """The checks' Spearman correlation before :func:`metamers.stats.spearman_to_ranked`."""
    return np.sum(standardized(stats.rank_rows(values)) * reference_ranks, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--models-dir", default="resources/models")
    parser.add_argument("--references", default="resources/references/fashion_mnist.h5")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    configure(1, 0)
    config = yaml.safe_load(Path(args.config).read_text())
    references = torch.from_numpy(store.read_references(args.references)["images"])
    starts = inits.initial_images("uniform", references, seed=0)
    print(f"{len(references)} references, medians of {args.repeats}")
    print(f"{'model/layer':<45} {'images':<10} {'width':>6} {'ranks ms':>9} {'ranked ms':>9} "
          f"{'ratio':>6} {'max diff':>9}")
    ratios = []
    for name, layers in config["generation"]["generators"].items():
        if name not in config["models"]:
            continue
        model = stages.load_zoo_model(Path(args.models_dir) / f"{name}.pt",
                                      config["models"][name], CPU)
        reference_values = extract(model, references, layers, CPU)
        start_values = extract(model, starts, layers, CPU)
        for layer in layers:
            ranked = stats.rank_once(reference_values[layer])
            reference_ranks = standardized(stats.rank_rows(reference_values[layer]))
            for label, values in [("noise", start_values[layer]),
                                  ("references", reference_values[layer])]:
                before = correlate_ranks(values, reference_ranks)
                now = stats.spearman_to_ranked(values, ranked)
                old_ms = milliseconds(args.repeats, correlate_ranks, values, reference_ranks)
                new_ms = milliseconds(args.repeats, stats.spearman_to_ranked, values, ranked)
                ratios.append(old_ms / new_ms)
                print(f"{name + '/' + layer:<45} {label:<10} {values.shape[1]:>6} "
                      f"{old_ms:>9.2f} {new_ms:>9.2f} {old_ms / new_ms:>6.2f} "
                      f"{np.nanmax(np.abs(before - now)):>9.1e}", flush=True)
    print(f"ranks / ranked: median {np.median(ratios):.2f}, range {np.min(ratios):.2f}-"
          f"{np.max(ratios):.2f}")


if __name__ == "__main__":
    main()
