"""Shared fixtures: Fashion-MNIST unpacked once per session and a tiny trained SmallCNN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metamers import criteria, stages, train
from metamers.activations import extract
from metamers.data import load_dataset
from metamers.references import sample_balanced
from metamers.zoo import SmallCNN

FASHION_MNIST_SOURCE = Path("/usr/share/datasets/fashion-mnist")
TRAIN_IMAGES = 3000


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    """One thread: the machine is shared, and single-threaded CPU runs are bit-reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def data_spec(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("data")
    return {"name": "fashion_mnist", "root": str(root), "source_dir": str(FASHION_MNIST_SOURCE),
            "download": False}


@pytest.fixture(scope="session")
def test_set(data_spec):
    return load_dataset(data_spec, train=False)


@pytest.fixture(scope="session")
def train_small_cnn(data_spec):
    """Train a SmallCNN (width 8) for one epoch on the first ``images`` shuffled training
    images with ``seed`` (weights and order): a few seconds. Returns it frozen, in eval mode."""
    train_set = load_dataset(data_spec, train=True)

    def trained(seed: int, images: int) -> SmallCNN:
        torch.manual_seed(seed)
        model = SmallCNN(in_channels=1, num_classes=10, image_size=28, mean=[0.286],
                         std=[0.353], width=8)
        training = {"style": "standard", "schedule": "constant", "lr": 0.002, "batch_size": 64,
                    "epochs": 1, "max_train_images": images}
        return train.train(model, train_set, training, seed=seed,
                           device=torch.device("cpu")).requires_grad_(False)

    return trained


@pytest.fixture(scope="session")
def trained_model(train_small_cnn):
    """The shared test model: seed 0, 3000 training images."""
    return train_small_cnn(seed=0, images=TRAIN_IMAGES)


@pytest.fixture(scope="session")
def references(test_set):
    """Two references per class (20 images), as in config/test.yaml."""
    indices = sample_balanced(test_set.labels, per_class=2, seed=0)
    return test_set.images[indices], test_set.labels[indices]


@pytest.fixture(scope="session")
def null_at(trained_model, references):
    """``null_at(layer)``: the null over the pairs of references at ``layer`` (their Spearman
    99th percentile is config/lenient.yaml's threshold, the synthesis's until it is wired to the
    whole criterion)."""
    cache: dict[str, criteria.NullDistribution] = {}

    def build(layer: str) -> criteria.NullDistribution:
        if layer not in cache:
            values = extract(trained_model, references[0], [layer], torch.device("cpu"))[layer]
            cache[layer] = criteria.reference_null(values)
        return cache[layer]

    return build


JOB_SPEC = {"source": "local", "architecture": "small_cnn", "kwargs": {"width": 8}, "seed": 0}
JOB_TRAINING = {"style": "standard", "schedule": "constant", "epochs": 1, "batch_size": 128,
                "lr": 0.002, "max_train_images": 1000}
JOB_BUDGET = {"max_iterations": 400, "check_every": 10, "stop_on_success": False,
          "checkpoint_every": 10}
# config/lenient.yaml's criterion (the synthesis checks Spearman and class until it applies the
# whole criterion): quick, and these jobs test faults and threads, not the criterion
JOB_CRITERION = {"measures": ["spearman"], "threshold": 99.0, "class_match": True,
                 "null_distribution": {"source": "references", "pairs": 100000, "augment": True,
                                       "block_images": 256}}


@pytest.fixture(scope="session")
def job_inputs(tmp_path_factory, data_spec) -> dict:
    """A trained model, references and the null of one generating layer, as the pipeline
    writes them, and the other arguments of one generation job (``stages.generate_metamers``)."""
    root = tmp_path_factory.mktemp("fault_job")
    weights = root / "models" / "cnn.pt"
    stages.train_local_model(JOB_SPEC, JOB_TRAINING, data_spec, weights,
                             weights.with_suffix(".json"), device="cpu", threads=1)
    references = root / "references.h5"
    stages.sample_references(data_spec, {"per_class": 2, "seed": 0}, references)
    null = root / "null.h5"
    stages.null_distribution(weights, JOB_SPEC, "relu2", JOB_CRITERION["null_distribution"],
                             JOB_CRITERION["threshold"], data_spec, None, references, 0, null,
                             device="cpu")
    return {"weights_paths": {"cnn": str(weights)}, "specs": {"cnn": JOB_SPEC},
            "layers": {"cnn": "relu2"}, "null_paths": {"cnn": str(null)},
            "references_path": str(references),
            "optimizer": {"name": "SGD", "kwargs": {"lr": 1.0, "momentum": 0.9},
                          "gradient_normalization": True},
            "init": {"kind": "uniform", "strength": 0.5}, "budget": JOB_BUDGET,
            "criterion": JOB_CRITERION,
            "seed": 0, "device": "cpu", "threads": 1}
