"""Shell completion scripts, generated from the Click app.

Every shell uses Click's completion protocol: the script calls `oint` back with
`_OINT_COMPLETE=<shell>_complete`, so libraries, methods (any case) and options
always match the installed version. Only Click's public API is used: the classes
here are `ShellComplete` subclasses with their own `source_template`,
`get_completion_args` and `format_completion`, registered by
`add_completion_class`; what is offered comes from the commands' own
`shell_complete` (cli.Library, cli.Command). The four scripts are ours, not
Click's templates, so they do not change with the installed Click version, and
they fix what Click's do not (Click 8.5.1, the newest release, checked: its zsh
template completes at the first TAB only where zsh has `loadautofunc`, and
neither it nor its new PowerShell script completes file names after `--opt=`;
its PowerShell script counts the words of the whole command, so a cursor moved
back into the line completes the wrong word, and it registers `oint` only, not
`oint.exe`):

- zsh: the first TAB in a new shell completes (an `_oint` autoloaded from
  $fpath completes at once, whatever the zsh or Click version);
- only the dash spelling of an option is offered (`--ca-bundle`, not also
  `--ca_bundle`, which the command line still accepts), so `--ca<TAB>` completes;
- `--out=rep<TAB>` completes file names after `--opt=`, and after an option's
  value (`--userid 1 <TAB>`) the remaining options are offered;
- fish shows whole descriptions (Click's script cuts them at the first comma);
- PowerShell reads the cursor position and the word being completed, so
  `oint bitrix24 <TAB>` offers the methods, and it completes file names.

Importing this module registers the classes (cli/app.py imports it when
`_OINT_COMPLETE` is set and for `oint completion SHELL`).

Regenerate the files in completions/ (tests/test_shell.py fails when they are stale) with:

    oint completion bash > completions/oint.bash
    oint completion zsh > completions/_oint
    oint completion fish > completions/oint.fish
    oint completion powershell > completions/oint.ps1
"""

import os

import click
from click import shell_completion as sc
from click.shell_completion import CompletionItem, add_completion_class, get_completion_class, split_arg_string

COMPLETE_VAR = "_OINT_COMPLETE"

# bash: the words are cut from COMP_LINE at the cursor (COMP_POINT), not taken
# from COMP_WORDS, which bash splits at every character of COMP_WORDBREAKS
# (`--out=rep` arrives as `--out`, `=`, `rep`). File names are left to
# readline (`-o default`), which completes the part after `=` by itself.
_SOURCE_BASH = """\
# oint completion for bash: add this line to ~/.bashrc
#   eval "$(oint completion bash)"
%(complete_func)s() {
    local IFS=$'\\n'
    local response completion type value

    response=$(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" %(complete_var)s=bash_complete "$1")

    COMPREPLY=()
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == dir ]]; then
            COMPREPLY=()
            compopt -o dirnames
            return 0
        elif [[ $type == file ]]; then
            COMPREPLY=()
            compopt -o default
            return 0
        elif [[ $type == plain ]]; then
            COMPREPLY+=("$value")
        fi
    done
    return 0
}

complete -o nosort -F %(complete_func)s %(prog_name)s
"""

# zsh: as an autoloaded `_oint` (the file on $fpath, found by compinit) the
# file's text is the body of `_oint`, run at the first TAB: it must complete
# then, not only register the function for the next TAB. Click's template
# decides by $zsh_eval_context alone (or, before Click 8.1.4, never completes
# on that first call); the name on the function stack covers zsh versions
# without `loadautofunc`.
_SOURCE_ZSH = """\
#compdef %(prog_name)s
# oint completion for zsh: save it as _%(prog_name)s in a folder on $fpath, before compinit runs:
#   mkdir -p ~/.zfunc && oint completion zsh > ~/.zfunc/_oint
#   fpath=(~/.zfunc $fpath)          # in ~/.zshrc, then
#   autoload -U compinit && compinit

%(complete_func)s() {
    local -a completions
    local -a completions_with_descriptions
    local -a response
    (( ! $+commands[%(prog_name)s] )) && return 1

    response=("${(@f)$(env COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
%(complete_var)s=zsh_complete %(prog_name)s)}")

    for type key descr in ${response}; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" || "$type" == "file" ]]; then
            # --opt=value: complete the part after the first "="
            [[ "$PREFIX" == -*=* ]] && compset -P 1 '*='
            if [[ "$type" == "dir" ]]; then
                _path_files -/
            else
                _path_files -f
            fi
        fi
    done

    if [ -n "$completions_with_descriptions" ]; then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if [ -n "$completions" ]; then
        compadd -U -V unsorted -a completions
    fi
}

if [[ ${zsh_eval_context[-1]} == *autofunc || ${funcstack[1]} == _%(prog_name)s ]]; then
    # autoloaded from $fpath: this is a TAB. Send the next ones straight to the function, complete this one.
    compdef %(complete_func)s %(prog_name)s
    %(complete_func)s "$@"
else
    # eval/source/. command: register the function for later
    compdef %(complete_func)s %(prog_name)s
fi
"""

# fish: a line is `type,value<TAB>description`; split at the first comma only
# (descriptions have commas). For `--opt=value` the file names get the
# `--opt=` part back, since fish matches candidates against the whole token.
_SOURCE_FISH = """\
# oint completion for fish: save it in ~/.config/fish/completions/
#   mkdir -p ~/.config/fish/completions && oint completion fish > ~/.config/fish/completions/oint.fish
function %(complete_func)s
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -ct) %(prog_name)s)
    set -l prefix (string match -r -- '^-[^=]*=' (commandline -ct))

    for completion in $response
        set -l metadata (string split -m 1 -- "," $completion)

        if test "$metadata[1]" = "dir"
            __fish_complete_directories $metadata[2] | string replace -r -- '^' "$prefix"
        else if test "$metadata[1]" = "file"
            __fish_complete_path $metadata[2] | string replace -r -- '^' "$prefix"
        else if test "$metadata[1]" = "plain"
            printf '%%s\\n' $metadata[2]
        end
    end
end

complete --no-files --keep-order --command %(prog_name)s --arguments "(%(complete_func)s)"
"""

# PowerShell: $commandAst ends at its last token, so after `oint bitrix24 `
# the text lacks the space the cursor is past. The script therefore sends the
# whole command text, the cursor's offset in it and $wordToComplete, and
# PowerShellComplete cuts and splits it. A PowerShell variable set to '' is
# removed, so a missing COMP_WORD means an empty word.
_SOURCE_POWERSHELL = r"""# oint completion for PowerShell: add this line to your $PROFILE
#   oint completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName %(prog_name)s, %(prog_name)s.exe -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $word = "$wordToComplete"
    $env:COMP_LINE = $commandAst.ToString()
    $env:COMP_POINT = [string]($cursorPosition - $commandAst.Extent.StartOffset)
    $env:COMP_WORD = $word
    $env:%(complete_var)s = 'powershell_complete'
    $encoding = [Console]::OutputEncoding
    try {
        try { [Console]::OutputEncoding = [System.Text.Encoding]::UTF8 } catch { }  # oint answers in UTF-8
        $response = @(& %(prog_name)s 2>$null)
    } finally {
        try { [Console]::OutputEncoding = $encoding } catch { }
        Remove-Item Env:%(complete_var)s, Env:COMP_LINE, Env:COMP_POINT, Env:COMP_WORD -ErrorAction SilentlyContinue
    }
    # A result replaces the whole word: for --opt=value, keep its --opt= part.
    $prefix = ''
    if ($word -match '^(-[^=]*=)') { $prefix = $Matches[1] }
    foreach ($line in $response) {
        $type, $value = "$line" -split ',', 2
        if ($type -eq 'plain') {
            [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
        } elseif ($type -eq 'file' -or $type -eq 'dir') {
            $folder = ''
            $cut = $value.LastIndexOfAny([char[]]'\/')
            if ($cut -ge 0) { $folder = $value.Substring(0, $cut + 1) }
            Get-ChildItem -Path "$value*" -Force -ErrorAction SilentlyContinue |
                Where-Object { $type -eq 'file' -or $_.PSIsContainer } |
                ForEach-Object {
                    $text = $prefix + $folder + $_.Name
                    if ($text -match '[\s''"`$&(){};,|@#<>]') { $text = "'" + $text.Replace("'", "''") + "'" }
                    $kind = 'ProviderItem'
                    if ($_.PSIsContainer) { $kind = 'ProviderContainer' }
                    [System.Management.Automation.CompletionResult]::new($text, $_.Name, $kind, $_.FullName)
                }
        }
    }
}
"""


def _dash_spelling_only(items: list[CompletionItem], incomplete: str) -> list[CompletionItem]:
    """Drop `--adv_response` where `--adv-response` is offered too: both name one
    option, and two spellings leave `--ad<TAB>` stuck at their common prefix.
    Typed as `--adv_`, the underscore spelling is still completed. Likewise the
    one-letter spellings (`-q`, `-h`) unless typed: `-<TAB>` goes on to `--`."""
    values = {item.value for item in items}
    typed_short = incomplete.startswith("-") and not incomplete.startswith("--") and len(incomplete) > 1
    return [
        item
        for item in items
        if not (
            isinstance(item.value, str)
            and item.value.startswith("--")
            and "_" in item.value
            and item.value.replace("_", "-") in values
        )
        and not (
            isinstance(item.value, str)
            and len(item.value) == 2
            and item.value[0] == "-"
            and item.value[1] != "-"
            and not typed_short
        )
    ]


def _split_tail(words: list[str], text: str, word_ended: bool) -> tuple[list[str], str]:
    """(complete args after the program name, the incomplete word)."""
    words = words[1:]
    if word_ended or not text or not words:
        return words, ""
    return words[:-1], words[-1]


class _Oint(sc.ShellComplete):
    """What every shell shares: which items are offered (cli.Command offers the
    options after an option's value)."""

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        return _dash_spelling_only(super().get_completions(args, incomplete), incomplete)


class BashComplete(_Oint, sc.BashComplete):
    source_template = _SOURCE_BASH

    def get_completion_args(self) -> tuple[list[str], str]:
        if "COMP_LINE" not in os.environ:  # a script from Click's template: COMP_WORDS, COMP_CWORD
            return super().get_completion_args()
        text = os.environ["COMP_LINE"]  # already cut at the cursor
        ended = bool(text) and text[-1].isspace() and not text.endswith("\\ ")
        return _split_tail(split_arg_string(text), text, ended)

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.type},{item.value}"


class ZshComplete(_Oint, sc.ZshComplete):
    source_template = _SOURCE_ZSH

    def get_completion_args(self) -> tuple[list[str], str]:
        cwords = split_arg_string(os.environ["COMP_WORDS"])
        cword = int(os.environ["COMP_CWORD"])
        return cwords[1:cword], cwords[cword] if cword < len(cwords) else ""

    def format_completion(self, item: CompletionItem) -> str:
        help_ = item.help or "_"
        # _describe splits value from description at the first unescaped colon; compadd takes values as they are
        value = item.value.replace(":", r"\:") if help_ != "_" else item.value
        return f"{item.type}\n{value}\n{help_.replace(chr(10), ' ')}"


class FishComplete(_Oint, sc.FishComplete):
    source_template = _SOURCE_FISH

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ["COMP_WORDS"])  # up to the cursor, the current token included
        token = os.environ.get("COMP_CWORD", "")
        return _split_tail(words, token, not token)

    def format_completion(self, item: CompletionItem) -> str:
        if item.help:
            help_ = item.help.replace("\n", " ").replace("\t", " ")
            return f"{item.type},{item.value}\t{help_}"
        return f"{item.type},{item.value}"


def split_powershell(text: str) -> list[str]:
    """Split a command line as PowerShell passes it to a native program:
    blanks separate words; '...' is literal ('' is a quote); "..." and bare
    text take a backtick as escape; backslashes are plain characters
    (C:\\Users\\x). An unclosed quote ends the last word, as it does while typing."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'" and text[i + 1 : i + 2] == "'":
                word.append("'")
                i += 1
            elif ch == "'":
                quote = ""
            else:
                word.append(ch)
        elif ch == "`" and i + 1 < len(text):
            word.append(text[i + 1])
            in_word = True
            i += 1
        elif quote == '"':
            if ch == '"' and text[i + 1 : i + 2] == '"':
                word.append('"')
                i += 1
            elif ch == '"':
                quote = ""
            else:
                word.append(ch)
        elif ch in "'\"":
            quote = ch
            in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(ch)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(word))
    return words


class PowerShellComplete(_Oint, sc.ShellComplete):
    """PowerShell: the script sends the command text (COMP_LINE), the cursor's
    offset in it (COMP_POINT) and $wordToComplete (COMP_WORD; absent when empty)."""

    name = "powershell"
    source_template = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        line = os.environ.get("COMP_LINE", "")
        point = os.environ.get("COMP_POINT", "")
        if not point.strip().lstrip("-").isdigit():  # no cursor given: the line ends at it
            words = split_powershell(line)
            return _split_tail(_program_first(words), line, not line or line[-1].isspace())
        text = line[: max(0, int(point))]
        word = os.environ.get("COMP_WORD", "")
        words = _program_first(split_powershell(text))
        if not word:  # the cursor is after a blank, which the command text may not hold
            return words[1:], ""
        if text and text[-1].isspace():  # cursor and text disagree: the word is what PowerShell says
            parts = split_powershell(word)
            return words[1:], parts[-1] if parts else ""
        return _split_tail(words, text, False)

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.type},{item.value}"


def _program_first(words: list[str]) -> list[str]:
    """`& oint ...` and `. oint ...`: drop the call operator before the program."""
    return words[1:] if words and words[0] in ("&", ".") else words


for _cls in (BashComplete, ZshComplete, FishComplete, PowerShellComplete):
    add_completion_class(_cls, _cls.name)


def script(cli: click.Command, shell: str) -> str:
    cls = get_completion_class(shell)
    if cls is None:
        raise ValueError(shell)
    return cls(cli, {}, "oint", COMPLETE_VAR).source()
