"""A method's own hyperparameters: a dataclass of `option(...)` fields, declared on the method.

    @register_method
    class MyMethod(Method):
        name = "mine"

        @dataclass
        class Options:
            sharpness: float = option(0.5, "how hard the targets are", check=positive)

Each field becomes the flag `--mine.sharpness` of `python -m ssl_train` (built from the registry,
so a `--plugin`'s method gets its flags too), a key of `method_options` in a `--config` file, and
an entry of `config.method_options` in `result.json`; the method reads `self.options.sharpness`.
A value's type is its default's (bool, int, float or str); a bad one is refused in one line
naming the flag.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

OPTION_TYPES = (bool, int, float, str)


def option(default, help: str = "", check: Callable[[Any], str | None] | None = None):
    """A field of a method's `Options` dataclass: one hyperparameter, and one flag.

    Args:
        default: Its value unless given; its type (bool, int, float or str) is the option's.
        help: The flag's help text in `--help`.
        check: `check(value)` returns what is wrong with a value, or None when it is fine.

    Returns:
        A `dataclasses.field` carrying the help and the check.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Options:
        ...     sharpness: float = option(0.5, "how hard the targets are", check=positive)
        >>> Options().sharpness
        0.5
    """
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def positive(value) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must be >= 0"


def fraction(value) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def flag(method: str, name: str) -> str:
    """The command-line flag of a method's option: `--dino.teacher-temp`."""
    return f"--{method}.{name.replace('_', '-')}"


def option_fields(options_cls) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(options_cls)


def contract_errors(options_cls) -> list[str]:
    """What keeps a method's `Options` from being options (an empty list when it is fine)."""
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        return ["its `Options` must be a dataclass (of option(...) fields)"]
    errors = []
    for f in option_fields(options_cls):
        if f.default is dataclasses.MISSING or not isinstance(f.default, OPTION_TYPES):
            errors.append(f"its option {f.name!r} needs a default that is a bool, int, float or str")
    return errors


def parse_value(text: str, default):
    """A flag's text as the option's type (`true`/`false` for a bool)."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    return type(default)(text)


def _checked(method: str, f: dataclasses.Field, value):
    kind = type(f.default)
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ValueError(f"{flag(method, f.name)}: expected {kind.__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{flag(method, f.name)}: must be a finite number, got {value}")
    check = f.metadata.get("check")
    problem = check(value) if check is not None else None
    if problem:
        raise ValueError(f"{flag(method, f.name)}: {problem}, got {value!r}")
    return value


def resolve(method: str, options_cls, given: dict) -> dict:
    """Every option of `method`: `given` (by field name, dashes allowed) over the defaults, each
    checked. Raises ValueError in one line naming the flag of the first bad or unknown one."""
    if not isinstance(given, dict):
        raise ValueError(f"method_options: expected a mapping of {method}'s options, got {given!r}")
    known = {f.name: f for f in option_fields(options_cls)}
    values = {name: f.default for name, f in known.items()}
    for key, value in given.items():
        name = str(key).replace("-", "_")
        if name not in known:
            valid = ", ".join(flag(method, n) for n in known) or "none"
            raise ValueError(f"{flag(method, name)}: --method {method} has no option {name!r} (its options: {valid})")
        values[name] = _checked(method, known[name], value)
    return values
