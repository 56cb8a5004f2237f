"""augpipe and other libraries: torchvision pipelines in, other engines out, nn.Module around.

`_torchvision`: `from_torchvision`, a torchvision v2 pipeline as a batched per-sample policy;
`engines`: the same policy run by Kornia, torchvision, DALI or torchaug (`engines.build`), for
cost comparisons; `_module`: `Augment`, a policy as a `torch.nn.Module`. What each op is in those
libraries is declared by the op itself (`Op.counterparts`, `augpipe/ops/_base.py`): this layer
keeps no table of ops.
"""
from augpipe.interop._module import Augment
from augpipe.interop._torchvision import UnsupportedTransform, from_torchvision

__all__ = ["Augment", "UnsupportedTransform", "from_torchvision"]
