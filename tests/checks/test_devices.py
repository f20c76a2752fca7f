"""The device catalog: every figure sourced, user files add and override, bad files and names are clear errors."""

import pytest

from archsearch.checks import load_catalog
from archsearch.checks.devices import ENV_VAR, GIB
from archsearch.errors import UserError

REQUIRED = {"a10g", "l4", "l40s", "a100-40gb", "a100-80gb", "h100-80gb", "h100-pcie", "h200", "rtx-4090"}


def test_catalog_has_the_required_devices_with_sources():
    catalog = load_catalog()
    assert REQUIRED <= set(catalog.keys())
    for key in catalog.keys():
        device = catalog.get(key)
        for figure in (device.memory_gib, device.bf16_tflops, device.fp8_tflops, device.bandwidth_gbs):
            assert len(figure.source) > 10, (key, figure)
        assert (device.fp8_tflops.value is not None) == device.fp8
        assert device.fp8 == (tuple(map(int, device.compute_capability.split("."))) >= (8, 9))


def test_aliases_are_case_insensitive():
    catalog = load_catalog()
    assert catalog.get("H100").key == "h100-80gb"
    assert catalog.get(" A100 ").key == "a100-80gb"


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        load_catalog().get("tpu-v5")
    assert "'tpu-v5'" in str(err.value) and "a10g" in str(err.value) and "rtx-4090" in str(err.value)


def test_user_file_adds_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("""
devices:
  a10g:
    memory_gib: {value: 23, source: my nvidia-smi}
  my-gpu:
    name: Lab GPU
    compute_capability: "8.0"
    fp8: false
    memory_gib: {value: 16, source: label}
    bf16_tflops: {value: 100, source: label}
    fp8_tflops: {value: null, source: none}
    bandwidth_gbs: {value: 900, source: label}
""")
    catalog = load_catalog(path)
    assert catalog.get("a10g").usable_bytes == 23 * GIB
    assert catalog.get("a10g").bandwidth_gbs.value == 600  # fields not named stay
    assert catalog.get("my-gpu").usable_bytes == 16 * GIB
    monkeypatch.setenv(ENV_VAR, str(path))
    assert load_catalog().get("my-gpu").name == "Lab GPU"


@pytest.mark.parametrize("text, message", [
    ("devices: [1, 2]", "a 'devices' table"),
    ("devices: {x: {name: X}}", "device 'x' in the catalog is invalid"),
    ("devices: {a10g: {fp8: true}}", "fp8: true needs an fp8_tflops value"),
    ("devices: {a10g: {memory_gib: {value: null, source: s}}}", "memory_gib needs a value"),
    ("devices: {a: [", "malformed YAML"),
])
def test_bad_user_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_catalog(path)


def test_missing_user_file():
    with pytest.raises(UserError, match="--devices: cannot read device file"):
        load_catalog("/nonexistent/devices.yaml")
