"""Which compiled FlexAttention calls inductor can lower on this GPU, for the cache shapes the prefill/decode
paths use (positional block mask over a 160-token cache, head_dim 64, bf16). Prints one line per case."""

import traceback

import torch

from archsearch.kernels.attn import _kernel_options, flex_positional
from archsearch.kernels.attn_positions import position_block_mask  # noqa: F401 (imported by flex_positional)


def case(t: int, s: int, hq: int, hkv: int, window, options=None, **compile_kwargs):
    q = torch.randn(2, hq, t, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, hkv, s, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    q_pos = torch.arange(s - t, s, device="cuda")
    k_pos = torch.arange(s, device="cuda")
    torch._dynamo.reset()
    fn = torch.compile(flex_positional, dynamic=False, **compile_kwargs)
    label = f"t={t} s={s} hq={hq} hkv={hkv} window={window} options={options} {compile_kwargs or ''}"
    try:
        fn(q, k, v, q_pos, k_pos, window, None, None, hq != hkv, options)
        torch.cuda.synchronize()
        print("OK  ", label, flush=True)
    except Exception as e:  # noqa: BLE001 - a diagnostic: report and go on
        print("FAIL", label, type(e).__name__, str(e).splitlines()[0][:300], flush=True)
        traceback.print_exc(limit=2)


for t, s in [(64, 160), (36, 160), (1, 160), (64, 256), (128, 256)]:
    for hq, hkv, window in [(4, 2, None), (4, 1, 96)]:
        case(t, s, hq, hkv, window)  # inductor's own choice of template
        case(t, s, hq, hkv, window, _kernel_options(t, hq // hkv))  # archsearch's choice
