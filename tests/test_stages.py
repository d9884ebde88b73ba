"""Job stages: what every stage does with its rule's settings."""

from __future__ import annotations

import pytest
import torch

from metamers import stages, store


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
