"""`decode_tokens_per_s`, the analytic throughput objective: the roofline projection of decoding the last 1024
tokens of the first budget constraint's context on its device at its batch, judged on whatever spec the screen
sees (the target, in a study that names one)."""

import pytest

from archsearch.checks import CheckSettings, load_catalog
from archsearch.checks.memory import MemoryModel
from archsearch.checks.roofline import project
from archsearch.spec import load_spec, parse_spec
from archsearch.studies.screening import DECODE_TAIL, Screen
from archsearch.studies.study_file import BudgetConstraint, Constraints

CONTEXT = 131072


def _screen(device="a10g", context="128k", batch=2):
    return Screen(Constraints(budget=[BudgetConstraint(device=device, context=context, batch=batch)]))


def _nano_with_attention(count: int):
    """Nemotron-Nano-9B-v2 with its Mamba-2 layers turned into attention, evenly, until it has `count`."""
    doc = load_spec("nemotron-nano-9b-v2").to_dict()
    layers = list(doc["pattern"])
    mamba = [i for i, s in enumerate(layers) if s == "M"]
    extra = count - layers.count("*")
    for j in range(extra):
        layers[mamba[int((j + 0.5) * len(mamba) / extra)]] = "*"
    doc["pattern"] = "".join(layers)
    return parse_spec(doc)


def test_the_objective_is_the_roofline_projection_at_the_first_budget():
    spec = load_spec("nemotron-nano-9b-v2")
    verdict = _screen()(spec)
    model = MemoryModel(spec, CheckSettings())
    expected = project(spec, load_catalog().get("a10g"), model, CONTEXT - DECODE_TAIL, DECODE_TAIL, 2)
    assert verdict.analytic["decode_tokens_per_s"] == pytest.approx(expected.decode_tokens_per_s, rel=1e-12)
    assert 0 < verdict.analytic["decode_tokens_per_s"] < 1e6


def test_more_global_attention_decodes_slower_at_128k():
    # each global attention layer reads its whole KV cache per generated token; Mamba-2 reads a fixed state
    rates = [_screen()(_nano_with_attention(n)).analytic["decode_tokens_per_s"] for n in (4, 8, 16)]
    assert rates[0] > rates[1] > rates[2], rates


def test_a_faster_device_projects_a_higher_rate():
    spec = load_spec("nemotron-nano-9b-v2")
    slow, fast = (_screen(device=d, batch=1)(spec).analytic["decode_tokens_per_s"] for d in ("a10g", "h100-80gb"))
    assert fast > slow


def test_the_objective_needs_a_budget_constraint(write_study):
    from archsearch.studies.documents import FileError
    from archsearch.studies import load_study

    path = write_study(constraints={}, objectives=["val_loss", "decode_tokens_per_s"])
    with pytest.raises(FileError, match="decode_tokens_per_s.*add constraints.budget"):
        load_study(path)
