"""The same policy on other engines: stock Kornia, torchvision (per image), DALI, and compiled.

`build(engine, policy, **options)` returns a `Runner` (`augpipe/interop/engines/_base.py`): call it as
`runner(images, generator=None) -> list of views` (uint8 `[N,3,H,W]` or float in [0, 1] in, one
float tensor per view out), whatever the engine:

- `augpipe`: the policy itself (its device default: see `PolicyOptions`);
- `augpipe-eager`: the policy never compiled (its device's gating); `augpipe-compiled`: always
  `torch.compile(apply, fullgraph=True)` with blend gating;
- `kornia`: one stock `AugmentationSequential` per view; `kornia-compiled`: that under torch.compile;
- `torchvision`: the v2 chain image by image, as in a DataLoader worker;
- `dali`: DALI's own operators (CPU here, GPU where CUDA exists);
- `torchaug`: torchaug's batch transforms, per sample where torchaug can be (optional: not a
  dependency, `pip install --no-deps torchaug`).

The augpipe engines run every registered op, a user's too; the others run the ops that declare
a counterpart in their library (`Op.counterparts`, by the engine module's `KEY`) and refuse any
other op by name (`Unsupported`).
Used by the benchmark, the parity tests and `ssl_train --aug-engine`.
"""
from __future__ import annotations

import dataclasses
import importlib

from augpipe.interop.engines._base import Engine, Runner, Target, Unsupported, check_supported, translations
from augpipe.policy import own_code


@dataclasses.dataclass(frozen=True)
class AugpipeEngine:
    """Our policy with some options changed (`compile`, `gating`)."""
    name: str
    changes: tuple[tuple[str, object], ...] = ()
    ops = None  # every registered op

    def build(self, policy, **_) -> Runner:
        runnable = policy.with_options(**dict(self.changes)) if self.changes else policy
        return Runner(self.name, runnable, runnable, native=True)


@dataclasses.dataclass(frozen=True)
class TranslatedEngine:
    """Another library's operators: the ops' counterparts under the `KEY` of `module` (imported on use)."""
    name: str
    module: str
    compiled: bool = False

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(translations(importlib.import_module(self.module).KEY))

    def build(self, policy, **options) -> Runner:
        module = importlib.import_module(self.module)
        check_supported(self.name, module.KEY, policy)
        if all(view.size is not None for view in policy.views):
            return Runner(self.name, policy, self._built(module, policy, options))
        # views that keep the input's size: the library's operators are made per input size
        runs: dict[tuple[int, int], object] = {}

        def run(images, generator=None):
            hw = tuple(images.shape[-2:])
            if hw not in runs:
                runs[hw] = self._built(module, policy.for_input_size(hw), options)
            return runs[hw](images, generator=generator)
        return Runner(self.name, policy, run)

    def _built(self, module, policy, options):
        try:
            run = module.build(policy, **options)
        except ImportError as err:  # the engine's library is optional (DALI, torchaug)
            raise Unsupported(f"{self.name}: needs {err.name or 'a library'}, which is not installed; "
                              "use --aug-engine augpipe") from None
        if self.compiled:
            import torch
            run = torch.compile(own_code(run))  # its own graph cache: one per built chain
        return run


_ENGINES: list[Engine] = [
    AugpipeEngine("augpipe"),
    AugpipeEngine("augpipe-eager", (("compile", False),)),
    AugpipeEngine("augpipe-compiled", (("gating", "blend"), ("compile", True))),
    TranslatedEngine("kornia", "augpipe.interop.engines._kornia"),
    TranslatedEngine("kornia-compiled", "augpipe.interop.engines._kornia", compiled=True),
    TranslatedEngine("torchvision", "augpipe.interop.engines._torchvision"),
    TranslatedEngine("dali", "augpipe.interop.engines._dali"),
    TranslatedEngine("torchaug", "augpipe.interop.engines._torchaug"),
]
ENGINE_TABLE: dict[str, Engine] = {e.name: e for e in _ENGINES}
ENGINES = tuple(ENGINE_TABLE)


def build(engine: str, policy, **options) -> Runner:
    if engine not in ENGINE_TABLE:
        raise ValueError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    return ENGINE_TABLE[engine].build(policy, **options)


__all__ = ["ENGINES", "ENGINE_TABLE", "AugpipeEngine", "Engine", "Runner", "Target", "TranslatedEngine", "Unsupported",
           "build"]
