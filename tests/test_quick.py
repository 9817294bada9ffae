"""The quick path (main.py) reads a plain method call exactly as Click would,
without importing Click; anything else is left to Click."""

import os
import subprocess
import sys

from conftest import ROOT, clean_env
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oint_py.cli import method_command
from oint_py.main import quick
from oint_py.methods import BY_KEY
from oint_py.redact import Redactor

SPELLINGS = ["--url", "--userid", "--time", "--report", "--token", "--proxy", "--timeout", "--adv-response",
             "--adv_response", "--retries", "--dontwait", "--config", "--ca-bundle", "--ca_bundle", "--insecure",
             "--max-answer", "--out", "--debug", "--test", "--if-needed", "--plan", "--help", "--bogus", "--", "-u",
             "--quiet", "-q", "-h"]
values = st.one_of(st.sampled_from(["1", "1,2", "", "-1", "--url", "a=b", "https://h/rest/1/abcd/", "Отгул"]),
                   st.text(max_size=8).filter(lambda s: "\x00" not in s))
pieces = st.lists(st.one_of(
    st.tuples(st.sampled_from(SPELLINGS)),
    st.tuples(st.sampled_from(SPELLINGS), values),
    values.map(lambda v: (f"{SPELLINGS[len(v) % 12]}={v}",)),
), max_size=6)
ENV = {"OINT_BITRIX24_URL": "https://env.example/rest/1/abcd/", "OINT_BITRIX24_TOKEN": "", "OINT_CONFIG": '{"retries": 1}'}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["StopTimekeeping", "pausetimekeeping", "GetTimekeepingStatus"]), parts=pieces,
       env=st.dictionaries(st.sampled_from(sorted(ENV)), st.sampled_from(["", "x", "https://e/rest/1/abcd/"])))
def test_quick_reads_what_click_reads(method, parts, env):
    args = ["bitrix24", method, *[p for piece in parts for p in piece]]
    saved = {k: os.environ.pop(k, None) for k in ENV}
    os.environ.update(env)
    try:
        found = quick(args)
        event("left to Click" if found is None else "read quickly")
        if found is None:
            return  # Click reads it (and says what is wrong)
        method_, kw = found
        assert method_ is BY_KEY[method.lower()]
        ctx = method_command(method_).make_context(method, list(args[2:]), obj=Redactor())
        clicked = {k: v for k, v in ctx.params.items() if v is not None}
    finally:
        for k in ENV:
            os.environ.pop(k, None)
            if saved[k] is not None:
                os.environ[k] = saved[k]
    assert {k: v for k, v in kw.items() if v is not None} == clicked


def test_quick_takes_the_usual_forms():
    assert quick(["bitrix24", "stoptimekeeping", "--url=https://h/rest/1/ab/", "--userid", "5", "--adv_response"]) \
        == (BY_KEY["stoptimekeeping"], {"url": "https://h/rest/1/ab/", "userid": "5", "adv_response": True})
    for left_to_click in (["bitrix24", "StopTimekeeping"], ["bitrix24", "StopTimekeeping", "--help"],
                          ["bitrix24", "StopTimekeeping", "--url"], ["Bitrix24", "StopTimekeeping", "--url", "x"],
                          ["bitrix24", "Nope", "--url", "x"], ["bitrix24", "GetTimekeepingStatus", "--plan"]):
        assert quick(left_to_click) is None, left_to_click


def test_a_plain_call_does_not_import_click(portal):
    probe = ("import sys\nfrom oint_py.main import main\ntry:\n    main()\nexcept SystemExit as e:\n"
             "    print(e.code, 'click' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe, "bitrix24", "GetTimekeepingStatus", "--url", portal.webhook()],
                          capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "0 False"
    proc = subprocess.run([sys.executable, "-c", probe, "bitrix24", "GetTimekeepingStatus", "--nope"],
                          capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "5 True"


def test_help_pages_are_the_same_with_or_without_click():
    """The quick path shows the pages Click's commands show, byte for byte."""
    from click.testing import CliRunner

    from oint_py.cli import cli

    for args in ([], ["--help"], ["bitrix24"], ["bitrix24", "--help"], ["bitrix24", "stoptimekeeping"],
                 ["bitrix24", "PauseTimekeeping", "--help"]):
        quick_out = subprocess.run([sys.executable, "-m", "oint_py", *args], capture_output=True, env=clean_env(),
                                   cwd=ROOT, timeout=60)
        clicked = CliRunner().invoke(cli, args, env={"NO_COLOR": "1"})
        assert quick_out.returncode == clicked.exit_code == 0, args
        assert quick_out.stdout == clicked.stdout_bytes, args
