"""Issue 16: runs a person can trust at 3 a.m. `--quiet` for cron, `-h`, and the
everyday rough edges, each against the sandbox portal as a real process."""

import json

import pytest
from conftest import oint_on, run_oint


# -- --quiet and -h (item 3) ---------------------------------------------------------
@pytest.mark.parametrize("quiet", ["--quiet", "-q"])
def test_quiet_success_prints_nothing_and_still_writes_out(portal, tmp_path, quiet):
    out = tmp_path / "close.json"
    r = oint_on(portal, "--userid", "all", "--if-needed", "--out", out, quiet)
    assert (r.code, r.raw, r.err) == (0, b"", "")
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 300
    r = oint_on(portal, "--userid", 7, quiet, method="GetTimekeepingStatus")  # no --out: nothing at all
    assert (r.code, r.raw, r.err) == (0, b"", "")


def test_quiet_failure_shows_the_summary_and_at_most_20_failure_lines(portal, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(map(str, [*range(1, 6), *range(90001, 90031)])))  # 5 users, 30 who are not
    out = tmp_path / "close.json"
    loud = oint_on(portal, "--userid", f"@{ids}", "--if-needed", "--plan", "--out", out)
    r = oint_on(portal, "--userid", f"@{ids}", "--if-needed", "--out", out, "--quiet")
    assert r.code == loud.code == 3
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 22, r.err
    assert lines[:20] == [f"oint: user {uid}: User not found" for uid in range(90001, 90021)]
    assert lines[20] == f"oint: and 10 more: see {out}"
    assert lines[21] == "oint: 5 closed, 0 skipped, 30 failed"
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 35


def test_quiet_failure_without_out_keeps_the_answer_on_stdout(portal):
    r = oint_on(portal, "--userid", 99999, "-q")
    assert r.code == 3 and r.json()["error_description"] == "User not found"
    assert r.err.count("\n") == 1


@pytest.mark.parametrize("args", [["-h"], ["bitrix24", "-h"], ["bitrix24", "StopTimekeeping", "-h"],
                                  ["bitrix24", "StopTimekeeping", "--userid", "1", "-h"], ["jobs", "-h"]])
def test_h_is_help(args):
    r = run_oint(*args)
    long = run_oint(*[a if a != "-h" else "--help" for a in args])
    assert r.code == 0 and r.err == "" and r.out == long.out and "usage" in r.out.lower()
