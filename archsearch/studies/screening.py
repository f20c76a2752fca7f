"""Screening before training: the analytic verdict on a candidate spec, as Optuna constraint values.

Every trial reports every constraint (Optuna's samplers compare trials key by key); a value <= 0 is satisfied.
- `valid`: 0 for a valid spec, 1 for one that fails validation
- `budget:DEVICE@CONTEXTxBATCH`: (analytic bytes - budget bytes) / budget bytes
- `params_min` / `params_max`: relative distance outside the parameter range
Analytic objectives come from the first budget constraint: `memory_bytes` (its serving memory) and
`decode_tokens_per_s` (the roofline projection of generating the last DECODE_TAIL tokens of its context, on its
device at its batch: a projection for ranking candidates, not a measurement).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..checks import CheckSettings, check_budget, load_catalog, parse_count
from ..checks.memory import MemoryModel
from ..checks.roofline import project
from ..errors import UserError
from ..spec import ModelSpec, count_parameters
from .study_file import Constraints

DECODE_TAIL = 1024  # tokens generated at the end of the budget's context for `decode_tokens_per_s`


@dataclass
class Verdict:
    fits: bool
    constraints: dict[str, float]
    budget: dict[str, Any] = field(default_factory=dict)  # constraint key -> BudgetReport.to_dict()
    analytic: dict[str, float] = field(default_factory=dict)  # n_params, memory_bytes
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


class Screen:
    """Compiled constraints of one study: resolved devices and settings, reused for every candidate."""

    def __init__(self, constraints: Constraints):
        catalog = load_catalog()
        self.budgets = [(c.key, catalog.get(c.device), parse_count(c.context, "context"), c.batch,
                         CheckSettings(**c.settings)) for c in constraints.budget]
        self.params = constraints.params

    def keys(self) -> list[str]:
        keys = ["valid"] + [key for key, *_ in self.budgets]
        if self.params is not None:
            keys += [k for k, v in (("params_min", self.params.min), ("params_max", self.params.max)) if v is not None]
        return keys

    def invalid(self, reason: str) -> Verdict:
        """The verdict on a sample that made no valid spec: only `valid` is violated (nothing else is known)."""
        constraints = {key: 0.0 for key in self.keys()}
        constraints["valid"] = 1.0
        return Verdict(False, constraints, reasons=[reason])

    def __call__(self, spec: ModelSpec) -> Verdict:
        n_params = count_parameters(spec).total
        verdict = Verdict(True, {"valid": 0.0}, analytic={"n_params": float(n_params)})
        for index, (key, device, context, batch, settings) in enumerate(self.budgets):
            try:
                model = MemoryModel(spec, settings)  # one memory model for the verdict and the projection
                report = check_budget(spec, device, context, batch, settings, model=model)
            except UserError as err:  # e.g. the context is beyond this spec's max_context
                verdict.constraints[key] = 1.0
                verdict.budget[key] = {"error": str(err)}
                verdict.reasons.append(f"{key}: {err}")
                verdict.fits = False
                continue
            verdict.budget[key] = report.to_dict()
            verdict.constraints[key] = (report.total_bytes - report.budget_bytes) / report.budget_bytes
            if index == 0:
                verdict.analytic["memory_bytes"] = float(report.total_bytes)
                tail = min(DECODE_TAIL, context // 2)
                projection = project(spec, device, model, context - tail, tail, batch)
                verdict.analytic["decode_tokens_per_s"] = float(projection.decode_tokens_per_s)
            if not report.fits:
                verdict.fits = False
                verdict.reasons.append(f"{key}: needs {report.total_bytes / 2**30:.2f} GiB of a "
                                       f"{report.budget_bytes / 2**30:.2f} GiB budget")
        if self.params is not None:
            low, high = self.params.min, self.params.max
            if low is not None:
                verdict.constraints["params_min"] = (low - n_params) / max(low, 1.0)
            if high is not None:
                verdict.constraints["params_max"] = (n_params - high) / high
            if (low is not None and n_params < low) or (high is not None and n_params > high):
                verdict.fits = False
                verdict.reasons.append(f"params: {n_params:,} outside [{low or 0:,.0f}, "
                                       f"{high if high is not None else float('inf'):,.0f}]")
        return verdict
