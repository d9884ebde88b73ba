"""Named-layer activations and the fixed random projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamers import zoo
from metamers.activations import (
    LOGITS,
    extract,
    feature_extractor,
    project,
    projection_matrix,
)

CPU = torch.device("cpu")


def test_unknown_layer_lists_the_available_layers(trained_model):
    with pytest.raises(ValueError, match="relu9") as error:
        feature_extractor(trained_model, ["relu1", "relu9"], "cnn_a")
    message = str(error.value)
    assert "cnn_a" in message
    for layer in ("relu1", "relu2", "fc_relu", "logits"):
        assert layer in message


def test_extract_shapes_and_logits(trained_model, references):
    images = references[0][:5]
    values = extract(trained_model, images, ["relu1", "fc_relu"], CPU, batch_size=2)
    assert set(values) == {"relu1", "fc_relu", LOGITS}
    assert values["relu1"].shape == (5, 8 * 28 * 28)
    assert values["fc_relu"].shape == (5, 128)
    assert values["relu1"].dtype == np.float32 and (values["relu1"] >= 0).all()
    with torch.no_grad():
        np.testing.assert_allclose(values[LOGITS], trained_model(images).numpy(), atol=1e-5)


def test_random_projection_is_deterministic_and_keeps_shapes(trained_model, references):
    images = references[0][:6]
    first = extract(trained_model, images, ["relu2", "fc_relu"], CPU, projection_dim=200,
                    seed=3)
    again = extract(trained_model, images, ["relu2", "fc_relu"], CPU, projection_dim=200,
                    seed=3)
    other = extract(trained_model, images, ["relu2"], CPU, projection_dim=200, seed=4)
    plain = extract(trained_model, images, ["relu2", "fc_relu"], CPU)
    assert first["relu2"].shape == (6, 200)
    assert first["fc_relu"].shape == (6, 128)  # narrower than the projection: unchanged
    np.testing.assert_array_equal(first["fc_relu"], plain["fc_relu"])
    np.testing.assert_array_equal(first["relu2"], again["relu2"])
    assert not np.allclose(first["relu2"], other["relu2"])
    np.testing.assert_array_equal(first[LOGITS], plain[LOGITS])
    np.testing.assert_allclose(first["relu2"], plain["relu2"] @ projection_matrix(3136, 200, 3),
                               rtol=1e-5, atol=1e-5)


def test_projection_roughly_keeps_distances():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((10, 2000)).astype(np.float32)
    projected = project(values, 500, seed=0)
    assert projected.shape == (10, 500)
    original = np.linalg.norm(values[:, None] - values[None], axis=-1)
    reduced = np.linalg.norm(projected[:, None] - projected[None], axis=-1)
    off_diagonal = ~np.eye(10, dtype=bool)
    ratio = reduced[off_diagonal] / original[off_diagonal]
    assert np.all(np.abs(ratio - 1) < 0.15)
    np.testing.assert_array_equal(project(values[:, :300], 500, seed=0), values[:, :300])


def test_streamed_projection_matches_projecting_at_the_end(trained_model, references,
                                                           monkeypatch):
    from metamers import activations

    images = references[0]
    layers = ["relu1", "fc_relu"]
    streamed = activations.extract_sets(trained_model, {"a": images, "b": images[:7]}, layers,
                                        torch.device("cpu"), batch_size=4, projection_dim=64)
    monkeypatch.setattr(activations, "STREAMED_PROJECTION_BYTES", 0)
    at_end = activations.extract_sets(trained_model, {"a": images, "b": images[:7]}, layers,
                                      torch.device("cpu"), batch_size=4, projection_dim=64)
    for image_set in ("a", "b"):
        assert streamed[image_set]["relu1"].shape == (len(streamed[image_set]["fc_relu"]), 64)
        for layer in layers:  # float32 sums in another order: rounding at 1e-5 of values ~10
            np.testing.assert_allclose(streamed[image_set][layer], at_end[image_set][layer],
                                       rtol=1e-5, atol=1e-4)


def test_the_output_layer_can_be_asked_for_with_the_logits(trained_model, references):
    """The output layer is one node under two names: asked for as a layer and as the logits."""
    last = zoo.layer_names(trained_model)[-1]
    assert last == "logits"
    with torch.no_grad():
        outputs = feature_extractor(trained_model, ["relu1", last], with_logits=True)(
            references[0][:4])
    assert set(outputs) == {"relu1", last, LOGITS}
    torch.testing.assert_close(outputs[last], outputs[LOGITS], rtol=0, atol=0)
    torch.testing.assert_close(outputs[LOGITS], trained_model(references[0][:4]), rtol=0, atol=0)
