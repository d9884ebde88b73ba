"""SHA-256 fingerprints of generation jobs: what a change of the synthesis code must keep.

For each condition (generator, layer(s), optimizer of ``config/config.yaml``), one generation job
runs as the pipeline runs it (:func:`metamers.stages.generate_metamers`, one thread, the
config's seed and first init, all references; a learned init's decoders are trained as the
pipeline trains them, into ``--work-dir``), with a short budget: ``--max-iterations``
(100), checks every ``--check-every`` (5), metamers stop when they pass (unless
``--no-stop``). Per condition it prints
the SHA-256 of every dataset of the metamer file (metamers, loss trace, iterations to success,
stop reasons, ...) taken together, and of the main ones alone. The condition ``resume`` runs
``ngd`` at ``relu2`` without stopping on success, checkpointed every 20 iterations, as a job
that dies (``os._exit``) right after writing its second checkpoint and is then run again, and
says whether its hashes equal those of the same job run without a break.

Models come from ``--models-dir`` (a pipeline run's ``resources/models``). References and nulls
are written to ``--work-dir`` as the pipeline writes them (kept between runs; a pipeline run's
``resources/references/fashion_mnist.h5`` copied there as ``references.h5`` is used as it is). ``--tiny`` trains
small stand-ins of the zoo's models there instead (1 epoch on 2,000 images), for when no
pipeline run has finished. Run it with the code before and after a change and compare:

    PYTHONPATH=src python benchmarks/synthesis_fingerprint.py --models-dir resources/models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from metamers import inits, stages, store
from metamers.config import SCHEMA_PATH, validate_config

# name -> ({member: layer}, optimizer)
CONDITIONS = {
    **{f"{optimizer}/{model}/{layer}": ({model: layer}, optimizer)
       for optimizer in ("ngd", "adam")
       for model, layer in [("cnn_s0", "relu1"), ("cnn_s0", "relu2"), ("cnn_s0", "fc_relu"),
                            ("mlp_s0", "hidden1"), ("resnet_s0", "layer1")]},
    "lbfgs/cnn_s0/relu2": ({"cnn_s0": "relu2"}, "lbfgs"),
    "ngd/cnn_resnet/mid": ({"cnn_s0": "relu2", "resnet_s0": "layer2"}, "ngd"),
    "adam/cnn_resnet/mid": ({"cnn_s0": "relu2", "resnet_s0": "layer2"}, "adam"),
}
RESUMED = "ngd/cnn_s0/relu2"  # the condition that the resumed job repeats
MAIN_DATASETS = ("metamers", "loss", "iterations_to_success", "stop_reason")

# Run in a child process: the job dies right after its second checkpoint reaches its file.
_DIE_AFTER_SECOND_CHECKPOINT = """
import json, os, sys
from metamers import stages
replace, written = os.replace, []
def replace_then_die(source, target):
    replace(source, target)
    if str(target).endswith(".checkpoint.pt"):
        written.append(target)
        if len(written) == 2:
            os._exit(9)
os.replace = replace_then_die
stages.generate_metamers(**json.loads(sys.argv[1]))
"""


def tiny_zoo(config: dict, work_dir: Path) -> Path:
    """Small stand-ins of the models the conditions use, trained in ``work_dir/models``."""
    models_dir = work_dir / "models"
    for name in ("cnn_s0", "mlp_s0", "resnet_s0"):
        weights = models_dir / f"{name}.pt"
        if not weights.exists():
            training = {"style": "standard", "schedule": "constant", "epochs": 1,
                        "batch_size": 128, "lr": 0.002, "max_train_images": 2000}
            stages.train_local_model(config["models"][name], training, config["data"],
                                     weights, weights.with_suffix(".json"), "cpu", 1)
    return models_dir


def job_arguments(config: dict, models_dir: Path, work_dir: Path, layers: dict[str, str],
                  optimizer: str, budget: dict) -> dict:
    """Keyword arguments of :func:`metamers.stages.generate_metamers` for one condition, its
    references, nulls and (for a learned init) decoders written first where missing."""
    references = work_dir / "references.h5"
    if not references.exists():  # the pipeline's references: the same function and config
        stages.sample_references(config["data"], config["references"], references)
    generation, criterion = config["generation"], config["criterion"]
    init_name = generation["inits"][0]
    init = config["inits"][init_name]
    null_paths, decoder_paths = {}, {}
    for name, layer in layers.items():
        if init["kind"] in inits.LEARNED_KINDS:
            decoder_paths[name] = work_dir / "decoders" / init_name / name / f"{layer}.pt"
            if not decoder_paths[name].exists():  # as the rule train_decoder makes it
                stages.train_decoder(models_dir / f"{name}.pt", config["models"][name], layer,
                                     config["data"], inits.decoder_settings(init),
                                     config["seed"], decoder_paths[name], "cpu", threads=1)
        null_paths[name] = work_dir / "nulls" / name / f"{layer}.h5"
        if not null_paths[name].exists():
            spec = config["models"][name]
            stages.null_distribution(models_dir / f"{name}.pt", spec, layer,
                                     criterion["null_distribution"], criterion["threshold"],
                                     config["data"], config["training"].get(spec.get("training")),
                                     references, config["seed"], null_paths[name], device="cpu",
                                     threads=1)
    return {"weights_paths": {name: str(models_dir / f"{name}.pt") for name in layers},
            "specs": {name: config["models"][name] for name in layers}, "layers": layers,
            "null_paths": {name: str(path) for name, path in null_paths.items()},
            "references_path": str(references),
            "optimizer": config["optimizers"][optimizer],
            "init": init, "budget": budget, "criterion": criterion, "seed": config["seed"],
            "device": "cpu", "threads": 1,
            "decoder_paths": {name: str(path) for name, path in decoder_paths.items()} or None}


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of all datasets of a metamer file together (``all``) and of the main ones."""
    hashes = store.dataset_hashes(path)
    together = hashlib.sha256("".join(f"{name}:{hashes[name]}"
                                      for name in sorted(hashes)).encode()).hexdigest()
    return {"all": together, **{name: hashes[name] for name in MAIN_DATASETS}}


def resumed_job(arguments: dict, path: Path) -> Path:
    """Run the job until it dies after its second checkpoint, then again to its end."""
    arguments = {**arguments, "path": str(path)}
    died = subprocess.run([sys.executable, "-c", _DIE_AFTER_SECOND_CHECKPOINT,
                           json.dumps(arguments)], check=False, capture_output=True,
                          text=True)
    if died.returncode != 9 or not stages.checkpoint_path(path).exists():
        raise RuntimeError(f"the job did not die at its checkpoint:\n{died.stderr[-2000:]}")
    stages.generate_metamers(**arguments)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--models-dir", default="resources/models")
    parser.add_argument("--work-dir", default=Path(tempfile.gettempdir()) / "fingerprint",
                        type=Path, help="references and nulls (and --tiny models), kept")
    parser.add_argument("--tiny", action="store_true", help="train small models in work-dir")
    parser.add_argument("--max-iterations", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=5)
    parser.add_argument("--no-stop", action="store_true",
                        help="metamers run the whole budget (stop_on_success false)")
    parser.add_argument("--conditions", default=None, help="name,... (default: all)")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    validate_config(config, SCHEMA_PATH)  # the defaults, as the run's
    args.work_dir.mkdir(parents=True, exist_ok=True)
    models_dir = tiny_zoo(config, args.work_dir) if args.tiny else Path(args.models_dir)
    budget = {"max_iterations": args.max_iterations, "check_every": args.check_every,
              "stop_on_success": not args.no_stop, "checkpoint_every": 0}
    names = args.conditions.split(",") if args.conditions else [*CONDITIONS, "resume"]
    with tempfile.TemporaryDirectory() as outputs:
        for name in names:
            layers, optimizer = CONDITIONS[RESUMED if name == "resume" else name]
            arguments = job_arguments(config, models_dir, args.work_dir, layers, optimizer,
                                      budget)
            path = Path(outputs) / f"{name.replace('/', '_')}.h5"
            started = time.perf_counter()
            if name == "resume":
                arguments["budget"] = {**budget, "checkpoint_every": 20,
                                       "stop_on_success": False}
                stages.generate_metamers(**arguments, path=str(path) + ".whole.h5")
                whole = fingerprint(Path(str(path) + ".whole.h5"))
                resumed_job(arguments, path)
                print(f"resume equals the job without a break: "
                      f"{fingerprint(path) == whole}", flush=True)
            else:
                stages.generate_metamers(**arguments, path=str(path))
            seconds = time.perf_counter() - started
            content = store.read_metamers(path)
            hashes = fingerprint(path)
            print(f"{name:<24} all {hashes['all'][:16]}  "
                  + "  ".join(f"{key} {hashes[key][:12]}" for key in MAIN_DATASETS)
                  + f"  success {int(content['success'].sum())}/{len(content['success'])}"
                  f"  {seconds:.1f}s", flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
