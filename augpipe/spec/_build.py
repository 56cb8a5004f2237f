"""`build_policy`: the one way to make a policy, from a preset name (with optional `[overrides]`)
or a custom spec string (grammar: `augpipe.spec`), for a count of views or a multi-crop string."""
from __future__ import annotations

import re
from dataclasses import fields, replace

from augpipe.ops import OPS, Normalize, Op, RandomResizedCrop, Resize
from augpipe.policy import Policy, PolicyOptions, View
from augpipe.spec._grammar import SpecError, apply_overrides, parse_chains, split_preset
from augpipe.spec._presets import PRESETS
from augpipe.spec._views import parse_views


def list_policies() -> list[str]:
    """The names of the presets (built-in and registered), for `build_policy`.

    Returns:
        The preset names, sorted.
    """
    return sorted(PRESETS)


def register_preset(name: str, spec: str, *, replace: bool = False) -> str:
    """Name a spec string (its ops may be your registered ones); `build_policy(name)`, overrides
    `name[op.key=value]` and `--policy name` then take it.

    Args:
        name: The preset's name, a word like `my_recipe`.
        spec: The spec string it stands for; parsed here, so a bad one fails at once.
        replace: Replace a preset of that name.

    Returns:
        The name.

    Raises:
        ValueError: The name is not a word, or is taken (a preset or an op) and `replace` is False.
        SpecError: The spec cannot be parsed.
    """
    if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise ValueError(f"register_preset: the name must be a word like 'my_recipe', got {name!r}")
    if (name in PRESETS or name in OPS) and not replace:
        raise ValueError(f"register_preset: {name!r} is already a preset or an op; pass replace=True to replace it")
    parse_chains(spec)
    PRESETS[name] = spec
    return name


def resolve_chains(spec: str) -> list[list[Op]]:
    """A preset name (with optional `[overrides]`) or a custom spec -> one op list per chain."""
    name, overrides = split_preset(spec)
    if name in PRESETS:
        chains = parse_chains(PRESETS[name])
        return apply_overrides(chains, overrides, name) if overrides else chains
    if overrides is not None:
        raise SpecError(f"unknown policy {name!r}; valid policies: {', '.join(list_policies())}")
    if re.fullmatch(r"[\w-]+", spec.strip()) and spec.strip() not in OPS:
        raise SpecError(f"unknown policy or op {spec.strip()!r}; valid policies: {', '.join(list_policies())}; "
                        f"valid ops: {', '.join(sorted(OPS))}")
    return parse_chains(spec)


def sized(ops: list[Op], size: tuple[int, int] | None) -> list[Op]:
    """`ops`, with a resize to the view size first when no op sets the size (none when the view
    has no size of its own: it keeps the input's)."""
    return list(ops) if size is None or any(op.changes_size for op in ops) else [Resize(), *ops]


def _view_ops(chain: list[Op], size, scale: tuple[float, float] | None, normalize: str | None) -> list[Op]:
    """A view's ops: its chain, sized, the view's crop scale, and the normalisation last."""
    ops = sized(chain, size)
    if scale is not None:
        if not any(isinstance(op, RandomResizedCrop) for op in ops):
            raise ValueError(f"views: a crop scale @{scale[0]:g}:{scale[1]:g} needs a policy with rrc")
        ops = [replace(op, scale=scale) if isinstance(op, RandomResizedCrop) else op for op in ops]
    if normalize is not None:
        norm = Normalize(stats=normalize)
        norm.validate()
        ops.append(norm)
    return ops


def build_policy(spec: str, *, size: int | tuple[int, int] | None = None, views: int | str = 2,
                 normalize: str | None = None, **options) -> Policy:
    """Build a policy from a preset name or a spec string.

    Args:
        spec: A `list_policies()` name, optionally with overrides `name[op.key=value,...]`, or a
            spec string such as `"rrc(scale=0.2:1)+flip+noise(std=0.05)"`.
        size: The output side (or `(h, w)`) of every view when `views` is a count. None keeps the
            input's size, for policies whose ops keep it (a crop needs a size).
        views: A count (chains cycle over views: view i uses chain `i % len(chains)`), or a
            multi-crop string `"2x224+6x96@0.05:0.14"` (`@LO:HI` sets the crop scale).
        normalize: `"imagenet"` or `"cifar10"` appends per-channel standardisation to every view.
        **options: How it runs, the fields of `PolicyOptions`: `dtype`, `channels_last`,
            `time_ops`, `gating`, `compile`, `cpu_threads`.

    Returns:
        The `Policy`: call it on a uint8 or float batch `[N, C, H, W]` for a list of views.

    Raises:
        SpecError: The spec or the views cannot be parsed or built.
        TypeError: `spec` is not a string, or an option is unknown.

    Example:
        >>> import torch, augpipe
        >>> policy = augpipe.build_policy("crop+noise(std=0.1)", size=16, views=2)
        >>> images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
        >>> [tuple(v.shape) for v in policy(images, generator=torch.Generator().manual_seed(0))]
        [(4, 3, 16, 16), (4, 3, 16, 16)]
    """
    if not isinstance(spec, str):
        raise TypeError(f"build_policy: spec must be a preset name or a spec string like 'rrc+flip', "
                        f"got {type(spec).__name__}")
    name, _ = split_preset(spec)
    valid = {f.name for f in fields(PolicyOptions)} - {"name"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"build_policy: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    options = PolicyOptions(name=name if name in PRESETS else "custom", **options)
    chains = resolve_chains(spec)
    built = []
    for i, (hw, scale) in enumerate(parse_views(views, size)):
        try:
            built.append(View(size=hw, ops=_view_ops(chains[i % len(chains)], hw, scale, normalize)))
        except ValueError as err:
            raise SpecError(f"build_policy({spec!r}): {err}") from None
    return Policy(built, options)
