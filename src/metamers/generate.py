"""Batched metamer synthesis for one model or a set of models optimised jointly.

Life cycle (plenoptic's): construct :class:`MetamerSynthesis` with the members and the
references; :meth:`~MetamerSynthesis.setup` with the initial images and the optimiser settings;
:meth:`~MetamerSynthesis.synthesize` to a budget; :meth:`~MetamerSynthesis.save` and
:meth:`~MetamerSynthesis.load` the whole state (a checkpoint is a save; resuming is a load, then
``synthesize``). docs/synthesis.md describes the design.

All references of a job are optimised at once, as one (N, C, H, W) parameter. Each iteration is
one forward pass to the generating layer and one backward pass (:mod:`metamers.objective`),
over the metamers still running: a metamer stops when it meets the success criterion (checked
every ``check_every`` iterations, :class:`metamers.criteria.SuccessCheck`) or when the budget
runs out, and its image is frozen from then on. A check between two steps correlates the
activations of the next step's forward pass and classifies only metamers whose correlation
passes, running the model on from those activations (:mod:`metamers.heads`).

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
``non-finite loss``) and the others go on. A synthesis resumed from a save ends bit-identical to
an uninterrupted one (on the CPU).
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

from metamers.activations import LOGITS, feature_extractor
from metamers.criteria import CriterionCheck, SuccessCheck, Thresholds
from metamers.heads import head_agrees, layer_to_logits
from metamers.objective import LayerObjective, reference_rows
from metamers.optimizers import (
    CLOSURE_OPTIMIZERS,
    OptimizerSettings,
    build_optimizer,
    normalize_per_image_,
)
from metamers.records import MetamerRecords, SynthesisResult
from metamers.runtime import get_logger
from metamers.store import CHECKPOINT_LOAD_ERRORS, atomic_path

log = get_logger("metamers.generate")
PROGRESS_SECONDS = 5.0  # progress lines at checks: the first, the last and one per this interval



@dataclass
class Member:
    """One model of a generator, with its generating layer and what its metamers must clear
    there (a float: Spearman rho alone, with the class)."""

    name: str
    model: nn.Module
    layer: str
    threshold: Thresholds | float


@dataclass
class Checkpoint:
    """Where and how often a synthesis saves itself; ``fingerprint`` identifies the job (a
    save with another fingerprint is not loaded)."""

    path: Path
    every: int
    fingerprint: str


@dataclass
class _Evaluation:
    """One evaluation of the loss and its gradient, over the metamers ``indices`` (n,)."""

    losses: np.ndarray                  # (n,) per image
    loss: float                         # their sum (the finite ones) and the range penalty
    indices: torch.Tensor
    images: torch.Tensor                # (n, C, H, W) evaluated
    activations: list[torch.Tensor]     # per member (n, ...), if kept
    bad_rows: torch.Tensor | None       # metamers whose loss was not finite
    bad_images: torch.Tensor | None     # their parameter values before the step


def _to_parameter(images: torch.Tensor, constraint: str) -> torch.Tensor:
    if constraint == "sigmoid":
        return torch.logit(images.clamp(1e-3, 1 - 1e-3))
    if constraint in ("clamp", "none"):
        return images.clone()
    raise ValueError(f"Unknown image constraint {constraint!r}: clamp, sigmoid or none.")


def _across_members(per_member: list[tuple[CriterionCheck, np.ndarray]]
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each member's check and predicted classes -> (n, members) values of each measure,
    (n, members) classes, and (n,) whether every member passed."""
    measures = {measure: np.stack([check.values[measure] for check, _ in per_member], 1)
                for measure in per_member[0][0].values}
    return (measures, np.stack([predictions for _, predictions in per_member], 1),
            np.all(np.stack([check.passed for check, _ in per_member], 1), 1))


def _classes_of(logits: torch.Tensor, positions: np.ndarray) -> np.ndarray:
    """The (k,) classes of rows ``positions`` of ``logits`` (n, classes)."""
    return logits[torch.as_tensor(positions, device=logits.device)].argmax(1).cpu().numpy()


class MetamerSynthesis:
    """Synthesis of metamers of ``reference_images`` (N, C, H, W) for one or more generator
    ``members``, on ``device``.

    With ``channels_last``, it runs a channels-last copy of each member's model, which makes
    conv layers' passes 1.04-2.1x faster on the CPU (on an H200 no faster for the zoo's
    models). ``compile_mode`` runs the steps' forward passes through ``torch.compile`` in that
    mode (``default``, ``reduce-overhead``: CUDA graphs, ...): an option for long runs on a GPU
    (ResNet ``layer3`` on an H200: 1.2x and 1.7x faster per iteration after 15-17 s of
    compilation; no faster at a small CNN layer; on 2 CPU cores 1.1x faster at ``layer3``
    and 3x slower at ``relu2``). With ``fake_relu``, a generating layer that is a ReLU passes
    its gradient on unchanged (Feather et al.; :mod:`metamers.fake_relu`). ``l1_weight`` adds
    the loss's L1 term (:class:`metamers.objective.LayerObjective`).

    The state of a run (after :meth:`setup`): ``parameter`` (N, C, H, W) the optimised
    values, ``frozen`` those of stopped metamers, ``optimizer``, ``scheduler``, ``records``
    (:class:`metamers.records.MetamerRecords`, from the first :meth:`synthesize`) and
    ``iteration``, the next iteration to run.
    """

    def __init__(self, members: list[Member], reference_images: torch.Tensor,
                 device: torch.device, channels_last: bool = False,
                 compile_mode: str | None = None, fake_relu: bool = False,
                 l1_weight: float = 0.0):
        if channels_last:  # a copy: the caller's model keeps its layout
            members = [replace(m, model=copy.deepcopy(m.model).to(
                memory_format=torch.channels_last)) for m in members]
        self.members = members
        self.device = device
        self.reference_images = reference_images.to(device)
        self.objective = LayerObjective([m.model for m in members], [m.layer for m in members],
                                        [m.name for m in members], self.reference_images,
                                        compile_mode, fake_relu, l1_weight)
        self.checkers = [feature_extractor(m.model, [m.layer], m.name, with_logits=True)
                         .to(device) for m in members]
        with torch.no_grad():
            logits = [checker(self.reference_images)[LOGITS] for checker in self.checkers]
        self.reference_predictions = [member_logits.argmax(1).cpu().numpy()
                                      for member_logits in logits]
        self.success_checks = [
            SuccessCheck(target, predictions, member.threshold) for target, predictions, member
            in zip(self.objective.reference_targets, self.reference_predictions, members)]
        # checks between steps classify from the step's activations where the graph allows
        self.heads = [self._head(*arguments) for arguments in zip(
            members, self.checkers, self.objective.reference_targets, logits)]
        self.parameter: torch.Tensor | None = None

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

    def setup(self, initial_images: torch.Tensor, settings: OptimizerSettings) -> None:
        """Start a run from ``initial_images`` (N, C, H, W) in [0, 1] with the optimiser,
        scheduler and image constraint of ``settings`` (any earlier run is dropped)."""
        self.settings = settings
        self.initial_images = initial_images
        self.parameter = _to_parameter(initial_images.to(self.device), settings.constraint)
        self.parameter.requires_grad_(True)
        self.frozen = self.parameter.detach().clone()
        self.optimizer, self.scheduler = build_optimizer(settings, self.parameter)
        self.records: MetamerRecords | None = None
        self.iteration, self.elapsed = 0, 0.0
        self._all_indices = torch.arange(len(initial_images), device=self.device)
        # each image's gradient is divided by its norm, which cancels its positive factor
        self._scale_gradient = not (settings.gradient_normalization and len(self.members) == 1
                                    and not settings.range_penalty)

    def save(self, path: Path, fingerprint: str = "") -> None:
        """Write the run's whole state (images, optimiser and scheduler state, iteration,
        records, RNG) to ``path`` (atomically), marked with ``fingerprint``."""
        payload = {"fingerprint": fingerprint, "iteration": self.iteration,
                   "elapsed": self.elapsed, "rng": torch.get_rng_state(),
                   "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                   "parameter": self.parameter.detach().cpu(), "frozen": self.frozen.cpu(),
                   "records": self.records.state_dict()}
        with atomic_path(path) as partial_path:
            torch.save(payload, partial_path)

    def load(self, path: Path, fingerprint: str = "") -> None:
        """Continue the run saved at ``path`` (by :meth:`save` with ``fingerprint``), after
        :meth:`setup` with the settings it ran with. Raises ValueError for a save of another
        ``fingerprint`` and one of ``store.CHECKPOINT_LOAD_ERRORS`` for an unreadable file."""
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") != fingerprint:
            raise ValueError(f"{path} was saved by another job (fingerprint "
                             f"{saved.get('fingerprint')!r}, not {fingerprint!r}).")
        records = MetamerRecords.from_state_dict(saved["records"])  # all read before any is set
        iteration, elapsed, rng = saved["iteration"], saved["elapsed"], saved["rng"]
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        with torch.no_grad():
            self.parameter.copy_(saved["parameter"])
        self.frozen.copy_(saved["frozen"])
        torch.set_rng_state(rng)
        self.records, self.iteration, self.elapsed = records, iteration, elapsed

    def synthesize(self, max_iterations: int, check_every: int = 10,
                   stop_on_success: bool = True,
                   checkpoint: Checkpoint | None = None) -> SynthesisResult:
        """Optimise all metamers from :attr:`iteration` to ``max_iterations``, checking every
        ``check_every`` iterations and at the end; with ``checkpoint``, :meth:`save` every
        ``checkpoint.every`` iterations. See the module docstring for loss and stopping."""
        if self.parameter is None:
            raise RuntimeError("setup() starts a synthesis: call it before synthesize().")
        if self.records is None:
            self.records = MetamerRecords.start(len(self.parameter), len(self.members),
                                                max_iterations)
        elif self.records.max_iterations != max_iterations:
            raise ValueError(f"this run's budget is {self.records.max_iterations} iterations, "
                             f"not {max_iterations}")
        first, self._started = self.iteration, time.perf_counter() - self.elapsed
        self._logged = -math.inf
        for iteration in range(first, max_iterations + 1):
            self.iteration = iteration
            if (checkpoint and iteration > first and iteration % checkpoint.every == 0
                    and self.records.active.any()):
                self.elapsed = time.perf_counter() - self._started
                self.save(checkpoint.path, checkpoint.fingerprint)
            if not self._iterate(iteration, max_iterations, check_every, stop_on_success):
                break
        return self._finish()

    def _iterate(self, iteration: int, max_iterations: int, check_every: int,
                 stop_on_success: bool) -> bool:
        """Check (when due), then step, at ``iteration``; False once nothing is left to do."""
        records = self.records
        checks = iteration % check_every == 0 or iteration == max_iterations
        in_step = checks and self._check_in_step(iteration, max_iterations)
        if checks and not in_step:
            self._check_and_stop(iteration, stop_on_success, last=iteration == max_iterations)
            self._log_progress(iteration, max_iterations)
        if iteration == max_iterations or not (records.all_running or records.active.any()):
            return False
        if self.settings.name in CLOSURE_OPTIMIZERS:
            evaluation, loss = self._step_with_closure()
        else:
            evaluation, loss = self._step(iteration, max_iterations, in_step, stop_on_success)
        rows = reference_rows(evaluation.indices, len(self.parameter))
        records.loss_trace[iteration, rows] = evaluation.losses
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(loss)
        elif self.scheduler is not None:
            self.scheduler.step()
        values = self.parameter.detach()  # the parameter's memory, changed outside autograd
        if self.settings.constraint == "clamp":
            values.clamp_(0, 1)
        if evaluation.bad_rows is not None:
            self._stop_non_finite(evaluation.bad_rows, evaluation.bad_images, iteration)
        if not records.all_running:  # optimiser state must not move stopped rows
            stopped = records.rows(self.device)[1]
            values[stopped] = self.frozen[stopped]
        return True

    def _check_in_step(self, iteration: int, max_iterations: int) -> bool:
        """Whether this iteration's check can use its step's forward pass: the step's images
        must be the checked ones (pixels in [0, 1]: sigmoid, or clamped by an earlier step)
        and the optimiser must evaluate once per step (not L-BFGS)."""
        constraint = self.settings.constraint
        return (self.settings.name not in CLOSURE_OPTIMIZERS and iteration < max_iterations
                and (constraint == "sigmoid" or (constraint == "clamp" and iteration > 0)))

    def _step(self, iteration: int, max_iterations: int, in_step: bool,
              stop_on_success: bool) -> tuple[_Evaluation, float]:
        """One step of an optimiser without a closure, after this iteration's check if
        ``in_step`` (on the step's activations; a metamer stops at its checked image)."""
        evaluation = self._evaluate(keep_activations=in_step)
        loss = evaluation.loss
        if in_step:
            judged = self.check_activations(evaluation.activations, evaluation.images,
                                            evaluation.indices)
            self._stop_passed(evaluation.indices, *judged, iteration, stop_on_success)
            self._log_progress(iteration, max_iterations)
            stepping = self.records.active[reference_rows(evaluation.indices,
                                                          len(self.parameter))]
            if not stepping.all():  # the loss is that of the metamers that step
                loss = float(evaluation.losses[stepping & np.isfinite(evaluation.losses)].sum())
        if self.settings.gradient_normalization:
            normalize_per_image_(self.parameter.grad)
        self.optimizer.step()
        return evaluation, loss

    def _step_with_closure(self) -> tuple[_Evaluation, float]:
        """One step of an optimiser that evaluates the loss as often as it needs (L-BFGS's
        line search). The trace keeps the first evaluation, at the step's starting images."""
        evaluations = []

        def closure() -> float:
            evaluations.append(self._evaluate(keep_activations=False))
            return evaluations[-1].loss

        loss = self.optimizer.step(closure)
        return evaluations[0], loss

    def _evaluate(self, keep_activations: bool) -> _Evaluation:
        """The loss of the running metamers and its gradient, set as the parameter's. A
        metamer whose loss is not finite gets no gradient (its images' is not finite either)."""
        parameter, records = self.parameter, self.records
        parameter.grad = None  # what zero_grad does, without its bookkeeping
        if records.all_running:  # the usual case: no gather, no scatter of gradients
            indices, images = self._all_indices, self._images(parameter)
        else:
            indices = records.rows(self.device)[0]
            images = self._images(parameter[indices])
        losses, penalty, activations = self.objective.backward(  # a GPU's one wait in a step
            images, indices, self.settings.range_penalty, keep_activations,
            self._scale_gradient)
        loss, bad_rows, bad_images = float(losses.sum()) + penalty, None, None
        if not math.isfinite(loss):  # a finite sum: every loss is finite
            finite = np.isfinite(losses)
            if not finite.all():
                bad_rows = indices[torch.as_tensor(~finite, device=self.device)]
                loss = float(losses[finite].sum()) + penalty
                parameter.grad[bad_rows] = 0
                bad_images = parameter[bad_rows].detach().clone()
        return _Evaluation(losses, loss, indices, images, activations, bad_rows, bad_images)

    def _images(self, values: torch.Tensor) -> torch.Tensor:
        """Images from parameter ``values`` under the run's constraint."""
        return torch.sigmoid(values) if self.settings.constraint == "sigmoid" else values

    def _check_and_stop(self, iteration: int, stop_on_success: bool, last: bool) -> None:
        """Check the running metamers on their own forward pass; stop those that pass. The
        budget's last check classifies every metamer (the recorded final classes)."""
        indices = self.records.rows(self.device)[0]
        if len(indices) == 0:
            return
        with torch.no_grad():
            images = self._images(self.parameter[indices]).clamp(0, 1)
        self._stop_passed(indices, *self.check(images, indices, classify_all=last), iteration,
                          stop_on_success)

    def _stop_passed(self, indices: torch.Tensor, measures: dict[str, np.ndarray],
                     predicted: np.ndarray, passed: np.ndarray, iteration: int,
                     stop_on_success: bool) -> None:
        """Record a check of the metamers ``indices``; freeze those that stop at their image."""
        newly = self.records.record_check(indices.cpu().numpy(), measures, predicted, passed,
                                          iteration, stop_on_success)
        if len(newly):
            stopped = torch.as_tensor(newly, device=self.device)
            with torch.no_grad():
                self.frozen[stopped] = self.parameter[stopped].detach()

    def _stop_non_finite(self, rows: torch.Tensor, images: torch.Tensor,
                         iteration: int) -> None:
        """Stop metamers ``rows``, whose loss was not finite, at their ``images`` before this
        step."""
        row_array = rows.cpu().numpy()
        self.records.stop_non_finite(row_array, iteration)
        self.frozen[rows] = images
        log.warning("metamer(s) %s: non-finite loss at iteration %d; stopped there, the "
                    "others go on", row_array.tolist(), iteration)

    @torch.no_grad()
    def check(self, images: torch.Tensor, indices: torch.Tensor, classify_all: bool = True
              ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The criterion for ``images`` (n, C, H, W), metamers of references ``indices`` (n,),
        under every member, from one pass of each model: each measure (n, members), (n, members)
        classes and (n,) passed. Without ``classify_all`` a class is only read where the
        measures pass (elsewhere -1)."""
        rows = reference_rows(indices, len(self.reference_images))
        per_member = []
        for checker, member, success in zip(self.checkers, self.members, self.success_checks):
            outputs = checker(images)
            per_member.append(success.check(outputs[member.layer], rows,
                                            partial(_classes_of, outputs[LOGITS]),
                                            classify_all))
        return _across_members(per_member)

    @torch.no_grad()
    def check_activations(self, activations: list[torch.Tensor], images: torch.Tensor,
                          indices: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`check` from each member's generating-layer ``activations`` (n, ...) of
        ``images``, taken from a step's forward pass: classes (:meth:`_classify_from_layer`)
        only for metamers whose correlation passes; other classes are -1."""
        rows = reference_rows(indices, len(self.reference_images))
        return _across_members([
            success.check(activation, rows,
                          partial(self._classify_from_layer, member, activation, images))
            for member, (activation, success) in enumerate(zip(activations,
                                                               self.success_checks))])

    def _classify_from_layer(self, member: int, activation: torch.Tensor, images: torch.Tensor,
                             positions: np.ndarray) -> np.ndarray:
        """Member's (k,) classes of the metamers at ``positions``: from their generating-layer
        ``activation`` on through the rest of the model, or from ``images`` through the whole
        model where the rest reads values from before the layer."""
        selected = torch.as_tensor(positions, device=images.device)
        head = self.heads[member]
        if head is None:
            logits = self.checkers[member](images[selected])[LOGITS]
        else:
            logits = head(activation[selected])[LOGITS]
        return logits.argmax(1).cpu().numpy()

    def _finish(self) -> SynthesisResult:
        """The result: final images, their losses closing each trace, records."""
        records, count = self.records, len(self.parameter)
        with torch.no_grad():
            final_images = self._images(self.parameter).clamp(0, 1)
            final_losses = self.objective.loss_per_image(final_images, self._all_indices)
        if records.non_finite.any():  # their last check may have skipped a part: redo it
            rows = torch.as_tensor(np.flatnonzero(records.non_finite), device=self.device)
            measures, predicted, _ = self.check(final_images[rows], rows)
            records.record_measures(np.flatnonzero(records.non_finite), measures)
            records.predicted_class[records.non_finite] = predicted
        last_rows = np.clip(records.iterations_run, 0, records.max_iterations)
        finite_end = ~records.non_finite
        records.loss_trace[last_rows[finite_end], np.arange(count)[finite_end]] = (
            final_losses[finite_end])
        return SynthesisResult(
            metamers=final_images.cpu().numpy().astype(np.float32),
            initial_images=self.initial_images.cpu().numpy().astype(np.float32),
            loss=records.loss_trace, iterations_to_success=records.iterations_to_success,
            success=records.iterations_to_success >= 0, final_spearman=records.final_spearman,
            final_pearson=records.final_pearson, final_snr_db=records.final_snr_db,
            thresholds=[check.thresholds.measures for check in self.success_checks],
            predicted_class=records.predicted_class,
            reference_class=np.stack(self.reference_predictions, 1),
            iterations_run=records.iterations_run,
            wall_time=time.perf_counter() - self._started,
            member_names=[m.name for m in self.members], stop_reason=records.stop_reasons())

    def _log_progress(self, iteration: int, max_iterations: int) -> None:
        """A progress line at this check if it is the first, the last, or PROGRESS_SECONDS
        after the previous line."""
        now, last = time.perf_counter(), (iteration == max_iterations
                                          or not self.records.active.any())
        if not last and now - self._logged < PROGRESS_SECONDS:
            return
        self._logged = now
        # The trace's row of an iteration is written after its step: none yet at iteration 0.
        row = self.records.loss_trace[max(iteration - 1, 0)]
        mean_loss = f"{np.nanmean(row):.4g}" if np.isfinite(row).any() else "-"
        elapsed = now - self._started
        eta = elapsed / max(iteration, 1) * (max_iterations - iteration)
        log.info("iteration %d/%d loss %s running %d elapsed %.1fs eta<=%.0fs", iteration,
                 max_iterations, mean_loss, int(self.records.active.sum()), elapsed, eta)


def resume(synthesis: MetamerSynthesis, checkpoint: Checkpoint) -> bool:
    """Load ``checkpoint``'s save into ``synthesis`` (after its :meth:`~MetamerSynthesis.setup`)
    where there is one of this job: True if it did. A damaged save only costs the work it
    held: the run starts from iteration 0."""
    if not Path(checkpoint.path).exists():
        return False
    try:
        synthesis.load(checkpoint.path, checkpoint.fingerprint)
    except CHECKPOINT_LOAD_ERRORS as error:
        log.warning("checkpoint %s not resumed (%s): starting from iteration 0",
                    checkpoint.path, error)
        return False
    log.info("resuming from checkpoint %s at iteration %d", checkpoint.path,
             synthesis.iteration)
    return True
