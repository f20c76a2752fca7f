"""Mamba-2 mixer (SSD), parameter for parameter as mamba-ssm's Mamba2 and Hugging Face's NemotronH mixer.

in_proj -> [z (d_inner), xBC (d_inner + 2 g n), dt (h)]; xBC -> depthwise causal conv1d + SiLU -> x, B, C;
y = SSD scan (A = -exp(A_log), dt' = clamp(softplus(dt + dt_bias), dt_limit), D skip);
gated RMSNorm per group: rmsnorm(y * silu(z)) * norm.weight (norm_before_gate=False); out_proj.
Everything between the two projections is one kernel op (`mamba_mixer`: conv, scan and norm as separate ops, or
two fused ops on a GPU where that backend is chosen); decoding one token at a time takes the state-update ops.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from archsearch.kernels import conv_state_update, gated_rms_norm, mamba_mixer, ssm_state_update
from archsearch.spec import Mamba2Block

from .init import Initializer
from .state import MambaState

NO_DT_LIMIT = (0.0, math.inf)


class GatedNormWeight(nn.Module):
    """Holds `norm.weight` (d_inner,) under the name checkpoints use; the op itself is a kernel call."""

    def __init__(self, dim: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))


class Mamba2Mixer(nn.Module):
    def __init__(self, block: Mamba2Block, d_model: int, norm_eps: float, device=None, dtype=None):
        super().__init__()
        self.block = block
        dims = block.dims(d_model)
        self.dims = dims
        self.n_heads, self.head_dim, self.d_inner = dims.n_heads, dims.head_dim, dims.d_inner
        self.n_groups, self.d_state, self.conv_dim = dims.n_groups, dims.d_state, dims.conv_dim
        self.chunk_size = block.chunk_size
        self.dt_limit = tuple(block.dt_limit) if block.dt_limit is not None else NO_DT_LIMIT
        self.norm_eps = norm_eps
        kw = dict(device=device, dtype=dtype)
        self.in_proj = nn.Linear(d_model, dims.in_proj_dim, bias=block.bias, **kw)
        self.conv1d = nn.Conv1d(dims.conv_dim, dims.conv_dim, dims.conv_kernel, groups=dims.conv_dim,
                                padding=dims.conv_kernel - 1, bias=block.conv_bias, **kw)
        self.dt_bias = nn.Parameter(torch.empty(dims.n_heads, **kw))
        self.A_log = nn.Parameter(torch.empty(dims.n_heads, **kw))
        self.D = nn.Parameter(torch.empty(dims.n_heads, **kw))
        self.norm = GatedNormWeight(dims.d_inner, **kw) if block.gated_norm else None
        self.out_proj = nn.Linear(dims.d_inner, d_model, bias=block.bias, **kw)

    def init_weights(self, init: Initializer) -> None:
        b = self.block
        init.linear_(self.in_proj, init.std)
        bound = 1.0 / math.sqrt(self.dims.conv_kernel)  # PyTorch's Conv1d default, as mamba-ssm leaves it
        init.uniform_(self.conv1d.weight, -bound, bound)
        if self.conv1d.bias is not None:
            init.uniform_(self.conv1d.bias, -bound, bound)
        dt_H = init.log_uniform_(self.dt_bias, b.dt_min, b.dt_max).clamp(min=b.dt_init_floor)
        init._copy(self.dt_bias, dt_H + torch.log(-torch.expm1(-dt_H)))  # inverse of softplus
        A_H = torch.empty(self.n_heads).uniform_(*b.A_init_range, generator=init.generator)
        init._copy(self.A_log, torch.log(A_H))
        init._copy(self.D, torch.ones(self.n_heads))
        if self.norm is not None:
            init._copy(self.norm.weight, torch.ones(self.d_inner))
        init.linear_(self.out_proj, init.output_std)

    @staticmethod
    def kernel_calls(block: Mamba2Block, d_model: int, max_context: int, device: str,
                     dtype: torch.dtype) -> list[tuple[str, dict]]:
        """(op, call info) of every kernel call `forward` and `_decode` make, for the registry to check before
        any tensor exists."""
        m = block.dims(d_model)
        base = dict(device=device, dtype=dtype)
        calls = [("ssd_scan", dict(base, headdim=m.head_dim, dstate=m.d_state)),
                 ("causal_conv1d", dict(base, width=m.conv_kernel)),
                 ("conv_state_update", dict(base)),
                 ("ssm_state_update", dict(base, dt_limit=tuple(block.dt_limit or NO_DT_LIMIT)))]
        itemsize = torch.empty((), dtype=dtype).element_size()
        if block.gated_norm:
            calls.append(("gated_rmsnorm", dict(base, group_size=m.d_inner // m.n_groups, itemsize=itemsize)))
        mixer = dict(base, width=m.conv_kernel, headdim=m.head_dim, dstate=m.d_state, norm=block.gated_norm,
                     group_size=m.d_inner // m.n_groups, itemsize=itemsize)
        calls.append(("mamba_mixer", mixer))
        return calls

    def allocate_cache(self, batch: int, max_len: int, device, dtype) -> MambaState:
        return MambaState.allocate(batch, self.n_heads, self.head_dim, self.d_state, self.conv_dim,
                                   self.dims.conv_kernel, device, dtype)

    def forward(self, x_BTD: torch.Tensor, cache: MambaState | None = None, start: int = 0) -> torch.Tensor:
        zxbcdt_BTE = self.in_proj(x_BTD)
        A_H = -torch.exp(self.A_log.float())
        conv_weight_CK = self.conv1d.weight.squeeze(1)
        if cache is not None and zxbcdt_BTE.shape[1] == 1:
            z_BTI, xBC_BTC, dt_BTH = zxbcdt_BTE.split([self.d_inner, self.conv_dim, self.n_heads], dim=-1)
            return self._decode(z_BTI, xBC_BTC, dt_BTH, A_H, conv_weight_CK, cache)
        states = {} if cache is None else dict(conv_state=cache.conv_BDK, ssm_state=cache.ssm_BHPN)
        mixed = mamba_mixer(zxbcdt_BTE, conv_weight_CK, self.conv1d.bias, self.dt_bias, A_H, self.D,
                            None if self.norm is None else self.norm.weight, n_heads=self.n_heads,
                            n_groups=self.n_groups, d_state=self.d_state, chunk_size=self.chunk_size,
                            norm_eps=self.norm_eps, dt_limit=self.dt_limit, **states)
        if cache is not None:
            y_BTI, conv_final, ssm_final = mixed
            cache.conv_BDK.copy_(conv_final)
            cache.ssm_BHPN.copy_(ssm_final)
        else:
            y_BTI = mixed
        return self.out_proj(y_BTI.to(self.out_proj.weight.dtype))

    def _decode(self, z_BTI, xBC_BTC, dt_BTH, A_H, conv_weight_CK, cache: MambaState) -> torch.Tensor:
        b = z_BTI.shape[0]
        xBC_BC = conv_state_update(xBC_BTC[:, 0], cache.conv_BDK, conv_weight_CK, self.conv1d.bias, "silu")
        x_BI, B_BG, C_BG = xBC_BC.split(
            [self.d_inner, self.n_groups * self.d_state, self.n_groups * self.d_state], dim=-1)
        y_BHP = ssm_state_update(
            cache.ssm_BHPN, x_BI.reshape(b, self.n_heads, self.head_dim), dt_BTH[:, 0], A_H,
            B_BG.reshape(b, self.n_groups, self.d_state), C_BG.reshape(b, self.n_groups, self.d_state), D=self.D,
            z=None if self.norm is not None else z_BTI[:, 0].reshape(b, self.n_heads, self.head_dim),
            dt_bias=self.dt_bias, dt_softplus=True, dt_limit=self.dt_limit)
        return self._output(y_BHP.reshape(b, 1, self.d_inner), z_BTI)

    def _output(self, y_BTI: torch.Tensor, z_BTI: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            y_BTI = gated_rms_norm(y_BTI, self.norm.weight, z_BTI, self.norm_eps,
                                   group_size=self.d_inner // self.n_groups, norm_before_gate=False)
        return self.out_proj(y_BTI.to(self.out_proj.weight.dtype))
