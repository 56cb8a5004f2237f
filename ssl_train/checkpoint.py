"""Checkpoints that hold data, not code, written atomically.

A checkpoint is a dict of state dicts (tensors), numbers, strings, lists and dicts: exactly what
`torch.load(..., weights_only=True)` accepts, so loading never unpickles arbitrary objects (a
crafted file cannot run code). Anything else gives one line naming the file and what to do.
"""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch

from _augpipe_shared.atomicio import atomic_write
from ssl_train.state import schema_keys


class CheckpointError(ValueError):
    """Not a checkpoint this code can load; the message names the file."""


def save_checkpoint(state: dict, path: Path) -> None:
    """`state` into `path` atomically; a full disk raises `WriteError` (`_augpipe_shared.atomicio`) and keeps the old file."""
    def write(tmp):
        with open(tmp, "wb") as f:  # through a Python file: a full disk surfaces as the OSError it is
            torch.save(state, f)
    atomic_write(path, write)


def _why_not(err: Exception) -> str:
    """One line for why torch.load refused a file (torch's own messages run to paragraphs)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if found:  # a pickle that names code to call: refused, never run
        return (f"it is a pickle holding more than tensors and plain data ({found.group(1)}), which is never "
                "unpickled here: torch.load(weights_only=True)")
    if isinstance(err, pickle.UnpicklingError) or "zip archive" in str(err):
        return "not a torch.save file, or a truncated one"
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:160]}" if text else type(err).__name__


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    hint = "delete it (or start again with --overwrite) if it is not an ssl_train checkpoint"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file here")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused, truncated or not a torch file at all
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_why_not(err)}); {hint}") from None
    missing = [k for k in schema_keys() if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not an ssl_train checkpoint (missing {', '.join(missing)}); {hint}")
    return state
