"""SSD (Mamba-2) chunked scan with mamba-ssm's `mamba_chunk_scan_combined` signature and layout.

Per head h, with dt' = clamp(softplus?(dt + dt_bias), *dt_limit) and the head's group g:
    state_t = exp(dt'_t A_h) state_{t-1} + dt'_t x_t B_t^T          # (p, n)
    y_t     = state_t C_t + D_h x_t,  then  y_t *= silu(z_t)       # (p,)
Backends: mamba_ssm (Triton), triton (ours: one program per sequence and head walking the chunks with the state in
registers, kernels/triton_ssd.py; only when forced for now), torch_chunked (ours, any device, autograd), reference
(sequential oracle).
Final states are returned in float32, as mamba-ssm does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _batching, _checks, _optional, registry, ssd_mamba_op

OP = "ssd_scan"
DEFAULT_DT_LIMIT = (0.0, math.inf)


def _validate(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_limit, initial_states):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(x.device, x, dt, A, B, C, D, z, dt_bias, initial_states)
    if not ok:
        _checks.floating(OP, x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states)
    x_shape = x.shape
    if len(x_shape) != 4:
        _checks.fail(OP, "x.shape", tuple(x.shape), "4 dims (b, l, h, p)")
    b, l, h, p = x_shape
    B_shape = B.shape
    if len(B_shape) != 4:
        _checks.fail(OP, "B.shape", tuple(B.shape), "4 dims (b, l, g, n)")
    g, n = B_shape[2], B_shape[3]
    if dt.shape != (b, l, h):
        _checks.shape(OP, "dt", dt, (b, l, h), "(b, l, h)")
    if A.shape != (h,):
        _checks.shape(OP, "A", A, (h,), "(h,)")
    if B_shape[0] != b or B_shape[1] != l:
        _checks.shape(OP, "B", B, (b, l, g, n), "(b, l, g, n)")
    if C.shape != B_shape:
        _checks.shape(OP, "C", C, (b, l, g, n), "(b, l, g, n)")
    if h % g:
        _checks.fail(OP, "B.shape[2] (groups)", g, f"a divisor of the number of heads {h}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        _checks.fail(OP, "chunk_size", chunk_size, "a positive int")
    if D is not None and D.shape != (h,) and D.shape != (h, p):
        _checks.fail(OP, "D.shape", tuple(D.shape), f"({h},) or ({h}, {p})")
    if z is not None and z.shape != x_shape:
        _checks.shape(OP, "z", z, (b, l, h, p), "(b, l, h, p)")
    if dt_bias is not None and dt_bias.shape != (h,):
        _checks.shape(OP, "dt_bias", dt_bias, (h,), "(h,)")
    if initial_states is not None and initial_states.shape != (b, h, p, n):
        _checks.shape(OP, "initial_states", initial_states, (b, h, p, n), "(b, h, p, n)")
    if len(dt_limit) != 2 or not dt_limit[0] <= dt_limit[1]:
        _checks.fail(OP, "dt_limit", dt_limit, "a pair (low, high) with low <= high")
    if not ok:
        _checks.same_device(OP, x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states)


def effective_dt(dt, dt_bias, dt_softplus, dt_limit):
    """dt as the scan uses it, in float32: bias, softplus (threshold 20, as mamba-ssm), then the clamp
    mamba-ssm always applies (so with the default limit a negative dt becomes 0)."""
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = F.softplus(dt)
    return dt.clamp(min=dt_limit[0], max=dt_limit[1])


def _heads_of_groups(t_BLGN: torch.Tensor, nheads: int) -> torch.Tensor:
    """(b, l, g, n) -> (b, l, h, n): head i uses group i // (h // g), as mamba-ssm."""
    return t_BLGN.repeat_interleave(nheads // t_BLGN.shape[2], dim=2)


def _skip_and_gate(y, x, D, z):
    if D is not None:
        y = y + x.float() * (D.float() if D.dim() == 2 else D.float()[:, None])
    if z is not None:
        y = y * F.silu(z.float())
    return y


# ---------------------------------------------------------------- reference (sequential, float32) ----------
def ssd_scan_reference(
    x, dt, A, B, C, chunk_size=None, D=None, z=None, dt_bias=None, initial_states=None,
    dt_softplus=False, dt_limit=DEFAULT_DT_LIMIT, return_final_states=False,
):
    """The recurrence one token at a time in float32: the test oracle (chunk_size is ignored)."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    dt_BLH = effective_dt(dt, dt_bias, dt_softplus, dt_limit)
    B_BLHN = _heads_of_groups(B.float(), h)
    C_BLHN = _heads_of_groups(C.float(), h)
    x_BLHP = x.float()
    state_BHPN = (
        initial_states.float() if initial_states is not None else x.new_zeros(b, h, p, n, dtype=torch.float32)
    )
    ys = []
    for t in range(l):
        decay_BH = torch.exp(dt_BLH[:, t] * A.float())
        state_BHPN = state_BHPN * decay_BH[:, :, None, None] + (dt_BLH[:, t, :, None] * x_BLHP[:, t])[
            ..., None
        ] * B_BLHN[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state_BHPN, C_BLHN[:, t]))
    y_BLHP = torch.stack(ys, dim=1) if ys else x_BLHP.new_zeros(b, 0, h, p)
    y_BLHP = _skip_and_gate(y_BLHP, x, D, z).to(x.dtype)
    return (y_BLHP, state_BHPN) if return_final_states else y_BLHP


# ---------------------------------------------------------------- torch_chunked (ours) ----------------------
def _segsum(a: torch.Tensor) -> torch.Tensor:
    """a (..., T) -> (..., T, T) with out[i, j] = a[j+1] + ... + a[i] for j <= i and -inf above the diagonal.
    Built by a masked cumsum rather than a difference of cumsums, which loses precision for long chunks."""
    T = a.shape[-1]
    a = a[..., None].expand(*a.shape, T)  # (..., T_i, T_j) holding a[i]
    strict = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    a = a.masked_fill(~strict, 0.0)
    out = torch.cumsum(a, dim=-2)
    return out.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0), -math.inf)


def ssd_scan_torch_chunked(
    x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
    dt_softplus=False, dt_limit=DEFAULT_DT_LIMIT, return_final_states=False,
):
    """The chunked SSD algorithm (Mamba-2 paper, "ssd_minimal") vectorised in PyTorch, float32 inside.

    Lengths that are not a multiple of chunk_size are zero-padded: a padded step has dt = 0, so its decay
    is exp(0) = 1 and its input dt * x * B is 0, which leaves the final state untouched.
    """
    b, l, h, p = x.shape
    n = B.shape[-1]
    pad = (-l) % chunk_size
    c = (l + pad) // chunk_size
    dt_BLH = F.pad(effective_dt(dt, dt_bias, dt_softplus, dt_limit), (0, 0, 0, pad))
    x_BLHP = F.pad(x.float(), (0, 0, 0, 0, 0, pad))
    B_BLHN = F.pad(_heads_of_groups(B.float(), h), (0, 0, 0, 0, 0, pad))
    C_BLHN = F.pad(_heads_of_groups(C.float(), h), (0, 0, 0, 0, 0, pad))
    Q = chunk_size
    xdt_BCQHP = (x_BLHP * dt_BLH[..., None]).reshape(b, c, Q, h, p)
    B_BCQHN = B_BLHN.reshape(b, c, Q, h, n)
    C_BCQHN = C_BLHN.reshape(b, c, Q, h, n)
    dA_BHCQ = (dt_BLH * A.float()).reshape(b, c, Q, h).permute(0, 3, 1, 2)
    dAcs_BHCQ = torch.cumsum(dA_BHCQ, dim=-1)

    # 1. within each chunk: y_i = sum_{j<=i} (C_i . B_j) exp(dAcs_i - dAcs_j) dt_j x_j
    decay_BHCQQ = torch.exp(_segsum(dA_BHCQ))
    scores_BHCQQ = torch.einsum("bcihn,bcjhn->bhcij", C_BCQHN, B_BCQHN) * decay_BHCQQ
    y_BCQHP = torch.einsum("bhcij,bcjhp->bcihp", scores_BHCQQ, xdt_BCQHP)

    # 2. each chunk's own contribution to the state at its end
    to_end_BHCQ = torch.exp(dAcs_BHCQ[..., -1:] - dAcs_BHCQ)
    states_BCHPN = torch.einsum("bcjhn,bhcj,bcjhp->bchpn", B_BCQHN, to_end_BHCQ, xdt_BCQHP)

    # 3. pass states across chunks: state entering chunk k = sum_{m<k} decay(m..k) own_m (+ initial state)
    init_B1HPN = (
        initial_states.float()[:, None]
        if initial_states is not None
        else x_BLHP.new_zeros(b, 1, h, p, n)
    )
    states_BCHPN = torch.cat([init_B1HPN, states_BCHPN], dim=1)  # (b, c+1, h, p, n)
    chunk_decay_BHZZ = torch.exp(_segsum(F.pad(dAcs_BHCQ[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    passed_BZHPN = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay_BHZZ, states_BCHPN)
    entering_BCHPN, final_BHPN = passed_BZHPN[:, :-1], passed_BZHPN[:, -1]

    # 4. the entering state's contribution inside each chunk: C_i . state * exp(dAcs_i)
    y_BCQHP = y_BCQHP + torch.einsum(
        "bcihn,bchpn,bhci->bcihp", C_BCQHN, entering_BCHPN, torch.exp(dAcs_BHCQ)
    )
    y_BLHP = y_BCQHP.reshape(b, c * Q, h, p)[:, :l]
    y_BLHP = _skip_and_gate(y_BLHP, x, D, z).to(x.dtype)
    return (y_BLHP, final_BHPN) if return_final_states else y_BLHP


# ---------------------------------------------------------------- mamba_ssm (Triton) ------------------------
_MAMBA_MODULE = ssd_mamba_op.MODULE


def ssd_scan_mamba_ssm(
    x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
    dt_softplus=False, dt_limit=DEFAULT_DT_LIMIT, return_final_states=False,
):
    module, reason = _optional.import_mamba(_MAMBA_MODULE)
    if module is None:
        raise registry.BackendError(f"op {OP!r}: backend 'mamba_ssm' unavailable: {reason}")
    batch = x.shape[0]
    step = _batching.sub_batch(batch, scan_elements_per_sequence(x, B, chunk_size), _batching.INT32_ELEMENTS,
                               x, dt, B, C, z, initial_states)
    scan = ssd_mamba_op.mamba_chunk_scan_combined  # opaque ops: one graph per Mamba layer under torch.compile
    if step >= batch:  # one call (the usual case): no dicts, no note
        return scan(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states,
                    dt_softplus=dt_softplus, dt_limit=dt_limit, return_final_states=return_final_states)
    return _batching.run_in_sub_batches(
        OP, scan, step,
        dict(x=x, dt=dt, B=B, C=C, z=z, initial_states=initial_states),
        dict(A=A, chunk_size=chunk_size, D=D, dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit,
             return_final_states=return_final_states),
        "mamba-ssm's Triton scan indexes with 32-bit offsets (illegal memory access at batch 194 x 8192 tokens, "
        "H100 2026-11-24)")


def scan_elements_per_sequence(x, B, chunk_size: int) -> int:
    """The largest tensor mamba-ssm's chunked scan makes, in elements per sequence: x/y (l h p), the chunk
    states (chunks h p n, float32), C.B^T (chunks g Q Q) or B/C (l g n)."""
    _, l, h, p = x.shape
    _, _, g, n = B.shape
    return scan_elements(l, h, p, g, n, chunk_size)


def scan_elements(l: int, h: int, p: int, g: int, n: int, chunk_size: int) -> int:
    """`scan_elements_per_sequence` from the sizes."""
    chunks = -(-l // chunk_size)
    return max(l * h * p, chunks * h * p * n, chunks * g * chunk_size * chunk_size, l * g * n)


def _mamba_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    p, n = info.get("headdim"), info.get("dstate")
    if p is not None and p > 256:
        return f"headdim {p} > 256"
    if n is not None and n > 256:
        return f"dstate {n} > 256"
    return None


# ---------------------------------------------------------------- triton (ours) -----------------------------
TRITON_MAX_STATE = 128 * 128  # p x n of a head's state, which the kernels hold in registers


def ssd_scan_triton(
    x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
    dt_softplus=False, dt_limit=DEFAULT_DT_LIMIT, return_final_states=False,
):
    """Our Triton walk over the chunks (kernels/triton_ssd.py), with dt's bias, softplus and limits, D and the gate
    in torch around it. chunk_size is not used: the kernels' chunk is their own, and the chunked form is exact."""
    from . import triton_ssd  # imports triton: only on first use

    # with a gate, y stays float32 until it is gated (as the other backends round once, at the end)
    y, final = triton_ssd.scan(x, effective_dt(dt, dt_bias, dt_softplus, dt_limit), A, B, C, D, initial_states,
                               torch.float32 if z is not None else x.dtype)
    if z is not None:
        y = _skip_and_gate(y, x, None, z).to(x.dtype)  # D is already in y
    return (y, final) if return_final_states else y


def _triton_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    p, n = info.get("headdim"), info.get("dstate")
    if p is not None and n is not None and p * n > TRITON_MAX_STATE:
        return f"a head's state of {p} x {n} > {TRITON_MAX_STATE} elements (held in registers)"
    return None


# ---------------------------------------------------------------- registration + public entry ---------------
def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32,
                headdim=64, dstate=128)


registry.register_op(OP, "SSD chunked scan (Mamba-2)", _default_call)
registry.register_backend(OP, "mamba_ssm", 100, ssd_scan_mamba_ssm,
                          probe=_optional.probe_module(_MAMBA_MODULE, mamba=True), accepts=_mamba_accepts)
# Ours runs only when forced (ARCHSEARCH_BACKEND_SSD_SCAN=triton) until its GPU parity tests have passed and it is
# timed against mamba-ssm's: written and checked under Triton's interpreter on the CPU (2026-12-08), not yet on a GPU.
TRITON_BY_DEFAULT = False
registry.register_backend(OP, "triton", 90, ssd_scan_triton, probe=_optional.triton_status, accepts=_triton_accepts,
                          auto=TRITON_BY_DEFAULT)
registry.register_backend(OP, "torch_chunked", 50, ssd_scan_torch_chunked)
registry.register_backend(OP, "reference", 0, ssd_scan_reference, auto=False)


def call_info(x: torch.Tensor, B: torch.Tensor) -> dict:
    return dict(call_items(x, B))


def call_items(x: torch.Tensor, B: torch.Tensor) -> tuple:
    """The call info as items sorted by name (the registry's key)."""
    return (("device", _checks.device_type(x)), ("dstate", B.shape[-1]), ("dtype", x.dtype),
            ("headdim", x.shape[-1]))


def ssd_chunk_scan(
    x: torch.Tensor,  # (b, l, h, p)
    dt: torch.Tensor,  # (b, l, h)
    A: torch.Tensor,  # (h,)
    B: torch.Tensor,  # (b, l, g, n)
    C: torch.Tensor,  # (b, l, g, n)
    chunk_size: int,
    D: torch.Tensor | None = None,  # (h,) or (h, p)
    z: torch.Tensor | None = None,  # (b, l, h, p)
    dt_bias: torch.Tensor | None = None,  # (h,)
    initial_states: torch.Tensor | None = None,  # (b, h, p, n)
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = DEFAULT_DT_LIMIT,
    return_final_states: bool = False,
):
    """y (b, l, h, p) in x.dtype, or (y, final_states (b, h, p, n) float32) if return_final_states."""
    _validate(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_limit, initial_states)
    return registry.backend_fn(OP, call_items(x, B))(
        x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus, tuple(dt_limit), return_final_states)
