"""Training of the local zoo: standard, adversarially robust (PGD, L-inf or L2) or with strong
augmentation; and robust accuracy under PGD."""

from __future__ import annotations

import time

import torch
from torch import nn

from metamers.data import LabelledImages
from metamers.runtime import get_logger

log = get_logger("metamers.train")


NORMS = ("linf", "l2")
SCHEDULES = ("constant", "one_cycle")


def _per_image_l2(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (tensor.ndim - 1))


def _project(delta: torch.Tensor, epsilon: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    return delta * (epsilon / _per_image_l2(delta)).clamp(max=1.0)


def pgd_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
               steps: int, step_size: float, generator: torch.Generator,
               norm: str = "linf") -> torch.Tensor:
    """PGD with a random start in the ``norm`` ball (Madry et al. 2018); images in [0, 1].

    L-inf steps along the gradient's sign; L2 steps along the per-image unit gradient.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown attack norm {norm!r}: choose one of {NORMS}.")
    noise = torch.rand(images.shape, generator=generator, device="cpu").to(images.device)
    delta = (2 * noise - 1) * epsilon
    if norm == "l2":  # a random direction, at a uniformly drawn fraction of the radius
        radius = torch.rand(len(images), generator=generator, device="cpu").to(images.device)
        delta = delta / _per_image_l2(delta) * epsilon * radius.view(-1, 1, 1, 1)
    adversarial = (images + delta).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(adversarial), labels)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        with torch.no_grad():
            step = gradient.sign() if norm == "linf" else gradient / _per_image_l2(gradient)
            adversarial = adversarial + step_size * step
            adversarial = (images + _project(adversarial - images, epsilon, norm)).clamp(0, 1)
    return adversarial.detach()


def augment(images: torch.Tensor, padding: int, erasing_probability: float) -> torch.Tensor:
    """Strong augmentation, per image: random crop of the zero-padded image (a shift of up to
    ``padding`` pixels), horizontal flip, random erasing (torchvision v2; torch's global RNG,
    seeded per job)."""
    from torchvision.transforms import v2  # seconds of import: only where training augments

    transform = v2.Compose([v2.RandomCrop(images.shape[-1], padding=padding),
                            v2.RandomHorizontalFlip(),
                            v2.RandomErasing(p=erasing_probability)])
    return torch.stack([transform(image) for image in images])


def learning_rate_schedule(optimizer: torch.optim.Optimizer, schedule: str,
                           total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate scheduler stepped after every batch: ``None`` for ``constant``; for
    ``one_cycle``, :class:`~torch.optim.lr_scheduler.OneCycleLR` with torch's defaults (warm-up
    over the first 30% of ``total_steps`` to the optimiser's lr, then cosine annealing to
    1/25,000 of it; Adam's beta1 cycled between 0.95 and 0.85)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {schedule!r}: choose one of "
                         f"{SCHEDULES}.")
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=optimizer.param_groups[0]["lr"], total_steps=total_steps)


def train(model: nn.Module, train_set: LabelledImages, training: dict, seed: int,
          device: torch.device) -> nn.Module:
    """Train ``model`` in place with Adam; ``training`` is the config's training slice."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"])
    count = min(len(train_set), training["max_train_images"] or len(train_set))
    batch_size, epochs = training["batch_size"], training["epochs"]
    batches_per_epoch = (count + batch_size - 1) // batch_size
    scheduler = learning_rate_schedule(optimizer, training["schedule"],
                                       epochs * batches_per_epoch)
    style = training["style"]
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(train_set), generator=generator)[:count]
        for batch_index in range(batches_per_epoch):
            indices = order[batch_index * batch_size:(batch_index + 1) * batch_size]
            images = train_set.images[indices].to(device)
            labels = train_set.labels[indices].to(device)
            if style == "augmented":
                images = augment(images, training["crop_padding"],
                                 training["erasing_probability"])
            elif style == "adversarial":
                model.eval()
                images = pgd_attack(model, images, labels, training["epsilon"],
                                    training["pgd_steps"], training["pgd_step_size"], generator,
                                    training["norm"])
                model.train()
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
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


def robust_accuracy(model: nn.Module, data: LabelledImages, epsilon: float, norm: str,
                    steps: int, device: torch.device, seed: int = 0,
                    batch_size: int = 500) -> float:
    """Top-1 accuracy under PGD of ``steps`` steps of 2.5 * epsilon / steps (Madry et al.)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        images = data.images[start:start + batch_size].to(device)
        labels = data.labels[start:start + batch_size].to(device)
        adversarial = pgd_attack(model, images, labels, epsilon, steps, 2.5 * epsilon / steps,
                                 generator, norm)
        with torch.no_grad():
            correct += (model(adversarial).argmax(1) == labels).sum().item()
    return correct / len(data)
