"""Importance of every prunable axis of a trained model, from its activations on calibration batches (Minitron,
arXiv 2407.14679): an axis' score is its activation magnitude, the L2 norm over the sequence averaged over the
batch, summed over calibration batches.

- `d_model`: the output of every RMSNorm that reads the residual stream (each layer's pre-norm and the final
  norm), summed: a channel no norm ever lets through carries nothing.
- MLP `neurons`: the input of `down_proj`.
- attention `heads`: the per-head input of `o_proj` (L2 over head_dim); GQA groups are respected when slicing.
- Mamba-2 `heads` and `head_dim`: the input of `out_proj` (after the gated norm) per head and per channel of a
  head, summed over the other axis.
- `layers`: block importance, the mean over tokens of 1 - cos(layer input, layer output) (ShortGPT; Minitron's
  depth metric): a layer that leaves the residual stream's direction alone can go.

Which tensor a kind's axes are read from is the table `AXES` (kind name -> reader), so nothing here asks which
class a block is; a test checks it covers every kind of `archsearch.spec.kinds.KINDS`.

The scores are stored beside the parent run as `importance.safetensors` (one float32 vector per axis, keys
`d_model`, `layers`, `layers.{i}.{axis}`; the calibration it came from in the metadata).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from archsearch.errors import UserError

from .parent import Parent

FILE = "importance.safetensors"


def _magnitude(x_BTC: torch.Tensor) -> torch.Tensor:
    """(C,): L2 over the sequence, mean over the batch."""
    return x_BTC.float().norm(dim=1).mean(dim=0)


def _mlp_axes(mixer: nn.Module, x_BTF: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"neurons": _magnitude(x_BTF)}


def _attention_axes(mixer: nn.Module, x_BTQ: torch.Tensor) -> dict[str, torch.Tensor]:
    b, t, _ = x_BTQ.shape
    per_head_BTH = x_BTQ.float().reshape(b, t, mixer.n_heads, mixer.head_dim).norm(dim=-1)
    return {"heads": _magnitude(per_head_BTH)}


def _mamba2_axes(mixer: nn.Module, y_BTI: torch.Tensor) -> dict[str, torch.Tensor]:
    b, t, _ = y_BTI.shape
    y_BTHP = y_BTI.float().reshape(b, t, mixer.n_heads, mixer.head_dim)
    per_channel_HP = y_BTHP.norm(dim=1).mean(dim=0)  # (H, P)
    return {"heads": per_channel_HP.sum(dim=1), "head_dim": per_channel_HP.sum(dim=0)}


@dataclass(frozen=True)
class AxisReader:
    """Where a kind's axes are read: the input of the mixer's submodule `module`, turned into scores by `read`."""

    module: str
    read: Callable[[nn.Module, torch.Tensor], dict[str, torch.Tensor]]


AXES: dict[str, AxisReader] = {
    "mlp": AxisReader("down_proj", _mlp_axes),
    "attention": AxisReader("o_proj", _attention_axes),
    "mamba2": AxisReader("out_proj", _mamba2_axes),
}


@dataclass
class Importance:
    """Scores of one model: `d_model` (d,), `layers` (n_layers,), and per layer its kind's axes."""

    d_model: torch.Tensor
    layers: torch.Tensor
    per_layer: list[dict[str, torch.Tensor]]
    calibration: dict = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"d_model": self.d_model, "layers": self.layers}
        for index, axes in enumerate(self.per_layer):
            out.update({f"layers.{index}.{name}": scores for name, scores in axes.items()})
        return {k: v.detach().float().contiguous().cpu() for k, v in out.items()}

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        path = Path(folder) / FILE
        tmp = path.with_name(path.name + ".tmp")
        save_file(self.tensors(), str(tmp), metadata={"calibration": json.dumps(self.calibration)})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: Path) -> "Importance":
        from safetensors import SafetensorError, safe_open

        path = Path(folder) / FILE
        if not path.is_file():
            raise UserError(f"{str(path)!r} does not exist: score the parent first (archsearch.compression."
                            "importance.score_run)")
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {key: f.get_tensor(key) for key in f.keys()}
                metadata = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"{str(path)!r} is not a readable importance file ({str(err)[:120]})") from None
        if "d_model" not in tensors or "layers" not in tensors:
            raise UserError(f"{str(path)!r} holds no d_model / layers scores; score the parent again")
        n = tensors["layers"].numel()
        per_layer = [{key.split(".", 2)[2]: value for key, value in tensors.items()
                      if key.startswith(f"layers.{i}.")} for i in range(n)]
        return cls(tensors["d_model"], tensors["layers"], per_layer, json.loads(metadata.get("calibration", "{}")))


@torch.no_grad()
def score_model(model: nn.Module, batches) -> Importance:
    """Importance of `model` (an archsearch HybridLM) over `batches` (token id tensors (B, T))."""
    spec = model.spec
    d_model = torch.zeros(spec.d_model)
    layer_scores = torch.zeros(spec.n_layers)
    per_layer: list[dict[str, torch.Tensor]] = [{} for _ in range(spec.n_layers)]
    hooks = []

    def add(target: dict, name: str, value: torch.Tensor) -> None:
        value = value.detach().float().cpu()
        target[name] = target[name] + value if name in target else value

    def norm_hook(_module, _inputs, output):
        nonlocal d_model
        d_model += _magnitude(output).cpu()

    def axis_hook(index: int, reader: AxisReader, mixer: nn.Module):
        def hook(_module, inputs):
            for name, value in reader.read(mixer, inputs[0]).items():
                add(per_layer[index], name, value)
        return hook

    def layer_hook(index: int):
        def hook(_module, inputs, output):
            x_BTD, y_BTD = inputs[0].float(), output.float()
            cosine = nn.functional.cosine_similarity(x_BTD, y_BTD, dim=-1)  # (B, T)
            layer_scores[index] += (1.0 - cosine).mean().cpu()
        return hook

    try:
        for index, (layer, spec_layer) in enumerate(zip(model.layers, spec.layers)):
            hooks.append(layer.norm.register_forward_hook(norm_hook))
            hooks.append(layer.register_forward_hook(layer_hook(index)))
            reader = AXES.get(spec_layer.kind)
            if reader is None:
                raise UserError(f"importance: layer {index} is of kind {spec_layer.kind!r}, which has no axis reader; "
                                f"kinds with one: {', '.join(AXES)}")
            hooks.append(getattr(layer.mixer, reader.module).register_forward_pre_hook(
                axis_hook(index, reader, layer.mixer)))
        hooks.append(model.final_norm.register_forward_hook(norm_hook))
        count = 0
        for ids_BT in batches:
            model(ids_BT)
            count += 1
    finally:
        for hook in hooks:
            hook.remove()
    if count == 0:
        raise UserError("importance: no calibration batch (batches must be >= 1)")
    return Importance(d_model, layer_scores / count, per_layer)


def calibration_batches(task, n_batches: int, batch_size: int, device: torch.device):
    """The first `n_batches` training micro-batches of the parent's task: data the parent has seen the like of."""
    for index in range(n_batches):
        yield task.train_batch(index, batch_size).input_ids_BT.to(device)


def score_run(run: Path, *, batches: int = 8, batch_size: int = 8, device: str = "cpu") -> Importance:
    """Score the parent run folder `run` on calibration batches of its own task, and store the scores there."""
    from .parent import load_parent

    _check_calibration(batches, batch_size)
    return score_parent(load_parent(run, device), batches=batches, batch_size=batch_size)


def score_parent(parent: Parent, *, batches: int = 8, batch_size: int = 8) -> Importance:
    """`score_run` for a parent already loaded: scored where it is, the scores stored in its run folder."""
    from archsearch.training.tasks import TaskSpec, make_task

    _check_calibration(batches, batch_size)
    task = make_task(TaskSpec.model_validate(parent.task), parent.recipe.get("seq_len", 256), parent.seed)
    importance = score_model(parent.model, calibration_batches(task, batches, batch_size, parent.model_device))
    importance.calibration = {"task": parent.task, "batches": batches, "batch_size": batch_size,
                              "seq_len": task.seq_len}
    importance.save(Path(parent.folder))
    return importance


def _check_calibration(batches: int, batch_size: int) -> None:
    if batches < 1 or batch_size < 1:
        raise UserError(f"importance: batches ({batches}) and batch_size ({batch_size}) must be >= 1")
