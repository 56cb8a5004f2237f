"""Policies by name: the spec grammar, the presets, the views grammar, and `build_policy`.

`_grammar` parses spec strings (`rrc+flip+jitter(0.4, p=0.8) | ...`) and overrides
(`name[op.key=value]`) into ops; `_presets` names the built-in policies as spec strings;
`_views` parses the views grammar (`2x224+6x96`); `_build` makes a `Policy` from any of them
(`build_policy`, `list_policies`, `register_preset`).
"""
from augpipe.spec._build import build_policy, list_policies, register_preset, resolve_chains, sized
from augpipe.spec._grammar import SpecError, apply_overrides, parse_chains, parse_op, split_preset, split_top
from augpipe.spec._presets import PRESETS
from augpipe.spec._views import parse_views

__all__ = ["PRESETS", "SpecError", "apply_overrides", "build_policy", "list_policies", "parse_chains", "parse_op",
           "parse_views", "register_preset", "resolve_chains", "sized", "split_preset", "split_top"]
