"""Speed options of synthesis, side by side: memory layout and torch.compile.

For each generator (zoo model and layer of the config) and each variant, the pipeline's
synthesis (:class:`metamers.generate.MetamerSynthesis`, the config's first optimiser,
``max_iterations``, checks every ``check_every``, metamers stop when they pass; starts from
``--init``, uniform noise: the default's decoded start passes the check below at iteration 0,
which would leave nothing to time) runs twice on
the same object: ``cold`` includes compilation and first-call costs, ``warm`` does not. Success
is the synthesis's Spearman-and-class check, threshold at the 99th percentile of the references'
null (config/lenient.yaml's rule).
``steps``: iterations summed over metamers; ``ms/it``: warm time over the longest metamer's
iterations. Variants:

- ``eager``: the pipeline's default (channels-last for conv nets, ``generation.channels_last``)
- ``own-layout``: the model's own memory layout
- ``compile``: channels-last, the steps' forward passes through ``torch.compile`` (default mode;
  ``generation.compile: default``)
- ``compile-graphs``: the same in mode ``reduce-overhead`` (CUDA graphs; on a GPU only)

An option is worth using where its warm time is below ``eager``'s and its successes equal; a
compiled one pays when its cold time's excess (compilation, once per pipeline job) is repaid by
the iterations a job runs. (bfloat16 autocast was measured this way too, and dropped: 1.18x
slower on the H200 for EfficientNet-Lite0, mixed on the zoo; README: Performance.)

    python benchmarks/synthesis_options.py --models-dir resources/models --variants eager,compile
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from zoo_generators import generator_pairs

from metamers import activations, criteria, inits, stages, store
from metamers.config import SCHEMA_PATH, validate_config
from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.runtime import configure, pick_device

LENIENT_PERCENTILE = 99.0  # config/lenient.yaml's Spearman percentile of the references' null

VARIANTS = {  # name -> (channels_last, compile_mode)
    "eager": (True, None),
    "own-layout": (False, None),
    "compile": (True, "default"),
    "compile-graphs": (True, "reduce-overhead"),
}


def run_variant(variant: str, member: Member, references: torch.Tensor, starts: torch.Tensor,
                settings: OptimizerSettings, generation: dict, device: torch.device) -> dict:
    """Cold and warm wall time, successes and median iterations of one variant."""
    channels_last, compile_mode = VARIANTS[variant]
    started = time.perf_counter()
    synthesis = MetamerSynthesis([member], references, device, channels_last, compile_mode)
    runs = []
    for _ in range(2):
        synthesis.setup(starts, settings)
        result = synthesis.synthesize(generation["max_iterations"], generation["check_every"])
        runs.append((time.perf_counter() - started, result))
        started = time.perf_counter()
    (cold, result), (warm, again) = runs
    passed = result.iterations_to_success[result.success]
    return {"cold": cold, "warm": warm, "success": int(result.success.sum()),
            "iterations": float(np.median(passed)) if len(passed) else float("nan"),
            "repeatable": bool(np.array_equal(result.success, again.success)),
            "steps": int(result.iterations_run.sum()),
            "iterations_run": int(result.iterations_run.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--models-dir", default="resources/models")
    parser.add_argument("--references", default="resources/references/fashion_mnist.h5")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", default="uniform", help="a name of the config's inits")
    parser.add_argument("--variants", default="eager,own-layout,compile")
    parser.add_argument("--generators", default=None,
                        help="model:layer,... (default: every zoo generator of the config)")
    args = parser.parse_args()
    configure(args.threads, 0)
    logging.getLogger("metamers.generate").setLevel(logging.WARNING)  # no progress lines
    device = pick_device(args.device)
    config = yaml.safe_load(Path(args.config).read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the pipeline reads it
    generation = config["generation"]
    settings = OptimizerSettings.from_config(config["optimizers"][generation["optimizers"][0]])
    init = config["inits"][args.init]
    if init["kind"] in inits.LEARNED_KINDS:
        parser.error(f"--init {args.init} is a learned start: give one made from the "
                     "references or noise (e.g. uniform)")
    references = torch.from_numpy(store.read_references(args.references)["images"])
    starts = inits.initial_images(init["kind"], references, seed=0, strength=init["strength"])
    variants = args.variants.split(",")
    print(f"{device}, {len(references)} references, optimizer {generation['optimizers'][0]}, "
          f"{generation['max_iterations']} iterations at most, check every "
          f"{generation['check_every']}; times in s, ratios to {variants[0]}'s warm time")
    print(f"{'model/layer':<40} {'variant':<15} {'cold':>7} {'warm':>7} {'ratio':>6} "
          f"{'pass':>5} {'med it':>7} {'steps':>6} {'ms/it':>6}")
    totals = {variant: [0.0, 0] for variant in variants}
    for name, layer in generator_pairs(config, args.generators):
        model = stages.load_zoo_model(Path(args.models_dir) / f"{name}.pt",
                                      config["models"][name], device)
        values = activations.extract(model, references, [layer], device, model_name=name)[layer]
        threshold = criteria.reference_null(values).threshold("spearman", LENIENT_PERCENTILE)
        member = Member(name, model, layer, threshold)
        baseline = None
        for variant in variants:
            outcome = run_variant(variant, member, references, starts, settings, generation,
                                  device)
            baseline = baseline or outcome["warm"]
            totals[variant][0] += outcome["warm"]
            totals[variant][1] += outcome["success"]
            print(f"{name + '/' + layer:<40} {variant:<15} {outcome['cold']:>7.2f} "
                  f"{outcome['warm']:>7.2f} {outcome['warm'] / baseline:>6.2f} "
                  f"{outcome['success']:>5} {outcome['iterations']:>7g} {outcome['steps']:>6} "
                  f"{1000 * outcome['warm'] / max(outcome['iterations_run'], 1):>6.2f}"
                  + ("" if outcome["repeatable"] else "  (successes differ between runs)"),
                  flush=True)
    print("\nall generators: warm seconds and successes per variant")
    for variant, (seconds, successes) in totals.items():
        print(f"{variant:<15} {seconds:>8.2f} s ({seconds / totals[variants[0]][0]:.2f}x "
              f"{variants[0]})  {successes} passed")


if __name__ == "__main__":
    main()
