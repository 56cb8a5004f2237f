"""Which device, which versions: the one place every command line asks (shared by `augpipe`,
`loaders` and `ssl_train`, which do not import each other; docs/ARCHITECTURE.md)."""
from __future__ import annotations

import os
import platform
import time

import torch


def pick_device(name: str) -> torch.device:
    """`auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`; a ValueError naming the flag's
    value when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def versions(*modules: str) -> dict[str, str]:
    """Python's and torch's versions, and each named module's (`missing` when it cannot be imported)."""
    found = {"python": platform.python_version(), "torch": torch.__version__}
    for module in modules:
        try:
            found[module] = __import__(module, fromlist=["__version__"]).__version__
        except Exception:  # an optional library missing here is reported, not fatal
            found[module] = "missing"
    return found


def _cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(device: torch.device) -> dict[str, object]:
    """The machine a measurement ran on, and the day (UTC): benchmark records carry both."""
    info = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
