"""Class-balanced, seeded reference samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers.references import sample_balanced


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 5, size=200))


def test_sample_is_class_balanced_and_grouped(labels):
    indices = sample_balanced(labels, per_class=4, seed=0)
    chosen = labels.numpy()[indices]
    assert len(indices) == 20 and len(set(indices.tolist())) == 20
    np.testing.assert_array_equal(np.bincount(chosen), [4] * 5)
    np.testing.assert_array_equal(chosen, np.repeat(np.arange(5), 4))
    for label in range(5):
        group = indices[chosen == label]
        assert (np.diff(group) > 0).all()


def test_sample_is_seeded(labels):
    first = sample_balanced(labels, per_class=4, seed=1)
    np.testing.assert_array_equal(first, sample_balanced(labels, per_class=4, seed=1))
    assert not np.array_equal(first, sample_balanced(labels, per_class=4, seed=2))


def test_a_class_too_small_raises(labels):
    smallest = int(np.bincount(labels.numpy()).min())
    sample_balanced(labels, per_class=smallest, seed=0)
    with pytest.raises(ValueError, match=f"fewer than references.per_class={smallest + 1}"):
        sample_balanced(labels, per_class=smallest + 1, seed=0)


def test_sample_of_the_test_split(test_set):
    indices = sample_balanced(test_set.labels, per_class=3, seed=0)
    assert len(indices) == 30
    np.testing.assert_array_equal(np.bincount(test_set.labels.numpy()[indices]), [3] * 10)


def test_choose_references_takes_all_or_the_first_count():
    from metamers.references import choose_references

    labels = torch.tensor([3, 1, 3, 0, 1, 0])
    np.testing.assert_array_equal(choose_references(labels, None, 0), np.arange(6))
    np.testing.assert_array_equal(choose_references(labels, None, 0, count=4), np.arange(4))
    balanced = choose_references(labels, 1, 0)
    assert sorted(labels[balanced].tolist()) == [0, 1, 3]
    assert len(choose_references(labels, 2, 0, count=3)) == 3
