"""The import layering of ARCHITECTURE.md: import-linter's contracts (pyproject.toml) hold on the tree, each kind
of contract catches a wrong edge, and what should load without torch does so at run time too."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint_module():
    spec = importlib.util.spec_from_file_location("lint_imports", ROOT / ".ci" / "lint_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lint_imports = _lint_module()


def _broken(staged: Path) -> tuple[int, list[str]]:
    result = lint_imports.lint(staged)
    assert "Contracts:" in result.stdout, result.stdout + result.stderr  # it ran, rather than failed to start
    return result.returncode, [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]


def test_every_contract_holds(tmp_path):
    returncode, broken = _broken(lint_imports.stage(tmp_path))
    assert (returncode, broken) == (0, [])


# (file in the installed layout, line appended, the start of the contract it must break)
WRONG_EDGES = {
    "kernel-imports-block": ("archsearch/kernels/ssd.py", "from archsearch.blocks import mamba2\n",
                             "The model stack"),
    "checks-import-training-lazily": ("archsearch/checks/budget.py", "def f():\n    from ..training import train\n",
                                      "The model stack"),
    "builder-via-package-getattr": ("archsearch/blocks/mlp.py", "import archsearch\n", "The model stack"),
    "dashboard-imports-training": ("archsearch/dashboard/app.py", "from archsearch.training import Recipe\n",
                                   "The dashboard and storage"),
    "storage-imports-torch": ("archsearch/storage/urls.py", "import torch\n", "The dashboard and storage"),
    "spec-imports-torch": ("archsearch/spec/pattern.py", "import torch\n", "The spec language imports no torch"),
    "hf-config-reaches-checkpoint": ("archsearch/hf/files.py", "from . import checkpoint\n",
                                     "Hugging Face configs"),
    "study-file-reaches-training": ("archsearch/studies/space.py", "from ..training import loop\n",
                                    "Hugging Face configs"),
}


@pytest.mark.parametrize("case", WRONG_EDGES)
def test_a_wrong_edge_breaks_its_contract(tmp_path, case):
    path, line, contract = WRONG_EDGES[case]
    staged = lint_imports.stage(tmp_path)
    target = staged / path
    assert target.is_file(), path
    target.write_text(target.read_text() + line)
    returncode, broken = _broken(staged)
    assert returncode == 1 and any(b.startswith(contract) for b in broken), broken


def test_spec_commands_and_the_study_launcher_load_no_torch(tmp_path):
    """Spec-only commands and `import archsearch.studies.launch` must not pay for torch (seconds at start-up)."""
    code = f"""
import sys
import archsearch.studies.launch, archsearch.training
from archsearch.cli import main
out = {str(tmp_path)!r}
for argv in (["validate", "nemotron-h-tiny"], ["show", "qwen3-tiny"], ["schema"],
             ["export-hf", "nemotron-h-tiny", "-o", out], ["import-hf", out, "-o", out + "/back.yaml"]):
    assert main(argv) == 0, argv
print("torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False"
