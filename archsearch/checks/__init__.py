"""Budget checks: does a spec serve a context on a GPU, and how fast? Device catalog (YAML data), analytic memory
model and roofline projection (spec only, no torch), measured memory and throughput (builder, lazily)."""

from .budget import BudgetReport, check_budget
from .devices import BudgetPolicy, Catalog, Device, budget_policy, get_device, load_catalog
from .memory import MemoryBreakdown, MemoryModel
from .settings import CheckSettings
from .sizes import format_bytes, parse_count

__all__ = ["BudgetPolicy", "BudgetReport", "Catalog", "CheckSettings", "Device", "MemoryBreakdown", "MemoryModel",
           "budget_policy", "check_budget", "format_bytes", "get_device", "load_catalog", "parse_count"]
