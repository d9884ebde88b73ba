"""Training of the local zoo: seeded, bit-reproducible on the CPU, adversarial style works."""

from __future__ import annotations

import torch

from metamers import train
from metamers.data import load_dataset
from metamers.zoo import SmallCNN, SmallResNet

STANDARD = {"lr": 0.002, "batch_size": 64, "epochs": 1, "max_train_images": 640}


def tiny_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, num_classes=10, image_size=28, mean=[0.286], std=[0.353],
                    width=4)


def test_same_seed_gives_bit_identical_weights(data_spec):
    train_set = load_dataset(data_spec, train=True)
    first = train.train(tiny_cnn(), train_set, STANDARD, seed=3, device=torch.device("cpu"))
    second = train.train(tiny_cnn(), train_set, STANDARD, seed=3, device=torch.device("cpu"))
    other = train.train(tiny_cnn(), train_set, STANDARD, seed=4, device=torch.device("cpu"))
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    assert not torch.equal(first.conv1.weight, other.conv1.weight)


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
    robust = {**STANDARD, "style": "adversarial", "epsilon": 0.1, "pgd_steps": 2,
              "pgd_step_size": 0.05, "max_train_images": 256}
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
