"""Template table integrity: every template compiles at import with each placeholder used once; a template
that would define a regex group twice fails with its name instead of ``re.error: redefinition of group``."""
import pytest

from spatial_vlm_ros.core import questions as Q


def test_every_template_uses_each_placeholder_at_most_once():
    for template in Q.TEMPLATES:
        for key in Q._PLACEHOLDERS:
            assert template.pattern.count(key) <= 1, (template.name, key)


@pytest.mark.parametrize("pattern,needle", [("is {A} left of {A}", "uses {A} more than once"),
                                            (r"(?P<dir>up) {A} (?P<dir>down)", "not a valid regex")])
def test_a_template_defining_a_group_twice_is_rejected_by_name(pattern, needle):
    with pytest.raises(ValueError, match="'broken'") as err:
        Q._compile(Q.Template("broken", pattern, "relation"))
    assert needle in str(err.value)


def test_unrecognised_questions_are_a_query_error_subclass_and_only_for_template_misses():
    with pytest.raises(Q.UnrecognisedQuestion, match="try e.g."):
        Q.parse("Which object could I stack on the box?")
    for bad in ("", "x" * (Q.MAX_QUESTION_CHARS + 1)):
        with pytest.raises(Q.QueryError) as err:
            Q.parse(bad)
        assert not isinstance(err.value, Q.UnrecognisedQuestion)
