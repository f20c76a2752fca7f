"""The device catalog: GPUs as data (package YAML, with the user's own file on top), read into pydantic models."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import UserError

GIB = 1 << 30
ENV_VAR = "ARCHSEARCH_DEVICES"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Figure(_Frozen):
    """One number with where it comes from."""

    value: Annotated[float, Field(gt=0)] | None
    source: Annotated[str, Field(min_length=1)]


class BudgetPolicy(_Frozen):
    """How much of a device's usable memory a model may plan for: usable x buffer_fraction - reserve."""

    buffer_fraction: Annotated[float, Field(gt=0, le=1)] = 0.95
    reserve_gib: Annotated[float, Field(ge=0)] = 1.3
    source: str = "NVIDIA Nemotron Nano 2 report (arXiv:2508.14444): 22 GiB x 0.95 - 1.3 GiB on the A10G"

    def budget_bytes(self, usable_bytes: int) -> int:
        return int(usable_bytes * self.buffer_fraction - self.reserve_gib * GIB)


def budget_policy(base: BudgetPolicy | None, buffer_fraction: float | None = None, reserve_gib: float | None = None,
                  *, source: str = "command line", names: tuple[str, str] = ("buffer_fraction", "reserve_gib"),
                  ) -> BudgetPolicy | None:
    """The policy with the given values put over `base` (a device's own policy; None: the default policy), or
    None when neither value is given (the check then uses the device's policy). `names` are how the caller's
    user spelled the two values (e.g. command-line flags), for the error."""
    if buffer_fraction is None and reserve_gib is None:
        return None
    base = base or BudgetPolicy()
    try:
        return BudgetPolicy(buffer_fraction=base.buffer_fraction if buffer_fraction is None else buffer_fraction,
                            reserve_gib=base.reserve_gib if reserve_gib is None else reserve_gib, source=source)
    except ValidationError as err:
        raise UserError(f"{names[0]}/{names[1]}: {err.errors()[0]['msg']}; allowed: a fraction in (0, 1] and a "
                        f"reserve >= 0 GiB") from None


class Device(_Frozen):
    key: str
    name: str
    aliases: tuple[str, ...] = ()
    compute_capability: Annotated[str, Field(pattern=r"^\d+\.\d+$")]
    fp8: bool
    memory_gib: Figure
    bf16_tflops: Figure
    fp8_tflops: Figure
    bandwidth_gbs: Figure
    budget: BudgetPolicy | None = None  # None: the check's default policy

    @model_validator(mode="after")
    def _check(self) -> "Device":
        for field in ("memory_gib", "bf16_tflops", "bandwidth_gbs"):
            if getattr(self, field).value is None:
                raise ValueError(f"{field} needs a value (only fp8_tflops may be null)")
        if self.fp8 and self.fp8_tflops.value is None:
            raise ValueError("fp8: true needs an fp8_tflops value")
        return self

    @property
    def usable_bytes(self) -> int:
        return int(self.memory_gib.value * GIB)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gbs.value * 1e9

    def peak_flops(self, dtype: str = "bfloat16") -> float:
        """Dense tensor-core FLOP/s for matmuls in `dtype` ("float8" needs FP8 tensor cores)."""
        if dtype == "float8":
            if not self.fp8 or self.fp8_tflops.value is None:
                raise UserError(f"device {self.key!r} has no FP8 tensor cores; allowed compute dtype: bfloat16")
            return self.fp8_tflops.value * 1e12
        return self.bf16_tflops.value * 1e12


def _read_yaml(text: str, where: str) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"device file {where}: malformed YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        raise UserError(f"device file {where}: expected a mapping with a 'devices' table of name -> entry")
    return {str(k).lower(): v for k, v in data["devices"].items()}


@lru_cache(maxsize=1)
def _package_entries() -> dict[str, dict[str, Any]]:
    text = resources.files("archsearch.checks").joinpath("devices.yaml").read_text(encoding="utf-8")
    return _read_yaml(text, "archsearch/checks/devices.yaml")


class Catalog:
    """Devices by key; `get` also accepts aliases, case-insensitively."""

    def __init__(self, devices: dict[str, Device]):
        self.devices = devices
        self._names = {}
        for key, device in devices.items():
            for name in (key, *device.aliases):
                self._names[name.lower()] = key

    def keys(self) -> list[str]:
        return sorted(self.devices)

    def get(self, name: str) -> Device:
        key = self._names.get(str(name).strip().lower())
        if key is None:
            raise UserError(f"--device: unknown device {name!r}; known devices: {', '.join(self.keys())} "
                            f"(add your own with --devices FILE or {ENV_VAR}=FILE)")
        return self.devices[key]


def load_catalog(user_file: str | Path | None = None) -> Catalog:
    """The package catalog, with `user_file` (or $ARCHSEARCH_DEVICES) on top: new keys add devices, known keys
    override the fields they name."""
    entries = {k: dict(v) if isinstance(v, dict) else v for k, v in _package_entries().items()}
    path = user_file if user_file is not None else os.environ.get(ENV_VAR) or None
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"--devices: cannot read device file {str(path)!r}: {err}") from None
        for key, entry in _read_yaml(text, str(path)).items():
            if not isinstance(entry, dict):
                raise UserError(f"device file {path}: entry {key!r} must be a mapping of fields")
            entries[key] = {**entries.get(key, {}), **entry}
    devices = {}
    for key, entry in entries.items():
        try:
            devices[key] = Device.model_validate({**entry, "key": key})
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise UserError(f"device {key!r} in the catalog is invalid: {problems}") from None
    return Catalog(devices)


def get_device(name: str, user_file: str | Path | None = None) -> Device:
    return load_catalog(user_file).get(name)
