"""What a rewrite must keep: variables, tags and chat roles, checked by parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.optimizing.structure import example_fields, structure_problem
from promptkit.templates.store import TemplateStore

REPO = Path(__file__).parent.parent.parent
PARENT = """{% message "system" %}Answer briefly.{% endmessage %}
{% for example in examples %}{% message "user" %}{{ example.question }}{% endmessage %}
{% message "assistant" %}{{ example["answer"] }}{% endmessage %}{% endfor %}
{% message "user" %}{{ question }}{% endmessage %}
"""


@pytest.fixture
def env():
    return TemplateStore(REPO / "templates").env


def test_rewording_the_text_between_tags_is_kept(env) -> None:
    reworded = PARENT.replace("Answer briefly.", "Give a short, exact answer. Be careful.")
    assert structure_problem(env, PARENT, reworded) is None


@pytest.mark.parametrize(("change", "why"), [
    (("{{ question }}{% endmessage %}\n", "{{ query }}{% endmessage %}\n"), "reads query"),
    (("{% message \"system\" %}", "{% message \"user\" %}"), "chat roles"),
    (("{% endfor %}", "{% endfor %}{% if question %}x{% endif %}"), "tags"),
    (("{{ example[\"answer\"] }}", "{{ example.question }}"), "expressions"),
    (("{% endfor %}", ""), "does not parse"),
    (("{% endfor %}\n{% message \"user\" %}{{ question }}", "{{ question }}{% endfor %}\n"
      "{% message \"user\" %}"), "order of its expressions"),
])
def test_a_rewrite_that_changes_the_machinery_is_refused(env, change, why) -> None:
    old, new = change
    assert why in (structure_problem(env, PARENT, PARENT.replace(old, new, 1)) or "")


def test_the_fields_read_of_each_example_are_found(env) -> None:
    assert example_fields(env, PARENT, "examples") == {"question", "answer"}
    assert example_fields(env, PARENT, "question") == set()
