"""Methods by name (`METHODS`), each a small module that registers itself with `@register_method`,
exactly as a user's method does (the contract: `Method`, docs/ARCHITECTURE.md)."""
# they register themselves; this order is the order `--method` lists them in
from ssl_train.methods import simclr, vicreg, byol, barlow, dino, mocov3, supervised  # noqa: F401 (they register themselves)
from ssl_train.methods.base import METHODS, Method, register_method
from ssl_train.methods.options import option
from ssl_train.methods.simclr import info_nce


def build_method(name: str, feature_dim: int, cfg, num_classes: int | None = None) -> Method:
    """Every method is built the same way: (feature dim, config, number of classes)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name](feature_dim, cfg, num_classes)


__all__ = ["METHODS", "Method", "build_method", "info_nce", "option", "register_method"]
