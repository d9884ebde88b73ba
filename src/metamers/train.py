"""Training of the local zoo: standard, or adversarially robust (PGD, L-inf)."""

from __future__ import annotations

import time

import torch
from torch import nn

from metamers.data import LabelledImages
from metamers.runtime import get_logger

log = get_logger("metamers.train")


def pgd_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
               steps: int, step_size: float, generator: torch.Generator) -> torch.Tensor:
    """L-inf PGD with a random start (Madry et al. 2018); returns images in [0, 1]."""
    noise = torch.rand(images.shape, generator=generator, device="cpu").to(images.device)
    adversarial = (images + (2 * noise - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(adversarial), labels)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            adversarial = adversarial + step_size * gradient.sign()
            adversarial = (images + (adversarial - images).clamp(-epsilon, epsilon)).clamp(0, 1)
    return adversarial.detach()


def train(model: nn.Module, train_set: LabelledImages, training: dict, seed: int,
          device: torch.device) -> nn.Module:
    """Train ``model`` in place with Adam; ``training`` is the config's training slice."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"])
    count = min(len(train_set), training.get("max_train_images") or len(train_set))
    batch_size, epochs = training["batch_size"], training["epochs"]
    batches_per_epoch = (count + batch_size - 1) // batch_size
    adversarial = training.get("style", "standard") == "adversarial"
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(train_set), generator=generator)[:count]
        for batch_index in range(batches_per_epoch):
            indices = order[batch_index * batch_size:(batch_index + 1) * batch_size]
            images = train_set.images[indices].to(device)
            labels = train_set.labels[indices].to(device)
            if adversarial:
                model.eval()
                images = pgd_attack(model, images, labels, training["epsilon"],
                                    training["pgd_steps"], training["pgd_step_size"], generator)
                model.train()
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done = epoch * batches_per_epoch + batch_index + 1
            if done % 100 == 0 or done == epochs * batches_per_epoch:
                elapsed = time.perf_counter() - started
                eta = elapsed / done * (epochs * batches_per_epoch - done)
                log.info("epoch %d/%d batch %d/%d loss %.4f elapsed %.0fs eta %.0fs", epoch + 1,
                         epochs, batch_index + 1, batches_per_epoch, loss.item(), elapsed, eta)
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device,
            batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` on ``images``, computed in batches, returned on the CPU."""
    model.eval()
    return torch.cat([model(images[start:start + batch_size].to(device)).cpu()
                      for start in range(0, len(images), batch_size)])


def accuracy(model: nn.Module, data: LabelledImages, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    return (predict(model, data.images, device).argmax(1) == data.labels).float().mean().item()
