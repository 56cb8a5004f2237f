"""Methods by name: each a small module behind this registry."""
from ssl_train.methods.barlow import BarlowTwins
from ssl_train.methods.base import Method
from ssl_train.methods.byol import BYOL
from ssl_train.methods.simclr import SimCLR, info_nce
from ssl_train.methods.supervised import Supervised
from ssl_train.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {"simclr": SimCLR, "vicreg": VICReg, "byol": BYOL, "barlow": BarlowTwins,
                                    "supervised": Supervised}


def build_method(name: str, feature_dim: int, cfg, num_classes: int | None = None) -> Method:
    """Every method is built the same way: (feature dim, config, number of classes)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name](feature_dim, cfg, num_classes)


__all__ = ["METHODS", "Method", "build_method", "info_nce"]
