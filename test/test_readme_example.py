"""The README's Python example runs as written and its printed answers are right."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using the core from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_python_example_runs_and_answers(capsys):
    exec(compile(python_example(), "README.md", "exec"), {})
    relation, distance, height = capsys.readouterr().out.strip().splitlines()
    assert relation.startswith("Yes")
    true_distance = ((0.15 + 0.2) ** 2 + 0.05 ** 2 + (0.05 - 0.08) ** 2) ** 0.5   # centers (x, y, z) in metres
    assert abs(float(distance) - true_distance) < 0.02
    assert "16" in height or "0.16" in height
