"""Host cost of our kernel dispatch per op, on the CPU: what archsearch adds in Python before a fused kernel runs.

Usage: python bench/bench_dispatch.py [--number N] [--repeat R] [--only OP] [--profile OP] [--json PATH]

What one "dispatch" call counts: the public op (e.g. `ssd_chunk_scan`) with its argument checks, the call info,
the registry lookup (`registry.backend_fn`: cache key, `_chosen_name`, the `backends_used()` record) and the
backend wrapper a CUDA machine runs (for SSD `ssd_scan_mamba_ssm`: the cached `import_mamba`, the sub-batch size
from `scan_elements_per_sequence` and the strides of the column views, the one-call fast path), down to the
fused package's entry point, which is replaced by a no-op returning a preallocated output. "direct" calls that
same no-op with the arguments a caller of the package would pass, so dispatch - direct is our overhead per call.
No kernel runs and nothing is launched. For ssm_state_update the overhead includes the views our layout needs
for mamba-ssm's `selective_state_update` (dt, A, D, dt_bias expanded per channel: ~8 us of tensor calls).

How the CUDA path is reproduced on a CPU machine: the fused backends a CUDA machine picks (mamba_ssm for SSD,
gated norm and the SSM state update; causal_conv1d for the conv and the conv-state update; sdpa for attention)
are marked available, their `accepts` is asked with device="cuda" (so dtype/shape refusals still apply), and
`_optional.import_mamba` / `import_module` return fake modules through a `functools.cache`, as the real ones
are cached. For attention the sdpa backend goes straight to `attention_sdpa`'s CUDA branch (`_sdpa_batched`:
the sub-batch split and the cuDNN-first priority switch), with `F.scaled_dot_product_attention` a no-op; a CPU
tensor would otherwise take the branch without them. Tensors are CPU `torch.empty` (never touched) with the
shapes, dtypes (bf16) and column-view strides the Mamba-2 and attention blocks pass on the H100: b4 L4096, p64
n128 g8, chunk 128; attention hq16 hkv4 d128 (one call; at hq32 it would be split in two), decode t=1.

What it does not count: the device-side launch cost, CUDA tensor metadata being slower or faster than CPU
metadata (the same Python runs), and the first call (cache misses: probe, accepts, logging), which the warm-up
runs before timing. Medians over `--repeat` rounds of `--number` calls each (timeit, garbage collection off),
in microseconds per call; the host is shared, so compare runs taken one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import pstats
import sys
import timeit
import types
from typing import Any, Callable

import torch

import archsearch.kernels as K
from archsearch.kernels import _batching, _optional, attn, conv1d, decode, gated_norm, registry, ssd

DTYPE = torch.bfloat16
CUDA_CHOICE = {  # op -> the backend an H100 with mamba-ssm + causal-conv1d installed picks
    ssd.OP: "mamba_ssm",
    gated_norm.OP: "mamba_ssm",
    conv1d.OP: "causal_conv1d",
    attn.OP: "sdpa",
    decode.SSM_OP: "mamba_ssm",
    decode.CONV_OP: "causal_conv1d",
}


def _returning(out: Any) -> Callable[..., Any]:
    def noop(*args: Any, **kwargs: Any) -> Any:
        return out

    return noop


def _sdpa_cuda_branch(q, k, v, causal=True, window=None, softcap=None, scale=None, positions=None):
    """attention_sdpa as it runs for a CUDA q without positions (its `q.is_cuda` branch)."""
    assert positions is None
    return attn._sdpa_batched(q, k, v, causal, window, scale)


@contextlib.contextmanager
def cuda_path(outputs: dict[str, Any]):
    """Make the registry pick CUDA_CHOICE with fused entry points that return `outputs[name]` at once."""
    fakes = {
        ssd._MAMBA_MODULE: types.SimpleNamespace(mamba_chunk_scan_combined=_returning(outputs["ssd"])),
        gated_norm._MAMBA_MODULE: types.SimpleNamespace(rmsnorm_fn=_returning(outputs["norm"])),
        "mamba_ssm.ops.triton.selective_state_update":
            types.SimpleNamespace(selective_state_update=_returning(outputs["ssm_step"])),
        "causal_conv1d": types.SimpleNamespace(causal_conv1d_fn=_returning(outputs["conv"]),
                                               causal_conv1d_update=_returning(outputs["conv_step"])),
    }
    real_mamba, real_module = _optional.import_mamba, _optional.import_module

    @functools.cache
    def fake_mamba(name):
        return (fakes[name], "bench fake") if name in fakes else real_mamba(name)

    @functools.cache
    def fake_module(name):
        return (fakes[name], "bench fake") if name in fakes else real_module(name)

    saved = []
    for op, name in CUDA_CHOICE.items():
        backend = registry.get_backend(op, name)
        saved.append((backend, backend._availability, backend.accepts_fn, backend.fn))
        backend._availability = (True, "bench: fake fused entry point")
        backend.accepts_fn = functools.partial(lambda real, **info: real(**{**info, "device": "cuda"}),
                                               backend.accepts_fn)
        if op == attn.OP:
            backend.fn = _sdpa_cuda_branch
    real_F = attn.F
    attn.F = types.SimpleNamespace(scaled_dot_product_attention=_returning(outputs["attn"]))
    _optional.import_mamba, _optional.import_module = fake_mamba, fake_module
    registry._choice_cache.clear()
    try:
        yield
    finally:
        _optional.import_mamba, _optional.import_module = real_mamba, real_module
        attn.F = real_F
        for backend, availability, accepts_fn, fn in saved:
            backend._availability, backend.accepts_fn, backend.fn = availability, accepts_fn, fn
        registry._choice_cache.clear()


def _empty(*shape: int, dtype=DTYPE) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype)


def cases() -> tuple[dict[str, tuple[Callable[[], Any], Callable[[], Any]]], dict[str, Any]]:
    """{name: (dispatch call, direct call)} and the preallocated outputs the fakes return."""
    b, L, p, n, g, chunk, k = 4, 4096, 64, 128, 8, 128, 4
    outputs: dict[str, Any] = {}
    calls: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    outputs["ssd"] = _empty(b, L, 64, p)  # one output for both head counts: the fake only returns it
    for h in (32, 64):
        d_inner, conv_dim = h * p, h * p + 2 * g * n
        zxbcdt_BTE = _empty(b, L, d_inner + conv_dim + h)  # in_proj output; z, xBC, dt are column views
        z_BTI, _, dt_BTH = zxbcdt_BTE.split([d_inner, conv_dim, h], dim=-1)
        xBC_BCT = _empty(b, conv_dim, L)  # the conv's output, read transposed as the block does
        x_BTI, B_BTG, C_BTG = xBC_BCT.transpose(1, 2).split([d_inner, g * n, g * n], dim=-1)
        x, B, C = x_BTI.reshape(b, L, h, p), B_BTG.reshape(b, L, g, n), C_BTG.reshape(b, L, g, n)
        A, D, dt_bias = _empty(h, dtype=torch.float32), _empty(h, dtype=torch.float32), _empty(h, dtype=torch.float32)
        limit = (0.0, float("inf"))

        def dispatch(x=x, dt=dt_BTH, A=A, B=B, C=C, D=D, dt_bias=dt_bias):
            return K.ssd_chunk_scan(x, dt, A, B, C, chunk, D=D, z=None, dt_bias=dt_bias, dt_softplus=True,
                                    dt_limit=limit)

        def direct(x=x, dt=dt_BTH, A=A, B=B, C=C, D=D, dt_bias=dt_bias, f=_returning(outputs["ssd"])):
            return f(x, dt, A, B, C, chunk, D=D, z=None, dt_bias=dt_bias, dt_softplus=True, dt_limit=limit)

        calls[f"ssd_scan h{h}"] = (dispatch, direct)
    h = 64
    d_inner, conv_dim = h * p, h * p + 2 * g * n
    zxbcdt_BTE = _empty(b, L, d_inner + conv_dim + h)
    z_BTI, xBC_BTC, dt_BTH = zxbcdt_BTE.split([d_inner, conv_dim, h], dim=-1)
    w_CK, bias_C = _empty(conv_dim, k), _empty(conv_dim)
    outputs["conv"] = _empty(b, conv_dim, L)
    f_conv = _returning(outputs["conv"])
    calls["causal_conv1d h64"] = (
        lambda: K.causal_conv1d(xBC_BTC.transpose(1, 2), w_CK, bias_C, "silu"),
        lambda: f_conv(xBC_BTC.transpose(1, 2), w_CK, bias_C, initial_states=None, activation="silu"),
    )
    y_BTI, norm_w = _empty(b, L, d_inner), _empty(d_inner)
    outputs["norm"] = _empty(b, L, d_inner)
    f_norm = _returning(outputs["norm"])
    calls["gated_rmsnorm h64"] = (
        lambda: K.gated_rms_norm(y_BTI, norm_w, z_BTI, 1e-5, group_size=d_inner // g, norm_before_gate=False),
        lambda: f_norm(y_BTI, norm_w, None, z=z_BTI, eps=1e-5, group_size=d_inner // g, norm_before_gate=False),
    )
    hq, hkv, hd = 16, 4, 128  # 4 x 16 x 4096 query rows: the largest SDPA call run unsplit
    q, kk, vv = _empty(b, hq, L, hd), _empty(b, hkv, L, hd), _empty(b, hkv, L, hd)
    q1 = _empty(b, hq, 1, hd)
    outputs["attn"] = _empty(b, hq, L, hd)
    f_attn = _returning(outputs["attn"])
    calls["attention prefill"] = (
        lambda: K.attention(q, kk, vv, causal=True, window=None, softcap=None, scale=None),
        lambda: f_attn(q, kk, vv, is_causal=True, scale=None, enable_gqa=True),
    )
    calls["attention decode"] = (
        lambda: K.attention(q1, kk, vv, causal=True, window=None, softcap=None, scale=None),
        lambda: f_attn(q1, kk, vv, scale=None, enable_gqa=True),
    )
    state_BHPN, conv_state = _empty(b, h, p, n, dtype=torch.float32), _empty(b, conv_dim, k - 1)
    xBC_BC = _empty(b, conv_dim)
    x_BI, B_BG, C_BG = xBC_BC.split([d_inner, g * n, g * n], dim=-1)
    x_BHP, B_BGN, C_BGN = x_BI.reshape(b, h, p), B_BG.reshape(b, g, n), C_BG.reshape(b, g, n)
    A, D, dt_bias = _empty(h, dtype=torch.float32), _empty(h, dtype=torch.float32), _empty(h, dtype=torch.float32)
    outputs["ssm_step"], outputs["conv_step"] = _empty(b, h, p), _empty(b, conv_dim)
    f_step, f_cstep = _returning(outputs["ssm_step"]), _returning(outputs["conv_step"])
    dt_BH = dt_BTH[:, 0]
    calls["ssm_state_update h64"] = (
        lambda: K.ssm_state_update(state_BHPN, x_BHP, dt_BH, A, B_BGN, C_BGN, D=D, z=None, dt_bias=dt_bias,
                                   dt_softplus=True, dt_limit=(0.0, float("inf"))),
        lambda: f_step(state_BHPN, x_BHP, dt_BH, A, B_BGN, C_BGN, D=D, z=None, dt_bias=dt_bias, dt_softplus=True),
    )
    calls["conv_state_update h64"] = (
        lambda: K.conv_state_update(xBC_BTC[:, 0], conv_state, w_CK, bias_C, "silu"),
        lambda: f_cstep(xBC_BTC[:, 0], conv_state, w_CK, bias_C, "silu"),
    )
    return calls, outputs


def median_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    times = timeit.Timer(fn).repeat(repeat=repeat, number=number)
    times.sort()
    return times[len(times) // 2] / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing round")
    parser.add_argument("--repeat", type=int, default=15, help="timing rounds (the median is reported)")
    parser.add_argument("--only", help="substring of the case names to run")
    parser.add_argument("--profile", help="cProfile this case (substring) instead of timing")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    calls, outputs = cases()
    rows = []
    with torch.no_grad(), cuda_path(outputs):
        K.reset_backends_used()
        for name, (dispatch, direct) in calls.items():
            if args.only and args.only not in name:
                continue
            assert dispatch() is direct(), name  # the fake ran: the dispatch reached the fused entry point
            for _ in range(200):
                dispatch()
            if args.profile:
                if args.profile in name:
                    profiler = cProfile.Profile()
                    profiler.runcall(lambda: [dispatch() for _ in range(args.number)])
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                continue
            us_dispatch = median_us(dispatch, args.number, args.repeat)
            us_direct = median_us(direct, args.number, args.repeat)
            rows.append(dict(op=name, dispatch_us=round(us_dispatch, 2), direct_us=round(us_direct, 2),
                             overhead_us=round(us_dispatch - us_direct, 2)))
        used = K.backends_used()
    if args.profile:
        return 0
    assert all(used[op] == name for op, name in CUDA_CHOICE.items() if op in used), used
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}; median of {args.repeat} x {args.number} calls")
    print(f"{'op':<24}{'dispatch us':>12}{'direct us':>11}{'overhead us':>13}")
    for r in rows:
        print(f"{r['op']:<24}{r['dispatch_us']:>12.2f}{r['direct_us']:>11.2f}{r['overhead_us']:>13.2f}")
    print(f"backends used: {used}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
