"""Shell completion, driven in the real shells.

Each pseudo-terminal test sets completion up in a fresh temporary HOME exactly as the README's
"Shell completion" section says (its marked code blocks are read from README.md), starts the shell
interactively in a pseudo-terminal (pexpect), types a line and a TAB as a person would, and reads the
screen through a terminal emulator (pyte): the text left of the cursor is what the line now holds.

PowerShell is not installed here: its side is tested through the protocol (the COMP_LINE, COMP_POINT
and COMP_WORD its script sends) and a static look at the script.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BIN, clean_env, run_oint, user_docs

ROOT = Path(__file__).parent.parent
README = user_docs()  # the set-up steps stand in docs/completion.md
WAIT = 20  # seconds to wait for a screen before failing: a limit for a stuck shell, not a measurement


def readme_block(shell: str, kind: str) -> str:
    """The ```sh block after `<!-- completion:SHELL:KIND -->` in the README ('' when there is none)."""
    match = re.search(rf"<!-- completion:{shell}:{kind} -->\s*```\w*\n(.*?)```", README, re.S)
    return match.group(1) if match else ""


# --- the protocol, without a terminal ----------------------------------------------------------


def complete(shell: str, **env) -> list[str]:
    r = run_oint(env=clean_env(_OINT_COMPLETE=f"{shell}_complete", **env), timeout=30)
    assert r.code == 0, r.err
    return [line for line in r.out.splitlines() if line]


def bash(line: str) -> list[str]:
    return complete("bash", COMP_LINE=line)


def test_bash_protocol_libraries_methods_any_case_and_options():
    assert bash("oint bi") == ["plain,bitrix24"]
    assert bash("oint bitrix24 stop") == ["plain,StopTimekeeping"]
    assert bash("oint bitrix24 GETTIME") == ["plain,GetTimekeepingStatus", "plain,GetTimekeepingSettings"]
    options = bash("oint bitrix24 StopTimekeeping --")
    for option in ("--url", "--userid", "--time", "--report", "--token", "--proxy", "--adv-response", "--out"):
        assert f"plain,{option}" in options
    assert "plain,--time" not in bash("oint bitrix24 PauseTimekeeping --")
    assert bash("oint bitrix24 nosuchmethod --u") == []


def test_only_the_dash_spelling_is_offered_but_the_underscore_one_still_completes():
    assert bash("oint bitrix24 StopTimekeeping --ca") == ["plain,--ca-bundle"]
    assert bash("oint bitrix24 StopTimekeeping --adv") == ["plain,--adv-response"]
    options = bash("oint bitrix24 StopTimekeeping --")
    assert not [o for o in options if "_" in o]
    assert bash("oint bitrix24 StopTimekeeping --adv_") == ["plain,--adv_response"]  # typed that way: kept
    for shell, env in (
        ("zsh", {"COMP_WORDS": "oint bitrix24 StopTimekeeping --ca", "COMP_CWORD": "3"}),
        ("fish", {"COMP_WORDS": "oint bitrix24 StopTimekeeping --ca", "COMP_CWORD": "--ca"}),
        ("powershell", {"COMP_LINE": "oint bitrix24 StopTimekeeping --ca", "COMP_POINT": "34", "COMP_WORD": "--ca"}),
    ):
        assert not [line for line in complete(shell, **env) if "--ca_bundle" in line], shell


def test_equals_values_and_options_after_a_value():
    assert bash("oint bitrix24 StopTimekeeping --out=rep") == ["file,rep"]
    assert bash("oint bitrix24 StopTimekeeping --out=") == ["file,"]
    assert bash("oint bitrix24 StopTimekeeping --config=") == ["file,"]
    after_value = bash("oint bitrix24 StopTimekeeping --userid 1 ")
    assert "plain,--url" in after_value and "plain,--report" in after_value
    assert "plain,--userid" not in after_value  # given already
    assert bash("oint bitrix24 StopTimekeeping --userid ") == []  # a value is due, not an option
    assert bash("oint bitrix24 StopTimekeeping -- ") == []


def test_fish_protocol_keeps_whole_descriptions():
    lines = complete("fish", COMP_WORDS="oint bitrix24 StopTimekeeping --ur", COMP_CWORD="--ur")
    assert lines == ["plain,--url\tURL of webhook or a Bitrix24 domain, when token used"]


# PowerShell: the script sends $commandAst's text (which ends at its last token, so after
# `oint bitrix24 ` it has no trailing blank), the cursor's offset in it, and $wordToComplete
# (PowerShell removes a variable set to '', so an empty word arrives as no COMP_WORD at all).


def ps_args(line: str, point: int | None = None, word: str | None = None):
    from oint_py.cli.completion import PowerShellComplete

    env = {"COMP_LINE": line}
    if point is not None:
        env["COMP_POINT"] = str(point)
    if word:
        env["COMP_WORD"] = word
    saved = {k: os.environ.pop(k, None) for k in ("COMP_LINE", "COMP_POINT", "COMP_WORD")}
    os.environ.update(env)
    try:
        return PowerShellComplete(None, {}, "oint", "_OINT_COMPLETE").get_completion_args()
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def test_powershell_completion_args_from_what_powershell_sends():
    # `oint bitrix24 <TAB>`: the text lacks the blank; the cursor is past it and the word is empty
    assert ps_args("oint bitrix24", point=14) == (["bitrix24"], "")
    assert ps_args("oint bitrix24 ", point=14) == (["bitrix24"], "")
    # `oint bi<TAB>`, `oint bitrix24 stop<TAB>`
    assert ps_args("oint bi", point=7, word="bi") == ([], "bi")
    assert ps_args("oint bitrix24 stop", point=18, word="stop") == (["bitrix24"], "stop")
    # the cursor moved back into the line: the text after it does not count
    assert ps_args("oint bitrix24 stop --userid 1", point=18, word="stop") == (["bitrix24"], "stop")
    # `oint bitrix24 StopTimekeeping --userid 1 <TAB>`, the whole line started later in the input
    assert ps_args("oint bitrix24 StopTimekeeping --userid 1", point=41) == (
        ["bitrix24", "StopTimekeeping", "--userid", "1"],
        "",
    )
    # Windows paths keep their backslashes; PowerShell quoting
    line = r"oint.exe bitrix24 StopTimekeeping --out C:\Users\me\rep"
    assert ps_args(line, point=len(line), word=r"C:\Users\me\rep") == (
        ["bitrix24", "StopTimekeeping", "--out"],
        r"C:\Users\me\rep",
    )
    line = "& oint bitrix24 StopTimekeeping --report 'it''s done' --out 'my fi"
    assert ps_args(line, point=len(line), word="'my fi") == (
        ["bitrix24", "StopTimekeeping", "--report", "it's done", "--out"],
        "my fi",
    )
    # no COMP_POINT (an older script): the text ends at the cursor
    assert ps_args("oint bitrix24 ") == (["bitrix24"], "")
    assert ps_args("oint bitrix24 pau") == (["bitrix24"], "pau")


def test_powershell_protocol_end_to_end():
    def ps(line, word=None):
        env = {"COMP_LINE": line, "COMP_POINT": str(len(line) + (0 if word else 1))}
        if word:
            env["COMP_WORD"] = word
        return complete("powershell", **env)

    assert ps("oint bitrix24") == [
        f"plain,{m}"
        for m in (
            "StartTimekeeping",
            "StopTimekeeping",
            "PauseTimekeeping",
            "GetTimekeepingStatus",
            "GetTimekeepingSettings",
            "GetAppAuthLink",
            "GetToken",
            "RefreshToken",
            "ServerTime",
            "AuthStatus",
        )
    ]
    assert ps("oint bitrix24 ref", word="ref") == ["plain,RefreshToken"]
    assert ps("oint bitrix24 StopTimekeeping --auth", word="--auth") == ["plain,--auth-file"]
    assert ps("oint bitrix24 GetToken --save") == ["file,"]
    assert ps("oint bitrix24 pause", word="pause") == ["plain,PauseTimekeeping"]
    assert ps("oint bitrix24 PauseTimekeeping --to", word="--to") == ["plain,--token"]
    assert ps("oint bitrix24 StopTimekeeping --out=rep", word="--out=rep") == ["file,rep"]
    assert ps("oint bitrix24 StopTimekeeping --out") == ["file,"]


def test_powershell_script_completes_files_from_the_cursor():
    from oint_py.cli.app import cli
    from oint_py.cli.completion import script

    text = script(cli, "powershell")
    assert "$line.Length" not in text  # the text is not cut at its own length: the cursor decides
    assert "$env:COMP_POINT = [string]($cursorPosition - $commandAst.Extent.StartOffset)" in text
    assert "$env:COMP_WORD = $word" in text and '$word = "$wordToComplete"' in text
    # file (and dir) results become CompletionResults of the files matching the value, the --opt= kept
    branch = text[text.index("} elseif ($type -eq 'file' -or $type -eq 'dir') {") :]
    assert 'Get-ChildItem -Path "$value*"' in branch
    assert "$text = $prefix + $folder + $_.Name" in branch
    assert "CompletionResult]::new($text, $_.Name, $kind, $_.FullName)" in branch
    assert "if ($word -match '^(-[^=]*=)') { $prefix = $Matches[1] }" in text


def test_readme_has_the_install_steps_the_tests_follow():
    assert 'eval "$(oint completion bash)"' in readme_block("bash", "rc")
    assert readme_block("zsh", "once").strip() == "mkdir -p ~/.zfunc && oint completion zsh > ~/.zfunc/_oint"
    rc = readme_block("zsh", "rc")
    assert rc.index("fpath=(~/.zfunc $fpath)") < rc.index("compinit")
    assert "mkdir -p ~/.config/fish/completions" in readme_block("fish", "once")
    assert "source completions/" not in README


# --- the real shells in a pseudo-terminal ----------------------------------------------------


class Screen:
    """A shell in a pseudo-terminal, its output kept on an emulated screen."""

    def __init__(self, argv: list[str], env: dict, cwd: Path):
        import pexpect
        import pyte

        self.screen = pyte.Screen(200, 50)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(cwd), dimensions=(50, 200))

    def _read(self, timeout: float) -> None:
        import pexpect

        try:
            self.stream.feed(self.child.read_nonblocking(65536, timeout=timeout))
        except pexpect.TIMEOUT:
            pass

    def wait_for(self, check, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}; the screen:\n{self.text()}")
            self._read(0.1)

    def before_cursor(self) -> str:
        return self.screen.display[self.screen.cursor.y][: self.screen.cursor.x]

    def listing(self) -> str:
        """The screen without the command lines: what the shell listed."""
        return "\n".join(line for line in self.screen.display if not line.startswith("$ "))

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display).rstrip()

    def ready(self) -> "Screen":
        self.wait_for(lambda: self.before_cursor() == "$ ", "no prompt")
        return self

    def type(self, keys: str) -> None:
        self.child.send(keys)

    def close(self) -> None:
        self.child.close(force=True)


def _shell(name: str):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    if sys.platform == "win32":
        pytest.skip("pseudo-terminals need a POSIX system")
    pytest.importorskip("pexpect", reason="needs pexpect (pip install '.[test]')")
    pytest.importorskip("pyte", reason="needs pyte (pip install '.[test]')")
    return path


@pytest.fixture
def fresh_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "report-2026.json").write_text("{}")
    (work / "notes.txt").write_text("")
    env = {
        k: v
        for k, v in clean_env().items()
        if not k.startswith(("XDG_", "ZDOTDIR", "BASH_ENV", "ENV", "INPUTRC", "PROMPT_COMMAND"))
        and k not in ("PS1", "HISTFILE")
    }
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        TERM="xterm",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
    )
    return home, work, env


def _install(shell: str, home: Path, env: dict) -> None:
    """Run the README's one-time step in that shell, as a user would."""
    once = readme_block(shell, "once").strip()
    if once:
        proc = subprocess.run(
            [_shell(shell), "-c", once], env=env, cwd=str(home), capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr


def start(shell: str, fresh_home) -> Screen:
    home, work, env = fresh_home
    path = _shell(shell)
    _install(shell, home, env)
    rc = readme_block(shell, "rc")
    if shell == "bash":
        (home / ".bashrc").write_text("PS1='$ '\n" + rc)
        argv = [path, "--noprofile", "-i"]
    elif shell == "zsh":
        (home / ".zshrc").write_text("PS1='$ '\nunsetopt BEEP\n" + rc)
        argv = [path, "-i"]
    else:
        config = home / ".config" / "fish" / "config.fish"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("set -g fish_greeting ''\nfunction fish_prompt; printf '$ '; end\n" + rc)
        argv = [path, "-i"]
    return Screen(argv, env, work).ready()


SHELLS = ["bash", "zsh", "fish"]


@pytest.fixture(params=SHELLS)
def term(request, fresh_home):
    screen = start(request.param, fresh_home)
    screen.shell = request.param
    yield screen
    screen.close()


def completes_to(term: Screen, typed: str, expected: str) -> None:
    """Type `typed` and TAB: the line up to the cursor must become `expected` (and the space after it)."""
    term.type(typed + "\t")
    term.wait_for(
        lambda: term.before_cursor() == "$ " + expected + " ",
        f"{term.shell}: {typed!r}<TAB> did not complete to {expected!r}",
    )


def test_first_tab_in_a_fresh_shell_completes_the_library(term):
    """The very first TAB of a new shell. zsh autoloads `_oint` from $fpath then: with Click's own
    template (before Click 8.1.4 always, later only where $zsh_eval_context says `loadautofunc`) that
    first call only registered the function and completed nothing."""
    completes_to(term, "oint bi", "oint bitrix24")


def test_methods_complete_in_any_case(term):
    completes_to(term, "oint bitrix24 stop", "oint bitrix24 StopTimekeeping")


def test_an_option_with_two_spellings_completes(term):
    completes_to(term, "oint bitrix24 StopTimekeeping --ca", "oint bitrix24 StopTimekeeping --ca-bundle")


def test_file_names_after_opt_equals(term):
    completes_to(
        term, "oint bitrix24 StopTimekeeping --out=rep", "oint bitrix24 StopTimekeeping --out=report-2026.json"
    )


def test_file_names_after_the_option(term):
    completes_to(
        term, "oint bitrix24 StopTimekeeping --out rep", "oint bitrix24 StopTimekeeping --out report-2026.json"
    )


def test_options_are_offered_after_an_option_value(term):
    line = "oint bitrix24 StopTimekeeping --userid 1 "
    term.type(line + "\t")
    if term.shell in ("bash", "zsh"):  # the first TAB inserts the "--" all options share, later ones list them
        term.wait_for(lambda: term.before_cursor() == "$ " + line + "--", f"{term.shell}: no '--' inserted")
        term.type("\t\t" if term.shell == "bash" else "\t")
    term.wait_for(
        lambda: "--report" in term.listing() and "--url" in term.listing(),
        f"{term.shell}: no options listed after an option's value",
    )
    assert "--userid" not in term.listing()  # given already


def test_fish_shows_whole_descriptions(fresh_home):
    term = start("fish", fresh_home)
    try:
        term.type("oint bitrix24 StopTimekeeping --u\t")
        term.wait_for(lambda: "domain, when token used" in term.listing(), "fish cut the description of --url")
    finally:
        term.close()


@pytest.mark.parametrize(
    "line, offered",
    [
        ("oint sandbox --port 1 ", {"--host", "--users", "--rate-limit", "--help"}),
        ("oint jobs wait 20261206-000000-0123456789abcdef ", {"--timeout", "--help"}),
        ("oint jobs clean --older-than 7d ", {"--help"}),
    ],
)
def test_every_command_offers_its_options_after_a_value(line, offered):
    """Issue 23 round 4: `oint sandbox` and `oint jobs wait|clean` offer their options after an option's value
    or an argument, as a method does (one base command class for all of them)."""
    got = {item.split(",", 1)[1] for item in bash(line)}
    assert offered <= got, got
    assert "--port" not in got or "--port" not in line  # what was given is not offered again
