"""A pruned child: its spec derived from the parent's (pattern minus the least important layers, narrower widths),
its weights sliced from the parent's by importance (the top-scoring channels, heads, neurons kept in their order).

What a kind can narrow and how its weights are sliced is the table `SLICERS` (kind name -> `Slicer`), so nothing
here asks which class a block is. Invariants kept:
- attention: whole GQA groups are dropped by their summed head scores, and every kept group keeps the same number
  of its best query heads, so n_heads stays a multiple of n_kv_heads and each query head keeps its own KV head;
- Mamba-2: n_groups and d_state are kept (B and C are untouched); each group keeps the same number of its best
  heads (n_heads stays a multiple of n_groups, each head keeps its group), and every head keeps the same head_dim
  channels (the best by their score summed over heads).
Pruning nothing gives the parent's weights exactly, hence its logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archsearch.errors import UserError
from archsearch.spec import ModelSpec, parse_spec
from archsearch.spec.kinds import kind_class

from .importance import Importance

Index = torch.Tensor  # int64 positions kept along one dimension
Plan = dict[str, list[tuple[int, Index]]]  # parameter suffix -> [(dim, kept positions)]


def top(scores: torch.Tensor, k: int) -> Index:
    """The positions of the k best scores, in their original order (ties: the earlier position)."""
    order = torch.sort(-scores.float(), stable=True).indices[:k]
    return torch.sort(order).values


def channels(units: Index, width: int, within: Index | None = None) -> Index:
    """Flat positions of channels `within` (default all) of each unit of `width` channels."""
    inner = torch.arange(width) if within is None else within
    return (units[:, None] * width + inner[None, :]).reshape(-1)


def resolved_spec(spec: ModelSpec) -> ModelSpec:
    """The same model with every block's sizes absolute (n_heads, ffn_dim, head_dim, n_kv_heads instead of expand,
    ffn_ratio or defaults), so that a narrower d_model leaves them alone."""
    data = spec.to_dict()
    data["blocks"] = {symbol: block.resolved(spec.d_model) for symbol, block in spec.blocks.items()}
    return parse_spec(data)


def kept_layers(importance: Importance, n_layers: int) -> list[int]:
    """The parent layers a child of `n_layers` keeps: the most important ones, in order."""
    total = importance.layers.numel()
    if not 1 <= n_layers <= total:
        raise UserError(f"n_layers {n_layers} is not allowed for a parent of {total} layers; allowed: 1 .. {total}")
    return top(importance.layers, n_layers).tolist()


def child_pattern(parent: ModelSpec, importance: Importance, n_layers: int) -> str:
    return "".join(parent.pattern_string[i] for i in kept_layers(importance, n_layers))


# ------------------------------------------------------------------------------------------ per-kind slicing
@dataclass(frozen=True)
class Slicer:
    """A kind's narrowable fields and its weight plan: `plan(parent dims, child dims, the layer's scores, kept
    d_model channels, bias names present)` -> parameter suffix -> [(dim, kept positions)]."""

    widths: tuple[str, ...]
    plan: Callable[[Any, Any, dict[str, torch.Tensor], Index], Plan]


def _mlp_plan(parent, child, scores, dm: Index) -> Plan:
    neurons = top(scores["neurons"], child.ffn_dim)
    into = [(0, neurons), (1, dm)]
    return {"gate_proj.weight": into, "gate_proj.bias": [(0, neurons)], "up_proj.weight": into,
            "up_proj.bias": [(0, neurons)], "down_proj.weight": [(0, dm), (1, neurons)], "down_proj.bias": [(0, dm)]}


def _attention_plan(parent, child, scores, dm: Index) -> Plan:
    group_p, group_c = parent.n_heads // parent.n_kv_heads, child.n_heads // child.n_kv_heads
    if child.n_kv_heads > parent.n_kv_heads or group_c > group_p:
        raise UserError(f"attention: a child of {child.n_heads} heads / {child.n_kv_heads} KV heads does not fit in "
                        f"the parent's {parent.n_heads} / {parent.n_kv_heads} (query heads per KV head at most "
                        f"{group_p}, KV heads at most {parent.n_kv_heads})")
    heads_GQ = scores["heads"].reshape(parent.n_kv_heads, group_p)
    groups = top(heads_GQ.sum(dim=1), child.n_kv_heads)
    query_heads = torch.cat([g * group_p + top(heads_GQ[g], group_c) for g in groups.tolist()])
    q, kv = channels(query_heads, parent.head_dim), channels(groups, parent.head_dim)
    return {"q_proj.weight": [(0, q), (1, dm)], "q_proj.bias": [(0, q)],
            "k_proj.weight": [(0, kv), (1, dm)], "k_proj.bias": [(0, kv)],
            "v_proj.weight": [(0, kv), (1, dm)], "v_proj.bias": [(0, kv)],
            "o_proj.weight": [(0, dm), (1, q)], "o_proj.bias": [(0, dm)]}


def _mamba2_plan(parent, child, scores, dm: Index) -> Plan:
    if child.n_groups != parent.n_groups or child.d_state != parent.d_state:
        raise UserError("mamba2: pruning keeps n_groups and d_state (B and C are shared by the heads of a group)")
    per_p, per_c = parent.n_heads // parent.n_groups, child.n_heads // child.n_groups
    if per_c > per_p or child.head_dim > parent.head_dim:
        raise UserError(f"mamba2: a child of {child.n_heads} heads x {child.head_dim} does not fit in the parent's "
                        f"{parent.n_heads} x {parent.head_dim}")
    heads_GH = scores["heads"].reshape(parent.n_groups, per_p)
    heads = torch.cat([g * per_p + top(heads_GH[g], per_c) for g in range(parent.n_groups)])
    x = channels(heads, parent.head_dim, top(scores["head_dim"], child.head_dim))  # into d_inner
    I, bc = parent.d_inner, 2 * parent.n_groups * parent.d_state
    bc_all = torch.arange(bc)
    # in_proj rows: z (I), x (I), B and C (2 G N), dt (H); the conv runs over x, B and C
    rows = torch.cat([x, I + x, 2 * I + bc_all, 2 * I + bc + heads])
    conv = torch.cat([x, I + bc_all])
    return {"in_proj.weight": [(0, rows), (1, dm)], "in_proj.bias": [(0, rows)],
            "conv1d.weight": [(0, conv)], "conv1d.bias": [(0, conv)],
            "dt_bias": [(0, heads)], "A_log": [(0, heads)], "D": [(0, heads)], "norm.weight": [(0, x)],
            "out_proj.weight": [(0, dm), (1, x)], "out_proj.bias": [(0, dm)]}


SLICERS: dict[str, Slicer] = {
    "mlp": Slicer(("ffn_dim",), _mlp_plan),
    "attention": Slicer(("n_heads", "n_kv_heads"), _attention_plan),
    "mamba2": Slicer(("n_heads", "head_dim"), _mamba2_plan),
}


def _slicer(kind: str) -> Slicer:
    if kind not in SLICERS:
        raise UserError(f"pruning: block kind {kind!r} cannot be pruned; kinds that can: {', '.join(SLICERS)}")
    return SLICERS[kind]


# ------------------------------------------------------------------------------------------ the child
def check_child(parent: ModelSpec, importance: Importance, child: ModelSpec) -> list[int]:
    """Why `child` is not a pruning of `parent` (UserError naming the field), else the parent layers it keeps."""
    parent = resolved_spec(parent)
    if child.d_model > parent.d_model:
        raise UserError(f"child d_model {child.d_model} is above the parent's {parent.d_model}")
    kept = kept_layers(importance, child.n_layers)
    wanted = "".join(parent.pattern_string[i] for i in kept)
    if child.pattern_string != wanted:
        raise UserError(f"child pattern {child.pattern_string!r} is not the parent's {parent.n_layers} layers minus "
                        f"the least important ones: a child of {child.n_layers} layers has pattern {wanted!r}")
    ignored = {"name", "description", "d_model", "pattern", "blocks"}
    for key, value in parent.to_dict().items():
        if key not in ignored and child.to_dict()[key] != value:
            raise UserError(f"child field {key!r} ({child.to_dict()[key]!r}) differs from the parent's ({value!r}); "
                            "pruning changes only d_model, the pattern and block widths")
    for symbol in set(child.pattern_string):
        p_block, c_block = parent.blocks[symbol], child.blocks[symbol]
        if c_block.kind != p_block.kind:
            raise UserError(f"child block {symbol!r} is {c_block.kind}, the parent's is {p_block.kind}")
        widths = _slicer(p_block.kind).widths
        p_rest = {k: v for k, v in p_block.resolved(parent.d_model).items() if k not in widths}
        c_rest = {k: v for k, v in c_block.resolved(child.d_model).items() if k not in widths}
        changed = sorted(k for k in p_rest if c_rest.get(k) != p_rest[k])
        if changed:
            raise UserError(f"child block {symbol!r} changes {', '.join(changed)}; pruning a {p_block.kind} block "
                            f"changes only {', '.join(widths)}")
    return kept


def slicing_plan(parent: ModelSpec, importance: Importance, child: ModelSpec) -> tuple[dict[str, tuple[str, Plan]],
                                                                                     Index]:
    """child parameter name -> (parent parameter name, plan), and the kept d_model channels."""
    kept = check_child(parent, importance, child)
    parent = resolved_spec(parent)
    dm = top(importance.d_model, child.d_model)
    stream = [(0, dm)]
    plans: dict[str, tuple[str, Plan]] = {}
    for name in ("embedding.weight", "lm_head.weight"):
        plans[name] = (name, [(1, dm)])
    plans["final_norm.weight"] = ("final_norm.weight", stream)
    for j, i in enumerate(kept):
        for norm in ("norm.weight", "post_norm.weight"):
            plans[f"layers.{j}.{norm}"] = (f"layers.{i}.{norm}", stream)
        layer = parent.layers[i]
        p_dims = layer.block.dims(parent.d_model)
        c_dims = child.layers[j].block.dims(child.d_model)
        mixer = _slicer(layer.kind).plan(p_dims, c_dims, importance.per_layer[i], dm)
        for suffix, plan in mixer.items():
            plans[f"layers.{j}.mixer.{suffix}"] = (f"layers.{i}.mixer.{suffix}", plan)
    return plans, dm


@torch.no_grad()
def slice_weights(parent_model: nn.Module, importance: Importance, child_spec: ModelSpec,
                  device: str | torch.device = "cpu") -> nn.Module:
    """The child model of `child_spec` holding the parent's weights sliced by importance."""
    from archsearch.builder import build

    plans, _ = slicing_plan(parent_model.spec, importance, child_spec)
    source = parent_model.state_dict()
    child = build(child_spec, device, torch.float32, seed=0)
    for name, target in child.state_dict().items():
        parent_name, plan = plans.get(name, (name, []))
        if parent_name not in source:
            raise UserError(f"pruning: the child's parameter {name!r} has no parent counterpart {parent_name!r}")
        value = source[parent_name]
        for dim, index in plan:
            value = value.index_select(dim, index.to(value.device))
        if value.shape != target.shape:
            raise UserError(f"pruning: {name} sliced to {tuple(value.shape)}, the child needs {tuple(target.shape)}")
        target.copy_(value)
    return child


def derive_child(parent: ModelSpec, importance: Importance, *, name: str, d_model: int | None = None,
                 n_layers: int | None = None, blocks: dict[str, dict[str, int]] | None = None) -> ModelSpec:
    """The child spec: the parent's (sizes resolved), with d_model, the depth and block widths given (the rest
    kept). `blocks`: symbol -> {width field: value}, e.g. {"M": {"n_heads": 4}, "-": {"ffn_dim": 96}}."""
    base = resolved_spec(parent)
    data = base.to_dict()
    data["name"] = name
    if d_model is not None:
        data["d_model"] = d_model
    if n_layers is not None:
        data["pattern"] = child_pattern(base, importance, n_layers)
    for symbol, fields in (blocks or {}).items():
        if symbol not in data["blocks"]:
            raise UserError(f"blocks: the parent has no block {symbol!r}; blocks: {', '.join(data['blocks'])}")
        widths = _slicer(data["blocks"][symbol]["kind"]).widths
        for field, value in fields.items():
            if field not in widths:
                raise UserError(f"blocks.{symbol}.{field}: not a width pruning can change; allowed: "
                                f"{', '.join(widths)}")
            data["blocks"][symbol][field] = value
    used = set(data["pattern"]) if isinstance(data["pattern"], str) else set(data["pattern"])
    data["blocks"] = {s: b for s, b in data["blocks"].items() if s in used}
    return parse_spec(data)


def width_fields(kind: str) -> tuple[str, ...]:
    """The fields of a kind that pruning narrows (for spaces and errors)."""
    kind_class(kind)  # an unknown kind is a clear error
    return _slicer(kind).widths


def save_child(out, model: nn.Module) -> None:
    """`out` as a folder holding the child's spec.yaml and model.safetensors: what `archsearch export-hf` and
    distillation (as a teacher) read."""
    from pathlib import Path

    from safetensors.torch import save_model

    from archsearch.spec import dump_spec

    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(dump_spec(model.spec), encoding="utf-8")
    save_model(model, str(folder / "model.safetensors"))
