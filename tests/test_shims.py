"""The one shim oint-py keeps on httpx's internals (and httpcore's public API it leans on), tested
on the installed version, which CI runs at both ends of the range pyproject.toml pins (ci/lowest.txt);
and Click, used through its public API only, so pinned from below only."""

import re
import subprocess
import sys
from importlib import metadata

import pytest
from conftest import ROOT, clean_env


def pinned(distribution: str) -> tuple[str, str]:
    """The (lowest, below) versions pyproject.toml allows for a distribution."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    found = re.search(rf'"{distribution}>=([\d.]+),<([\d.]+)"', text)
    assert found, f"{distribution} has no pinned range in pyproject.toml"
    return found[1], found[2]


def as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@pytest.mark.parametrize("distribution", ["httpx", "httpcore"])
def test_the_installed_version_is_within_the_pinned_range(distribution):
    low, below = pinned(distribution)
    installed = metadata.version(distribution)
    assert as_tuple(low) <= as_tuple(installed) < as_tuple(below), (distribution, installed, low, below)


def test_httpx_is_imported_without_its_command_line_module():
    """transport._import_httpx: httpx takes its own fallback for `main`, and neither
    click nor rich (which httpx's CLI would load) is imported."""
    probe = (
        "import sys\nfrom oint_py.net.transport import _import_httpx\nhttpx = _import_httpx()\n"
        "print(callable(httpx.main), 'click' in sys.modules, 'rich' in sys.modules, "
        "sys.modules.get('httpx._main', 'absent'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60
    )
    assert proc.stdout.split() == ["True", "False", "False", "None"], proc.stderr


def test_httpx_imported_first_by_someone_else_is_left_as_it_is():
    probe = (
        "import sys, httpx\nfrom oint_py.net.transport import _import_httpx\n"
        "print(_import_httpx() is httpx, sys.modules.get('httpx._main') is not None)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60
    )
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_click_has_no_upper_bound_and_completion_uses_its_public_names_only():
    """Completion leans on no Click internals (cli.Command's shell_complete hook decides what
    follows an option's value), so click is pinned from below only."""
    import ast

    text = (ROOT / "pyproject.toml").read_text("utf-8")
    low = re.search(r'"click>=([\d.]+)"', text)
    assert low, "click is not pinned from below only"
    assert as_tuple(low[1]) <= as_tuple(metadata.version("click"))
    for module in ("cli/completion.py", "cli/app.py", "cli/jobs.py"):
        tree = ast.parse((ROOT / "oint_py" / module).read_text("utf-8"))
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in ("click", "sc", "ctx")
        ]
        private += [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("click")
            for alias in node.names
            if alias.name.startswith("_")
        ]
        assert private == [], (module, private)
