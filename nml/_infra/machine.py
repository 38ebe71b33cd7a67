"""What a wall-clock measurement depends on besides the code: the machine and the torch build."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_fingerprint() -> dict[str, object]:
    """CPU model, core count, torch version and thread count: a timing measured on one fingerprint
    is reused only on the same fingerprint (part of the cache key of measured tables)."""
    import torch

    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
