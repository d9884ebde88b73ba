"""Device, threads, seeds and the progress log shared by every long-running job."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import random

import numpy as np
import torch


def pick_device(preferred: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    if preferred == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preferred)


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    Steps and checks allocate and free the same large buffers (activations, gradients, ranks)
    every iteration; by default glibc maps each one afresh and unmaps it when freed, so every
    reuse page-faults again (ranking a 40 x 25,088 layer ran 3x slower). The cost: a job keeps
    its peak memory until it ends. A no-op without glibc (macOS, Windows, musl).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def configure(threads: int | None, seed: int) -> None:
    """Set torch's thread count and all seeds, and keep freed memory (:func:`keep_freed_memory`).

    On the CPU the kernels used here are deterministic for a given thread count, so outputs
    are bit-identical without torch's deterministic mode (which slows CPU metamer steps up to
    5x); on CUDA, deterministic algorithms are switched on.
    """
    keep_freed_memory()
    if threads:
        torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def library_versions() -> dict[str, str]:
    """Versions recorded next to every output, for reproducibility."""
    import h5py
    import scipy
    import torchvision

    from metamers import __version__

    return {"metamers": __version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "h5py": h5py.__version__,
            "python": platform.python_version()}


def get_logger(name: str) -> logging.Logger:
    """A logger that prints timestamped progress lines to stderr (the rule's log file)."""
    logger = logging.getLogger(name)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return logger
