"""Checkpoint export: our state dict under Hugging Face parameter names, as `model.safetensors` beside the
`config.json` that `export_hf_config` writes, so transformers' AutoModelForCausalLM loads the folder as it is.

Imports torch and safetensors lazily (archsearch.hf itself stays torch-free).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..outputs import check_output, write_failed
from ..spec import ModelSpec
from .convert import export_hf_config

_TRANSFORMERS = ("gemma2", "qwen3", "qwen2", "llama")
_LAYER = re.compile(r"^layers\.(\d+)\.(norm|post_norm|mixer)\.(.+)$")


def _mamba_style_name(name: str) -> str:
    """NemotronH and Mamba2: one HF layer per archsearch layer, under `backbone.`."""
    if name == "embedding.weight":
        return "backbone.embeddings.weight"
    if name == "final_norm.weight":
        return "backbone.norm_f.weight"
    if name == "lm_head.weight":
        return name
    match = _LAYER.match(name)
    if match is None or match.group(2) == "post_norm":
        raise KeyError(name)
    return f"backbone.{name}"


def _transformer_name(name: str, model_type: str) -> str:
    """Llama-like families: archsearch layers 2j (attention) and 2j+1 (MLP) are HF layer j."""
    if name == "embedding.weight":
        return "model.embed_tokens.weight"
    if name == "final_norm.weight":
        return "model.norm.weight"
    if name == "lm_head.weight":
        return name
    match = _LAYER.match(name)
    if match is None:
        raise KeyError(name)
    index, part, rest = int(match.group(1)), match.group(2), match.group(3)
    hf_layer, is_mlp = index // 2, index % 2 == 1
    prefix = f"model.layers.{hf_layer}."
    if part == "mixer":
        return prefix + ("mlp." if is_mlp else "self_attn.") + rest
    gemma = model_type == "gemma2"
    norms = {  # (part, is_mlp) -> HF norm
        ("norm", False): "input_layernorm",
        ("post_norm", False): "post_attention_layernorm",
        ("norm", True): "pre_feedforward_layernorm" if gemma else "post_attention_layernorm",
        ("post_norm", True): "post_feedforward_layernorm",
    }
    return prefix + norms[(part, is_mlp)] + "." + rest


def hf_state_dict(spec: ModelSpec, state_dict: dict[str, Any], model_type: str) -> dict[str, Any]:
    """Rename our parameters to the family's; checks names and shapes against a model built on meta first."""
    from ..builder import build

    expected = {k: tuple(v.shape) for k, v in build(spec, device="meta").state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(state_dict[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise UserError(f"checkpoint does not match spec {spec.name!r}: " + "; ".join(parts))
    rename = _mamba_style_name if model_type in ("nemotron_h", "mamba2") else (
        lambda n: _transformer_name(n, model_type))
    if model_type not in ("nemotron_h", "mamba2") + _TRANSFORMERS:
        raise UserError(f"no checkpoint layout for model_type {model_type!r}; allowed: nemotron_h, mamba2, "
                        + ", ".join(_TRANSFORMERS))
    try:
        return {rename(k): v.detach().contiguous() for k, v in state_dict.items()}
    except KeyError as err:
        raise UserError(f"parameter {err.args[0]!r} has no place in a {model_type} checkpoint") from None


def checkpoint_config(spec: ModelSpec, family: str | None = None) -> dict[str, Any]:
    """The spec's config, minus init-only settings that transformers applies to loaded weights too: with
    `rescale_prenorm_residual` true, transformers 5.x's Mamba2 divides every loaded out_proj by sqrt(n_layers)."""
    config = export_hf_config(spec, family)
    if "rescale_prenorm_residual" in config:
        config["rescale_prenorm_residual"] = False
    return config


def _normal_mode(path: Path) -> None:
    """safetensors creates its file 0600; give it the mode any other written file gets (0666 less the umask)."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def run_folder(path: str | Path) -> tuple[Path, Path]:
    """(spec.yaml, model.safetensors) of a training run folder; a missing file is an error naming it."""
    path = Path(path)
    missing = [name for name in ("spec.yaml", "model.safetensors") if not (path / name).is_file()]
    if missing:
        raise UserError(f"{path}: not a run folder with weights: {' and '.join(missing)} missing; give a run "
                        "folder that `archsearch train -o DIR` wrote (it saves weights at every checkpoint), or a "
                        "spec with --checkpoint")
    return path / "spec.yaml", path / "model.safetensors"


def export_checkpoint(spec: ModelSpec, state_dict_or_model: Any, out_dir: str | Path,
                      family: str | None = None) -> Path:
    """Write `out_dir/config.json` and `out_dir/model.safetensors`; returns the folder."""
    import torch
    from safetensors.torch import save_file

    state_dict = (state_dict_or_model.state_dict() if isinstance(state_dict_or_model, torch.nn.Module)
                  else dict(state_dict_or_model))
    config = checkpoint_config(spec, family)  # raises NotExpressibleError first
    tensors = {k: v.cpu() for k, v in hf_state_dict(spec, state_dict, config["model_type"]).items()}
    out = check_output(out_dir, "-o", folder=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
        _normal_mode(out / "model.safetensors")
    except OSError as err:
        raise write_failed(out, "-o", err) from None
    return out


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Our state dict from a `.safetensors` file, or a torch file holding it (or {"model": state_dict})."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:  # truncated or not a safetensors file at all
            raise UserError(f"--checkpoint {path}: not a readable safetensors file ({err})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files: all a user's bad file
        raise UserError(f"--checkpoint {path}: not a safetensors or torch file ({type(err).__name__}: {err})") \
            from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UserError(f"--checkpoint {path}: holds no state dict (a mapping of names to tensors, or "
                        "{'model': state_dict})")
    return data


def export_checkpoint_file(spec: ModelSpec, checkpoint: str | Path, out_dir: str | Path,
                           family: str | None = None) -> Path:
    """The CLI's `export-hf SPEC --checkpoint CKPT -o DIR`."""
    return export_checkpoint(spec, load_state_dict(checkpoint), out_dir, family)
