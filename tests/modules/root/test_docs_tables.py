"""tools/docs.py: the Inputs/Outputs tables of every module README are generated, and CI
fails when one is stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import docs

ROOT = Path(__file__).resolve().parents[3]

MODULE = '''\
variable "name" {
  description = "Name | with a pipe and a <placeholder>."
  type        = string

  validation {
    condition     = length(var.name) > 0
    error_message = "name must not be empty {really}."
  }
}

variable "knobs" {
  description = "Grouped knobs."
  type = object({
    port    = optional(number, 8080)
    enabled = optional(bool, false)
  })
  default  = {}
  nullable = false
}

variable "cidrs" {
  description = "Lists \\"quoted\\" [brackets] in a string."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}
'''

OUTPUTS = '''\
output "endpoint" {
  description = "Where to send requests."
  value       = "http://${var.name}"
}
'''


def make_module(root: Path) -> Path:
    module = root / "mod"
    module.mkdir()
    (module / "variables.tf").write_text(MODULE)
    (module / "outputs.tf").write_text(OUTPUTS)
    (module / "README.md").write_text("# mod\n\nHand-written intro.\n")
    return module


def test_repository_readmes_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_readme_has_the_generated_tables() -> None:
    for module in docs.module_dirs(ROOT):
        readme = (module / "README.md").read_text()
        assert docs.BEGIN in readme and docs.END in readme, module
        for variable in docs.read_module(module)[0]:
            assert f"| `{variable.name}` |" in readme, (module, variable.name)


def test_tables_list_type_default_and_required(tmp_path: Path) -> None:
    module = make_module(tmp_path)
    assert docs.main([str(module)]) == 0
    readme = (module / "README.md").read_text()
    assert readme.startswith("# mod\n\nHand-written intro.\n")
    assert (
        "| `name` | Name \\| with a pipe and a &lt;placeholder&gt;. | `string` | n/a | yes |"
        in readme
    )
    assert (
        "| `knobs` | Grouped knobs. | `object({ port = optional(number, 8080), "
        "enabled = optional(bool, false) })` | `{}` | no |" in readme
    )
    assert '| `cidrs` | Lists "quoted" [brackets] in a string. | `list(string)` |' in readme
    assert '`["0.0.0.0/0"]` | no |' in readme
    assert "| `endpoint` | Where to send requests. |" in readme


def test_check_fails_on_a_stale_readme_and_regenerating_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = make_module(tmp_path)
    assert docs.main([str(module)]) == 0
    assert docs.main(["--check", str(module)]) == 0

    variables = module / "variables.tf"
    variables.write_text(
        variables.read_text()
        + '\nvariable "added" {\n  description = "New."\n  type        = number\n}\n'
    )
    capsys.readouterr()
    assert docs.main(["--check", str(module)]) == 1
    out = capsys.readouterr().out
    assert "out of date; run `python tools/docs.py`" in out
    assert "+| `added` | New. | `number` | n/a | yes |" in out

    assert docs.main([str(module)]) == 0
    assert docs.main(["--check", str(module)]) == 0
    # Hand-written text outside the markers survives regeneration.
    assert "Hand-written intro." in (module / "README.md").read_text()


def test_a_variable_without_description_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = make_module(tmp_path)
    (module / "extra.tf").write_text('variable "bare" {\n  type = string\n}\n')
    assert docs.main(["--check", str(module)]) == 2
    assert "variable 'bare' has no description" in capsys.readouterr().err


def test_broken_markers_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = make_module(tmp_path)
    (module / "README.md").write_text(f"# mod\n{docs.END}\n{docs.BEGIN}\n")
    assert docs.main([str(module)]) == 2
    assert "needs exactly one" in capsys.readouterr().err
