"""The files layer (issue 24 item 2, issue 23 section 3 and item 1.8): one atomic writer, one private
opener, one private-folder maker and one set of rules, tested as functions in this process; the umask,
the jobs and the token files with real `oint` processes, where the process and its umask are under test."""

import json
import os
import pwd
import re
import shlex
import signal
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import OINT, ROOT, SESSION_HOME, clean_env, run_oint, user_docs, wait_for

from oint_py.files import atomic, private
from oint_py.outcome import UsageError

POSIX = os.name != "nt"
needs_posix = pytest.mark.skipif(not POSIX, reason="POSIX modes, owners and umask")


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class _Umask:
    """This process's umask set for a block (functions under test read it, as oint's would)."""

    def __init__(self, mask: int):
        self.mask = mask

    def __enter__(self):
        self.old = os.umask(self.mask)

    def __exit__(self, *exc):
        os.umask(self.old)


# -- one owner per guarantee ----------------------------------------------------------------------
def _python_sources():
    return [p for p in (ROOT / "oint_py").rglob("*.py")]


def test_each_file_guarantee_has_one_owner():
    """os.replace in one module; O_EXCL opens and folder making in the private module only."""

    def holders(pattern: str) -> set[str]:
        return {
            str(p.relative_to(ROOT))
            for p in _python_sources()
            if re.search(pattern, "\n".join(line.split("#")[0] for line in p.read_text().splitlines()))
        }

    assert holders(r"os\.replace\(") == {"oint_py/files/atomic.py"}
    assert holders(r"os\.O_EXCL") == {"oint_py/files/private.py"}
    assert holders(r"os\.(makedirs|mkdir)\(") == {"oint_py/files/private.py"}
    defined = [p for p in _python_sources() if re.search(r"^PRIVATE\w* = 0o600", p.read_text(), re.M)]
    assert [str(p.relative_to(ROOT)) for p in defined] == ["oint_py/files/private.py"]
    assert not (ROOT / "oint_py" / "private.py").exists()


# -- the private folder maker -----------------------------------------------------------------------
@needs_posix
@pytest.mark.parametrize("mask", [0o002, 0o000, 0o277, 0o777])
def test_every_folder_made_is_0700_at_every_level_whatever_the_umask(tmp_path, mask):
    """os.makedirs(mode=0o700) gives the levels above the last 0777 less the umask: 0775 under umask 002."""
    base = tmp_path / "home"
    base.mkdir(mode=0o755)
    folder = base / ".local" / "state" / "oint" / "locks"
    with _Umask(mask):
        private.private_dir(str(folder), "locks folder")
    for level in (base / ".local", base / ".local" / "state", base / ".local" / "state" / "oint", folder):
        assert _mode(level) == 0o700, level
    assert _mode(base) == 0o755  # a folder that was there is left as it was


@needs_posix
def test_folders_of_this_user_others_can_write_to_are_named_with_the_chmod_that_fixes_them(tmp_path):
    base = tmp_path / "home"
    (base / ".local" / "state" / "oint").mkdir(parents=True)
    above = [base / ".local", base / ".local" / "state", base / ".local" / "state" / "oint"]
    for level in above:
        os.chmod(level, 0o775)  # what an older oint left under umask 002
    folder = base / ".local" / "state" / "oint" / "locks"
    with pytest.raises(UsageError) as refused:
        private.private_dir(str(folder), "locks folder")
    message = str(refused.value)
    assert "\n" not in message and all(f"{level} (mode 0775)" in message for level in above), message
    command = re.search(r"run (chmod go-w [^,]+), or ", message).group(1)
    assert sorted(shlex.split(command)[2:]) == sorted(map(str, above))
    subprocess.run(["sh", "-c", command], check=True)
    private.private_dir(str(folder), "locks folder")
    assert _mode(folder) == 0o700


@needs_posix
def test_one_set_of_rules_for_private_folders_and_files(tmp_path):
    folder, file = tmp_path / "f", tmp_path / "f" / "secret"
    folder.mkdir(mode=0o700)
    file.write_text("x")
    os.chmod(file, 0o600)
    private.check(str(folder), "jobs folder")
    private.check(str(file), "auth file", folder=False)
    os.chmod(folder, 0o770)
    with pytest.raises(UsageError, match=rf"group or others \(mode 0770\); run chmod go-w {re.escape(str(folder))}"):
        private.check(str(folder), "jobs folder")
    os.chmod(file, 0o640)
    with pytest.raises(UsageError, match=rf"run chmod 600 {re.escape(str(file))}"):
        private.check(str(file), "auth file", folder=False)
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(UsageError, match="symbolic link"):
        private.check(str(link), "jobs folder")
    with pytest.raises(UsageError, match="is not a regular file"):
        private.check(str(folder), "auth file", folder=False)
    private.check(str(tmp_path / "missing"), "auth file", folder=False, missing=None)
    with pytest.raises(UsageError, match="does not exist; make it"):
        private.check(str(tmp_path / "missing"), "auth file", folder=False, missing="; make it")


# -- the private opener -----------------------------------------------------------------------------
@needs_posix
@pytest.mark.parametrize("mask", [0o000, 0o277])
def test_the_private_opener_makes_0600_files_whatever_the_umask_and_never_opens_one_that_exists(tmp_path, mask):
    path = tmp_path / "job.meta"
    with _Umask(mask):
        os.close(private.open_private(str(path)))
        lock = private.open_private(str(tmp_path / "x.lock"), new=False)
        os.close(lock)
    assert _mode(path) == 0o600 and _mode(tmp_path / "x.lock") == 0o600
    os.chmod(tmp_path / "x.lock", 0o700)  # this user's, open to no one else, but not 0600: made 0600 again
    os.close(private.open_private(str(tmp_path / "x.lock"), new=False))
    assert _mode(tmp_path / "x.lock") == 0o600
    with pytest.raises(FileExistsError):
        private.open_private(str(path))
    (tmp_path / "planted").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):  # O_EXCL: a link in its place is not followed
        private.open_private(str(tmp_path / "planted"))
    assert not (tmp_path / "target").exists()


@needs_posix
def test_on_windows_private_files_are_made_without_posix_mode_calls(tmp_path, monkeypatch):
    """Windows' Python before 3.13 has no os.fchmod: oint there still makes its job, lock and auth files
    (the opener and the atomic writer leave modes to the user's own profile folder)."""
    monkeypatch.setattr(private.os, "name", "nt")
    if hasattr(os, "fchmod"):
        monkeypatch.delattr(os, "fchmod")
    try:
        with _Umask(0o277):  # a mode other than 0600 from the open, which POSIX would fix with fchmod
            os.close(private.open_private(str(tmp_path / "job.meta")))
            os.close(private.open_private(str(tmp_path / "x.lock"), new=False, what="auth file lock"))
            atomic.write_atomic(str(tmp_path / "auth.json"), "{}\n", private.PRIVATE_FILE)
    finally:
        monkeypatch.undo()  # before pytest reports: it needs the real os
    os.chmod(tmp_path / "auth.json", 0o600)
    assert (tmp_path / "auth.json").read_text() == "{}\n" and (tmp_path / "job.meta").exists()


# -- the atomic writer ------------------------------------------------------------------------------
def test_a_folder_that_cannot_be_opened_for_its_sync_still_gets_the_file(tmp_path, monkeypatch):
    """A folder this user may write to but not read (mode 0300, which root's tests cannot make felt), or a
    file system that does not open folders: the write is whole, and only the folder's sync is skipped."""
    real = os.open

    def opening(path, flags, *args, **kwargs):
        if str(path) == str(tmp_path) and flags == os.O_RDONLY:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", opening)
    try:
        atomic.write_atomic(str(tmp_path / "r.json"), "{}\n")
    finally:
        monkeypatch.undo()
    assert (tmp_path / "r.json").read_text() == "{}\n"


@needs_posix
def test_the_atomic_writer_syncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    atomic.write_atomic(str(tmp_path / "out.json"), "{}\n")
    assert synced == [False, True]  # the file, then the rename in its folder
    assert (tmp_path / "out.json").read_text() == "{}\n" and os.listdir(tmp_path) == ["out.json"]


@needs_posix
def test_the_atomic_writer_makes_a_private_file_0600_whatever_the_umask_or_the_file_before(tmp_path):
    path = tmp_path / "token.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    with _Umask(0):
        atomic.write_atomic(str(path), b"new", private.PRIVATE_FILE)
        atomic.write_atomic(str(tmp_path / "fresh"), "x", private.PRIVATE_FILE)
        atomic.write_atomic(str(tmp_path / "user"), "x")  # a user's --out follows the umask, as > does
    assert (path.read_text(), _mode(path), _mode(tmp_path / "fresh")) == ("new", 0o600, 0o600)
    assert _mode(tmp_path / "user") == 0o666


def test_the_atomic_writer_writes_each_block_before_asking_for_the_next(tmp_path):
    """A kill between two blocks (the auth file's `during-write` stage) leaves a torn temporary copy, which
    the next write's remove_leftovers takes away; the file itself is never torn."""
    path = tmp_path / "a.json"
    path.write_text("before")
    seen = []

    def blocks():
        yield b"first half "
        seen.extend(p.read_bytes() for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        raise KeyboardInterrupt  # as a signal would

    with pytest.raises(KeyboardInterrupt):
        atomic.write_atomic(str(path), blocks(), private.PRIVATE_FILE)
    assert seen == [b"first half "] and path.read_text() == "before"
    assert os.listdir(tmp_path) == ["a.json"]  # the failed write removed its temporary file
    (tmp_path / ".a.json.0123456789ab.tmp").write_text("torn")
    (tmp_path / ".other.json.0123456789ab.tmp").write_text("not ours")
    atomic.remove_leftovers(str(path))
    assert sorted(os.listdir(tmp_path)) == [".other.json.0123456789ab.tmp", "a.json"]


@pytest.mark.parametrize("held_for", [2, 100])
def test_the_rename_is_retried_on_windows_while_another_process_holds_the_file(tmp_path, monkeypatch, held_for):
    """On Windows a reader (an antivirus, a second oint) makes os.replace fail with PermissionError: retried
    0.1 s apart for about 2 s, then the error; the file before is kept and no temporary file is left."""
    path = tmp_path / "out.json"
    path.write_text("before")
    real, tries, sleeps = os.replace, [], []

    def replace(src, dst):
        tries.append(dst)
        if len(tries) <= held_for:
            raise PermissionError(13, "Access is denied")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic, "time", types.SimpleNamespace(sleep=sleeps.append))
    monkeypatch.setattr(atomic.os, "name", "nt")
    if held_for < atomic.REPLACE_TRIES:
        atomic.write_atomic(str(path), "after")
        assert path.read_text() == "after" and sleeps == [0.1] * held_for
    else:
        with pytest.raises(PermissionError):
            atomic.write_atomic(str(path), "after")
        assert path.read_text() == "before" and sleeps == [0.1] * (atomic.REPLACE_TRIES - 1)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["out.json"]
    readme = user_docs()
    row = re.search(r"\| Renaming a written file into place on Windows[^|]*\| (\d+) tries ([\d.]+) s apart", readme)
    assert (int(row.group(1)), float(row.group(2))) == (atomic.REPLACE_TRIES, atomic.REPLACE_STEP)


@needs_posix
def test_elsewhere_a_refused_rename_is_not_retried(tmp_path, monkeypatch):
    tries = []

    def replace(src, dst):
        tries.append(dst)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(PermissionError):
        atomic.write_atomic(str(tmp_path / "out.json"), "x")
    assert len(tries) == 1
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# -- real processes under umask 002 (issue 23 item 3.1) -----------------------------------------------
def _under_umask(mask: str, *args, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", f'umask {mask}; exec "$@"', "sh", *OINT, *map(str, args)],
        capture_output=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _fresh_home(tmp_path) -> tuple[Path, dict]:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    env = clean_env(HOME=str(home), XDG_STATE_HOME="", XDG_CONFIG_HOME="")
    return home, env


@needs_posix
def test_a_first_run_under_umask_002_leaves_folders_every_later_run_accepts(make_portal, tmp_path):
    """Debian's and Ubuntu's umask for users with a private group: the first sweep made ~/.local,
    ~/.local/state and ~/.local/state/oint 0775, and every later sweep, --dontwait and `oint jobs` exited 5."""
    portal = make_portal(users=5)
    home, env = _fresh_home(tmp_path)
    sweep = ("bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "all", "--if-needed")
    first = _under_umask("002", *sweep, env=env)
    assert first.returncode == 0, first.stderr
    state = home / ".local" / "state" / "oint"
    for level in (home / ".local", home / ".local" / "state", state, state / "locks"):
        assert _mode(level) == 0o700, level
    again = _under_umask("002", *sweep, env=env)
    assert again.returncode == 0, again.stderr
    job = _under_umask("002", *sweep, "--dontwait", env=env)
    assert job.returncode == 0, job.stderr
    started = json.loads(job.stdout)
    wait_for(started["exit_file"])
    assert _mode(state / "jobs") == 0o700
    listed = _under_umask("002", "jobs", env=env)
    assert listed.returncode == 0, listed.stderr
    waited = _under_umask("002", "jobs", "wait", started["job"], "--timeout", "30s", env=env)
    assert waited.returncode == 0, waited.stderr


@needs_posix
def test_a_relative_xdg_state_home_is_ignored_and_an_absolute_one_used(make_portal, tmp_path, monkeypatch):
    """The XDG spec: a relative XDG_STATE_HOME is to be ignored; oint's state (here a sweep's locks) goes to
    ~/.local/state, never to a folder under wherever cron or the user happened to start it."""
    portal = make_portal(users=3)
    home, env = _fresh_home(tmp_path)
    started = tmp_path / "started-here"
    started.mkdir()
    monkeypatch.chdir(started)
    sweep = ("bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "all", "--if-needed")
    r = run_oint(*sweep, env={**env, "XDG_STATE_HOME": "state"})
    assert r.code == 0, r.err
    assert (home / ".local" / "state" / "oint" / "locks").is_dir() and list(started.iterdir()) == []
    absolute = tmp_path / "xdg-state"
    r = run_oint(*sweep, env={**env, "XDG_STATE_HOME": str(absolute)})
    assert r.code == 0, r.err
    assert (absolute / "oint" / "locks").is_dir()


@needs_posix
def test_folders_an_older_oint_left_0775_are_refused_with_the_exact_chmod_to_run(portal, tmp_path):
    home, env = _fresh_home(tmp_path)
    state = home / ".local" / "state" / "oint"
    (state / "locks").mkdir(parents=True, mode=0o700)
    for level in (home / ".local", home / ".local" / "state", state):
        os.chmod(level, 0o775)
    sweep = ("bitrix24", "StopTimekeeping", "--url", portal.webhook(), "--userid", "1,2", "--if-needed")
    refused = run_oint(*sweep, env=env)
    assert refused.code == 5 and refused.err.count("\n") == 1, refused.err
    command = re.search(r"run (chmod go-w [^,]+), or ", refused.err).group(1)
    assert "or set XDG_STATE_HOME to a folder under private ones" in refused.err  # the other way out
    assert portal.calls() == []
    subprocess.run(["sh", "-c", command], check=True, env=env)
    fixed = run_oint(*sweep, env=env)
    assert fixed.code == 0, fixed.err


@needs_posix
def test_the_readme_makes_the_auth_file_folder_private_at_every_level(tmp_path):
    """`mkdir -p -m 700 ~/.config/oint` gives -m to the last folder only: under umask 002 a new ~/.config
    was 0775, and GetToken --save refused it."""
    from oint_py.auth.authfile import check_private

    readme = user_docs()
    block = re.search(r"<!-- oauth:setup -->\s*```sh\n(.*?)```", readme, re.S).group(1)
    (line,) = [line for line in block.splitlines() if line.startswith("mkdir ")]
    home, env = _fresh_home(tmp_path)
    subprocess.run(["sh", "-c", f"umask 002; {line}"], check=True, env=env)
    assert _mode(home / ".config") == 0o700 and _mode(home / ".config" / "oint") == 0o700
    check_private(str(home / ".config" / "oint" / "portal.json"), must_exist=False)


# -- jobs (issue 23 items 3.2 and 3.3) ----------------------------------------------------------------
@needs_posix
def test_jobs_wait_on_a_job_whose_out_is_a_fifo_ends_and_says_where_the_result_went(portal, tmp_path):
    folder, fifo = tmp_path / "jobs", tmp_path / "answer.fifo"
    os.mkfifo(fifo, 0o600)
    job = run_oint(
        "bitrix24",
        "StopTimekeeping",
        "--url",
        portal.webhook(),
        "--userid",
        4,
        "--dontwait",
        "--out",
        fifo,
        OINT_JOBS_DIR=str(folder),
    ).json()
    wait_for(job["exit_file"])
    os.utime(fifo)  # written to since the job began, as a FIFO someone read from would be
    waited = run_oint("jobs", "wait", job["job"], "--timeout", "5s", OINT_JOBS_DIR=str(folder), timeout=30)
    assert f"the job's result went to {fifo}, which is not a regular file" in waited.err, waited.err
    assert waited.out == "" and waited.code == 6  # nobody read the FIFO: the job's answer is in its log


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="/proc shows a process's environment")
def test_a_dontwait_childs_environment_holds_no_secret(portal, tmp_path):
    portal.inject("slow:3")  # the child is still running when its environment is read
    secrets = {
        "OINT_BITRIX24_URL": portal.base,
        "OINT_BITRIX24_TOKEN": portal.token,
        "OINT_BITRIX24_CLIENT_SECRET": "client-secret-5e1f0c",
        "OINT_CONFIG": '{"timeout": 31}',  # a --config's proxy may hold a password
    }
    # what the child reads itself, and holds no secret, stays: the lock wait and the plain-http opt-in (a review
    # found the opt-in dropped: a job then refused the OAuth server its foreground run used)
    reads = {"OINT_LOCK_WAIT": "7", "OINT_BITRIX24_OAUTH_ALLOW_HTTP": "1"}
    env = clean_env(OINT_JOBS_DIR=str(tmp_path / "jobs"), **reads, **secrets)
    started = run_oint("bitrix24", "StopTimekeeping", "--userid", 4, "--dontwait", env=env)
    assert started.code == 0, started.err
    job = started.json()
    with open(f"/proc/{job['pid']}/environ", "rb") as fh:
        environ = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    names = {name.decode() for name in environ}
    assert {name for name in names if name.startswith("OINT_")} == set(reads), names
    for value in (portal.token, "client-secret-5e1f0c"):
        assert all(value.encode() not in v for v in environ.values())
    assert environ[b"HOME"] == env["HOME"].encode()  # the rest of the environment is the parent's
    wait_for(job["exit_file"])
    assert open(job["exit_file"]).read().strip() == "0", open(job["log_file"]).read()


# -- tokens in --out (issue 23 item 1.8) --------------------------------------------------------------
@needs_posix
@pytest.mark.parametrize("method", ["GetToken", "RefreshToken"])
def test_a_live_token_pair_written_to_out_is_private_whatever_the_umask(portal, tmp_path, method):
    from test_oauth import app_env, authorize, browser_code

    out = tmp_path / "pair.json"
    if method == "GetToken":
        grant = ("--code", browser_code(portal))
    else:
        (tmp_path / "auth").mkdir(mode=0o700)
        grant = ("--refresh", authorize(portal, tmp_path / "auth" / "a.json")["refresh_token"])
    r = _under_umask("000", "bitrix24", method, *grant, "--out", out, env=app_env(portal))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["access_token"] and _mode(out) == 0o600


# -- the suite itself (issue 23 item 4.10) ---------------------------------------------------------
def test_no_test_sees_the_real_home():
    real = pwd.getpwuid(os.getuid()).pw_dir if POSIX else os.path.expanduser("~")
    for env in (os.environ, clean_env()):
        for name in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "LOCALAPPDATA"):
            assert Path(env[name]).is_relative_to(SESSION_HOME) and not env[name].startswith(real + os.sep), name
    assert private.state_dir().startswith(str(SESSION_HOME))


@needs_posix
def test_the_processes_tests_start_take_sigint_with_its_default_action():
    """Started with SIGINT ignored (`pytest &` in a script), the suite would pass the ignore on to every
    oint it starts, and the tests that stop oint with SIGINT would wait for nothing."""
    probe = "import signal, sys; sys.exit(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    assert subprocess.run([sys.executable, "-c", probe], env=clean_env()).returncode == 0
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
