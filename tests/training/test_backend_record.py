"""train() records the kernel backends of its own run, not those of an earlier run in the same process."""

import archsearch
from archsearch.training import Recipe, TaskSpec, train

SSM_OPS = {"ssd_scan", "causal_conv1d", "gated_rmsnorm"}


def test_a_pure_attention_run_after_a_mamba2_run_records_no_ssm_kernels():
    task = TaskSpec(name="mqar", options={"vocab": 16, "n_pairs": 2})
    recipe = Recipe(steps=2, batch_size=2, seq_len=16, eval_every=2, eval_batches=1)
    mamba = train(archsearch.load_spec("mamba2-tiny"), task, recipe, progress=False, device="cpu")
    assert SSM_OPS & set(mamba.backends)
    attention = train(archsearch.load_spec("qwen3-tiny"), task, recipe, progress=False, device="cpu")
    assert attention.status == "completed"
    assert "attention" in attention.backends
    assert not SSM_OPS & set(attention.backends), attention.backends
    assert SSM_OPS & set(archsearch.kernels.backends_used())  # the process-wide record still has both
