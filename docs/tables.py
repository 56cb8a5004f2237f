"""Writes the reference tables of the guides from the registries when the site is built, so they
cannot drift from the code: the op reference (`augpipe.OPS`), the presets (`augpipe.PRESETS`) and
the torchvision transforms `from_torchvision` converts (its converter's own tables). The pages
include them from `docs/_generated/` (not committed)."""
from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent / "_generated"

# What the transforms that become no op of their own do in a converted pipeline.
FORMAT_NOTES = {
    "ToDtype": "the output dtype (float32, bfloat16 or float16, `scale=True`); no op",
    "ToImage": "nothing: the policy takes tensors; no op",
    "ToPureTensor": "nothing: the policy returns tensors; no op",
    "Compose": "the chain of its transforms",
    "RandomApply": "its one transform's op, with that op's probability multiplied by `p`",
    "RandomChoice": "one of its transforms per sample, by its weights (every branch runs, `torch.where` keeps each row's)",
    "RandomOrder": "its transforms in an order drawn per sample",
}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _summary(cls: type) -> str:
    """The first paragraph of the class docstring, without the spec form it may open with (the
    arguments column has it)."""
    doc = inspect.getdoc(cls) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    opening = re.match(r"`[^`]*`(\s+or\s+`[^`]*`)*\s*[:.]?\s*", text)
    rest = text[opening.end():] if opening else text
    return _cell(rest[:1].upper() + rest[1:])


def _value(value) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return _value(value[0]) if value[0] == value[1] else f"{_value(value[0])}:{_value(value[1])}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _arguments(cls: type) -> str:
    """Each argument with its default, as a spec string writes it (a range `lo:hi`, a fixed value
    alone), `p` last."""
    try:
        op = cls()
    except TypeError:  # an op whose fields have no defaults
        return ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls))
    fields = sorted(dataclasses.fields(op), key=lambda f: f.name == "p")
    return ", ".join(f"`{f.name}={_cell(_value(getattr(op, f.name)))}`" for f in fields)


def op_table() -> str:
    """The op reference: every registered op, its arguments and defaults, its torchvision classes."""
    from augpipe import OPS
    lines = ["| op | arguments (defaults) | torchvision | what it does |", "|---|---|---|---|"]
    for name, cls in sorted(OPS.items()):
        torchvision = ", ".join(cls.counterparts.torchvision) or "none"
        positional = ", ".join(cls.positional)
        arguments = _arguments(cls) + (f" (without `key=`: {positional})" if positional else "")
        lines.append(f"| `{name}` | {arguments} | {torchvision} | {_summary(cls)} |")
    return "\n".join(lines) + "\n"


def preset_table() -> str:
    """Every preset and the spec string it stands for."""
    from augpipe.spec import PRESETS
    lines = ["| preset | views (`\\|` separates the chains of asymmetric views) |", "|---|---|"]
    lines += [f"| `{name}` | `{_cell(spec)}` |" for name, spec in sorted(PRESETS.items())]
    return "\n".join(lines) + "\n"


def transform_table() -> str:
    """Every torchvision class `from_torchvision` converts, and what it becomes."""
    from augpipe.interop import _torchvision as converter
    ops = converter.translations()
    lines = ["| torchvision | becomes |", "|---|---|"]
    for name in converter.supported():
        became = f"the op `{ops[name].name}`" if name in ops else FORMAT_NOTES[name]
        lines.append(f"| `{name}` | {became} |")
    return "\n".join(lines) + "\n"


TABLES = {"ops.md": op_table, "presets.md": preset_table, "transforms.md": transform_table}


def write(app=None) -> None:
    """The Sphinx hook (`builder-inited`): write every table before the sources are read."""
    OUT.mkdir(exist_ok=True)
    for name, make in TABLES.items():
        (OUT / name).write_text(make())
