"""The optimisation settings of a synthesis: a ``torch.optim`` optimiser and scheduler named in
the config, and the per-image gradient normalisation applied before its step."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch


@dataclass
class OptimizerSettings:
    """An optimiser and optional scheduler from ``torch.optim``, named with keyword arguments."""

    name: str = "Adam"
    kwargs: dict = field(default_factory=lambda: {"lr": 0.05})
    scheduler: str | None = None
    scheduler_kwargs: dict = field(default_factory=dict)
    gradient_normalization: bool = False
    constraint: str = "clamp"
    range_penalty: float = 0.0

    @classmethod
    def from_config(cls, config: dict) -> OptimizerSettings:
        """From an ``optimizers.<name>`` config entry."""
        return cls(name=config["name"], kwargs=dict(config.get("kwargs", {})),
                   scheduler=config.get("scheduler"),
                   scheduler_kwargs=dict(config.get("scheduler_kwargs", {})),
                   gradient_normalization=bool(config.get("gradient_normalization", False)),
                   constraint=config.get("constraint", "clamp"),
                   range_penalty=float(config.get("range_penalty", 0.0)))


def build_optimizer(settings: OptimizerSettings, parameter: torch.Tensor):
    """The named ``torch.optim`` optimiser (and scheduler) over ``parameter``."""
    try:
        optimizer_class = getattr(torch.optim, settings.name)
    except AttributeError:
        raise ValueError(f"torch.optim has no optimizer {settings.name!r} (e.g. SGD, Adam, "
                         "AdamW, RMSprop, LBFGS).") from None
    try:  # one kernel per step instead of several: a third to half of a step's bookkeeping
        optimizer = optimizer_class([parameter], **_fused(optimizer_class, settings.kwargs))
    except RuntimeError:  # no fused kernel for this device
        optimizer = optimizer_class([parameter], **settings.kwargs)
    scheduler = None
    if settings.scheduler:
        try:
            scheduler_class = getattr(torch.optim.lr_scheduler, settings.scheduler)
        except AttributeError:
            raise ValueError(f"torch.optim.lr_scheduler has no scheduler "
                             f"{settings.scheduler!r} (e.g. StepLR, CosineAnnealingLR, "
                             "ReduceLROnPlateau).") from None
        scheduler = scheduler_class(optimizer, **settings.scheduler_kwargs)
    return optimizer, scheduler


def _fused(optimizer_class: type, kwargs: dict) -> dict:
    """``kwargs`` with ``fused=True`` where the optimiser has a fused implementation and the
    config chose none (neither ``fused`` nor ``foreach``)."""
    if ("fused" in kwargs or "foreach" in kwargs
            or "fused" not in inspect.signature(optimizer_class).parameters):
        return kwargs
    return {**kwargs, "fused": True}


def normalize_per_image_(gradient: torch.Tensor) -> torch.Tensor:
    """``gradient`` divided in place by each image's L2 norm (rows of its first dimension; at
    least 1e-12): what ``gradient_normalization`` does before each step."""
    norms = torch.linalg.vector_norm(gradient, dim=tuple(range(1, gradient.ndim)), keepdim=True)
    return gradient.div_(norms.clamp_min_(1e-12))
