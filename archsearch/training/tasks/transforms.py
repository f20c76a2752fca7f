"""Reformulations of seq2seq training examples, declared as data and composed in order: each turns one example into
another (no new data, no change at inference: validation and generation see the plain examples).

A transform is written `{"name": "hint", "options": {"start": 0.5}}`, or as text `hint:start=0.5`; several are
joined with `+` (`lang_tag+hint:start=0.5`; values holding `:` or `+` need the mapping form), the form
`archsearch ablate --vary task.transforms=...` takes, and `none` is the empty list. An unknown transform or option
is a UserError listing what exists."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archsearch.errors import UserError


@dataclass(frozen=True)
class Example:
    """One (source, target) pair as the model will see it: `prefix + source <sep> target[:given] | target[given:]
    <end>`, the loss on the part after `|`."""

    source: str
    target: str
    src_lang: str
    tgt_lang: str
    prefix: str = ""
    given: int = 0  # leading characters of the target given in the prompt (a hint), not scored


class TransformOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Transform:
    name: ClassVar[str]
    Options: ClassVar[type[TransformOptions]] = TransformOptions
    description: ClassVar[str] = ""

    def __init__(self, options: TransformOptions):
        self.options = options

    def apply(self, example: Example, rng: random.Random, progress: float) -> Example:
        """`progress`: the share of training done (0 .. 1), for transforms with a schedule."""
        raise NotImplementedError


class LangTagOptions(TransformOptions):
    format: str = Field("<2{tgt}> ", description="the tag put before the source; {tgt} and {src} are the languages")


class _Prefix(Transform):
    """Text before the source, from a template naming the languages ({src}, {tgt})."""

    def template(self) -> str:
        raise NotImplementedError

    def apply(self, example, rng, progress):
        text = self.template().format(tgt=example.tgt_lang, src=example.src_lang)
        return replace(example, prefix=text + example.prefix)


class LangTag(_Prefix):
    name = "lang_tag"
    Options = LangTagOptions
    description = "a target-language tag before the source"

    def template(self) -> str:
        return self.options.format


class InstructionOptions(TransformOptions):
    text: str = Field("Translate from {src} to {tgt}: ", description="the instruction; {src}, {tgt}: the languages")


class Instruction(_Prefix):
    name = "instruction"
    Options = InstructionOptions
    description = "an instruction before the source"

    def template(self) -> str:
        return self.options.text


class HintOptions(TransformOptions):
    start: Annotated[float, Field(ge=0, le=1)] = Field(0.5, description="share of the target given at the start")
    end: Annotated[float, Field(ge=0, le=1)] = Field(0.0, description="share given at the end of training")
    schedule: Literal["linear", "constant", "step"] = Field(
        "linear", description="linear: start -> end over training; constant: start; step: start, then end halfway")
    probability: Annotated[float, Field(ge=0, le=1)] = Field(1.0, description="share of examples given a hint")


class Hint(Transform):
    name = "hint"
    Options = HintOptions
    description = "the first part of the target given after the separator (not scored), shrinking over training"

    def share(self, progress: float) -> float:
        o = self.options
        if o.schedule == "constant":
            return o.start
        if o.schedule == "step":
            return o.start if progress < 0.5 else o.end
        return o.start + (o.end - o.start) * min(max(progress, 0.0), 1.0)

    def apply(self, example, rng, progress):
        if rng.random() >= self.options.probability:
            return example
        given = int(len(example.target) * self.share(progress))
        return replace(example, given=min(max(example.given, given), max(len(example.target) - 1, 0)))


class ReverseOptions(TransformOptions):
    probability: Annotated[float, Field(ge=0, le=1)] = Field(0.5, description="share of examples turned around")


class Reverse(Transform):
    name = "reverse"
    Options = ReverseOptions
    description = "auxiliary examples: the pair turned around (target -> source), for a share of the examples"

    def apply(self, example, rng, progress):
        if rng.random() >= self.options.probability:
            return example
        return replace(example, source=example.target, target=example.source, src_lang=example.tgt_lang,
                       tgt_lang=example.src_lang, given=0)


TRANSFORMS: dict[str, type[Transform]] = {t.name: t for t in (LangTag, Instruction, Hint, Reverse)}


def _option_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_text(text: str) -> list[dict[str, Any]]:
    """`lang_tag+hint:start=0.5:end=0` -> [{"name": "lang_tag", "options": {}}, {"name": "hint", ...}]."""
    text = text.strip()
    if text in ("", "none", "baseline"):
        return []
    items = []
    for part in text.split("+"):
        name, *settings = part.strip().split(":")
        options = {}
        for setting in settings:
            key, sep, value = setting.partition("=")
            if not sep or not key.strip():
                raise UserError(f"transform {part.strip()!r}: option {setting!r} is not KEY=VALUE (a value holding ':' "
                                "or '+' needs the form {name: ..., options: {...}})")
            options[key.strip()] = _option_value(value.strip())
        items.append({"name": name.strip(), "options": options})
    return items


def normalize(transforms: str | list[Any] | None) -> list[dict[str, Any]]:
    """The declared transforms as [{"name", "options"}], each checked: an unknown name or option is a UserError."""
    if transforms is None:
        return []
    items = parse_text(transforms) if isinstance(transforms, str) else []
    if not isinstance(transforms, str):
        for item in transforms:
            if isinstance(item, str):
                items += parse_text(item)
            elif isinstance(item, dict) and set(item) <= {"name", "options"} and isinstance(item.get("name"), str):
                items.append({"name": item["name"], "options": dict(item.get("options") or {})})
            else:
                raise UserError(f"transform {item!r}: expected a name, NAME:KEY=VALUE text, or {{name, options}}")
    for item in items:
        build_one(item)
    return items


def build_one(item: dict[str, Any]) -> Transform:
    cls = TRANSFORMS.get(item["name"])
    if cls is None:
        raise UserError(f"unknown transform {item['name']!r}; transforms: {', '.join(TRANSFORMS)}")
    allowed = ", ".join(cls.Options.model_fields) or "(none)"
    unknown = [k for k in item["options"] if k not in cls.Options.model_fields]
    if unknown:
        raise UserError(f"transform {cls.name!r}: unknown option {unknown[0]!r}; allowed options: {allowed}")
    try:
        return cls(cls.Options.model_validate(item["options"]))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise UserError(f"transform {cls.name!r}: option {where}: {first['msg']} (got {first.get('input')!r}); "
                        f"allowed options: {allowed}") from None


class Pipeline:
    """The declared transforms, applied in order to each training example."""

    def __init__(self, transforms: str | list[Any] | None):
        self.items = normalize(transforms)
        self.transforms = [build_one(item) for item in self.items]

    def __call__(self, example: Example, rng: random.Random, progress: float) -> Example:
        for transform in self.transforms:
            example = transform.apply(example, rng, progress)
        return example


def describe_transforms() -> str:
    """One line per transform with its options, for help texts and errors."""
    lines = []
    for cls in TRANSFORMS.values():
        options = ", ".join(f"{k} ({f.description})" for k, f in cls.Options.model_fields.items())
        lines.append(f"{cls.name}: {cls.description}; options: {options or 'none'}")
    return "\n".join(lines)
