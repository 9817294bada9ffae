"""Listings and help pages, written from the method table.

Plain text, laid out like the oint documentation (parameter table, advanced
options, a bash and a CMD example). On a terminal, rich renders the same
content as tables; rich is imported only then, so piped help stays fast.
"""

import os
import shutil
import sys
import textwrap

from . import __version__
from .errors import EXIT_CODES
from .methods import LIBRARIES, METHODS, Method

ENV_VARS = {
    "OINT_BITRIX24_URL": "--url, so the webhook stays out of ps and crontab lines",
    "OINT_BITRIX24_TOKEN": "--token",
    "OINT_CONFIG": "--config",
    "OINT_JOBS_DIR": "where --dontwait writes its job files",
}

# (option, metavar, description): the advanced call settings, as in oint's table
ADVANCED = (
    ("--proxy", "URL|JSON", "Proxy: http(s)://[user:password@]host:port, or oint's structure "
     '{"Protocol","Host","Port","User","Password","UseOSAuthentication"} as JSON'),
    ("--timeout", "SECONDS", "Timeout of each attempt (default 30; oint waits 3600)"),
    ("--adv-response", "", "Print the complete HTTP structure: code, body and headers"),
    ("--retries", "N", "Re-sends on 5xx, QUERY_LIMIT_EXCEEDED, OVERLOAD_LIMIT and connection errors, "
     "with exponential backoff and jitter, honouring Retry-After (default 3, at most 20)"),
    ("--dontwait", "", "Run in a detached background job; print the job and the file its result goes to"),
    ("--config", "JSON|PATH", "oint's advanced settings as a JSON object or a file: keys proxy, timeout, "
     "adv_response, retries, dontwait (also ca_bundle, insecure). Explicit flags win"),
    ("--ca-bundle", "PATH", "Trust this CA file (PEM) for a self-hosted portal's certificate"),
    ("--insecure", "", "Do not verify the portal's TLS certificate (self-signed portals; unsafe)"),
)
GLOBAL = (
    ("--out", "PATH", "Write the JSON to PATH atomically and print one confirmation line"),
    ("--debug", "", "Log the HTTP exchange to stderr (secrets masked)"),
    ("--test", "", "Print the request that would be sent (secrets masked); send nothing"),
    ("--help", "", "Show this help"),
)


def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _rows(rows, indent: int = 2) -> str:
    """Two columns: a left column, then a wrapped description."""
    left = max(len(r[0]) for r in rows) + 2
    width = _width() - indent - left
    lines = []
    for name, desc in rows:
        wrapped = textwrap.wrap(desc, max(20, width), break_on_hyphens=False) or [""]
        lines.append(" " * indent + name.ljust(left) + wrapped[0])
        lines += [" " * (indent + left) + more for more in wrapped[1:]]
    return "\n".join(lines)


def root() -> str:
    libs = _rows(list(LIBRARIES.items()))
    tools = _rows([("sandbox", "Run a local Bitrix24 portal emulator for dry runs (oint sandbox --help)"),
                   ("completion", "Print a shell completion script (bash, zsh, fish, powershell)")])
    return (
        f"oint-py {__version__}: OpenIntegrations CLI for Bitrix24 time tracking\n\n"
        "Usage: oint LIBRARY METHOD --option value ...\n\n"
        f"Libraries:\n{libs}\n\nTools:\n{tools}\n\n"
        f"Standard options of every method:\n{_rows([(o, d) for o, _, d in GLOBAL])}\n\n"
        "Run 'oint bitrix24' for its methods, 'oint bitrix24 METHOD --help' for one method.\n"
    )


def library(name: str) -> str:
    areas: dict[str, list[Method]] = {}
    for m in METHODS:
        areas.setdefault(m.area, []).append(m)
    parts = [f"oint {name}: {LIBRARIES[name]}\n", f"Usage: oint {name} METHOD --option value ...\n"]
    for area, methods in areas.items():
        parts.append(f"{area}:\n" + _rows([(m.name, f"{m.description} ({m.rest})") for m in methods]) + "\n")
    parts.append("Method names are case-insensitive. 'oint bitrix24 METHOD --help' shows a method's options.\n")
    return "\n".join(parts)


def _table(header, rows) -> str:
    """A plain text table whose last column wraps."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    last = max(24, _width() - 2 - sum(w + 2 for w in widths))
    out = []
    for row in [header, *rows]:
        wrapped = textwrap.wrap(str(row[-1]), last, break_on_hyphens=False) or [""]
        cells = "".join(str(c).ljust(w + 2) for c, w in zip(row, widths))
        out.append("  " + cells + wrapped[0])
        out += ["  " + " " * len(cells) + more for more in wrapped[1:]]
    return "\n".join(out)


def _example(m: Method, cont: str) -> str:
    lines = [f"oint bitrix24 {m.name} {cont}"]
    items = list(m.example.items())
    for i, (opt, val) in enumerate(items):
        lines.append(f'  {opt} "{val}"' + (f" {cont}" if i < len(items) - 1 else ""))
    return "\n".join("  " + line for line in lines)


def parameter_rows(m: Method):
    return [(p.name, p.option, p.type, "yes" if p.required else "no", p.description) for p in m.params]


def method(m: Method) -> str:
    exits = _rows([(str(code), text) for code, text in EXIT_CODES.items()])
    env = _rows(list(ENV_VARS.items()))
    return (
        f"{m.title}\n{m.description}. Bitrix24 REST method: {m.rest}\n\n"
        f"Usage: oint bitrix24 {m.name} --url URL [OPTIONS]\n\n"
        "Parameters:\n"
        + _table(("Parameter", "CLI option", "Type", "Required", "Description"), parameter_rows(m))
        + "\n\nAdvanced call options:\n"
        + _rows([(f"{o} {mv}".strip(), d) for o, mv, d in ADVANCED])
        + "\n\nStandard options:\n"
        + _rows([(f"{o} {mv}".strip(), d) for o, mv, d in GLOBAL])
        + f"\n\nExample (bash):\n{_example(m, chr(92))}\n\nExample (CMD/bat):\n{_example(m, '^')}\n\n"
        + f"Environment variables:\n{env}\n\nExit codes:\n{exits}\n"
    )


def show(text: str) -> None:
    """Print help: rich on a terminal (headings in bold), plain bytes otherwise."""
    from .output import say

    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.markup import escape

        console = Console(highlight=False, soft_wrap=True)
        for line in text.rstrip("\n").split("\n"):
            heading = line.endswith(":") and not line.startswith(" ")
            console.print(f"[bold]{escape(line)}[/bold]" if heading else escape(line))
    else:
        say(text)
