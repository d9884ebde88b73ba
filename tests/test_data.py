"""The embedded Fashion-MNIST loader, image folders, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.data import load_dataset, load_sample, unpack_fashion_mnist


def test_fashion_mnist_test_split(test_set):
    assert len(test_set) == 10_000
    assert test_set.images.shape == (10_000, 1, 28, 28)
    assert test_set.images.dtype == torch.float32
    assert test_set.images.min() == 0.0 and test_set.images.max() == 1.0
    assert len(test_set.class_names) == 10
    assert sorted(test_set.labels.unique().tolist()) == list(range(10))
    assert torch.bincount(test_set.labels).eq(1000).all()
    # Grey-level images: 256 levels divided by 255.
    assert torch.allclose(test_set.images * 255, (test_set.images * 255).round(), atol=1e-4)


def test_unpacking_is_idempotent(data_spec, test_set):
    raw_dir = unpack_fashion_mnist(data_spec["root"], data_spec["source_dir"])
    assert len(list(raw_dir.iterdir())) == 4
    assert not list(raw_dir.glob("*.partial"))


def test_unknown_data_set_name_raises(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'svhn'"):
        load_dataset({"name": "svhn", "root": str(tmp_path)}, train=False)


def test_missing_source_dir_names_the_file(tmp_path):
    source = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*dataset-fashion-mnist"):
        load_dataset({"name": "fashion_mnist", "root": str(tmp_path / "data"),
                      "source_dir": str(source), "download": False}, train=False)


def test_missing_image_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="test"):
        load_dataset({"name": "image_folder", "root": str(tmp_path), "image_size": 16},
                     train=False)


def test_image_folder_labels_and_chosen_images_match_the_full_load(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for class_name in ("cat", "dog"):
        folder = tmp_path / "test" / class_name
        folder.mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, size=(12 + index, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    spec = {"name": "image_folder", "root": str(tmp_path), "image_size": 8}
    full = load_dataset(spec, train=False)
    seen = []

    def choose(labels):
        seen.append(labels)
        return np.array([4, 1])

    sample, indices, split_size = load_sample(spec, False, choose)
    np.testing.assert_array_equal(seen[0].numpy(), full.labels.numpy())
    assert split_size == 6 and sample.class_names == ["cat", "dog"] == full.class_names
    np.testing.assert_array_equal(indices, [4, 1])
    assert sample.images.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(sample.images.numpy(), full.images[indices].numpy())
    np.testing.assert_array_equal(sample.labels.numpy(), full.labels[indices].numpy())
