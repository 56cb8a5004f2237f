"""The policy runtime: `Policy` (`sample`, then `apply`; `__call__` = both) and how it runs.

Private modules, one concern each, behind `Policy` (docs/ARCHITECTURE.md):
`_policy` (the contract, image checks), `_grouping` (views sharing ops run as one batch), `_chain`
(one group's ops in order, through the ops' gating rule), `_fusion` (crop + flip as one kernel),
`_chunking` (the CPU path's chunks, threads and reused outputs), `_compiling` (torch.compile),
`_cpu` (the compiled CPU hue) and `_options` (`PolicyOptions`). A policy is made by
`augpipe.build_policy` (`augpipe.spec`) or `augpipe.from_torchvision` (`augpipe.interop`).
"""
from augpipe.policy._compiling import own_code
from augpipe.policy._options import CPU_THREADS, DTYPES, GATINGS, PolicyOptions
from augpipe.policy._grouping import View
from augpipe.policy._policy import Policy, check_images
from augpipe.policy._targets import Targets

__all__ = ["CPU_THREADS", "DTYPES", "GATINGS", "Policy", "PolicyOptions", "Targets", "View", "check_images", "own_code"]
