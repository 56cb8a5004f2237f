"""augpipe: batched augmentation on the device with per-sample random parameters.

    policy = augpipe.build_policy("simclr", size=32, views=2)
    v1, v2 = policy(uint8_images, generator=torch.Generator().manual_seed(0))
    # the same call in two steps: parameters, then pure fixed-shape tensor code
    v1, v2 = policy.apply(uint8_images, policy.sample(uint8_images, generator=g))

Layers (one module each): `sampling` draws per-sample parameters, `kernels` are pure batched
functions, `ops` pairs the two, `spec`/`presets` name policies, `policy` gates and runs them
(masked blend or row subsets), `engines` runs the same policy on Kornia / torchvision / DALI,
`diagnostics` counts ops and host syncs, `cpu` tunes the CPU allocator.
"""
from augpipe.policy import Policy, View, build_policy, check_images, list_policies
from augpipe.spec import SpecError

__all__ = ["Policy", "SpecError", "View", "build_policy", "check_images", "list_policies"]
