"""Rotary position embedding in the rotate-half layout (Llama, Qwen3, Gemma 2 in Hugging Face transformers),
plain or scaled (linear, YaRN, Llama 3: archsearch.spec.kinds.rope_scaling). The scaled frequencies follow
transformers' `modeling_rope_utils.py` operation for operation, so float32 logits match its models."""

from __future__ import annotations

import math

import torch
from torch import nn

from archsearch.spec.kinds.rope_scaling import Llama3Rope, LinearRope, YarnRope


def _linear(inv_freq_H: torch.Tensor, scaling: LinearRope, head_dim: int, theta: float) -> torch.Tensor:
    return inv_freq_H / scaling.factor


def _yarn(inv_freq_H: torch.Tensor, scaling: YarnRope, head_dim: int, theta: float) -> torch.Tensor:
    """High-frequency dimensions extrapolate (kept), low ones interpolate (divided by factor), a linear ramp
    between the dimensions that turn beta_fast and beta_slow times over the original context."""
    def correction_dim(rotations: float) -> float:
        return head_dim * math.log(scaling.original_max_context / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(scaling.beta_fast), correction_dim(scaling.beta_slow)
    if scaling.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # transformers' guard against a zero-width ramp
    ramp_H = torch.clamp((torch.arange(head_dim // 2, dtype=torch.float32, device=inv_freq_H.device) - low)
                         / (high - low), 0, 1)
    keep_H = 1 - ramp_H  # 1: extrapolate (keep the frequency), 0: interpolate
    pos_freqs_H = theta ** (torch.arange(0, head_dim, 2, device=inv_freq_H.device).float() / head_dim)
    return 1.0 / (scaling.factor * pos_freqs_H) * (1 - keep_H) + inv_freq_H * keep_H


def _llama3(inv_freq_H: torch.Tensor, scaling: Llama3Rope, head_dim: int, theta: float) -> torch.Tensor:
    """Wavelengths past original / low_freq_factor divided by factor, below original / high_freq_factor kept,
    a smooth blend between."""
    original, factor = scaling.original_max_context, scaling.factor
    low_wavelen, high_wavelen = original / scaling.low_freq_factor, original / scaling.high_freq_factor
    wavelen_H = 2 * math.pi / inv_freq_H
    scaled_H = torch.where(wavelen_H > low_wavelen, inv_freq_H / factor, inv_freq_H)
    smooth_H = (original / wavelen_H - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed_H = (1 - smooth_H) * scaled_H / factor + smooth_H * scaled_H
    medium_H = ~(wavelen_H < high_wavelen) * ~(wavelen_H > low_wavelen)
    return torch.where(medium_H, smoothed_H, scaled_H)


_SCALINGS = {"linear": _linear, "yarn": _yarn, "llama3": _llama3}


def inverse_frequencies(head_dim: int, theta: float, scaling=None, device=None) -> torch.Tensor:
    """The head_dim / 2 float32 inverse frequencies theta ** (-2i / head_dim), rescaled by `scaling`."""
    exponent_H = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    inv_freq_H = 1.0 / (theta**exponent_H)
    return inv_freq_H if scaling is None else _SCALINGS[scaling.type](inv_freq_H, scaling, head_dim, theta)


class Rotary(nn.Module):
    """Applies RoPE to (b, h, t, d) tensors at absolute positions start .. start+t-1. No parameters."""

    def __init__(self, head_dim: int, theta: float, scaling=None, device=None):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.scaling = scaling  # a spec RopeScaling or None
        self.attention_scale = scaling.attention_scale() if scaling is not None else 1.0  # YaRN's cos/sin factor
        self.register_buffer("inv_freq", inverse_frequencies(head_dim, theta, scaling, device), persistent=False)

    def reset_parameters(self) -> None:
        """Recompute the frequencies (a model built on the meta device and moved by to_empty() needs this)."""
        self.inv_freq.copy_(inverse_frequencies(self.head_dim, self.theta, self.scaling, self.inv_freq.device))

    def cos_sin(self, start: int, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        pos_T = torch.arange(start, start + length, device=device, dtype=torch.float32)
        freqs_TH = pos_T[:, None] * self.inv_freq.float()[None, :]
        emb_TD = torch.cat([freqs_TH, freqs_TH], dim=-1)
        if self.attention_scale == 1.0:
            return emb_TD.cos(), emb_TD.sin()
        return emb_TD.cos().mul_(self.attention_scale), emb_TD.sin().mul_(self.attention_scale)

    def forward(self, x_BHTD: torch.Tensor, cos_TD: torch.Tensor, sin_TD: torch.Tensor) -> torch.Tensor:
        half = x_BHTD.shape[-1] // 2
        rotated_BHTD = torch.cat([-x_BHTD[..., half:], x_BHTD[..., :half]], dim=-1)
        return x_BHTD * cos_TD.to(x_BHTD.dtype) + rotated_BHTD * sin_TD.to(x_BHTD.dtype)
