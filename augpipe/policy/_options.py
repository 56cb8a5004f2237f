"""`PolicyOptions`: how a policy runs (never what it computes), one dataclass for every caller.

Changed with `dataclasses.replace` (`policy.with_options(compile=False)` does that); checked once,
where it is made.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
CPU_THREADS = ("adapt", "keep")
# blend: torch.where, no host read (CUDA, compile); subset: nonzero rows (the CPU); auto: by device
GATINGS = ("auto", "blend", "subset")


@dataclass(frozen=True)
class PolicyOptions:
    """How a policy runs (the options of `build_policy` and `from_torchvision`).

    Attributes:
        name: A label (the preset's name, or `custom`).
        dtype: The output dtype (float32, bfloat16, float16, or their names); computation is float32.
        channels_last: Views in channels_last memory format.
        time_ops: Accumulate seconds per op (`Policy.op_seconds`).
        gating: How `p < 1` is applied per sample: `blend`, `subset` or `auto` (blend on CUDA).
        compile: torch.compile `apply` (True, False, or `auto`: on CUDA only; on the CPU `auto`
            compiles the hue kernel of large views, `augpipe.cpu.CompiledHue`).
        cpu_threads: `adapt` (CPU: pick 1 or all intra-op threads by measured speed) or `keep`.
    """
    name: str = ""
    dtype: torch.dtype | str = torch.float32
    channels_last: bool = False
    time_ops: bool = False
    gating: str = "auto"
    compile: bool | str = "auto"
    cpu_threads: str = "adapt"

    def __post_init__(self):
        if isinstance(self.dtype, str):
            if self.dtype not in DTYPES:
                raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
            object.__setattr__(self, "dtype", DTYPES[self.dtype])
        if self.cpu_threads not in CPU_THREADS:
            raise ValueError(f"cpu_threads must be 'adapt' or 'keep', got {self.cpu_threads!r}")
        if self.gating not in GATINGS:
            raise ValueError(f"gating must be one of {', '.join(GATINGS)}, got {self.gating!r}")
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {self.compile!r}")

    def compiles_on(self, device: torch.device) -> bool:
        return self.compile is True or (self.compile == "auto" and device.type == "cuda")

    def gating_for(self, device: torch.device) -> str:
        """The gating used for images on `device` (compiled policies always blend)."""
        if self.compiles_on(device):
            return "blend"
        if self.gating == "auto":
            return "blend" if device.type == "cuda" else "subset"
        return self.gating
