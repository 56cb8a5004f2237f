"""Spec strings: one line that names a policy, for the command line and for configs.

Grammar (views separated by `|`, ops by `+`):

    spec     := chain ( "|" chain )*            one chain per view, cycled over the views
    chain    := op ( "+" op )*
    op       := NAME [ "(" arg ( "," arg )* ")" ]
    arg      := [ KEY "=" ] value               positional args follow the op's declared order
    value    := NUMBER | NUMBER ":" NUMBER | WORD

    preset   := NAME [ "[" override ( "," override )* "]" ]
    override := [ OP "." ] KEY "=" value        OP may be left out when one op has KEY

Examples: `rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)+noise(std=0.05)`,
`byol[blur.p=0.5]`, `noise[std=0.05:0.2]`.
"""
from __future__ import annotations

import re
from dataclasses import replace

from augpipe.ops import OPS, Op, op_fields
from augpipe.spec._presets import PRESETS

_OP_RE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?:\((.*)\))?\s*$")
_PRESET_RE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\[(.*)\]\s*$")


class SpecError(ValueError):
    """A spec string that cannot be parsed; the message says what was expected."""


def _convert(op: str, key: str, default: object, text: str) -> object:
    text = text.strip()
    try:
        if isinstance(default, tuple):
            parts = [float(x) for x in text.split(":")]
            if len(parts) == 1:
                parts = parts * 2
            if len(parts) != 2:
                raise ValueError
            return (parts[0], parts[1])
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        return text
    except ValueError:
        kind = "a number or a range LO:HI" if isinstance(default, tuple) else type(default).__name__
        raise SpecError(f"{op}: {key}={text!r} is not valid, expected {kind}") from None


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_op(text: str) -> Op:
    match = _OP_RE.match(text)
    if not match:
        raise SpecError(f"cannot parse op {text.strip()!r}: expected NAME or NAME(args)")
    name, args = match.group(1), match.group(2)
    if name not in OPS:
        raise SpecError(f"unknown op {name!r}; valid ops: {', '.join(sorted(OPS))}")
    cls = OPS[name]
    defaults = op_fields(cls)
    values: dict[str, object] = {}
    if args and args.strip():
        for i, arg in enumerate(a for a in args.split(",")):
            if "=" in arg:
                key, value = arg.split("=", 1)
                key = key.strip()
            else:
                if values.keys() - set(cls.positional[:i]):
                    raise SpecError(f"{name}: positional argument {arg.strip()!r} after a keyword argument")
                if i >= len(cls.positional):
                    raise SpecError(f"{name}: too many positional arguments; it takes "
                                    f"{', '.join(cls.positional) or 'none'}")
                key, value = cls.positional[i], arg
            if key not in defaults:
                raise SpecError(f"{name}: unknown argument {key!r}; valid: {', '.join(defaults)}")
            if key in values:
                raise SpecError(f"{name}: argument {key!r} given twice")
            values[key] = _convert(name, key, defaults[key], value)
    op = cls(**values)
    try:
        op.validate()
    except ValueError as err:
        raise SpecError(str(err)) from None
    return op


def parse_chains(text: str) -> list[list[Op]]:
    """A spec string to one op list per view chain.

    A one-chain preset may stand inside a chain, with or without overrides: `crop+solarize(p=1)`
    is `rrc(scale=0.08:1)+flip+solarize(p=1)`.
    """
    if not text or not text.strip():
        raise SpecError("empty policy spec")
    chains = []
    for chain in split_top(text, "|"):
        ops: list[Op] = []
        for item in split_top(chain, "+"):
            name, overrides = split_preset(item)
            if name in PRESETS and name not in OPS and "(" not in item:
                inner = parse_chains(PRESETS[name])
                if overrides:
                    inner = apply_overrides(inner, overrides, name)
                if len(inner) != 1:
                    raise SpecError(f"preset {name!r} has {len(inner)} view chains; only a one-chain preset "
                                    "can stand inside a chain")
                ops += inner[0]
            else:
                ops.append(parse_op(item))
        chains.append(ops)
    return chains


def apply_overrides(chains: list[list[Op]], text: str, preset: str) -> list[list[Op]]:
    """Apply `[op.key=value, ...]` overrides to every op of that name in every chain."""
    result = [list(chain) for chain in chains]
    for item in split_top(text, ","):
        if not item.strip():
            continue
        if "=" not in item:
            raise SpecError(f"{preset}: override {item.strip()!r} must look like op.key=value")
        target, value = (s.strip() for s in item.split("=", 1))
        if "." in target:
            op_name, key = target.split(".", 1)
        else:
            key = target
            owners = {op.name for chain in chains for op in chain if key in op_fields(type(op))}
            if len(owners) != 1:
                valid = sorted({f"{o.name}.{k}" for c in chains for o in c for k in op_fields(type(o))})
                raise SpecError(f"{preset}: override {key!r} is ambiguous or unknown; valid keys: {', '.join(valid)} "
                                "(the op. prefix may be left out when one op has the key)")
            op_name = owners.pop()
        hit = False
        for chain in result:
            for i, op in enumerate(chain):
                if op.name != op_name:
                    continue
                defaults = op_fields(type(op))
                if key not in defaults:
                    raise SpecError(f"{op_name}: unknown argument {key!r}; valid: {', '.join(defaults)}")
                chain[i] = replace(op, **{key: _convert(op_name, key, defaults[key], value)})
                try:
                    chain[i].validate()
                except ValueError as err:
                    raise SpecError(str(err)) from None
                hit = True
        if not hit:
            raise SpecError(f"{preset}: has no op {op_name!r} to override; its ops: "
                            f"{', '.join(sorted({o.name for c in chains for o in c}))}")
    return result


def split_preset(text: str) -> tuple[str, str | None]:
    """`name[overrides]` -> (name, overrides); a plain word -> (word, None)."""
    match = _PRESET_RE.match(text)
    if match:
        return match.group(1), match.group(2)
    return text.strip(), None
