"""ssl_train: a thin JE-SSL loop (loaders -> augpipe -> method) with a time account per step.

Extension point: `register_method` (a `Method` subclass with a `name`, and its own hyperparameters
as an `Options` dataclass of `option(...)` fields; docs/ARCHITECTURE.md).
"""
from ssl_train.config import TrainConfig
from ssl_train.methods import METHODS, Method, option, register_method

__all__ = ["METHODS", "Method", "TrainConfig", "option", "register_method"]
