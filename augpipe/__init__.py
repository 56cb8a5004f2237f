"""augpipe: batched augmentation on the device with per-sample random parameters.

    policy = augpipe.build_policy("simclr", size=32, views=2)
    v1, v2 = policy(uint8_images, generator=torch.Generator().manual_seed(0))
    # the same call in two steps: parameters, then pure fixed-shape tensor code
    v1, v2 = policy.apply(uint8_images, policy.sample(uint8_images, generator=g))

Layers, one folder each, each importing only those before it (docs/ARCHITECTURE.md):
`functional` (pure batched kernels, by kind), `sampling` (per-sample draws), `ops` (the op
contract, its registry `register_op`, the gating rule, and the built-in ops by kind, each
declaring its counterparts in other libraries), `policy` (the `Policy` runtime), `spec` (spec
strings, presets, views, `build_policy`) and `interop` (`from_torchvision`, the engines that run
the same policy on Kornia / torchvision / DALI / torchaug, `Augment`: a policy as an
`nn.Module`). Tools: `diagnostics` counts ops and host syncs, `cpu` tunes the CPU, `bench` is
the benchmark's command line. `SyncTimer` and `TimeAccount` are the timers every measurement of
the project uses (on CUDA: synchronised, or events read once).
"""
from _augpipe_shared.timing import SyncTimer, TimeAccount
from augpipe.interop import Augment, UnsupportedTransform, from_torchvision
from augpipe.ops import OPS, ApplyContext, Counterparts, Op, SampleContext, register_op
from augpipe.policy import Policy, PolicyOptions, View, check_images
from augpipe.spec import SpecError, build_policy, list_policies, register_preset

__all__ = ["OPS", "ApplyContext", "Augment", "Counterparts", "Op", "Policy", "PolicyOptions", "SampleContext", "SpecError",
           "SyncTimer", "TimeAccount", "UnsupportedTransform", "View", "build_policy", "check_images", "from_torchvision", "list_policies",
           "register_op", "register_preset"]
