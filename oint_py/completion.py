"""Shell completion scripts, generated from the Click app.

bash, zsh and fish use Click's own completion protocol: the script calls
`oint` back with `_OINT_COMPLETE=<shell>_complete`, so libraries, methods (any
case) and options always match the installed version. PowerShell, which Click
does not cover, gets a class of the same shape here.

Regenerate the files in completions/ (tests/test_shell.py fails when they are stale) with:

    oint completion bash > completions/oint.bash
    oint completion zsh > completions/_oint
    oint completion fish > completions/oint.fish
    oint completion powershell > completions/oint.ps1
"""

import os

from click.shell_completion import ShellComplete, add_completion_class, get_completion_class, split_arg_string

COMPLETE_VAR = "_OINT_COMPLETE"

_SOURCE_POWERSHELL = """\
# oint completion for PowerShell: add this line to your $PROFILE
#   . path\\to\\oint.ps1
Register-ArgumentCompleter -Native -CommandName %(prog_name)s, %(prog_name)s.exe -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $line = $commandAst.ToString()
    $upTo = [Math]::Min($line.Length, $cursorPosition - $commandAst.Extent.StartOffset)
    $env:COMP_LINE = $line.Substring(0, [Math]::Max(0, $upTo))
    $env:%(complete_var)s = "powershell_complete"
    try {
        & %(prog_name)s | ForEach-Object {
            $type, $value = $_ -split ",", 2
            if ($type -eq "plain") {
                [System.Management.Automation.CompletionResult]::new($value, $value, "ParameterValue", $value)
            }
        }
    } finally {
        Remove-Item Env:%(complete_var)s -ErrorAction SilentlyContinue
        Remove-Item Env:COMP_LINE -ErrorAction SilentlyContinue
    }
}
"""


class PowerShellComplete(ShellComplete):
    """PowerShell: the script passes the command line up to the cursor in COMP_LINE."""

    name = "powershell"
    source_template = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get("COMP_LINE", "")
        words = split_arg_string(line)[1:]
        if line and not line[-1].isspace() and words:
            return words[:-1], words[-1]
        return words, ""

    def format_completion(self, item) -> str:
        return f"{item.type},{item.value}"


add_completion_class(PowerShellComplete)


def script(cli, shell: str) -> str:
    cls = get_completion_class(shell)
    if cls is None:
        raise ValueError(shell)
    return cls(cli, {}, "oint", COMPLETE_VAR).source()
