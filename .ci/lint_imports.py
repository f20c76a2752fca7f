"""Check the import contracts of pyproject.toml ([tool.importlinter]) with import-linter's `lint-imports`.

import-linter finds a package's modules by walking its folder, and the repo's folders are not the package's:
kernels/, blocks/, spaces/ and studies/ install as archsearch.kernels, .blocks, .spaces and .study_files
([tool.setuptools.package-dir]). So the tree is first copied as it installs into a temporary folder, and
lint-imports runs over that copy. Usage: `python .ci/lint_imports.py` (exit status and report of lint-imports).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage(dest: Path, root: Path = ROOT) -> Path:
    """Copy the `archsearch` package under `dest` laid out as installed; return `dest`."""
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "archsearch", dest / "archsearch", ignore=ignore)
    for package, folder in setuptools.get("package-dir", {}).items():
        shutil.copytree(root / folder, dest / package.replace(".", "/"), ignore=ignore)
    return dest


def lint(staged: Path, root: Path = ROOT) -> subprocess.CompletedProcess:
    """lint-imports over a staged tree (the staged copy shadows the editable install on sys.path)."""
    exe = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(staged), "PYTHONSAFEPATH": "1", "COLUMNS": "200"}  # one line a contract
    return subprocess.run([str(exe), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=staged,
                          env=env, capture_output=True, text=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="archsearch-imports-") as tmp:
        result = lint(stage(Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
