"""Training of the local zoo: seeded, bit-reproducible on the CPU; adversarial (L-inf, L2) and
augmented styles work; robust accuracy under PGD."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from metamers import train
from metamers.data import load_dataset
from metamers.zoo import SmallCNN, SmallResNet

# A complete recipe, as the schema fills it in.
STANDARD = {"style": "standard", "schedule": "constant", "lr": 0.002, "batch_size": 64,
            "epochs": 1, "max_train_images": 640}


def tiny_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, num_classes=10, image_size=28, mean=[0.286], std=[0.353],
                    width=4)


@pytest.mark.parametrize("schedule", ["constant", "one_cycle"])
def test_same_seed_gives_bit_identical_weights(data_spec, schedule):
    train_set = load_dataset(data_spec, train=True)
    recipe = {**STANDARD, "schedule": schedule}
    first = train.train(tiny_cnn(), train_set, recipe, seed=3, device=torch.device("cpu"))
    second = train.train(tiny_cnn(), train_set, recipe, seed=3, device=torch.device("cpu"))
    other = train.train(tiny_cnn(), train_set, recipe, seed=4, device=torch.device("cpu"))
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    assert not torch.equal(first.conv1.weight, other.conv1.weight)
    if schedule == "one_cycle":  # the schedule is applied: not the constant rate's weights
        constant = train.train(tiny_cnn(), train_set, STANDARD, seed=3,
                               device=torch.device("cpu"))
        assert not torch.equal(first.conv1.weight, constant.conv1.weight)


def test_one_cycle_warms_up_to_the_lr_then_anneals():
    optimizer = torch.optim.Adam(tiny_cnn().parameters(), lr=0.004)
    scheduler = train.learning_rate_schedule(optimizer, "one_cycle", total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.004 / 25)
    assert max(rates) == pytest.approx(0.004) and 25 <= peak <= 35
    assert rates[-1] < 0.004 / 1000
    assert all(a <= b for a, b in pairwise(rates[:peak + 1]))
    assert all(a >= b for a, b in pairwise(rates[peak:]))
    assert train.learning_rate_schedule(optimizer, "constant", 100) is None
    with pytest.raises(ValueError, match="schedule 'cosine'"):
        train.learning_rate_schedule(optimizer, "cosine", 100)


def test_pgd_attack_stays_in_the_epsilon_ball_and_raises_the_loss(trained_model, references):
    images, labels = references
    generator = torch.Generator().manual_seed(0)
    adversarial = train.pgd_attack(trained_model, images, labels, epsilon=0.1, steps=5,
                                   step_size=0.05, generator=generator)
    assert (adversarial - images).abs().max() <= 0.1 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(trained_model(adversarial), labels) > loss(trained_model(images), labels)


def test_adversarial_training_and_the_resnet_train(data_spec):
    train_set = load_dataset(data_spec, train=True)
    robust = {**STANDARD, "style": "adversarial", "norm": "linf", "epsilon": 0.1,
              "pgd_steps": 2, "pgd_step_size": 0.05, "max_train_images": 256}
    model = train.train(tiny_cnn(), train_set, robust, seed=0, device=torch.device("cpu"))
    assert not model.training
    resnet = SmallResNet(in_channels=1, num_classes=10, image_size=28, mean=[0.286],
                         std=[0.353], width=4)
    before = resnet.logits.weight.clone()
    train.train(resnet, train_set, {**STANDARD, "max_train_images": 256}, seed=0,
                device=torch.device("cpu"))
    assert not torch.equal(before, resnet.logits.weight)


def test_accuracy_is_above_chance(trained_model, test_set):
    assert train.accuracy(trained_model, test_set, torch.device("cpu")) > 0.5


def test_l2_pgd_stays_in_the_l2_ball_and_raises_the_loss(trained_model, references):
    images, labels = references
    adversarial = train.pgd_attack(trained_model, images, labels, epsilon=1.0, steps=5,
                                   step_size=0.5, generator=torch.Generator().manual_seed(0),
                                   norm="l2")
    assert (adversarial - images).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(trained_model(adversarial), labels) > loss(trained_model(images), labels)
    with pytest.raises(ValueError, match="norm 'l1'"):
        train.pgd_attack(trained_model, images, labels, 1.0, 1, 0.5,
                         torch.Generator().manual_seed(0), norm="l1")


def test_augmentation_shifts_flips_and_erases_within_range(references):
    images, _ = references
    torch.manual_seed(0)
    augmented = train.augment(images, padding=3, erasing_probability=1.0)
    assert augmented.shape == images.shape
    assert not torch.equal(augmented, images)
    torch.manual_seed(0)
    assert torch.equal(augmented, train.augment(images, padding=3, erasing_probability=1.0))
    untouched = train.augment(images[:1], padding=0, erasing_probability=0.0)
    assert torch.equal(untouched, images[:1]) or torch.equal(untouched, images[:1].flip(-1))


def test_augmented_and_l2_training_run(data_spec):
    train_set = load_dataset(data_spec, train=True)
    augmented = {**STANDARD, "style": "augmented", "crop_padding": 3,
                 "erasing_probability": 0.5, "max_train_images": 256}
    l2 = {**STANDARD, "style": "adversarial", "norm": "l2", "epsilon": 1.0, "pgd_steps": 2,
          "pgd_step_size": 0.5, "max_train_images": 256}
    for recipe in (augmented, l2):
        model = tiny_cnn()
        before = model.logits.weight.clone()
        train.train(model, train_set, recipe, seed=0, device=torch.device("cpu"))
        assert not torch.equal(before, model.logits.weight)


def test_robust_accuracy_is_at_most_clean_accuracy(trained_model, test_set):
    from metamers.data import LabelledImages

    subset = LabelledImages(test_set.images[:200], test_set.labels[:200], test_set.class_names)
    clean = train.accuracy(trained_model, subset, torch.device("cpu"))
    robust = train.robust_accuracy(trained_model, subset, 0.1, "linf", 5, torch.device("cpu"))
    assert robust < clean
    assert train.robust_accuracy(trained_model, subset, 0.0, "linf", 1,
                                 torch.device("cpu")) == pytest.approx(clean)
