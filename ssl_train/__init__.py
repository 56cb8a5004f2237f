"""ssl_train: a thin JE-SSL loop (loaders -> augpipe -> method) with a time account per step."""
from ssl_train.config import TrainConfig

__all__ = ["TrainConfig"]
