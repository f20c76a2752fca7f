"""`check_budget`: does a spec serve `context` tokens x `batch` sequences on a device? The analytic verdict."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from ..spec.model import ModelSpec
from .devices import BudgetPolicy, Device, load_catalog
from .fit import largest_batch, largest_context
from .memory import MemoryBreakdown, MemoryModel
from .settings import CheckSettings
from .sizes import parse_count

DEFAULT_POLICY = BudgetPolicy()


@dataclass(frozen=True)
class BudgetReport:
    spec_name: str
    device: str  # catalog key
    context: int
    batch: int
    usable_bytes: int
    budget_bytes: int
    policy: BudgetPolicy
    settings: CheckSettings
    breakdown: MemoryBreakdown
    largest_context: int  # at this batch, up to the spec's max_context (or the context asked, when beyond it)
    largest_batch: int  # at this context
    max_context: int

    @property
    def needs_extension(self) -> bool:
        """The context asked is beyond the spec's max_context: memory is answered, but the model would first
        need context extension (longer training, RoPE scaling) to serve it."""
        return self.context > self.max_context

    @property
    def warnings(self) -> list[str]:
        if not self.needs_extension:
            return []
        return [f"context {self.context} is beyond the spec's max_context ({self.max_context}): the memory verdict "
                "holds, but the model would need context extension (training at that length, or RoPE scaling "
                "such as YaRN) to serve it"]

    @property
    def total_bytes(self) -> int:
        return self.breakdown.total

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.budget_bytes - self.total_bytes

    def to_dict(self) -> dict:
        return {
            "kind": "analytic estimate",
            "spec": self.spec_name, "device": self.device, "context": self.context, "batch": self.batch,
            "fits": self.fits, "total_bytes": self.total_bytes, "budget_bytes": self.budget_bytes,
            "headroom_bytes": self.headroom_bytes, "usable_bytes": self.usable_bytes,
            "policy": self.policy.model_dump(), "settings": self.settings.to_dict(),
            "breakdown": self.breakdown.components, "per_kind": self.breakdown.per_kind,
            "per_symbol": self.breakdown.per_symbol, "workspace_layer": self.breakdown.workspace_layer,
            "largest_context": self.largest_context, "largest_batch": self.largest_batch,
            "max_context": self.max_context, "needs_context_extension": self.needs_extension,
            "warnings": self.warnings,
        }


def catalog_device(device: Device | str, devices_file=None) -> Device:
    """The device catalog's entry for a key (a Device passes through)."""
    return device if isinstance(device, Device) else load_catalog(devices_file).get(device)


def check_context(spec: ModelSpec, context: int | str, batch: int, *, context_arg: str = "context",
                  batch_arg: str = "batch", beyond_max_context: bool = False) -> tuple[int, int]:
    """Validated (context, batch); errors name the argument, the value and what is allowed. A context beyond
    the spec's max_context is refused unless `beyond_max_context` (the report then warns of it)."""
    context = parse_count(context, context_arg)
    if context > spec.max_context and not beyond_max_context:
        raise UserError(f"{context_arg}: {context} tokens is beyond the spec's max_context ({spec.max_context}); "
                        f"allowed: 1 .. {spec.max_context} (`archsearch check` answers beyond it, with a warning)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"{batch_arg}: must be a whole number >= 1, got {batch!r}")
    return context, batch


def check_budget(spec: ModelSpec, device: Device | str, context: int | str, batch: int = 1,
                 settings: CheckSettings | None = None, *, devices_file=None,
                 model: MemoryModel | None = None, beyond_max_context: bool = False) -> BudgetReport:
    """The analytic verdict with its breakdown and the largest context / batch that fit.

    `model` lets a caller that screens the same spec at many points compile the memory model once.
    `beyond_max_context`: answer the memory question for a context longer than the spec's max_context (the
    report's `warnings` say the model would need context extension) instead of refusing; studies keep refusing,
    so a spec that cannot serve a constraint's context is infeasible there.
    """
    context, batch = check_context(spec, context, batch, beyond_max_context=beyond_max_context)
    device = catalog_device(device, devices_file)
    settings = settings or CheckSettings()
    model = model or MemoryModel(spec, settings)
    policy = settings.policy or device.budget or DEFAULT_POLICY
    budget = policy.budget_bytes(device.usable_bytes)
    return BudgetReport(
        spec_name=spec.name, device=device.key, context=context, batch=batch, usable_bytes=device.usable_bytes,
        budget_bytes=budget, policy=policy, settings=settings, breakdown=model.breakdown(context, batch),
        largest_context=largest_context(model, batch, budget, max(spec.max_context, context)),
        largest_batch=largest_batch(model, context, budget), max_context=spec.max_context)
