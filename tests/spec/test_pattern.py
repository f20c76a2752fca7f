import pytest

from archsearch.spec import PatternError, compress_pattern, expand_pattern
from archsearch.spec.pattern import MAX_LAYERS, MAX_NESTING


@pytest.mark.parametrize("text, expected", [
    ("M-*-", "M-*-"),
    ("M x3", "MMM"),
    ("Mx3-", "MMM-"),
    ("(M-)x2 *", "M-M-*"),
    ("(M-M-L-)x4 M*", "M-M-L-" * 4 + "M*"),
    ("((M-)x2 *-)x3", ("M-M-*-") * 3),
    ("  M\n-\t* ", "M-*"),
    ("(M)x1", "M"),
])
def test_expansion(text, expected):
    assert "".join(expand_pattern(text)) == expected


def test_list_form_is_taken_as_is():
    assert expand_pattern(["M", "-", "L"]) == ("M", "-", "L")


@pytest.mark.parametrize("text, position, reason", [
    ("M-)", 2, "unmatched ')'"),
    ("M(-*", 1, "'(' is never closed"),
    ("M()x2", 1, "empty group"),
    ("x3", 0, "a repeat 'xN' must follow"),
    ("M-x", 2, "'x' must be followed by a repeat count"),
    ("Mx0", 2, "repeat count must be between 1"),
    ("M3", 1, "unexpected '3'"),
    ("Mx99999999", 2, "repeat count must be between 1"),
])
def test_errors_name_their_position(text, position, reason):
    with pytest.raises(PatternError) as info:
        expand_pattern(text)
    assert info.value.position == position
    assert reason in str(info.value)
    assert f"at position {position}" in str(info.value) and repr(text) in str(info.value)


def test_empty_patterns():
    for text in ("", "   ", []):
        with pytest.raises(PatternError, match="no layers"):
            expand_pattern(text)


def test_too_many_layers_is_refused_before_expanding():
    with pytest.raises(PatternError, match=f"more than {MAX_LAYERS} layers"):
        expand_pattern("((Mx999)x999)x999")
    assert len(expand_pattern(f"Mx{MAX_LAYERS}")) == MAX_LAYERS
    with pytest.raises(PatternError, match="at most"):
        expand_pattern(["M"] * (MAX_LAYERS + 1))


def test_nesting_limit():
    deep_ok = "(" * MAX_NESTING + "M" + ")" * MAX_NESTING
    assert expand_pattern(deep_ok) == ("M",)
    with pytest.raises(PatternError, match="nest more than"):
        expand_pattern("(" * (MAX_NESTING + 1) + "M" + ")" * (MAX_NESTING + 1))


@pytest.mark.parametrize("bad", [["M", "MM"], ["M", ""], ["M", "("], ["M", 3], ["x"], [" "]])
def test_list_symbols_are_single_non_reserved_characters(bad):
    with pytest.raises(PatternError) as info:
        expand_pattern(bad)
    assert info.value.position == len(bad) - 1


def test_not_a_pattern_at_all():
    with pytest.raises(PatternError, match="not int"):
        expand_pattern(3)


def test_compress_finds_the_repeating_unit():
    assert compress_pattern(list("M-M-M-")) == "(M-)x3"
    assert compress_pattern(list("MMMM")) == "Mx4"
    assert compress_pattern(list("M-*")) == "M-*"
