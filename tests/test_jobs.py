"""Background jobs and the background sandbox (issues 16 and 17): children that
run only oint's own code, a jobs folder whose parents are checked, and the
`oint jobs` commands that list, wait for and clean jobs."""

import glob
import json
import os
import signal
import stat
import subprocess
import sys
import sysconfig

import pytest
from conftest import ROOT, assert_no_secret, clean_env, run_oint, wait_for

POSIX = os.name != "nt"
PLANTED = ("runpy", "importlib", "types")


def _pythons() -> list[str]:
    """Every CPython 3.10+ pyenv has here (the README's), else this test's own."""
    found = [
        exe
        for exe in sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3"))
        if tuple(map(int, exe.split("/")[-3].split(".")[:2])) >= (3, 10)
    ]
    return found or [sys.executable]


def _planted_folder(tmp_path):
    """A current folder holding runpy.py, importlib.py and types.py, each leaving a marker when imported."""
    cwd, markers = tmp_path / "shared", tmp_path / "markers"
    cwd.mkdir()
    markers.mkdir()
    for name in PLANTED:
        (cwd / f"{name}.py").write_text(f"open({str(markers / name)!r}, 'w').close()\n")
    return cwd, markers


def _as_installed(python: str, tmp_path) -> tuple[list[str], dict]:
    """`oint` as a venv's console script starts it (the script's folder on sys.path, not the current one).
    The venv finds the dependencies through a .pth file (as editable installs do) and this checkout's
    oint_py through PYTHONPATH, which the isolated child does not read: it must get the parent's path."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    exe = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [exe, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with open(os.path.join(purelib, "deps.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")  # this test's venv: pure-Python dependencies only
    script = venv / "bin" / "oint"
    script.write_text("import sys\nfrom oint_py.main import main\nsys.exit(main())\n")
    env = clean_env(PYTHONPATH=str(ROOT))
    probe = subprocess.run(
        [exe, "-c", "import click, httpx, rich, tzlocal"], env=env, capture_output=True, cwd=str(tmp_path)
    )
    if probe.returncode:
        pytest.skip(f"{python} cannot load oint's dependencies from this venv: {probe.stderr[-200:]!r}")
    return [exe, str(script)], env


@pytest.mark.skipif(not POSIX, reason="pyenv's Pythons; the same launcher runs on Windows")
@pytest.mark.parametrize("python", _pythons())
def test_nothing_in_the_current_folder_runs_in_a_job_or_a_background_sandbox(python, portal, tmp_path):
    oint, env = _as_installed(python, tmp_path)
    cwd, markers = _planted_folder(tmp_path)
    env["OINT_JOBS_DIR"] = str(tmp_path / "jobs")

    def run(*args):
        return subprocess.run(
            [*oint, *map(str, args)], env=env, cwd=str(cwd), capture_output=True, timeout=60, stdin=subprocess.DEVNULL
        )

    r = run("bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", 4, "--dontwait")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "0", open(job["log_file"]).read()
    assert json.loads(open(job["result_file"], encoding="utf-8").read())["result"]["STATUS"] == "CLOSED"

    r = run("sandbox", "--port", 0, "--background", "--stop-after", 60, "--rate-limit", "off")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    try:
        status = run("bitrix24", "GetTimekeepingStatus", "--url", info["webhook"], "--userid", 1)
        assert status.returncode == 0, status.stderr
    finally:
        os.kill(info["pid"], signal.SIGTERM)
    assert os.listdir(markers) == []


@pytest.mark.skipif(not POSIX, reason="kill and a POSIX PID")
def test_background_sandbox_says_its_pid_and_how_to_stop_it():
    r = run_oint("sandbox", "--port", 0, "--background", "--stop-after", 60, "--rate-limit", "off")
    assert r.code == 0, r.err
    pid = r.json()["pid"]
    assert r.err == f"oint: sandbox running as PID {pid} for 60 s; stop it with: kill {pid}\n"
    os.kill(pid, signal.SIGTERM)
    r = run_oint("sandbox", "--port", 0, "--background", "--rate-limit", "off")
    pid = r.json()["pid"]
    assert "for 3600 s" in r.err
    os.kill(pid, signal.SIGTERM)


# -- the folders above the jobs folder (issue 17 item 9) ------------------------
def _dontwait(portal, folder):
    return run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", 4, "--dontwait", OINT_JOBS_DIR=str(folder)
    )


@pytest.mark.skipif(not POSIX, reason="POSIX owners and modes")
@pytest.mark.parametrize("parent", ["group-writable", "world-writable", "sticky-but-not-root's", "another user's"])
def test_a_jobs_folder_under_a_folder_others_can_change_is_refused(portal, tmp_path, parent):
    """Another member of a shared folder could swap the jobs folder while the job runs, and have it write its
    result into theirs: refused before anything is made or sent, whether the jobs folder exists or not."""
    shared = tmp_path / "shared"
    shared.mkdir()
    mode = {"group-writable": 0o770, "world-writable": 0o777, "sticky-but-not-root's": 0o1777}.get(parent, 0o755)
    os.chmod(shared, mode)
    if parent in ("sticky-but-not-root's", "another user's"):
        if os.geteuid() != 0:
            pytest.skip("needs root to give the folder away")
        os.chown(shared, 65534, 65534)
    for exists in (False, True):
        folder = shared / "deep" / "jobs"
        if exists:
            folder.mkdir(parents=True, mode=0o700)
            os.chmod(folder.parent, 0o700)
        r = _dontwait(portal, folder)
        assert r.code == 5, r.err
        assert r.out == "" and r.err.count("\n") == 1 and str(shared) in r.err and "swap" in r.err
        assert os.listdir(shared) == (["deep"] if exists else [])
        assert not exists or os.listdir(folder) == []
    assert portal.calls() == []


@pytest.mark.skipif(not POSIX, reason="POSIX owners and modes")
def test_a_jobs_folder_under_a_sticky_folder_of_root_is_accepted(portal, tmp_path):
    """As /tmp: others can write there but cannot rename or remove what is ours."""
    if os.stat(tmp_path).st_uid != 0 and os.geteuid() != 0:
        pytest.skip("needs a folder owned by root")
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    if os.geteuid() == 0:
        os.chown(sticky, 0, 0)
    r = _dontwait(portal, sticky / "mine" / "jobs")
    assert r.code == 0, r.err
    wait_for(r.json()["exit_file"])
    assert open(r.json()["exit_file"]).read().strip() == "0"


# -- oint jobs (issue 16 item 5) -------------------------------------------------
def _jobs(folder, *args):
    return run_oint("jobs", *args, OINT_JOBS_DIR=str(folder))


def test_jobs_are_listed_waited_for_and_cleaned(portal, tmp_path):
    folder = tmp_path / "jobs"
    portal.inject("slow:2")
    slow = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.base,
        "--token",
        portal.token,
        "--userid",
        4,
        "--dontwait",
        OINT_JOBS_DIR=str(folder),
    ).json()
    listed = _jobs(folder)
    assert listed.code == 0, listed.err
    (entry,) = listed.json()
    assert entry["job"] == slow["job"] and entry["state"] == "running" and entry["exit_code"] is None
    assert entry["method"] == "StopTimekeeping" and entry["started"].startswith(slow["job"][:4])
    assert_no_secret(listed.out, listed.err, *(p.read_text() for p in folder.iterdir() if p.suffix == ".meta"))
    meta = folder / f"{slow['job']}.meta"
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600

    early = _jobs(folder, "wait", slow["job"], "--timeout", "0.2s")
    assert early.code == 4 and "still running" in early.err and early.out == ""

    # a job with an --out file, and one the portal refuses
    out = tmp_path / "answer.json"
    mine = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        5,
        "--dontwait",
        "--out",
        str(out),
        OINT_JOBS_DIR=str(folder),
    ).json()
    refused = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        99999,
        "--dontwait",
        OINT_JOBS_DIR=str(folder),
    ).json()

    done = _jobs(folder, "wait", slow["job"])
    assert done.code == 0, done.err
    assert done.json()["result"]["STATUS"] == "CLOSED"
    assert _jobs(folder, "wait", mine["job"]).json()["result"]["STATUS"] == "CLOSED"
    failed = _jobs(folder, "wait", refused["job"])
    assert failed.code == 3 and failed.json()["error_description"] == "User not found"
    states = {e["job"]: (e["state"], e["exit_code"]) for e in _jobs(folder).json()}
    assert states == {slow["job"]: ("done", 0), mine["job"]: ("done", 0), refused["job"]: ("done", 3)}

    kept = _jobs(folder, "clean", "--older-than", "7d")
    assert kept.code == 0 and kept.json()["removed"] == [] and len(os.listdir(folder)) == 11  # 3 jobs' files
    cleaned = _jobs(folder, "clean")
    assert cleaned.code == 0 and sorted(cleaned.json()["removed"]) == sorted([slow["job"], mine["job"], refused["job"]])
    assert os.listdir(folder) == [] and out.exists()  # the --out file is the user's
    assert _jobs(folder).json() == []


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_a_job_killed_before_its_exit_code_is_lost_not_running(portal, tmp_path):
    folder = tmp_path / "jobs"
    portal.inject("slow:30")
    job = run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", 4, "--dontwait", OINT_JOBS_DIR=str(folder)
    ).json()
    running = _jobs(folder, "clean")
    assert running.json()["removed"] == [] and running.json()["kept"] == 1
    os.kill(job["pid"], signal.SIGKILL)
    for _ in range(100):
        (entry,) = _jobs(folder).json()
        if entry["state"] != "running":
            break
    assert entry["state"] == "lost" and entry["exit_code"] is None
    r = _jobs(folder, "wait", job["job"])
    assert r.code == 4 and "without an exit code" in r.err
    assert _jobs(folder, "clean").json()["removed"] == [job["job"]]


@pytest.mark.skipif(not os.path.exists("/proc/self/cmdline"), reason="/proc tells which process has a PID")
def test_a_dead_job_whose_pid_went_to_another_process_is_lost_not_running(portal, tmp_path):
    """A job killed without an exit code, whose PID the system has since given to another process of the same
    user (a reboot, a busy server): it is not waited for forever."""
    folder = tmp_path / "jobs"
    job = run_oint(
        "bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", 4, "--dontwait", OINT_JOBS_DIR=str(folder)
    ).json()
    assert _jobs(folder, "wait", job["job"]).code == 0
    os.unlink(job["exit_file"])  # as if it had been killed before writing it
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        meta = folder / f"{job['job']}.meta"
        data = json.loads(meta.read_text())
        meta.write_text(json.dumps({**data, "pid": other.pid}))  # the PID now someone else's, alive
        (entry,) = _jobs(folder).json()
        assert entry["state"] == "lost", entry
        r = _jobs(folder, "wait", job["job"], "--timeout", "5s")
        assert r.code == 4 and "without an exit code" in r.err
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("failures,debug", [(60, False), (3, True)])
def test_jobs_wait_shows_the_first_failures_and_the_summary_however_long_the_log(
    make_portal, tmp_path, failures, debug
):
    """A job over many users whose log is long (60 failure lines, or --debug's whole exchange): `jobs wait`
    shows its first lines, how much more there is, and always the last line, the run's summary."""
    portal = make_portal(users=100)
    ids = ",".join(str(uid) for uid in range(100_001, 100_001 + failures))  # users the portal does not have
    folder = tmp_path / "jobs"
    job = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        f"1,2,{ids}",
        "--if-needed",
        "--dontwait",
        *(["--debug"] if debug else []),
        OINT_JOBS_DIR=str(folder),
    ).json()
    r = _jobs(folder, "wait", job["job"])
    assert r.code == 3, r.err
    lines = [line.removeprefix("oint: ") for line in r.err.splitlines()]
    log = [line.removeprefix("oint: ") for line in open(job["log_file"], encoding="utf-8").read().splitlines()]
    assert len(lines) == 21 and lines[0] == log[0] and lines[-1] == log[-1], lines
    assert debug or lines[:19] == log[:19]  # (--debug's long lines are cut on stderr)
    assert lines[-1] == f"2 closed, 0 skipped, {failures} failed"
    assert lines[19] == f"and {len(log) - 20} more: see {job['log_file']}", lines[19]


def test_a_job_file_whose_id_has_an_impossible_date_is_listed_not_a_crash(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o700)
    job = "20261328-250000-0123456789abcdef"  # month 13, hour 25
    (folder / f"{job}.exit").write_text("0\n")
    os.chmod(folder / f"{job}.exit", 0o600)
    listed = _jobs(folder)
    assert listed.code == 0, listed.err
    assert [(e["job"], e["state"], e["started"]) for e in listed.json()] == [(job, "done", None)]
    waited = _jobs(folder, "wait", job)
    assert waited.code == 0, waited.err


@pytest.mark.parametrize(
    "args",
    [
        ["wait", "../../etc/passwd"],
        ["wait", "20261128-043441-403b3b6f3d3e6c0b"],
        ["wait"],
        ["clean", "--older-than", "soon"],
        ["bogus"],
    ],
)
def test_jobs_bad_arguments_are_option_errors(tmp_path, args):
    r = _jobs(tmp_path / "jobs", *args)
    assert r.code == 5 and r.out == "" and r.err.count("\n") == 1 and r.err.startswith("oint: ")


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
def test_jobs_commands_keep_the_private_folder_rules(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o770)
    for args in ([], ["clean"], ["wait", "20261128-043441-403b3b6f3d3e6c0b"]):
        r = _jobs(folder, *args)
        assert r.code == 5 and "jobs folder" in r.err and "group or others" in r.err, args
