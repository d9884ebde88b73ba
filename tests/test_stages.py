"""Job stages: what every stage does with its rule's settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from metamers import decoder as decoder_lib
from metamers import inits, stages, store


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_evaluation_stages_set_torch_threads_from_their_rule(job_inputs, tmp_path,
                                                             restore_threads):
    """Nulls, activations and scores run with the rule's ``threads``, not torch's default."""
    spec, weights = job_inputs["specs"]["cnn"], job_inputs["weights_paths"]["cnn"]
    torch.set_num_threads(1)
    criterion = job_inputs["criterion"]
    stages.null_distribution(weights, spec, "relu2", criterion["null_distribution"],
                             criterion["threshold"], {}, None, job_inputs["references_path"], 0,
                             tmp_path / "null.h5", device="cpu", threads=2)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    stages.reference_activations({"cnn": weights}, {"cnn": {**spec, "layers": ["relu2"]}},
                                 job_inputs["references_path"],
                                 {"batch_size": 8, "projection_dim": 64}, 0,
                                 tmp_path / "references.h5", "cpu", threads=2)
    assert torch.get_num_threads() == 2


def test_a_generation_job_compiles_its_steps_in_the_configured_mode(job_inputs, tmp_path,
                                                                    monkeypatch):
    """``generation.compile`` reaches ``torch.compile`` (recorded here, the model left eager)
    and the job's attrs."""
    modes = []

    def record(module, mode=None):
        modes.append(mode)
        return module

    monkeypatch.setattr(torch, "compile", record)
    path = tmp_path / "compiled.h5"
    budget = {**job_inputs["budget"], "max_iterations": 5, "checkpoint_every": 0}
    stages.generate_metamers(**{**job_inputs, "budget": budget, "path": path},
                             compile_mode="reduce-overhead")
    assert modes == ["reduce-overhead"]
    assert store.read_metamers(path)["attrs"]["compile"] == "reduce-overhead"


def test_a_conditions_start_rows_are_its_inits_starts_scored_once(job_inputs, tmp_path):
    """``evaluate_starts`` scores an init's starts once; each condition's tables carry those
    rows under its own keys, and a start file of another init is refused."""
    metamers = tmp_path / "metamers.h5"
    budget = {**job_inputs["budget"], "max_iterations": 5, "checkpoint_every": 0}
    stages.generate_metamers(**{**job_inputs, "budget": budget, "path": metamers})
    specs = {"cnn": {**job_inputs["specs"]["cnn"], "layers": ["relu2"]}}
    evaluation = {"batch_size": 8, "projection_dim": None}
    common = {"weights_paths": job_inputs["weights_paths"], "specs": specs,
              "reference_activations_path": tmp_path / "references.h5",
              "null_paths": {"cnn": {"relu2": job_inputs["null_paths"]["cnn"]}},
              "evaluation": evaluation, "criterion": job_inputs["criterion"], "seed": 0,
              "device": "cpu", "threads": 1}
    stages.reference_activations(job_inputs["weights_paths"], specs,
                                 job_inputs["references_path"], evaluation, 0,
                                 common["reference_activations_path"], "cpu", threads=1)
    starts = {}
    for name, init in {"uniform": job_inputs["init"],
                       "gaussian": {"kind": "gaussian", "strength": 0.2}}.items():
        starts[name] = {kind: tmp_path / name / f"{kind}.{suffix}" for kind, suffix
                        in (("activations", "h5"), ("scores", "parquet"),
                            ("summary", "parquet"))}
        stages.evaluate_starts(**common, references_path=job_inputs["references_path"],
                               init_name=name, init=init,
                               activations_path=starts[name]["activations"],
                               scores_path=starts[name]["scores"],
                               summary_path=starts[name]["summary"])
    condition = {"generator": "cnn", "layer": "relu2", "optimizer": "sgd", "init": "uniform"}
    outputs = {kind: tmp_path / f"condition_{kind}.{suffix}" for kind, suffix
               in (("activations", "h5"), ("scores", "parquet"), ("summary", "parquet"))}

    def evaluate(init: str) -> None:
        stages.evaluate_condition(**common, metamers_path=metamers,
                                  references_path=job_inputs["references_path"],
                                  condition=condition,
                                  start_scores_path=starts[init]["scores"],
                                  start_summary_path=starts[init]["summary"],
                                  activations_path=outputs["activations"],
                                  scores_path=outputs["scores"],
                                  summary_path=outputs["summary"])

    evaluate("uniform")
    for kind in ("scores", "summary"):
        table = store.read_table(outputs[kind])
        assert set(table["image_set"]) == {"metamer", "pixel_control", "initial"}
        assert (table[list(condition)] == pd.Series(condition)).all().all()
        copied = table[table["image_set"] == "initial"].drop(columns=stages.STARTS_UNSET)
        pd.testing.assert_frame_equal(copied.reset_index(drop=True),
                                      store.read_table(starts["uniform"][kind]))
    assert set(store.read_activations(outputs["activations"])["cnn"]) == {"metamer",
                                                                          "pixel_control"}
    with pytest.raises(ValueError, match="not those of"):
        evaluate("gaussian")


def test_a_learned_start_is_decoded_for_the_job_and_scored_with_its_condition(
        job_inputs, data_spec, tmp_path):
    """A ``decoder`` init starts from the member's decoder output; with no shared start
    files, the condition's job scores those starts itself, under its own keys."""
    decoder_path = tmp_path / "decoders" / "relu2.pt"
    settings = {**inits.DECODER_SETTINGS, "train_images": 500, "epochs": 1, "batch_size": 64,
                "hidden_units": 32}
    stages.train_decoder(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                         "relu2", data_spec, settings, 0, decoder_path, "cpu", threads=1)
    metamers = tmp_path / "metamers.h5"
    budget = {**job_inputs["budget"], "max_iterations": 5, "checkpoint_every": 0}
    stages.generate_metamers(**{**job_inputs, "budget": budget, "path": metamers,
                                "init": {"kind": "decoder", "strength": 0.5},
                                "decoder_paths": {"cnn": decoder_path}})
    content = store.read_metamers(metamers)
    model = stages.load_zoo_model(job_inputs["weights_paths"]["cnn"], job_inputs["specs"]["cnn"],
                                  torch.device("cpu"))
    references = torch.from_numpy(store.read_references(job_inputs["references_path"])["images"])
    decoded = decoder_lib.decoded_starts([decoder_lib.load_decoder(decoder_path,
                                                                   torch.device("cpu"))],
                                         [model], ["relu2"], ["cnn"], references,
                                         torch.device("cpu"))
    np.testing.assert_array_equal(content["initial_images"], decoded.numpy())

    specs = {"cnn": {**job_inputs["specs"]["cnn"], "layers": ["relu2"]}}
    evaluation = {"batch_size": 8, "projection_dim": None}
    reference_activations = tmp_path / "references.h5"
    stages.reference_activations(job_inputs["weights_paths"], specs,
                                 job_inputs["references_path"], evaluation, 0,
                                 reference_activations, "cpu", threads=1)
    condition = {"generator": "cnn", "layer": "relu2", "optimizer": "sgd", "init": "decoder"}
    outputs = {kind: tmp_path / f"condition_{kind}.{suffix}" for kind, suffix
               in (("activations", "h5"), ("scores", "parquet"), ("summary", "parquet"))}
    stages.evaluate_condition(
        job_inputs["weights_paths"], specs, metamers, job_inputs["references_path"],
        reference_activations, {"cnn": {"relu2": job_inputs["null_paths"]["cnn"]}}, evaluation,
        job_inputs["criterion"], condition, 0, None, None, outputs["activations"],
        outputs["scores"], outputs["summary"], "cpu", threads=1)
    table = store.read_table(outputs["scores"])
    assert set(table["image_set"]) == {"metamer", "pixel_control", "initial"}
    assert (table[list(condition)] == pd.Series(condition)).all().all()
    starts = table[(table["image_set"] == "initial") & (table["metric"] == "pixel_distance")]
    np.testing.assert_allclose(starts["value"], content["initial_distance"])
    assert set(store.read_activations(outputs["activations"])["cnn"]) == {
        "metamer", "pixel_control", "initial"}
