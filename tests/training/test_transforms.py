"""Reformulations of seq2seq training examples: each transform's effect and options, composition in order, the text
form, clear errors for unknown names and options, and that they touch training batches only."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.errors import UserError
from archsearch.training.tasks import TaskSpec, make_task
from archsearch.training.tasks.transforms import TRANSFORMS, Example, Pipeline, normalize

E = Example("Open file", "Datei öffnen", "en", "de")


def apply(transforms, example=E, progress=0.0, seed=0):
    return Pipeline(transforms)(example, random.Random(seed), progress)


def test_each_transform():
    assert apply("lang_tag").prefix == "<2de> "
    assert apply([{"name": "instruction", "options": {"text": "To {tgt}: "}}]).prefix == "To de: "
    assert apply("instruction:text=To_{tgt}_").prefix == "To_de_"  # the text form: no ':' or '+' in values
    assert apply("lang_tag+instruction").prefix == "Translate from en to de: <2de> "  # applied in order
    turned = apply("reverse:probability=1")
    assert (turned.source, turned.target, turned.src_lang, turned.tgt_lang) == (E.target, E.source, "de", "en")
    assert apply("reverse:probability=1+lang_tag").prefix == "<2en> "  # the tag follows the turned pair
    assert apply("reverse:probability=0") == E


@settings(max_examples=40, deadline=None)
@given(start=st.floats(0, 1), end=st.floats(0, 1), progress=st.floats(0, 1))
def test_the_hint_follows_its_schedule(start, end, progress):
    hint = f"hint:start={start}:end={end}"
    share = start + (end - start) * progress
    assert apply(hint, progress=progress).given == min(int(len(E.target) * share), len(E.target) - 1)
    assert apply(hint + ":schedule=constant", progress=progress).given == min(int(len(E.target) * start),
                                                                            len(E.target) - 1)
    assert apply(hint + ":probability=0", progress=progress).given == 0


def test_forms_and_errors():
    assert normalize("none") == [] and normalize(None) == []
    assert normalize("lang_tag+hint:start=0.25") == normalize([{"name": "lang_tag"},
                                                               {"name": "hint", "options": {"start": 0.25}}])
    with pytest.raises(UserError, match="unknown transform 'tag'; transforms: " + ", ".join(TRANSFORMS)):
        normalize("tag")
    with pytest.raises(UserError, match="transform 'hint': unknown option 'begin'; allowed options: start, end, "
                                        "schedule, probability"):
        normalize("hint:begin=0.5")
    with pytest.raises(UserError, match="transform 'hint': option start: .*less than or equal to 1"):
        normalize("hint:start=2")
    with pytest.raises(UserError, match="unknown transform 'tag'"):  # also through the task's options
        TaskSpec(name="seq2seq", options={"source": "copy", "transforms": "tag"})


def test_transforms_change_training_batches_only():
    def task(transforms):
        options = {"source": "reverse", "toy_pairs": 200, "toy_length": 4, "transforms": transforms}
        return make_task(TaskSpec(name="seq2seq", options=options), 24, 0)

    plain, tagged = task("none"), task("lang_tag+hint:start=0.5")
    assert tagged.describe()["transforms"][0] == {"name": "lang_tag", "options": {}}
    for i in range(3):
        a, b = plain.val_batch(i, 8), tagged.val_batch(i, 8)
        assert a.input_ids_BT.equal(b.input_ids_BT) and a.targets_BT.equal(b.targets_BT)
    a, b = plain.train_batch(0, 8), tagged.train_batch(0, 8)
    assert not a.input_ids_BT.equal(b.input_ids_BT)
    assert bytes(b.input_ids_BT[0, :10].tolist()) == b"<2reverse>"  # the toy pairs' language: their source name
    assert (b.targets_BT != -100).sum() < (a.targets_BT != -100).sum()  # the hint is not scored
    assert tagged.train_batch(0, 8).input_ids_BT.equal(b.input_ids_BT)  # deterministic per micro-batch
    assert tagged.generation_metrics.__func__ is plain.generation_metrics.__func__
