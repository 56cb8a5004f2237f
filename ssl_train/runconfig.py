"""Run configs as files: `python -m ssl_train --config run.yaml` (YAML or JSON) gives every flag
its value, and flags on the command line override the file. Keys are `TrainConfig`'s fields
(`batch_size` or `batch-size`); an unknown key or a value of the wrong type is refused in one
line naming the file and the key. Every run writes its resolved config into its folder,
`config.json` and, for a YAML run, `config.yaml`, so `--config RUN/config.yaml --out OTHER`
repeats it.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path

import yaml

from _augpipe_shared.atomicio import write_text
from ssl_train.config import TrainConfig

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class ConfigFileError(ValueError):
    """A --config file that cannot be read as a run config; the message names it and why."""


def _expected(default) -> tuple[type, ...]:
    """The value types a field takes, from its default (an int where a float goes is fine)."""
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    return (type(default),)


def read_config(path: str | Path) -> tuple[dict, str]:
    """The file's values by field name, and its format (`yaml` or `json`)."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigFileError(f"--config {path}: expected a .yaml, .yml or .json file")
    if not path.is_file():
        raise ConfigFileError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) if kind == "yaml" else json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigFileError(f"--config {path}: not valid {kind.upper()} ({first})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in defaults:
            raise ConfigFileError(f"--config {path}: unknown key {key!r}; valid keys: {', '.join(defaults)}")
        types = _expected(defaults[name])
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigFileError(f"--config {path}: {key} must be {' or '.join(t.__name__ for t in types)}, "
                                  f"got {value!r}")
        values[name] = value
    return values, kind


def write_config(config: dict, folder: Path, kind: str) -> None:
    """The resolved config into `folder`: `config.json` always, `config.yaml` for a YAML run."""
    write_text(json.dumps(config, indent=1) + "\n", folder / "config.json")
    if kind == "yaml":
        write_text(yaml.safe_dump(config, sort_keys=False), folder / "config.yaml")
