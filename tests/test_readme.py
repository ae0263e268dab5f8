"""The README's Python example runs as written (in a scratch folder)."""

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "(32, 32, 32) (12.5, 12.5, 12.5)" in out
    assert "'slab': (2, 4, 32, 32, 1)" in out
    assert "(2, 32, 32, 32, 1) (2, 8, 8, 8, 1)" in out  # the HA-GAN example
    assert "100 {2.0} True" in out  # the CTGAN example: exact and range conditions
