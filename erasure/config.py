"""Load and validate params.yaml, so every stage fails in one line before it touches a model or a file."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")
DISCOVERY_METRICS = Path("metrics/discovery.json")


class ParamError(ValueError):
    """A parameter has a value that is not allowed; the message names it and what is allowed."""


class DataError(ValueError):
    """An input file or remote resource is missing, corrupt or unreachable."""


@dataclass(frozen=True)
class ModelShape:
    n_layers: int
    n_heads: int
    d_model: int
    n_ctx: int
    d_vocab: int


GELU_4L_SHAPE = ModelShape(n_layers=4, n_heads=8, d_model=512, n_ctx=1024, d_vocab=48262)
MODEL_SHAPES: dict[str, ModelShape] = {
    "gelu-4l": GELU_4L_SHAPE,
    "planted-4l": GELU_4L_SHAPE,
    "smollm2-135m": ModelShape(n_layers=30, n_heads=9, d_model=576, n_ctx=8192, d_vocab=49152),
}
LOADERS = {"gelu-4l": "hub", "planted-4l": "planted", "smollm2-135m": "smollm2"}
HUB_FLAGS = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases", "refactor_factored_attn_matrices")


def model_shape(model: str, cfg: dict) -> ModelShape:
    """The shape of a known model, or the `shape` a Hub model's params entry states (checked before loading)."""
    if model in MODEL_SHAPES:
        return MODEL_SHAPES[model]
    shape = cfg.get("shape")
    fields = ModelShape.__dataclass_fields__
    if not isinstance(shape, dict) or set(shape) != set(fields):
        raise ParamError(f"models.{model}.shape = {shape!r} is not allowed: must give {', '.join(fields)}")
    return ModelShape(**{k: require_int(shape[k], f"models.{model}.shape.{k}", 1) for k in fields})
PROMPT_SOURCES = ("authors", "offline")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMPONENT_RE = re.compile(r"^(?:L(\d+)H(\d+)|MLP(\d+))$")


@dataclass(frozen=True)
class Component:
    """An attention head (`L0H2`) or an MLP (`MLP2`); ordered layer by layer, heads before the MLP."""

    layer: int
    head: int | None = None

    def sort_key(self) -> tuple[int, int]:
        return (self.layer, self.head if self.head is not None else 1_000_000)

    @property
    def is_head(self) -> bool:
        return self.head is not None

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}" if self.is_head else f"MLP{self.layer}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: Any, param: str = "component", shape: ModelShape | None = None) -> "Component":
        """Parse `L0H2` / `MLP2`, checking it exists in a model of `shape`."""
        match = _COMPONENT_RE.match(str(text).strip())
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


def checkpoint_hook(name: str) -> str:
    """TransformerLens hook name of a residual checkpoint."""
    kind, layer = re.match(r"resid_(pre|mid|post)(\d+)$", name).groups()
    return f"blocks.{layer}.hook_resid_{kind}"


# --- small validators shared by every section's checks -------------------------------------------------


def get(d: dict, dotted: str) -> Any:
    """d["a"]["b"] for dotted "a.b", with a ParamError naming the missing key."""
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamError(f"{dotted} is missing from params.yaml")
        node = node[part]
    return node


def require_int(value: Any, param: str, lo: int, hi: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        span = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise ParamError(f"{param} = {value!r} is not allowed: must be an integer {span}{why}")
    return value


def require_float(value: Any, param: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ParamError(f"{param} = {value!r} is not allowed: must be a number from {lo} to {hi}")
    return float(value)


def require_revision(value: Any, param: str) -> str | None:
    """A Hub revision: null (the default branch), a branch or tag name, or a commit sha."""
    if value is not None and not (isinstance(value, str) and value.strip() == value and value):
        raise ParamError(f"{param} = {value!r} is not allowed: must be null (main), a branch, a tag or a commit sha")
    return value


def require_choice(value: Any, param: str, choices: tuple | list) -> Any:
    if value not in choices:
        raise ParamError(f"{param} = {value!r} is not allowed: must be one of {', '.join(map(str, choices))}")
    return value


# --- Params ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    raw: dict
    model: str

    @property
    def model_cfg(self) -> dict:
        return self.raw["models"][self.model]

    @property
    def shape(self) -> ModelShape:
        return model_shape(self.model, self.model_cfg)

    @property
    def prompts(self) -> dict:
        return self.model_cfg["prompts"]

    @property
    def writer(self) -> Component:
        value = self.model_cfg["writer"]
        if value == "auto":
            value = _discovered()["writer"]
        return Component.parse(value, f"models.{self.model}.writer", self.shape)

    @property
    def erasers(self) -> list[Component]:
        value = self.model_cfg["erasers"]
        param = f"models.{self.model}.erasers"
        if value == "auto":
            value = _discovered()["erasers"]
            param += " (auto, from metrics/discovery.json)"
        return _check_erasers(value, param, self.writer, self.shape)

    def section(self, name: str) -> dict:
        section = self.raw.get(name)
        if not isinstance(section, dict):
            raise ParamError(f"{name} is missing from params.yaml (a mapping of that stage's params)")
        return section


def _discovered() -> dict:
    if not DISCOVERY_METRICS.exists():
        raise DataError(f"writer/erasers = auto needs {DISCOVERY_METRICS}: run `dvc repro discover` first")
    return json.loads(DISCOVERY_METRICS.read_text())["selected"]


def _check_erasers(value: Any, param: str, writer: Component, shape: ModelShape) -> list[Component]:
    if not isinstance(value, list) or not value:
        raise ParamError(f"{param} = {value!r} is not allowed: must be a non-empty list of heads/MLPs, or auto")
    erasers = [Component.parse(v, param, shape) for v in value]
    if len(set(erasers)) != len(erasers):
        raise ParamError(f"{param} = {value!r} is not allowed: components must be distinct")
    for comp in erasers:
        if comp.layer <= writer.layer:
            raise ParamError(
                f"{param} contains {comp} which is not allowed: erasers must sit in a layer after the "
                f"writer {writer} (layers {writer.layer + 1}..{shape.n_layers - 1})"
            )
    return erasers


def validate_params(raw: dict) -> Params:
    """Check the selected model's params and the shared sections; stage-specific sections are checked by stages."""
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        raise ParamError("models is missing from params.yaml (one entry per model)")
    model = require_choice(raw.get("model"), "model", list(models))
    cfg, base = models[model], f"models.{model}"
    if not isinstance(cfg, dict):
        raise ParamError(f"{base} must be a mapping of that model's params")
    # the offline models have their own loaders; any other entry is a TransformerLens model from the Hub
    require_choice(cfg.get("loader"), f"{base}.loader", [LOADERS.get(model, "hub")])
    if cfg["loader"] == "hub":
        for key in ("tl_name", "hf_repo"):
            if not isinstance(cfg.get(key), str):
                raise ParamError(f"{base}.{key} = {cfg.get(key)!r} is not allowed: must be a name on the Hub")
        for flag in HUB_FLAGS:
            require_choice(cfg.get(flag), f"{base}.{flag}", [True, False])
        require_float(cfg.get("hub_timeout_s"), f"{base}.hub_timeout_s", 0.1, 60)
        for key in ("revision", "tokenizer_revision"):
            require_revision(cfg.get(key), f"{base}.{key}")
        sha = cfg.get("weights_sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256_RE.match(sha)):
            raise ParamError(f"{base}.weights_sha256 = {sha!r} is not allowed: must be null or 64 lowercase hex digits")
    shape = model_shape(model, cfg)
    prompts = get(raw, f"{base}.prompts")
    require_choice(prompts.get("source"), f"{base}.prompts.source", PROMPT_SOURCES)
    if prompts["source"] == "authors" and model != "gelu-4l":
        raise ParamError(f"{base}.prompts.source = 'authors' is not allowed: the authors' data is gelu-4l's; use offline")
    if prompts["source"] == "authors":
        require_int(prompts.get("shuffle_buffer"), f"{base}.prompts.shuffle_buffer", 1, 100_000)
        for key in ("text_revision", "code_revision"):
            require_revision(prompts.get(key), f"{base}.prompts.{key}")
    n_text = require_int(prompts.get("n_text"), f"{base}.prompts.n_text", 0)
    n_code = require_int(prompts.get("n_code"), f"{base}.prompts.n_code", 0)
    if n_text + n_code < 1:
        raise ParamError(f"{base}.prompts.n_text + n_code = 0 is not allowed: must be at least 1 prompt")
    require_int(prompts.get("seq_len"), f"{base}.prompts.seq_len", 2, shape.n_ctx, f" (n_ctx of {model})")
    require_int(prompts.get("seed"), f"{base}.prompts.seed", 0)
    for key in ("bos_token_id", "separator_token_id"):
        if key in cfg:
            require_int(cfg[key], f"{base}.{key}", 0, shape.d_vocab - 1)
    act = get(raw, "activations")
    require_int(act.get("batch_size"), "activations.batch_size", 1, 1024)
    require_int(act.get("n_dla_prompts"), "activations.n_dla_prompts", 1)
    require_choice(get(raw, "stats.headline"), "stats.headline", ["all", "no_bos"])
    params = Params(raw=raw, model=model)
    writer_value = cfg.get("writer")
    if writer_value != "auto":
        writer = Component.parse(writer_value, f"{base}.writer", shape)
        if writer.layer >= shape.n_layers - 1:
            raise ParamError(f"{base}.writer = {writer_value!r} is not allowed: it must write before the last layer")
        if cfg.get("erasers") != "auto":
            _check_erasers(cfg.get("erasers"), f"{base}.erasers", writer, shape)
    elif cfg.get("erasers") != "auto":
        raise ParamError(f"{base}.erasers must be auto when writer is auto")
    return params


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml (the selected model's section and the shared sections)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} not found: run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DataError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} must be a mapping of params")
    return validate_params(raw)
