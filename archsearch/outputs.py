"""Where a command writes: checked before any work starts, so an unusable output path is one clear error (the
option, the path, why) instead of a traceback after minutes of work. One rule for every command that writes a
file (`schema -o`, `import-hf -o`) or a folder (`export-hf -o`, `train -o`).

The check walks up to the nearest existing ancestor: it must be a folder we may write into. An existing target
must be of the right kind (a file for a file, a folder for a folder) and writable. Permissions are judged by
os.access (the effective user's view; root passes where the filesystem would still refuse, e.g. a read-only
mount, which the write itself then reports through `write_failed`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def _why_not_creatable(path: Path) -> str | None:
    """Why nothing can be created at the missing `path`, or None if it can (its parents made as needed)."""
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link: creating through it fails
            return f"{ancestor} is a broken symbolic link"
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a regular file, not a folder, so nothing can be created under it"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to write in {ancestor}"
    return None


def _problem(path: Path, folder: bool) -> str | None:
    if path.is_symlink() and not path.exists():
        return "it is a broken symbolic link"
    if path.exists():
        if folder and not path.is_dir():
            return "it exists and is not a folder"
        if not folder and path.is_dir():
            return "it is a folder; give a file name"
        if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            return f"no permission to write {'in ' if folder else ''}{path}"
        return None
    return _why_not_creatable(path)


def check_output(path: str | Path, option: str, *, folder: bool) -> Path:
    """`path` as a Path if a file (folder=False) or a folder (folder=True) can be written there; else UserError
    naming `option`, the path and why."""
    target = Path(path).expanduser()
    if str(path).strip() == "":
        raise UserError(f"{option}: the path is empty; give a {'folder' if folder else 'file'} to write")
    try:
        why = _problem(target, folder)
    except OSError as err:  # a name too long, a loop of links, ...
        why = err.strerror or str(err)
    except ValueError as err:  # a NUL byte in the path
        why = str(err)
    if why is not None:
        raise UserError(f"{option} {str(path)[:200]!r}: cannot write there: {why}")
    return target


def write_failed(path: str | Path, option: str, err: OSError) -> UserError:
    """The UserError for a write that failed anyway (disk full, read-only filesystem)."""
    return UserError(f"{option} {str(path)[:200]!r}: cannot write: {err.strerror or err}")
