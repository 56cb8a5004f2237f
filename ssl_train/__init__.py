"""ssl_train: a thin JE-SSL loop (loaders -> augpipe -> method) with a time account per step.

Extension point: `register_method` (a `Method` subclass with a `name`; docs/ARCHITECTURE.md).
"""
from ssl_train.config import TrainConfig
from ssl_train.methods import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "TrainConfig", "register_method"]
