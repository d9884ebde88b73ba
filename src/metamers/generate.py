"""Batched metamer synthesis for one model or a set of models optimised jointly.

All references of a job are optimised at once, as one (N, C, H, W) parameter. Each iteration is
one forward pass to the generating layer and one backward pass, over the metamers still running:
a metamer stops when it meets the success criterion (checked every ``check_every`` iterations) or
when the budget runs out, and its image is frozen from then on. A check between two steps
correlates the activations of the next step's forward pass and classifies only metamers whose
correlation passes, running the model on from those activations.

Loss per model: ||a(x) - a(ref)||^2 / ||a(ref)||^2 at the generating layer (so layers and models
are comparable); for a set of models, the mean over members. Losses are summed over the batch so
each metamer's gradient is its own.

Image constraint: ``clamp`` (default) projects pixels onto [0, 1] after every step, projected
gradient descent, which leaves the optimiser's update untouched inside the box and converged
fastest in our measurements; ``sigmoid`` optimises logits (x = sigmoid(z)), smooth but with
vanishing gradients near 0 and 1, and the one to use with L-BFGS, whose curvature history and
line search assume unconstrained steps (with ``clamp`` it stalls, so that pairing is refused);
``none`` leaves pixels free and relies on ``range_penalty`` (weight of the squared distance
outside [0, 1]); outputs are clamped for storage.

Gradient normalisation divides each metamer's gradient by its L2 norm before the step (Feather
et al.'s L2 step), so the step length is the learning rate whatever the layer's scale.

A metamer whose loss turns NaN or infinite is stopped at its last finite image (stop reason
``non-finite loss``) and the others go on. With a :class:`Checkpoint`, the whole state (images,
optimiser and scheduler state, iteration, bookkeeping, RNG) is saved every ``every`` iterations;
a synthesis started again with the same checkpoint resumes from it and ends bit-identical to an
uninterrupted one (on the CPU).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metamers.activations import (
    LOGITS,
    feature_extractor,
    flat,
    head_agrees,
    layer_to_logits,
)
from metamers.criteria import CriterionCheck, check_correlation_first, check_criterion
from metamers.optimizers import OptimizerSettings, build_optimizer, normalize_per_image_
from metamers.runtime import get_logger
from metamers.stats import rank_once
from metamers.store import CHECKPOINT_LOAD_ERRORS, atomic_path

log = get_logger("metamers.generate")

CLOSURE_OPTIMIZERS = ("LBFGS",)
STOP_REASONS = ("success", "budget", "non-finite loss")


@dataclass
class Member:
    """One model of a generator, with its generating layer and criterion threshold."""

    name: str
    model: nn.Module
    layer: str
    threshold: float


@dataclass
class SynthesisResult:
    """Outputs of one synthesis; arrays are indexed by metamer, members by ``member_names``."""

    metamers: np.ndarray              # (N, C, H, W) float32 in [0, 1]
    initial_images: np.ndarray        # (N, C, H, W) float32 in [0, 1]
    loss: np.ndarray                  # (iterations + 1, N) loss per iteration, NaN once stopped
    iterations_to_success: np.ndarray  # (N,) first successful check, -1 if never
    success: np.ndarray               # (N,) bool
    final_spearman: np.ndarray        # (N, members) generating layer, the metamer's last check
    predicted_class: np.ndarray       # (N, members) generator's class on the metamer
    reference_class: np.ndarray       # (N, members) generator's class on the reference
    iterations_run: np.ndarray        # (N,) steps taken before stopping
    wall_time: float                  # seconds for the whole batch
    member_names: list[str]
    stop_reason: np.ndarray           # (N,) one of STOP_REASONS


@dataclass
class Checkpoint:
    """Where and how often a synthesis saves its state; ``fingerprint`` identifies the job
    (a checkpoint with another fingerprint is ignored, never resumed)."""

    path: Path
    every: int
    fingerprint: str


@dataclass
class _State:
    """Everything a synthesis carries from one iteration to the next. Which metamers run is
    kept on the host (``active``): reading it costs a GPU no synchronisation."""

    parameter: torch.Tensor
    frozen: torch.Tensor
    active: np.ndarray
    loss_trace: np.ndarray
    iterations_to_success: np.ndarray
    iterations_run: np.ndarray
    final_spearman: np.ndarray
    predicted_class: np.ndarray
    non_finite: np.ndarray
    all_running: bool = True  # active.all(), kept so that a step need not ask
    _rows: tuple[torch.Tensor, torch.Tensor] | None = None

    ARRAYS = ("active", "loss_trace", "iterations_to_success", "iterations_run",
              "final_spearman", "predicted_class", "non_finite")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"parameter": self.parameter.detach().cpu(), "frozen": self.frozen.cpu(),
                **{name: torch.from_numpy(getattr(self, name)) for name in self.ARRAYS}}

    def load(self, saved: dict) -> None:
        with torch.no_grad():
            self.parameter.copy_(saved["parameter"])
        self.frozen.copy_(saved["frozen"])
        for name in self.ARRAYS:
            getattr(self, name)[...] = saved[name].numpy()
        self.all_running = bool(self.active.all())
        self._rows = None

    def rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the running and of the stopped metamers on the parameter's device,
        made again only after metamers stop."""
        if self._rows is None:
            self._rows = tuple(torch.as_tensor(np.flatnonzero(mask),
                                               device=self.parameter.device)
                               for mask in (self.active, ~self.active))
        return self._rows

    def stop(self, rows: np.ndarray) -> None:
        """Metamers ``rows`` run no more."""
        self.active[rows] = False
        self.all_running = False
        self._rows = None


def _save_checkpoint(checkpoint: Checkpoint, iteration: int, state: _State, optimizer,
                     scheduler, elapsed: float) -> None:
    payload = {"fingerprint": checkpoint.fingerprint, "iteration": iteration,
               "elapsed": elapsed, "rng": torch.get_rng_state(),
               "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict() if scheduler is not None else None,
               **state.tensors()}
    with atomic_path(checkpoint.path) as partial:
        torch.save(payload, partial)


def _load_checkpoint(checkpoint: Checkpoint) -> dict | None:
    """The saved state of this job, or None (no file, another job's, or unreadable)."""
    if not Path(checkpoint.path).exists():
        return None
    try:
        saved = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    except CHECKPOINT_LOAD_ERRORS as error:
        # a damaged checkpoint only costs the work it held
        log.warning("checkpoint %s is unreadable (%s): starting from iteration 0",
                    checkpoint.path, error)
        return None
    if saved.get("fingerprint") != checkpoint.fingerprint:
        log.warning("checkpoint %s belongs to another configuration: starting from iteration 0",
                    checkpoint.path)
        return None
    return saved


def _to_parameter(images: torch.Tensor, constraint: str) -> torch.Tensor:
    if constraint == "sigmoid":
        return torch.logit(images.clamp(1e-3, 1 - 1e-3))
    if constraint in ("clamp", "none"):
        return images.clone()
    raise ValueError(f"Unknown image constraint {constraint!r}: clamp, sigmoid or none.")


def _to_images(parameter: torch.Tensor, constraint: str) -> torch.Tensor:
    return torch.sigmoid(parameter) if constraint == "sigmoid" else parameter


def _across_members(per_member: list[tuple[CriterionCheck, np.ndarray]]):
    """Each member's check and predicted classes -> (N, members) Spearman, (N, members)
    classes, and (N,) whether every member passed."""
    return (np.stack([check.spearman for check, _ in per_member], 1),
            np.stack([predictions for _, predictions in per_member], 1),
            np.all(np.stack([check.passed for check, _ in per_member], 1), 1))


class MetamerSynthesis:
    """Synthesis of metamers of ``reference_images`` for one or more generator models.

    Life cycle: construct with the members and references, then :meth:`synthesize`. With
    ``channels_last``, it runs a channels-last copy of each member's model, which makes conv
    layers' passes 1.04-2.1x faster on the CPU (on an H200 no faster for the zoo's models).
    ``compile_mode`` runs the steps' forward passes through ``torch.compile`` in that mode
    (``default``, ``reduce-overhead``: CUDA graphs, ...): an option for long runs on a GPU
    (ResNet ``layer3`` on an H200: 1.2x and 1.7x faster per iteration after 15-17 s of
    compilation; no faster at a small CNN layer; on 2 CPU cores 1.1x faster at ``layer3``
    and 3x slower at ``relu2``).
    """

    def __init__(self, members: list[Member], reference_images: torch.Tensor,
                 device: torch.device, channels_last: bool = False,
                 compile_mode: str | None = None):
        if channels_last:  # a copy: the caller's model keeps its layout
            members = [replace(m, model=copy.deepcopy(m.model).to(
                memory_format=torch.channels_last)) for m in members]
        self.members = members
        self.device = device
        self.reference_images = reference_images.to(device)
        self.extractors = [feature_extractor(m.model, [m.layer], m.name).to(device)
                           for m in members]
        self.checkers = [feature_extractor(m.model, [m.layer], m.name, with_logits=True)
                         .to(device) for m in members]
        with torch.no_grad():
            layer_activations = [extractor(self.reference_images)[m.layer]
                                 for extractor, m in zip(self.extractors, members)]
            logits = [checker(self.reference_images)[LOGITS] for checker in self.checkers]
        self.reference_targets = layer_activations  # the layer's own shape and memory layout
        flat_references = [flat(activation) for activation in layer_activations]
        reference_norms = [act.pow(2).sum(1).clamp_min(1e-12) for act in flat_references]
        # ||a_ref||^2 per member and reference, where losses are formed (on the host)
        self.squared_reference_norms = torch.stack(reference_norms).cpu().numpy()
        # d loss / d a = 2 (a - a_ref) / (||a_ref||^2 members): the factor per image, shaped
        # to scale the images' gradient
        image_rows = (-1,) + (1,) * (reference_images.ndim - 1)
        self.gradient_scales = [(2 / len(members) / norm).view(image_rows)
                                for norm in reference_norms]
        self.reference_predictions = [member_logits.argmax(1).cpu().numpy()
                                      for member_logits in logits]
        # checks between steps classify from the step's activations where the graph allows
        self.heads = [self._head(*arguments)
                      for arguments in zip(members, self.checkers, layer_activations, logits)]
        self.reference_ranks = [rank_once(self._for_ranking(activation))
                                for activation in flat_references]
        self.compiled_extractors = [torch.compile(extractor, mode=compile_mode)
                                    for extractor in self.extractors] if compile_mode else None

    @property
    def step_extractors(self) -> list[nn.Module]:
        """The extractors of the steps' forward passes (compiled, if asked)."""
        return self.compiled_extractors or self.extractors

    @staticmethod
    def _head(member: Member, checker: nn.Module, layer_activations: torch.Tensor,
              logits: torch.Tensor) -> nn.Module | None:
        """The member's model after its layer, cut from its ``checker``, if it exists and turns
        the references' ``layer_activations`` into their ``logits`` (the whole model's)."""
        head = layer_to_logits(checker, member.layer)
        if head is None:
            return None
        if head_agrees(head, layer_activations, logits):
            return head
        log.info("%s: the model after %s does not reproduce its logits; checks classify "
                 "from the images", member.name, member.layer)
        return None

    def member_distances(self, extractors: list[nn.Module], images: torch.Tensor,
                         indices: torch.Tensor):
        """Per member (a generator), from its ``extractors`` entry: the distance ||a - a_ref||
        per image at the generating layer, the difference a - a_ref, its factor per image in
        the loss's gradient (as a share of the mean over members), so that the gradient is
        2 (a - a_ref) / (||a_ref||^2 members), and the activations a. Activations keep the
        layer's shape and memory layout: flattening a channels-last one would copy it."""
        all_rows = self._all_rows(indices)
        for extractor, member, target, scale in zip(extractors, self.members,
                                                    self.reference_targets,
                                                    self.gradient_scales):
            if not all_rows:  # a copy of the targets costs as much as an activation pass
                target, scale = target[indices], scale[indices]
            activation = extractor(images)[member.layer]
            difference = activation.detach() - target  # outside autograd's graph
            distance = torch.linalg.vector_norm(difference, dim=tuple(range(1, difference.ndim)))
            yield distance, difference, scale, activation

    def losses(self, distances: list[torch.Tensor], indices: torch.Tensor) -> np.ndarray:
        """Per image, the mean over members of ||a - a_ref||^2 / ||a_ref||^2, from each
        member's ``distances`` of the metamers ``indices``. Squared and divided on the host,
        where the trace needs them anyway (one transfer from a GPU), not as device operations:
        each costs a step some microseconds."""
        rows = self._reference_rows(indices)
        if len(distances) == 1:
            return np.square(distances[0].cpu().numpy()) / self.squared_reference_norms[0, rows]
        return (np.square(torch.stack(distances).cpu().numpy())
                / self.squared_reference_norms[:, rows]).mean(0)

    def loss_per_image(self, images: torch.Tensor, indices: torch.Tensor) -> np.ndarray:
        """Mean over members of the normalised squared activation error, per image."""
        with torch.no_grad():
            return self.losses([distance for distance, *_ in self.member_distances(
                self.extractors, images, indices)], indices)

    def backward(self, images: torch.Tensor, indices: torch.Tensor, range_penalty: float,
                 keep_activations: bool = False, scale_gradient: bool = True
                 ) -> tuple[np.ndarray, float, list]:
        """Backpropagate the loss into ``images``' graph, one member at a time.

        The loss's gradient at the layer is written down, not derived by autograd through
        the loss, which would add four passes over the activations, as costly as the model at
        a wide, cheap layer (``relu1``). The layer's backward starts from the difference
        a - a_ref and each image's factor scales its (far smaller) gradient at the pixels:
        images do not interact in a model in eval mode, so row i of the pixels' gradient
        depends on row i of the layer's only. Without ``scale_gradient`` the factor is left
        out of the first member's gradient, for a caller that divides each image's gradient by
        its norm anyway (one member, no range penalty). Each member's graph is freed before
        the next member runs, so memory is bounded by the largest member, not their sum.
        Returns the per-image loss (on the host), the range penalty (summed over images; 0
        without one) and, if ``keep_activations``, each member's detached activations (for
        :meth:`check_activations`).
        """
        pixels = images.detach().requires_grad_(True)
        distances, activations, pixel_gradient = [], [], None
        for distance, difference, scale, activation in self.member_distances(
                self.step_extractors, pixels, indices):
            (gradient,) = torch.autograd.grad(activation, pixels, difference)
            if pixel_gradient is None:
                pixel_gradient = gradient.mul_(scale) if scale_gradient else gradient
            else:
                pixel_gradient.addcmul_(gradient, scale)
            distances.append(distance)
            if keep_activations:
                activations.append(activation.detach())
        penalty = 0.0
        if range_penalty:
            with torch.no_grad():
                outside = pixels - pixels.clamp(0, 1)
                penalty = range_penalty * float(outside.pow(2).sum())
                pixel_gradient.add_(outside, alpha=2 * range_penalty)
        if images.is_leaf and images.grad is None:  # the parameter itself: nothing between
            if not (pixel_gradient.stride() == images.stride()  # from a channels-last model:
                    or images.is_contiguous() and pixel_gradient.is_contiguous()):
                # fused optimisers read the gradient's memory as laid out like the parameter's
                pixel_gradient = torch.empty_like(images).copy_(pixel_gradient)
            images.grad = pixel_gradient
        else:
            images.backward(pixel_gradient)
        return self.losses(distances, indices), penalty, activations

    @torch.no_grad()
    def check(self, images: torch.Tensor, indices: torch.Tensor, correlate_all: bool = True):
        """Criterion for ``images`` (metamers of references ``indices``) under every member;
        ``correlate_all=False``: Spearman only where the member's class matches (else NaN)."""
        rows = self._reference_rows(indices)
        per_member = []
        for checker, member, reference_ranks, reference_predictions in zip(
                self.checkers, self.members, self.reference_ranks,
                self.reference_predictions):
            outputs = checker(images)
            predictions = outputs[LOGITS].argmax(1).cpu().numpy()
            result = check_criterion(self._for_ranking(flat(outputs[member.layer])),
                                     reference_ranks[rows], predictions,
                                     reference_predictions[rows], member.threshold,
                                     correlate_all=correlate_all)
            per_member.append((result, predictions))
        return _across_members(per_member)

    @torch.no_grad()
    def check_activations(self, activations: list[torch.Tensor], images: torch.Tensor,
                          indices: torch.Tensor):
        """:meth:`check` from each member's generating-layer ``activations`` of ``images``,
        taken from a step's forward pass: the Spearman correlation first, the class
        (:meth:`_classify_from_layer`) only for metamers whose correlation passes; other classes
        are -1."""
        rows = self._reference_rows(indices)
        per_member = []
        for member, (activation, reference_ranks, reference_predictions) in enumerate(zip(
                activations, self.reference_ranks, self.reference_predictions)):
            per_member.append(check_correlation_first(
                self._for_ranking(flat(activation)), reference_ranks[rows],
                partial(self._classify_from_layer, member, activation, images),
                reference_predictions[rows], self.members[member].threshold))
        return _across_members(per_member)

    def _classify_from_layer(self, member: int, activation: torch.Tensor, images: torch.Tensor,
                             candidates: np.ndarray) -> np.ndarray:
        """Member's classes of metamers ``candidates``: from their generating-layer
        ``activation`` on through the rest of the model, or from ``images`` through the whole
        model where the rest reads values from before the layer."""
        selected = torch.as_tensor(candidates, device=images.device)
        head = self.heads[member]
        if head is None:
            logits = self.checkers[member](images[selected])[LOGITS]
        else:
            logits = head(activation[selected])[LOGITS]
        return logits.argmax(1).cpu().numpy()

    @staticmethod
    def _for_ranking(values: torch.Tensor) -> torch.Tensor | np.ndarray:
        """Activations as the success check ranks them: on a GPU the tensor (ranked there,
        which spares the host a sort of every value at every check), else an array (the
        host's sort of ordered bits is several times faster than torch's)."""
        return values if values.device.type == "cuda" else values.cpu().numpy()

    def _reference_rows(self, indices: torch.Tensor) -> slice | np.ndarray:
        """Rows of per-reference arrays for metamers ``indices`` (a view when all of them)."""
        return slice(None) if self._all_rows(indices) else indices.cpu().numpy()

    def _all_rows(self, indices: torch.Tensor) -> bool:
        """Whether metamers ``indices`` are all of them (indices are sorted and unique)."""
        return indices.shape[0] == self.reference_images.shape[0]

    def synthesize(self, initial_images: torch.Tensor, settings: OptimizerSettings,
                   max_iterations: int, check_every: int = 10, stop_on_success: bool = True,
                   checkpoint: Checkpoint | None = None) -> SynthesisResult:
        """Optimise all metamers at once; see the module docstring for loss and stopping."""
        started = time.perf_counter()
        count = len(initial_images)
        parameter = _to_parameter(initial_images.to(self.device), settings.constraint)
        parameter.requires_grad_(True)
        optimizer, scheduler = build_optimizer(settings, parameter)
        uses_closure = settings.name in CLOSURE_OPTIMIZERS
        if uses_closure and settings.gradient_normalization:
            raise ValueError("gradient_normalization does not apply to L-BFGS, whose line "
                             "search needs the true gradient.")
        if uses_closure and settings.constraint == "clamp":
            raise ValueError("L-BFGS with constraint 'clamp' stalls: clamping after its step "
                             "breaks its curvature history and line search. Use constraint "
                             "'sigmoid' (or 'none' with a range_penalty).")
        members = len(self.members)
        state = _State(
            parameter=parameter, frozen=parameter.detach().clone(),
            active=np.ones(count, dtype=bool),
            loss_trace=np.full((max_iterations + 1, count), np.nan, dtype=np.float32),
            iterations_to_success=np.full(count, -1, dtype=np.int64),
            iterations_run=np.full(count, max_iterations, dtype=np.int64),
            final_spearman=np.full((count, members), np.nan),
            predicted_class=np.full((count, members), -1, dtype=np.int64),
            non_finite=np.zeros(count, dtype=bool))
        first_iteration, resumed_elapsed = 0, 0.0
        saved = _load_checkpoint(checkpoint) if checkpoint else None
        if saved is not None:
            state.load(saved)
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            first_iteration, resumed_elapsed = saved["iteration"], saved["elapsed"]
            log.info("resuming from checkpoint %s at iteration %d", checkpoint.path,
                     first_iteration)

        all_indices = torch.arange(count, device=self.device)
        values = parameter.detach()  # the parameter's memory, changed outside autograd
        # each image's gradient is divided by its norm, which cancels its positive factor
        scale_gradient = not (settings.gradient_normalization and members == 1
                              and not settings.range_penalty)

        def closure() -> float:
            parameter.grad = None  # what zero_grad does, without its bookkeeping
            if state.all_running:  # the usual case: no gather, no scatter of gradients
                indices, images = all_indices, _to_images(parameter, settings.constraint)
            else:
                indices = state.rows()[0]
                images = _to_images(parameter[indices], settings.constraint)
            losses, penalty, activations = self.backward(  # a GPU's one wait in a step
                images, indices, settings.range_penalty, keep_activations=closure.checks,
                scale_gradient=scale_gradient)
            loss, bad_rows = float(losses.sum()) + penalty, None
            if not math.isfinite(loss):  # a finite sum: every loss is finite
                finite = np.isfinite(losses)
                if not finite.all():  # their gradients are not finite either: no step
                    bad_rows = indices[torch.as_tensor(~finite, device=self.device)]
                    loss = float(losses[finite].sum()) + penalty
                    parameter.grad[bad_rows] = 0
            # The trace keeps the first evaluation of each iteration, at its starting images:
            # L-BFGS evaluates the closure again inside its step (line search).
            if closure.losses is None:
                closure.losses, closure.indices = losses, indices
                closure.bad_rows = bad_rows
                closure.bad_images = (None if bad_rows is None
                                      else parameter[bad_rows].detach().clone())
                closure.images, closure.activations = images, activations
            return loss

        def check_in_step(iteration: int) -> bool:
            """Whether this iteration's check can use its step's forward pass: the step's
            images must be the checked ones (pixels in [0, 1]: sigmoid, or clamped by an
            earlier step) and the optimiser must evaluate once per step (not L-BFGS)."""
            return (not uses_closure and iteration < max_iterations
                    and (settings.constraint == "sigmoid"
                         or (settings.constraint == "clamp" and iteration > 0)))

        for iteration in range(first_iteration, max_iterations + 1):
            if (checkpoint and iteration > first_iteration and iteration % checkpoint.every == 0
                    and state.active.any()):
                _save_checkpoint(checkpoint, iteration, state, optimizer, scheduler,
                                 resumed_elapsed + time.perf_counter() - started)
            checks = iteration % check_every == 0 or iteration == max_iterations
            closure.checks = checks and check_in_step(iteration)
            if checks and not closure.checks:
                self._check_and_stop(state, settings, iteration, stop_on_success,
                                     last=iteration == max_iterations)
                self._log_progress(iteration, max_iterations, state.loss_trace, state.active,
                                   started)
            if iteration == max_iterations or not (state.all_running or state.active.any()):
                break
            closure.losses = None
            if uses_closure:
                loss = optimizer.step(closure)
            else:
                loss = closure()
                if closure.checks:  # before the step: a metamer stops at its checked image
                    judged = self.check_activations(closure.activations, closure.images,
                                                    closure.indices)
                    self._stop_passed(state, closure.indices, *judged, iteration,
                                      stop_on_success)
                    self._log_progress(iteration, max_iterations, state.loss_trace,
                                       state.active, started)
                    stepping = state.active[self._reference_rows(closure.indices)]
                    if not stepping.all():  # the loss is that of the metamers that step
                        loss = float(closure.losses[stepping
                                                    & np.isfinite(closure.losses)].sum())
                if settings.gradient_normalization:
                    normalize_per_image_(parameter.grad)
                optimizer.step()
            state.loss_trace[iteration, self._reference_rows(closure.indices)] = closure.losses
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(loss)
                else:
                    scheduler.step()
            if settings.constraint == "clamp":
                values.clamp_(0, 1)
            self._stop_non_finite(state, closure.bad_rows, closure.bad_images, iteration)
            if not state.all_running:  # optimiser state must not move stopped rows
                stopped = state.rows()[1]
                values[stopped] = state.frozen[stopped]
        with torch.no_grad():
            final_images = _to_images(parameter, settings.constraint).clamp(0, 1)
            final_losses = self.loss_per_image(final_images, all_indices)
            if state.non_finite.any():  # their last check may have skipped a part: redo it
                rows = torch.as_tensor(np.flatnonzero(state.non_finite), device=self.device)
                spearman, predicted, _ = self.check(final_images[rows], rows)
                state.final_spearman[state.non_finite] = spearman
                state.predicted_class[state.non_finite] = predicted
        last_rows = np.clip(state.iterations_run, 0, max_iterations)
        finite_end = ~state.non_finite
        state.loss_trace[last_rows[finite_end], np.arange(count)[finite_end]] = (
            final_losses[finite_end])
        success = state.iterations_to_success >= 0
        if checkpoint and Path(checkpoint.path).exists():
            Path(checkpoint.path).unlink()
        return SynthesisResult(
            metamers=final_images.cpu().numpy().astype(np.float32),
            initial_images=initial_images.cpu().numpy().astype(np.float32),
            loss=state.loss_trace, iterations_to_success=state.iterations_to_success,
            success=success, final_spearman=state.final_spearman,
            predicted_class=state.predicted_class,
            reference_class=np.stack(self.reference_predictions, 1),
            iterations_run=state.iterations_run,
            wall_time=resumed_elapsed + time.perf_counter() - started,
            member_names=[m.name for m in self.members],
            stop_reason=np.where(state.non_finite, "non-finite loss",
                                 np.where(success, "success", "budget")))

    @staticmethod
    def _stop_non_finite(state: _State, rows: torch.Tensor | None, images: torch.Tensor | None,
                         iteration: int) -> None:
        """Stop metamers ``rows`` (None: none), whose loss was not finite, at their
        ``images`` before this step."""
        if rows is None:
            return
        row_array = rows.cpu().numpy()
        state.stop(row_array)
        state.frozen[rows] = images
        state.non_finite[row_array] = True
        state.iterations_run[row_array] = iteration
        log.warning("metamer(s) %s: non-finite loss at iteration %d; stopped there, the "
                    "others go on", row_array.tolist(), iteration)

    def _check_and_stop(self, state: _State, settings: OptimizerSettings, iteration: int,
                        stop_on_success: bool, last: bool) -> None:
        """Check the running metamers; stop those that pass. Only the budget's last check
        correlates every metamer (the recorded final Spearman); earlier ones skip metamers
        whose class differs, which cannot pass."""
        indices = state.rows()[0]
        if len(indices) == 0:
            return
        with torch.no_grad():
            images = _to_images(state.parameter[indices], settings.constraint).clamp(0, 1)
        self._stop_passed(state, indices, *self.check(images, indices, correlate_all=last),
                          iteration, stop_on_success)

    def _stop_passed(self, state: _State, indices: torch.Tensor, spearman: np.ndarray,
                     predicted: np.ndarray, passed: np.ndarray, iteration: int,
                     stop_on_success: bool) -> None:
        """Record a check of the metamers ``indices``; stop those that passed at ``iteration``."""
        index_array = indices.cpu().numpy()
        state.final_spearman[index_array] = spearman
        state.predicted_class[index_array] = predicted
        newly = index_array[passed & (state.iterations_to_success[index_array] < 0)]
        state.iterations_to_success[newly] = iteration
        if stop_on_success and len(newly):
            state.iterations_run[newly] = iteration
            state.stop(newly)
            stopped = torch.as_tensor(newly, device=self.device)
            with torch.no_grad():
                state.frozen[stopped] = state.parameter[stopped].detach()

    @staticmethod
    def _log_progress(iteration, max_iterations, loss_trace, active, started) -> None:
        row = loss_trace[max(iteration - 1, 0)]
        # The trace's row of an iteration is written after its step: none yet at iteration 0.
        mean_loss = f"{np.nanmean(row):.4g}" if np.isfinite(row).any() else "-"
        elapsed = time.perf_counter() - started
        eta = elapsed / max(iteration, 1) * (max_iterations - iteration)
        log.info("iteration %d/%d loss %s running %d elapsed %.1fs eta<=%.0fs", iteration,
                 max_iterations, mean_loss, int(active.sum()), elapsed, eta)
