"""What a synthesis records per metamer while it runs, and the result it returns.

Kept apart from :mod:`metamers.generate` so that :mod:`metamers.store` can write a result
without importing the synthesis.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

STOP_REASONS = ("success", "budget", "non-finite loss")


@dataclass
class SynthesisResult:
    """Outputs of one synthesis; arrays are indexed by metamer, members by ``member_names``."""

    metamers: np.ndarray              # (N, C, H, W) float32 in [0, 1]
    initial_images: np.ndarray        # (N, C, H, W) float32 in [0, 1]
    loss: np.ndarray                  # (iterations + 1, N) loss per iteration, NaN once stopped
    iterations_to_success: np.ndarray  # (N,) first successful check, -1 if never
    success: np.ndarray               # (N,) bool
    final_spearman: np.ndarray        # (N, members) generating layer, the metamer's last check
    final_pearson: np.ndarray         # (N, members) the same check's Pearson r
    final_snr_db: np.ndarray          # (N, members) the same check's SNR in dB
    thresholds: list[dict[str, float]]  # per member: the deciding measures' thresholds
    predicted_class: np.ndarray       # (N, members) generator's class on the metamer
    reference_class: np.ndarray       # (N, members) generator's class on the reference
    iterations_run: np.ndarray        # (N,) steps taken before stopping
    wall_time: float                  # seconds for the whole batch
    member_names: list[str]
    stop_reason: np.ndarray           # (N,) one of STOP_REASONS


@dataclass
class MetamerRecords:
    """Per metamer, on the host: whether it still runs, its loss trace and its checks.
    Which metamers run is kept on the host: reading it costs a GPU no synchronisation."""

    active: np.ndarray                 # (N,) bool
    loss_trace: np.ndarray             # (max_iterations + 1, N) float32, NaN where not run
    iterations_to_success: np.ndarray  # (N,) int64, -1 until it passes
    iterations_run: np.ndarray         # (N,) int64, max_iterations until it stops
    final_spearman: np.ndarray         # (N, members) float64, its last check's
    final_pearson: np.ndarray          # (N, members) float64, its last check's
    final_snr_db: np.ndarray           # (N, members) float64, its last check's
    predicted_class: np.ndarray        # (N, members) int64, its last check's (-1: none)
    non_finite: np.ndarray             # (N,) bool, stopped on a non-finite loss

    @classmethod
    def start(cls, count: int, members: int, max_iterations: int) -> MetamerRecords:
        """Records of ``count`` metamers before their first iteration."""
        return cls(active=np.ones(count, dtype=bool),
                   loss_trace=np.full((max_iterations + 1, count), np.nan, dtype=np.float32),
                   iterations_to_success=np.full(count, -1, dtype=np.int64),
                   iterations_run=np.full(count, max_iterations, dtype=np.int64),
                   final_spearman=np.full((count, members), np.nan),
                   final_pearson=np.full((count, members), np.nan),
                   final_snr_db=np.full((count, members), np.nan),
                   predicted_class=np.full((count, members), -1, dtype=np.int64),
                   non_finite=np.zeros(count, dtype=bool))

    def __post_init__(self) -> None:
        self.all_running = bool(self.active.all())  # kept so that a step need not ask
        self._rows: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def max_iterations(self) -> int:
        return len(self.loss_trace) - 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The records as tensors (sharing their memory), for ``torch.save``."""
        return {field.name: torch.from_numpy(getattr(self, field.name)) for field in fields(self)}

    @classmethod
    def from_state_dict(cls, saved: dict[str, torch.Tensor]) -> MetamerRecords:
        return cls(**{field.name: saved[field.name].numpy() for field in fields(cls)})

    def rows(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the running and of the stopped metamers on ``device``, made again only
        after metamers stop."""
        if self._rows is None:
            self._rows = tuple(torch.as_tensor(np.flatnonzero(mask), device=device)
                               for mask in (self.active, ~self.active))
        return self._rows

    def stop(self, rows: np.ndarray) -> None:
        """Metamers ``rows`` run no more."""
        self.active[rows] = False
        self.all_running = False
        self._rows = None

    def record_check(self, rows: np.ndarray, measures: dict[str, np.ndarray],
                     predicted: np.ndarray, passed: np.ndarray, iteration: int,
                     stop_on_success: bool) -> np.ndarray:
        """Record a check of metamers ``rows`` ((k, members) per measure and classes, (k,)
        passed) at ``iteration``; stop those that passed for the first time, if
        ``stop_on_success``. Returns the metamers that stopped."""
        self.record_measures(rows, measures)
        self.predicted_class[rows] = predicted
        newly = rows[passed & (self.iterations_to_success[rows] < 0)]
        self.iterations_to_success[newly] = iteration
        if not (stop_on_success and len(newly)):
            return newly[:0]
        self.iterations_run[newly] = iteration
        self.stop(newly)
        return newly

    def record_measures(self, rows: np.ndarray, measures: dict[str, np.ndarray]) -> None:
        """The (k, members) values of each measure at metamers ``rows``' latest check."""
        for measure, values in measures.items():
            getattr(self, f"final_{measure}")[rows] = values

    def stop_non_finite(self, rows: np.ndarray, iteration: int) -> None:
        """Metamers ``rows`` stop at ``iteration``: their loss was not finite."""
        self.stop(rows)
        self.non_finite[rows] = True
        self.iterations_run[rows] = iteration

    def stop_reasons(self) -> np.ndarray:
        """(N,) one of :data:`STOP_REASONS` each."""
        success, budget, non_finite = STOP_REASONS
        return np.where(self.non_finite, non_finite,
                        np.where(self.iterations_to_success >= 0, success, budget))
