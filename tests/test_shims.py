"""The one shim oint-py keeps on each dependency's internals, tested on the installed
version, which CI runs at both ends of the range pyproject.toml pins (ci/lowest.txt)."""

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


@pytest.mark.parametrize("distribution", ["httpx", "httpcore", "click"])
def test_the_installed_version_is_within_the_pinned_range(distribution):
    low, below = pinned(distribution)
    installed = metadata.version(distribution)
    assert as_tuple(low) <= as_tuple(installed) < as_tuple(below), (distribution, installed, low, below)


def test_httpx_is_imported_without_its_command_line_module():
    """transport._import_httpx: httpx takes its own fallback for `main`, and neither
    click nor rich (which httpx's CLI would load) is imported."""
    probe = (
        "import sys\nfrom oint_py.transport import _import_httpx\nhttpx = _import_httpx()\n"
        "print(callable(httpx.main), 'click' in sys.modules, 'rich' in sys.modules, "
        "sys.modules.get('httpx._main', 'absent'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60
    )
    assert proc.stdout.split() == ["True", "False", "False", "None"], proc.stderr


def test_httpx_imported_first_by_someone_else_is_left_as_it_is():
    probe = (
        "import sys, httpx\nfrom oint_py.transport import _import_httpx\n"
        "print(_import_httpx() is httpx, sys.modules.get('httpx._main') is not None)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60
    )
    assert proc.stdout.split() == ["True", "True"], proc.stderr


@pytest.mark.parametrize(
    "args,incomplete,what",
    [
        (["bitrix24"], "Sto", "Library"),  # a method name
        (["bitrix24", "StopTimekeeping"], "", "MethodCommand"),  # the options of a method
        (["bitrix24", "StopTimekeeping", "--userid"], "", "Option"),  # an option's value
        (["bitrix24", "StopTimekeeping", "--out"], "rep", "Option"),
        (["completion"], "ba", "Argument"),
    ],
)
def test_completion_resolves_what_is_being_completed(args, incomplete, what):
    """completion._resolve: the shim on click's _resolve_context/_resolve_incomplete."""
    from oint_py import completion
    from oint_py.cli import cli

    complete = completion.BashComplete(cli, {}, "oint", completion.COMPLETE_VAR)
    ctx, obj, word = completion._resolve(complete, args, incomplete)
    assert type(obj).__name__ == what
    assert word == incomplete
    assert ctx.info_name == (args[-1] if what != "Option" else args[1])
