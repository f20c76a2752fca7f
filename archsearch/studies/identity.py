"""A study's identity is its question: the proxy it trains (base), the model it searches for (target), the space,
the task, the recipe, the objectives and the constraints. Its canonical form is stored with the study when it is
created; a rerun whose file asks another question is refused, naming each field that changed, unless it starts a
new study under another name (`study run --as NEW_NAME`). A study stored before identities were kept is accepted
and gets the rerun's identity.

Specs are compared by their canonical form (archsearch.studies.dedup), so rewriting a pattern as `(M-)x2` or
reordering keys is no change; everything else is compared value by value, so 30 and 30.0 are equal.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..errors import UserError
from ..spec import ModelSpec
from ..storage import StudyMismatchError, redact
from .dedup import _digest, canonical_hash

VERSION = 1
# The recall probe of tasks that give their own probe ids (Task.probe_vocabulary): 2 = the corpus's frequent ids,
# from 2026-12-06; before, values from the vocabulary's upper half, which a text corpus never shows. Part of a
# text study's question when it scores recall, so a study stored with the first probe is not continued with the
# second (its recall values would not compare).
RECALL_PROBE = 2
OWN_PROBE_TASKS = ("text",)
PARTS = ("base", "target", "space", "task", "recipe", "objectives", "constraints")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")  # StudyFile.name's rule
_SHOWN = 4  # changed leaves shown per part; the rest are counted


def canonical_task(task: str | dict) -> dict[str, Any]:
    """A task as {name, options, ...}: `mqar` and `{name: mqar}` are the same task."""
    if isinstance(task, str):
        return {"name": task, "options": {}}
    return {**task, "options": dict(task.get("options") or {})}


def _task_part(file) -> dict[str, Any]:
    task = canonical_task(file.task)
    if task["name"] in OWN_PROBE_TASKS and any(o.metric == "recall" for o in file.objectives):
        task["recall_probe"] = RECALL_PROBE
    return task


def _spec_part(spec: ModelSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"name": spec.name, "hash": canonical_hash(spec),
            "spec": spec.model_dump(mode="json", exclude={"name", "description"})}


def study_identity(study) -> dict[str, Any]:
    """The identity of a resolved study (archsearch.studies.study_file.Study), as stored JSON."""
    file = study.file
    parts = {
        "base": _spec_part(study.base),
        "target": _spec_part(getattr(study, "target", None)),
        "space": study.space.model_dump(mode="json", exclude={"name", "description"}),
        "task": _task_part(file),
        "recipe": dict(file.recipe),
        "objectives": [o.to_dict() for o in file.objectives],
        "constraints": file.constraints.model_dump(mode="json"),
    }
    return {"version": VERSION, "hash": _digest(_comparable(parts)), "parts": parts}


def _comparable(parts: dict[str, Any]) -> dict[str, Any]:
    """The parts with each spec reduced to its canonical hash (its document is kept only to name what changed)."""
    return {k: ({"hash": v["hash"]} if k in ("base", "target") and v else v) for k, v in parts.items()}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each difference between two stored identities, as `field old -> new` (short), in PARTS order."""
    out: list[str] = []
    old_parts, new_parts = old.get("parts", {}), new.get("parts", {})
    for part in PARTS:
        before, after = old_parts.get(part), new_parts.get(part)
        if part in ("base", "target"):
            out += _spec_changes(part, before, after)
        elif part == "objectives":
            if before != after:
                out.append(f"objectives {_objectives(before)} -> {_objectives(after)}")
        else:
            out += _limited(part, _leaf_changes(part, before, after))
    return out


def _spec_changes(part: str, before: dict | None, after: dict | None) -> list[str]:
    if before == after or (before and after and before["hash"] == after["hash"]):
        return []
    if before is None or after is None:
        return [f"{part} {_spec_label(before)} -> {_spec_label(after)}"]
    leaves = _leaf_changes(part, before.get("spec"), after.get("spec"))
    head = f"{part} {_spec_label(before)} -> {_spec_label(after)}"
    return [head] + _limited(part, leaves) if leaves else [head]


def _spec_label(part: dict | None) -> str:
    return "(none)" if part is None else f"{part['name']} ({part['hash'][:8]})"


def _objectives(objectives: list | None) -> str:
    if not objectives:
        return "(none)"
    return "[" + ", ".join(f"{o.get('metric')} {str(o.get('direction', ''))[:3]}" for o in objectives) + "]"


def _limited(part: str, leaves: list[str]) -> list[str]:
    if len(leaves) <= _SHOWN:
        return leaves
    return leaves[:_SHOWN] + [f"{part}: {len(leaves) - _SHOWN} more change(s)"]


def _leaf_changes(path: str, before: Any, after: Any) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in list(before) + [k for k in after if k not in before]:
            out += _leaf_changes(f"{path}.{key}", before.get(key, _ABSENT), after.get(key, _ABSENT))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after) and any(
            isinstance(x, dict) for x in before + after):  # a list of sections: name the field in the section
        return [line for i, (x, y) in enumerate(zip(before, after)) for line in _leaf_changes(f"{path}[{i}]", x, y)]
    if _same(before, after):
        return []
    return [f"{path} {_short(before)} -> {_short(after)}"]


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_identity(stored: dict[str, Any] | None, identity: dict[str, Any], name: str, url: str) -> None:
    """Refuse (StudyMismatchError, exit 2) a rerun whose identity differs from the stored one; a study stored
    without an identity is accepted."""
    if stored is None:
        return
    found = changes(stored, identity)
    if not found:
        return
    lines = "\n".join(f"  {line}" for line in found)
    raise StudyMismatchError(
        f"study {name!r} in {redact(url)} asks another question than this file; changed:\n{lines}\n"
        f"start a new study with `--as NEW_NAME`, or put the file back as it was")


def renamed(study, name: str | None):
    """The study under another name (`--as NEW_NAME`), or itself when `name` is None."""
    if name is None:
        return study
    if not _NAME.match(name):
        raise UserError(f"--as {name[:60]!r}: a study name is 1-200 characters of letters, digits and _ . : -")
    return dataclasses.replace(study, file=study.file.model_copy(update={"name": name}))
