"""Issue 17 (hardening round 3) and issue 16 (runs a person can trust): a sweep
that never misses or double-applies a day. Real `oint` processes against the
sandbox portal, made to repeat, shift and lie the way a Bitrix24 portal can."""

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from conftest import OINT, clean_env, run_oint

from test_sweep import commands, on, sent, snapshot

NEEDS_CLOSE = ("OPENED", "PAUSED", "EXPIRED")


def lying(portal, lie):
    """Replace the portal's offset pages of user.get by `lie(params, real)`; paging by ID (start=-1) stays true."""
    real = portal._m_user_get

    def user_get(params, caller):
        if str(params.get("START")) == "-1":
            return real(params, caller)
        return lie(params, lambda: real(params, caller))

    portal._m_user_get = user_get


def closed_all_active(portal, r):
    active = [uid for uid in portal.users if uid not in portal.inactive]
    assert all(portal.days[uid]["STATUS"] == "CLOSED" for uid in active), r.err
    assert set(sent(portal, "timeman.close")) == {str(uid) for uid in active}
    assert Counter(sent(portal, "timeman.close").values()) == Counter({1: len(active)})


# -- item 2: a listing that does not add up is read again by ID --------------------------------------------
def test_pages_that_repeat_are_read_again_by_id_and_every_user_is_closed(make_portal):
    portal = make_portal(users=120)
    lying(portal, lambda params, real: _first_page_always(portal, params))  # 50 of 120, then 50 again
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)
    assert "listed again by ID" in r.err.splitlines()[0]
    assert r.err.splitlines()[-1] == "oint: 120 closed, 0 skipped, 0 failed"


def _first_page_always(portal, params):
    from oint_py.sandbox.portal import Paged

    users = sorted(portal.users)[:50]
    return Paged([{"ID": str(u), "ACTIVE": True} for u in users], 0, len(portal.users))


def test_a_user_deactivated_while_the_list_is_read_leaves_nobody_out(make_portal):
    portal = make_portal(users=200)
    real = portal._m_user_get

    def user_get(params, caller):
        page = real(params, caller)
        if str(params.get("START") or 0) == "0" and 7 not in portal.inactive:
            portal.inactive.add(7)  # dismissed right after the first page: every later page shifts by one
        return page

    portal._m_user_get = user_get
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)  # user 51, shifted onto the first page, is closed too
    assert portal.days[51]["STATUS"] == "CLOSED" and portal.days[7]["STATUS"] == "OPENED"


def test_a_total_lower_than_next_shows_is_not_believed(make_portal):
    portal = make_portal(users=130)
    from oint_py.sandbox.portal import Paged

    def lie(params, real):
        page = real()
        lowered = Paged(page, 0, 0)
        lowered.total, lowered.next = 100, page.next  # the count says 100, `next` goes on to 130
        return lowered

    lying(portal, lie)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0, r.err
    closed_all_active(portal, r)


def test_a_listing_that_cannot_be_right_even_by_id_changes_nothing_and_exits_4(make_portal):
    portal = make_portal(users=120)
    portal._m_user_get = lambda params, caller: _first_page_always(portal, params)  # ignores >ID as well
    before = snapshot(portal)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 4
    assert r.err.startswith("oint: user.get: listed by ID, it gives user 1 after user 50")
    assert r.err.rstrip().endswith("nothing was changed") and r.err.count("\n") == 1
    assert commands(portal) == {"user.get"} and snapshot(portal) == before


def test_an_empty_listing_says_so(make_portal):
    portal = make_portal(users=3)
    portal.inactive.update(portal.users)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 0
    assert r.err.splitlines() == ["oint: user.get: the portal lists no active users; nothing was done"]
    assert commands(portal) == {"user.get"}


# -- item 7: user IDs of any length --------------------------------------------------------------------
@pytest.mark.parametrize("digits", [20, 5000])
def test_a_listed_id_longer_than_19_digits_exits_4(make_portal, digits):
    portal = make_portal(users=3)
    from oint_py.sandbox.portal import Paged

    portal._m_user_get = lambda params, caller: Paged([{"ID": "1" * digits, "ACTIVE": True}], 0, 1)
    r = on(portal, "StopTimekeeping", "--userid", "all", "--if-needed")
    assert r.code == 4, r.err
    assert f"a user ID of {digits:,} digits (more than 19)" in r.err and commands(portal) == {"user.get"}


@pytest.mark.parametrize("digits", [20, 5000])
def test_an_option_id_longer_than_19_digits_exits_5(portal, tmp_path, digits):
    ids = tmp_path / "ids.txt"
    ids.write_text("5\n" + "9" * digits + "\n", encoding="utf-8")
    for value in ("9" * digits, f"@{ids}"):
        r = on(portal, "StopTimekeeping", "--userid", value)
        assert r.code == 5, r.err
        assert "more than 19 digits" in r.err and r.err.count("\n") == 1
    assert portal.calls() == []


def test_a_19_digit_id_is_still_a_user_id(portal):
    r = on(portal, "GetTimekeepingStatus", "--userid", "9" * 19 + ",5")
    assert r.code == 3 and r.json()["9" * 19]["error_description"] == "User not found"


# -- item 8: records whose own ACTIVE is false ---------------------------------------------------------
def test_a_portal_that_ignores_the_active_filter_does_not_get_dismissed_users_opened(make_portal):
    portal = make_portal(users=60, opened=False)
    portal.inactive.update({3, 55})
    real = portal._m_user_get

    def user_get(params, caller):
        params = {k: v for k, v in params.items() if k != "FILTER"}  # the filter is ignored
        return real(params, caller)

    portal._m_user_get = user_get
    r = on(portal, "StartTimekeeping", "--userid", "all")
    assert r.code == 0, r.err
    assert set(sent(portal, "timeman.open")) == {str(u) for u in portal.users} - {"3", "55"}
    assert 3 not in portal.days and 55 not in portal.days
    assert r.err.splitlines()[0] == ("oint: user.get: 2 listed users are not ACTIVE (the portal ignored the "
                                     "filter): 3, 55; they were skipped")
