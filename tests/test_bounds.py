"""README's Bounds table, checked against behaviour: every figure the table states is read
from the README and tried at the bound and one step past it, through the real `oint`.
A constant in oint_py/bounds.py changed without the README (or the README without the
code) fails here; so does a bound that stops being enforced."""

import json
import re

import pytest
from conftest import oint_on, run_oint, user_docs
from scripted import Script, answer, batch_answer, commands, run_timeless

README = user_docs()  # the Bounds table stands in docs/reference.md
STATUS = ("bitrix24", "GetTimekeepingStatus", "--url")
HOOK = "https://h/rest/1/abcd/"


def _table() -> dict[str, tuple[str, str]]:
    """The Bounds table: {what: (bound, past it)}."""
    section = README.split("\n## Bounds\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): (cells[1].strip(), cells[2].strip()) for cells in rows[1:] if len(cells) == 3}


TABLE = _table()


def figure(row: str, pattern: str) -> float:
    """A number in a row of the Bounds table (`row`: the start of its first cell), by a regex with one group."""
    cells = next(" | ".join(v) for k, v in TABLE.items() if k.startswith(row))
    m = re.search(pattern, cells)
    assert m, f"README Bounds row {row!r} no longer states {pattern!r}: {cells}"
    return float(m[1].replace(",", ""))


def test_the_table_has_a_row_for_every_bound():
    assert len(TABLE) >= 10, TABLE


# -- time and attempts ---------------------------------------------------------------
def test_default_and_largest_timeout():
    default = figure("One attempt", r"default ([\d.]+) s")
    top = figure("One attempt", r"at most ([\d,]+) s")
    assert run_oint(*STATUS, HOOK, "--test").json()["timeout"] == default
    assert run_oint(*STATUS, HOOK, "--test", "--timeout", f"{top:g}").code == 0
    r = run_oint(*STATUS, HOOK, "--test", "--timeout", f"{top + 1:g}")
    assert r.code == 5 and "out of range" in r.err


def test_default_number_of_attempts(tmp_path):
    retries = int(figure("Attempts", r"default (\d+)"))
    with Script(lambda req: answer({"error": "INTERNAL", "error_description": "down"}, 500)) as s:
        r, sleeps = run_timeless(tmp_path, *STATUS, s.url)
    assert r.code == 4
    assert len(s.requests) == 1 + retries
    assert f"[{1 + retries} attempts]" in r.err


def test_largest_number_of_retries():
    top = int(figure("Attempts", r"at most (\d+)"))
    assert run_oint(*STATUS, HOOK, "--test", "--retries", top).json()["retries"] == top
    r = run_oint(*STATUS, HOOK, "--test", "--retries", top + 1)
    assert r.code == 5 and "out of range" in r.err


@pytest.mark.parametrize("past", [0, 1])
def test_retry_after_is_waited_up_to_its_cap_and_no_longer(tmp_path, past):
    cap = figure("Attempts", r"`Retry-After` up to ([\d.]+) s")
    asked = cap + past
    script = iter(
        [answer({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "wait"}, 503, [("Retry-After", f"{asked:g}")])]
    )
    with Script(lambda req: next(script, answer({"result": {"STATUS": "OPENED"}}))) as s:
        r, sleeps = run_timeless(tmp_path, *STATUS, s.url)
    if past:
        assert r.code == 4 and f"asked to wait {asked:g} s" in r.err
        assert len(s.requests) == 1
    else:
        assert r.code == 0, r.err
        assert sleeps and sleeps[0] == asked
        assert len(s.requests) == 2


# -- size and depth ----------------------------------------------------------------------
def test_default_max_answer():
    mib = figure("Answer size", r"default (\d+) MiB")
    assert run_oint(*STATUS, HOOK, "--test").json()["max_answer"] == mib * 2**20


def test_max_answer_has_a_floor():
    kib = figure("Answer size", r"at least (\d+) KiB")
    assert run_oint(*STATUS, HOOK, "--test", "--max-answer", f"{kib:g}K").json()["max_answer"] == kib * 1024
    past = run_oint(*STATUS, HOOK, "--test", "--max-answer", str(int(kib * 1024) - 1))
    assert past.code == 5 and f"is out of range {int(kib * 1024)}.." in past.err


def _deep(levels: int) -> bytes:
    """A Bitrix24 answer whose JSON nests `levels` deep in all (the outer object is level 1)."""
    inner = levels - 1
    return b'{"result": ' + b"[" * inner + b"]" * inner + b"}"


@pytest.mark.parametrize("past,code", [(0, 0), (1, 4)])
def test_answer_nesting(past, code):
    levels = int(figure("JSON nesting", r"(\d+) levels")) + past
    with Script(lambda req: (200, [("Content-Type", "application/json")], _deep(levels))) as s:
        r = run_oint(*STATUS, s.url, "--retries", 0)
    assert r.code == code, r.err
    if past:
        assert "nested deeper than" in r.err


@pytest.mark.parametrize("past", [0, 1])
def test_config_nesting(past):
    """No deep --config is a valid one; at the bound it is refused for its key, past it for its depth."""
    levels = int(figure("JSON nesting", r"(\d+) levels")) + past
    config = '{"x": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
    r = run_oint(*STATUS, HOOK, "--test", "--config", config)
    assert r.code == 5
    assert ("nested deeper than" in r.err) == bool(past), r.err


@pytest.mark.parametrize("past,code", [(0, 0), (1, 4)])
def test_redirects_followed_within_the_origin(past, code):
    hops = int(figure("Redirects", r"^(\d+)")) + past

    def respond(req):
        done = int(req["path"].split("/hop")[1].split("/")[0]) if "/hop" in req["path"] else 0
        if done < hops:
            return 307, [("Location", f"/hop{done + 1}/rest/1/code/timeman.status")], b""
        return answer({"result": {"STATUS": "OPENED"}})

    with Script(respond) as s:
        r = run_oint(*STATUS, s.url)
    assert r.code == code, r.err
    assert len(s.requests) == min(hops, int(figure("Redirects", r"^(\d+)"))) + 1


@pytest.mark.parametrize("past,code", [(0, 0), (1, 5)])
def test_option_file_size(tmp_path, past, code):
    limit = int(figure("A file named in an option", r"(\d+) MiB")) * 2**20
    path = tmp_path / "config.json"
    path.write_bytes(b"{}" + b" " * (limit - 2 + past))
    r = run_oint(*STATUS, HOOK, "--test", "--config", str(path))
    assert r.code == code, r.err


def test_one_stderr_line_is_cut_at_its_bound():
    limit = int(figure("One stderr line", r"([\d,]+) characters"))
    error = {"error": "X", "error_description": "d" * (3 * limit)}
    with Script(lambda req: answer(error, 400)) as s:
        r = run_oint(*STATUS, s.url)
    assert r.code == 3
    [line] = [line for line in r.err.splitlines() if line.startswith("oint: ")]
    text = line[len("oint: ") :]
    assert text.endswith("... (cut)") and len(text) - len("... (cut)") == limit


def test_a_line_at_the_bound_is_not_cut():
    limit = int(figure("One stderr line", r"([\d,]+) characters"))
    with Script(lambda req: answer({"error": "X", "error_description": "d"}, 400)) as s:
        short = run_oint(*STATUS, s.url).err.strip()[len("oint: ") :]
        pad = limit - len(short) + 1
        error = {"error": "X", "error_description": "d" * pad}
        s.respond = lambda req: answer(error, 400)
        r = run_oint(*STATUS, s.url)
    assert "(cut)" not in r.err and len(r.err.strip()) == len("oint: ") + limit


# -- many users --------------------------------------------------------------------------
def test_users_per_batch_request(portal):
    size = int(figure("Users per batch", r"^(\d+)"))
    r = oint_on(portal, "--userid", ",".join(map(str, range(1, 2 * size + 2))), method="GetTimekeepingStatus")
    assert r.code == 0, r.err
    assert [len(c["params"]["cmd"]) for c in portal.calls("batch")] == [size, size, 1]


@pytest.mark.parametrize("past", [0, 1])
def test_users_listed_by_all(tmp_path, past):
    most = int(figure("Users listed by", r"^([\d,]+)"))
    total = most + past

    def respond(req):
        if req["method"] == "user.get":
            return answer({"result": [{"ID": "1"}], "next": 50, "total": total})
        cmd = commands(req)
        if any(c.startswith("user.get") for c in cmd.values()):
            return batch_answer({k: [] for k in cmd})
        return batch_answer({k: {"STATUS": "CLOSED"} for k in cmd})

    with Script(respond) as s:
        r, _ = run_timeless(
            tmp_path, "bitrix24", "StopTimekeeping", "--url", s.url, "--userid", "all", "--plan", timeout=300
        )
    if past:
        assert r.code == 4 and f"more than the {most:,}" in r.err
        assert len(s.requests) == 1
    else:
        assert r.code == 0, r.err
        pages = sum(len(commands(req)) for req in s.requests if req["method"] == "batch") - 1  # - the status read
        assert pages == -(-most // 50) - 1


def test_requests_burst_then_the_drain_rate(tmp_path):
    burst = int(figure("Requests", r"(\d+) at once"))
    rate = figure("Requests", r"then (\d+) a second")
    extra = 5
    users = ",".join(str(i) for i in range(1, 50 * (burst + extra) + 1))
    with Script(lambda req: batch_answer({k: {"STATUS": "OPENED"} for k in commands(req)})) as s:
        r, sleeps = run_timeless(tmp_path, *STATUS, s.url, "--userid", users, timeout=120)
    assert r.code == 0, r.err
    assert len(s.requests) == burst + extra
    assert sleeps == pytest.approx([1 / rate] * extra)


@pytest.mark.parametrize("option", ["--url", "--proxy"])
@pytest.mark.parametrize("past,code", [(0, 0), (1, 5)])
def test_url_length(option, past, code):
    most = int(figure("`--url`, `--proxy`", r"([\d,]+) characters"))
    head = HOOK if option == "--url" else "http://127.0.0.1:9/"
    value = head + "x" * (most - len(head) + past)
    args = ["--url", value] if option == "--url" else ["--url", HOOK, "--proxy", value]
    r = run_oint("bitrix24", "GetTimekeepingStatus", *args, "--test")
    assert r.code == code, r.err


def test_debug_shows_an_answer_up_to_its_bound():
    most = int(figure("An answer shown by `--debug`", r"([\d,]+) characters"))
    body = json.dumps({"result": {"P": "p" * (2 * most)}})
    with Script(lambda req: (200, [("Content-Type", "application/json")], body.encode())) as s:
        r = run_oint(*STATUS, s.url, "--debug")
    assert r.code == 0, r.err
    [shown] = [line for line in r.err.splitlines() if line.startswith("< {")]
    assert shown[len("< ") :] == body[:most]
