"""Ablations: Student-t quantiles against a t-table, the grid, the summary's means, intervals and paired diffs."""

import math

import pytest

from archsearch.errors import UserError
from archsearch.spec import load_spec
from archsearch.studies.ablation import format_summary, parse_vary, run_ablation, store_ablation
from archsearch.studies.stats import mean_ci, t_quantile


@pytest.mark.parametrize("df, q975", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                      (29, 2.0452), (120, 1.9799)])
def test_t_quantile_matches_the_t_table(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=1e-4)


def test_mean_ci_by_hand():
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci.mean == 2.0 and ci.sd == 1.0
    assert ci.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean_ci([5.0]).half_width is None


def _fake_train(base_value):
    """A deterministic 'training' whose loss depends on d_state and the seed: the paired diff is exact."""

    def run(spec, seed):
        d_state = spec.blocks["M"].d_state
        if d_state == 64 and seed == 2:
            raise RuntimeError("out of memory")
        return {"status": "completed", "metrics": {"val_loss": base_value - 0.01 * d_state + 0.1 * seed}}

    return run


def test_grid_summary_and_paired_difference(tmp_path):
    base = load_spec("nemotron-h-tiny")
    axes = parse_vary(["blocks.M.d_state=16,32,64", "d_model=128"], base)
    ablation = run_ablation(base, axes, [0, 1, 2], _fake_train(2.0))
    assert len(ablation.runs) == 9
    rows = {r["cell"]: r for r in ablation.summary()}
    base_row = rows["blocks.M.d_state=16,d_model=128"]
    assert base_row["is_base"] and base_row["mean"] == pytest.approx(2.0 - 0.16 + 0.1)
    cell = rows["blocks.M.d_state=32,d_model=128"]
    assert cell["diff"]["mean"] == pytest.approx(-0.16) and cell["diff"]["sd"] == pytest.approx(0, abs=1e-12)
    # an exact, seed-independent difference: its CI has zero width, so the effect is significant
    assert cell["diff"]["ci95"] == pytest.approx(0, abs=1e-12) and cell["significant"] is True
    failed = rows["blocks.M.d_state=64,d_model=128"]
    assert failed["failed"] == 1 and failed["n"] == 2 and failed["diff"]["n"] == 2
    text = format_summary(ablation)
    assert "(base)" in text and "1 failed" in text

    from archsearch.storage import Database

    with Database(f"sqlite:///{tmp_path / 'a.db'}") as db:
        ablation_id = store_ablation(db, ablation, {"task": "mqar"}, {"steps": 5})
        from archsearch.storage.models import AblationRunRecord

        with db.session() as s:
            runs = s.query(AblationRunRecord).filter_by(ablation_id=ablation_id).all()
    assert len(runs) == 9 and sum(r.status == "failed" for r in runs) == 1


JITTER = [0.01, -0.02, 0.015, -0.005]  # per-seed noise of the paired difference: mean 0, sd sqrt(2.5e-4)


def _noisy_train(effect):
    """Loss 1 + seed noise; d_state=32 adds `effect` plus a per-seed jitter, so the paired differences are
    effect + JITTER: mean `effect`, 95% CI half-width t(0.975, 3) * sd / sqrt(4) = 3.1824 * 0.015811 / 2."""

    def run(spec, seed):
        value = 1.0 + 0.3 * seed
        if spec.blocks["M"].d_state == 32:
            value += effect + JITTER[seed]
        return {"status": "completed", "metrics": {"val_loss": value}}

    return run


@pytest.mark.parametrize("effect, significant", [(0.5, True), (-0.05, True), (0.0, False), (0.02, False)])
def test_significance_is_whether_the_paired_ci_excludes_zero(effect, significant):
    base = load_spec("nemotron-h-tiny")
    ablation = run_ablation(base, parse_vary(["blocks.M.d_state=16,32"], base), [0, 1, 2, 3],
                            _noisy_train(effect))
    cell = {r["cell"]: r for r in ablation.summary()}["blocks.M.d_state=32"]
    assert cell["diff"]["mean"] == pytest.approx(effect, abs=1e-12)
    assert cell["diff"]["ci95"] == pytest.approx(3.182446 * math.sqrt(2.5e-4) / 2, rel=1e-5)  # 0.02516
    assert cell["significant"] is significant
    marked = [line for line in format_summary(ablation).splitlines() if line.startswith("blocks.M.d_state=32")]
    assert marked[0].rstrip().endswith(" *") is significant


def test_base_setting_is_added_when_not_listed():
    base = load_spec("nemotron-h-tiny")
    ablation = run_ablation(base, parse_vary(["blocks.M.d_state=32,64"], base), [0, 1], _fake_train(1.0))
    assert [c.label for c in ablation.cells] == ["blocks.M.d_state=16", "blocks.M.d_state=32", "blocks.M.d_state=64"]


@pytest.mark.parametrize("vary, message", [
    (["blocks.Q.d_state=1,2"], "defines no block 'Q'"),
    (["d_model"], "expected PATH=a,b,c"),
    (["blocks.M.n_groups=3"], "cell blocks.M.n_groups=3"),
    (["d_model=64,64"], "a value repeats"),
    (["pattern=M-,(M-)x1"], "expands to the same layers as 'M-'"),
    (["pattern=M-(M"], "--vary pattern: '\\(' is never closed"),
    (["pattern=M-Q-"], "cell pattern=M-Q-"),  # a symbol the base defines no block for: an invalid cell
    (["pattern.local_global=1:1,3:1"], r"no pattern generator .*--vary 'pattern=\(M-M-\*-\)x2 M-,\.\.\.'"),
    (["pattern.n_layers=2,4"], "search n_layers in a study space"),
])
def test_bad_axes_fail_before_training(vary, message):
    base = load_spec("nemotron-h-tiny")
    calls = []
    with pytest.raises(UserError, match=message):
        run_ablation(base, parse_vary(vary, base), [0], lambda s, seed: calls.append(1))
    assert calls == []


def _by_pattern(spec, seed):
    """A 'training' whose loss is the number of attention layers, so each cell's value names its pattern."""
    return {"status": "completed", "metrics": {"val_loss": float(spec.pattern_string.count("*")) + 0.01 * seed}}


def test_vary_whole_patterns():
    """`--vary pattern=A,B`: each value is a whole pattern (YAML would read `*-*-` as an alias), the cells build
    those layers, and a value with the base's layers in other notation is the base cell, not a second one."""
    base = load_spec("nemotron-h-tiny")  # (M-M-*-)x2 M-
    axes = parse_vary(["pattern=M-M-*-M-M-*-M-, M-M*-,*-*-,(M-)x3"], base)
    ablation = run_ablation(base, axes, [0, 1], _by_pattern)
    assert [c.label for c in ablation.cells] == ["pattern=(M-M-*-)x2 M-", "pattern=M-M*-", "pattern=*-*-",
                                                "pattern=(M-)x3"]
    assert [c.is_base for c in ablation.cells] == [True, False, False, False]
    assert [c.spec.pattern_string for c in ablation.cells] == ["M-M-*-M-M-*-M-", "M-M*-", "*-*-", "M-M-M-"]
    rows = {r["cell"]: r for r in ablation.summary()}
    assert rows["pattern=(M-)x3"]["diff"]["mean"] == pytest.approx(-2.0)
    assert rows["pattern=*-*-"]["diff"]["mean"] == pytest.approx(0.0)


def test_ablate_cli_refuses_a_generator_field_with_what_to_do(capsys):
    from archsearch.cli import main

    assert main(["ablate", "nemotron-h-tiny", "--vary", "pattern.local_global=1:1,3:1"]) == 2
    err = capsys.readouterr().err
    assert "no pattern generator" in err and "--vary 'pattern=" in err and "Traceback" not in err
