"""The quick path (main.py) reads a plain method call without importing Click, and
means by it what Click's path means; anything else is left to Click."""

import os
import subprocess
import sys
import tempfile

from conftest import ROOT, ConsoleScript, clean_env, cli_runner, run_oint
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oint_py.main import quick
from oint_py.methods import BY_KEY

SPELLINGS = [
    "--url",
    "--userid",
    "--time",
    "--report",
    "--token",
    "--proxy",
    "--timeout",
    "--adv-response",
    "--adv_response",
    "--retries",
    "--dontwait",
    "--config",
    "--ca-bundle",
    "--ca_bundle",
    "--insecure",
    "--max-answer",
    "--out",
    "--debug",
    "--test",
    "--if-needed",
    "--plan",
    "--help",
    "--bogus",
    "--",
    "-u",
    "--quiet",
    "-q",
    "-h",
]
values = st.one_of(
    st.sampled_from(["1", "1,2", "", "-1", "--url", "a=b", "https://h/rest/1/abcd/", "Отгул"]),
    st.text(max_size=8).filter(lambda s: "\x00" not in s),
)
pieces = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(SPELLINGS)),
        st.tuples(st.sampled_from(SPELLINGS), values),
        values.map(lambda v: (f"{SPELLINGS[len(v) % 12]}={v}",)),
    ),
    max_size=6,
)
ENV = {
    "OINT_BITRIX24_URL": "https://env.example/rest/1/abcd/",
    "OINT_BITRIX24_TOKEN": "",
    "OINT_CONFIG": '{"retries": 1}',
}


class ClickScript(ConsoleScript):
    """The entry point as it is when the quick path declines a command line: Click reads it."""

    def main(self, args=(), prog_name=None, **_):
        from oint_py.cli.app import cli

        raise SystemExit(int(cli.main(list(args), prog_name="oint")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["StopTimekeeping", "pausetimekeeping", "GetTimekeepingStatus"]),
    parts=pieces,
    env=st.dictionaries(st.sampled_from(sorted(ENV)), st.sampled_from(["", "x", "https://e/rest/1/abcd/"])),
)
def test_a_command_line_means_the_same_by_either_path(method, parts, env):
    """oint_py.main:main reads a plain call without Click; the same command line read by
    Click means the same: the same output, the same messages, the same exit code (--test:
    nothing is sent, and what would be sent is printed)."""
    args = ["bitrix24", method, *[p for piece in parts for p in piece], "--test"]
    event("left to Click" if quick(args) is None else "read quickly")
    runner = cli_runner()
    env = {"NO_COLOR": "1", **dict.fromkeys(ENV), **env}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:  # an --out among the options writes here
        os.chdir(scratch)
        try:
            by_main = runner.invoke(ConsoleScript(), args, env=env)
            by_click = runner.invoke(ClickScript(), args, env=env)
        finally:
            os.chdir(here)
    assert (by_main.exit_code, by_main.stdout, by_main.stderr) == (
        by_click.exit_code,
        by_click.stdout,
        by_click.stderr,
    ), args


def test_quick_takes_the_usual_forms():
    assert quick(["bitrix24", "stoptimekeeping", "--url=https://h/rest/1/ab/", "--userid", "5", "--adv_response"]) == (
        BY_KEY["stoptimekeeping"],
        {"url": "https://h/rest/1/ab/", "userid": "5", "adv_response": True},
    )
    for left_to_click in (
        ["bitrix24", "StopTimekeeping"],
        ["bitrix24", "StopTimekeeping", "--help"],
        ["bitrix24", "StopTimekeeping", "--url"],
        ["Bitrix24", "StopTimekeeping", "--url", "x"],
        ["bitrix24", "Nope", "--url", "x"],
        ["bitrix24", "GetTimekeepingStatus", "--plan"],
    ):
        assert quick(left_to_click) is None, left_to_click


def test_a_plain_call_does_not_import_click(portal):
    probe = (
        "import sys\nfrom oint_py.main import main\ncode = main()\n"
        "print(int(code), 'click' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.stderr.strip().splitlines()[-1] == "0 False"
    proc = subprocess.run(
        [sys.executable, "-c", probe, "bitrix24", "GetTimekeepingStatus", "--nope"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert proc.stderr.strip().splitlines()[-1] == "5 True"


def test_help_pages_are_the_same_with_or_without_click():
    """The quick path shows the pages Click's commands show, byte for byte."""
    from oint_py.cli.app import cli

    for args in (
        [],
        ["--help"],
        ["bitrix24"],
        ["bitrix24", "--help"],
        ["bitrix24", "stoptimekeeping"],
        ["bitrix24", "PauseTimekeeping", "--help"],
    ):
        quick_out = run_oint(*args)  # oint_py.main:main, the console script's entry
        clicked = cli_runner().invoke(cli, args, env={"NO_COLOR": "1"})
        assert quick_out.code == clicked.exit_code == 0, args
        assert quick_out.raw == clicked.stdout_bytes, args
