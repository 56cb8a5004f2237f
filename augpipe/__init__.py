"""augpipe: batched augmentation on the device with per-sample random parameters.

    policy = augpipe.build_policy("simclr", size=32, views=2)
    v1, v2 = policy(uint8_images, generator=torch.Generator().manual_seed(0))
    # the same call in two steps: parameters, then pure fixed-shape tensor code
    v1, v2 = policy.apply(uint8_images, policy.sample(uint8_images, generator=g))

Layers (one module each; docs/ARCHITECTURE.md): `op` is the op contract and its registry
(`register_op`), `sampling` draws per-sample parameters, `kernels` are pure batched functions,
`ops` are the built-in ops, `spec`/`presets`/`views` name policies, `build` makes them, `policy`
is the sample/apply contract, run by `grouping`, `chain`, `gating`, `fusion`, `chunking`,
`compiling` and `options`; `engines` runs the same policy on Kornia / torchvision / DALI,
`diagnostics` counts ops and host syncs, `cpu` tunes the CPU,
`torchvision_dropin` converts torchvision v2 pipelines (`from_torchvision`), `module` wraps a
policy as an `nn.Module` (`Augment`). `SyncTimer` and `TimeAccount` are the timers every
measurement of the project uses (on CUDA: synchronised, or events read once).
"""
from _augpipe_shared.timing import SyncTimer, TimeAccount
from augpipe.interop import Augment, UnsupportedTransform, from_torchvision
from augpipe.ops import OPS, ApplyContext, Counterparts, Op, SampleContext, register_op
from augpipe.policy import Policy, PolicyOptions, View, check_images
from augpipe.spec import SpecError, build_policy, list_policies, register_preset

__all__ = ["OPS", "ApplyContext", "Augment", "Counterparts", "Op", "Policy", "PolicyOptions", "SampleContext", "SpecError",
           "SyncTimer", "TimeAccount", "UnsupportedTransform", "View", "build_policy", "check_images", "from_torchvision", "list_policies",
           "register_op", "register_preset"]
