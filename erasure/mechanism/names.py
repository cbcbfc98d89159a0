"""Names of what the analyses measure: components (`L0H2`, `MLP2`), residual-stream checkpoints (`resid_mid2`),
tokens as people read them (`␣bottom`), and where a metric's interval is stored (`median_low`, `median_high`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from erasure.errors import ParamError

_COMPONENT_RE = re.compile(r"^(?:L(\d+)H(\d+)|MLP(\d+))$")


@dataclass(frozen=True)
class Component:
    """An attention head (`L0H2`) or an MLP (`MLP2`); ordered layer by layer, heads before the MLP."""

    layer: int
    head: int | None = None

    @property
    def is_head(self) -> bool:
        return self.head is not None

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}" if self.is_head else f"MLP{self.layer}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: Any, param: str = "component", shape: Any = None) -> Component:
        """Parse `L0H2` / `MLP2`; with a `shape` (n_layers, n_heads), check it exists in that model."""
        match = _COMPONENT_RE.match(text.strip()) if isinstance(text, str) else None
        allowed = "a head LxHy or MLPx"
        if shape is not None:
            allowed += f" with layer 0..{shape.n_layers - 1} and head 0..{shape.n_heads - 1}"
        if not match:
            raise ParamError(f"{param} = {text!r} is not allowed: must be {allowed}")
        if match.group(3) is not None:
            comp = cls(layer=int(match.group(3)))
        else:
            comp = cls(layer=int(match.group(1)), head=int(match.group(2)))
        if shape is not None and (
            comp.layer >= shape.n_layers or (comp.is_head and comp.head >= shape.n_heads)
        ):
            raise ParamError(f"{param} = {text!r} is not allowed: must be {allowed}")
        return comp


def all_components(n_layers: int, n_heads: int) -> list[Component]:
    """Every head and MLP, layer by layer (heads 0..n-1, then the MLP)."""
    return [
        comp
        for layer in range(n_layers)
        for comp in [Component(layer, h) for h in range(n_heads)] + [Component(layer)]
    ]


def checkpoint_names(n_layers: int) -> list[str]:
    """resid_pre0, resid_mid0, resid_post0, resid_mid1, ... (1 + 2 n_layers checkpoints)."""
    return ["resid_pre0"] + [f"resid_{kind}{i}" for i in range(n_layers) for kind in ("mid", "post")]


INTERVAL_SUFFIXES = ("_low", "_high")  # the interval of metric key `x.y` is stored at `x.y_low`, `x.y_high`


def interval_keys(key: str) -> tuple[str, str]:
    """The metric keys of the interval of `key` (`file:a.median` -> `file:a.median_low`, `file:a.median_high`)."""
    return key + INTERVAL_SUFFIXES[0], key + INTERVAL_SUFFIXES[1]


_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def display_token(text: str, token_id: int | None = None) -> str:
    """A token's text with its whitespace made visible (" bottom" -> "␣bottom", "\n" -> "↵"); other control
    characters as escapes; a token without text (an id the tokenizer does not cover) as ⟨id N⟩."""
    if not text:
        return f"⟨id {token_id}⟩" if token_id is not None else "⟨empty⟩"
    return "".join(_VISIBLE.get(c, c if c.isprintable() else repr(c)[1:-1]) for c in text)
