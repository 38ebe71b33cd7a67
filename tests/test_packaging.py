"""The two install routes (pip via pyproject, conda via environment.yml) ask for the same things."""

import re

import tomllib
import yaml

from nml._infra.paths import project_root


def _names(requirements):
    return {re.split(r"[<>=!\[ ]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    root = project_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _names(p for p in pip if not p.startswith("-e")) == wanted


def test_readme_quick_start_has_the_two_make_commands():
    readme = (project_root() / "README.md").read_text()
    assert "make reproduce" in readme and "make test" in readme
    ci = (project_root() / ".ci" / "run").read_text()
    assert "make test" in ci
