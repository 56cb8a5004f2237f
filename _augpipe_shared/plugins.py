"""`--plugin MODULE` (repeatable) on every command line: user modules imported before the
arguments are checked, so that the ops, methods and loader backends they register
(`augpipe.register_op`, `ssl_train.register_method`, `loaders.register_backend`) are valid names.

MODULE is an importable module name (`my_ops`, `lab.augment`; the current folder is importable
under `python -m`) or the path of a `.py` file.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HELP = ("import this module first (a module name or a .py file): the ops, methods and loader "
        "backends it registers become valid names; repeatable")


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE", help=HELP)


def import_plugin(name: str) -> ModuleType:
    """Import `name` (a module name or a `.py` path); ImportError names the flag and the module."""
    try:
        if name.endswith(".py"):
            path = Path(name).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            loaded = sys.modules.get(path.stem)
            if loaded is not None and getattr(loaded, "__file__", None) == str(path):
                return loaded  # imported once per process: its registrations stand
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except Exception as err:  # whatever the plugin raises, one line names it
        raise ImportError(f"--plugin {name}: cannot import it ({type(err).__name__}: {err})") from err


def load_plugins(argv: list[str] | None, prog: str) -> list[ModuleType]:
    """Import every `--plugin` module named in `argv` (sys.argv[1:] when None) before the full
    parse; a module that cannot be imported is a usage error (exit 2) naming it."""
    pre = argparse.ArgumentParser(prog=prog, add_help=False)
    add_plugin_flag(pre)
    known, _ = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        return [import_plugin(name) for name in known.plugin]
    except ImportError as err:
        pre.error(str(err))
