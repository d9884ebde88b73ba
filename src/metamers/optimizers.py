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
        """From an ``optimizers.<name>`` config entry (its keys are this class's fields; in a
        validated config the schema has filled them all in)."""
        return cls(**config)


# Optimisers that take a closure (re-evaluating the loss) in their step.
CLOSURE_OPTIMIZERS = ("LBFGS",)


def _build_with(factory: type, first_argument, kwargs: dict, key: str) -> object:
    """``factory(first_argument, **kwargs)``; a ValueError naming ``key`` if it refuses."""
    signature = inspect.signature(factory)
    accepted = list(signature.parameters)[1:]
    try:
        signature.bind(first_argument, **kwargs)
        return factory(first_argument, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{key}: {factory.__name__} refuses {kwargs} ({error}); its keyword "
                         f"arguments are: {', '.join(accepted)}.") from None


def _closure_problem(settings: OptimizerSettings) -> str | None:
    if settings.name not in CLOSURE_OPTIMIZERS:
        return None
    if settings.gradient_normalization:
        return ("gradient_normalization: does not apply to L-BFGS, whose line search needs the "
                "true gradient.")
    if settings.constraint == "clamp":
        return ("constraint: L-BFGS with constraint 'clamp' stalls: clamping after its step "
                "breaks its curvature history and line search. Use constraint 'sigmoid' (or "
                "'none' with a range_penalty).")
    return None


def check_optimizer(settings: OptimizerSettings) -> None:
    """The one check of optimiser settings, used by the config check and by
    :func:`build_optimizer`: the optimiser is a ``torch.optim.Optimizer`` subclass accepting its kwargs, the
    scheduler (if any) a ``torch.optim.lr_scheduler`` class accepting its own, and L-BFGS is
    not paired with what breaks its line search. A ValueError's message starts with the
    settings key at fault."""
    optimizer_class = getattr(torch.optim, settings.name, None)
    if not (inspect.isclass(optimizer_class) and issubclass(optimizer_class, torch.optim.Optimizer)
            and optimizer_class is not torch.optim.Optimizer):
        raise ValueError(f"name={settings.name!r} is not a torch.optim optimizer (e.g. SGD, "
                         "Adam, AdamW, RMSprop, LBFGS).")
    optimizer = _build_with(optimizer_class, [torch.zeros(1, requires_grad=True)],
                            settings.kwargs, "kwargs")
    if settings.scheduler:
        scheduler_class = getattr(torch.optim.lr_scheduler, settings.scheduler, None)
        if not inspect.isclass(scheduler_class):
            raise ValueError(f"scheduler={settings.scheduler!r} is not a torch.optim."
                             "lr_scheduler class (e.g. StepLR, CosineAnnealingLR, "
                             "ReduceLROnPlateau).")
        _build_with(scheduler_class, optimizer, settings.scheduler_kwargs, "scheduler_kwargs")
    problem = _closure_problem(settings)
    if problem:
        raise ValueError(problem)


def build_optimizer(settings: OptimizerSettings, parameter: torch.Tensor):
    """The named ``torch.optim`` optimiser (and scheduler) over ``parameter``, once the
    settings pass :func:`check_optimizer`."""
    check_optimizer(settings)
    optimizer_class = getattr(torch.optim, settings.name)
    try:  # one kernel per step instead of several: a third to half of a step's bookkeeping
        optimizer = optimizer_class([parameter], **_fused(optimizer_class, settings.kwargs))
    except RuntimeError:  # no fused kernel for this device
        optimizer = optimizer_class([parameter], **settings.kwargs)
    scheduler = None
    if settings.scheduler:
        scheduler_class = getattr(torch.optim.lr_scheduler, settings.scheduler)
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
