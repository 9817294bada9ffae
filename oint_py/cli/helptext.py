"""Listings and help pages, written from the method table.

A page is a list of sections, laid out like the oint documentation (parameter
table, advanced options, a bash and a CMD example). Piped, a page is plain
text; on a terminal, rich renders the same sections as tables. rich is
imported only then, so help in scripts stays fast.
"""

import shutil
import sys
import textwrap
from typing import TYPE_CHECKING, NamedTuple

from oint_py import __version__
from oint_py.methods import (
    ADVANCED,
    AUTH_FILE,
    CLIENT_ID,
    CLIENT_SECRET,
    CONFIG_ENV,
    GLOBAL,
    JOBS_ENV,
    LIBRARIES,
    METHODS,
    OAUTH,
    OAUTH_ADVANCED,
    SWEEP,
    TOKEN,
    URL,
    Method,
    Option,
)
from oint_py.outcome import DESCRIPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ENV_VARS = {
    URL.env: "--url, so the webhook stays out of ps and crontab lines",
    TOKEN.env: "--token",
    CONFIG_ENV: "--config",
    JOBS_ENV: "where --dontwait writes its job files (default ~/.local/state/oint/jobs, private)",
    AUTH_FILE.env: "--auth-file",
    CLIENT_ID.env: "--clientid",
    CLIENT_SECRET.env: "--clientsecret, so the app's secret stays out of ps and crontab lines",
    OAUTH[0].env: "--oauth-server",
}


class Table(NamedTuple):
    header: tuple[str, ...] | None  # None: a two-column listing without a header row
    rows: "Sequence[tuple[object, ...]]"  # each cell shown as str() shows it


Page = list[tuple[str, str | Table]]  # (heading, content); heading "" for the title lines


def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _wrap(text: object, width: int) -> list[str]:
    return textwrap.wrap(str(text), max(20, width), break_on_hyphens=False) or [""]


def _plain_table(table: Table) -> str:
    """Columns padded to their widest cell; the last column wraps."""
    lines = [table.header, *table.rows] if table.header else list(table.rows)
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]) - 1)]
    last = _width() - 2 - sum(w + 2 for w in widths)
    out = []
    for row in lines:
        wrapped = _wrap(row[-1], last)
        cells = "".join(str(c).ljust(w + 2) for c, w in zip(row, widths, strict=False))
        out.append("  " + cells + wrapped[0])
        out += ["  " + " " * len(cells) + more for more in wrapped[1:]]
    return "\n".join(out)


def plain(page: Page) -> str:
    parts = []
    for heading, content in page:
        text = _plain_table(content) if isinstance(content, Table) else content
        parts.append(f"{heading}:\n{text}" if heading else text)
    return "\n\n".join(parts) + "\n"


def _rich(page: Page) -> None:
    from rich import box
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(highlight=False)
    for heading, content in page:
        if heading:
            console.print(Text(heading, style="bold"))
        if isinstance(content, Table):
            table = RichTable(
                box=box.SIMPLE_HEAD if content.header else None,
                show_header=bool(content.header),
                pad_edge=False,
                padding=(0, 2, 0, 0),
            )
            for i, name in enumerate(content.header or [""] * len(content.rows[0])):
                table.add_column(name, style="cyan" if i == 0 else None, no_wrap=i < len(content.rows[0]) - 1)
            for row in content.rows:
                table.add_row(*(Text(str(c)) for c in row))  # Text: "[user:password@]" is not markup
            console.print(Padding(table, (0, 0, 0, 2)))
        else:
            console.print(Text(content))
        console.print()


def show(page: Page) -> None:
    """Print a page: rich tables on a terminal, plain UTF-8 text otherwise."""
    from oint_py.output.render import say, use_colour

    if use_colour(sys.stdout):
        _rich(page)
    else:
        say(plain(page))


def _options(items: "Iterable[Option]") -> Table:
    return Table(None, [(f"{o.short + ', ' if o.short else ''}{o.name} {o.metavar}".strip(), o.help) for o in items])


def root() -> Page:
    tools = [
        ("sandbox", "Run a local Bitrix24 portal emulator for dry runs (oint sandbox --help)"),
        ("jobs", "List, wait for and clean this user's --dontwait jobs (oint jobs --help)"),
        ("completion", "Print a shell completion script (bash, zsh, fish, powershell)"),
    ]
    return [
        ("", f"oint-py {__version__}: OpenIntegrations CLI for Bitrix24 time tracking"),
        ("Usage", "  oint LIBRARY METHOD --option value ..."),
        ("Libraries", Table(None, list(LIBRARIES.items()))),
        ("Tools", Table(None, tools)),
        ("Standard options of every method", _options(GLOBAL)),
        ("", "Run 'oint bitrix24' for its methods, 'oint bitrix24 METHOD --help' for one method."),
    ]


def library(name: str) -> Page:
    areas: dict[str, list[Method]] = {}
    for m in METHODS:
        areas.setdefault(m.area, []).append(m)
    return [
        ("", f"oint {name}: {LIBRARIES[name]}"),
        ("Usage", f"  oint {name} METHOD --option value ..."),
        *[
            (area, Table(None, [(m.name, f"{m.description} ({m.rest})") for m in methods]))
            for area, methods in areas.items()
        ],
        ("", "Method names are case-insensitive. 'oint bitrix24 METHOD --help' shows a method's options."),
    ]


def _example(m: Method, cont: str) -> str:
    lines = [f"oint bitrix24 {m.name} {cont}"]
    items = list(m.example.items())
    for i, (opt, val) in enumerate(items):
        shown = val if val.isdigit() else f'"{val}"'  # as the oint docs write them
        lines.append(f"  {opt} {shown}" + (f" {cont}" if i < len(items) - 1 else ""))
    return "\n".join("  " + line for line in lines)


_WHAT = {
    "token": "OAuth server: GET /oauth/token/ (the answer's JSON is printed)",
    "link": "No request: prints the address of the portal's authorization page, to open in a browser",
    "status": "No request: reads the auth file",
}


def method(m: Method) -> Page:
    params = [(p.name, p.option, p.type, "yes" if p.required else "no", p.description) for p in m.params]
    usage = (
        "--url URL [OPTIONS]"
        if m.kind == "rest"
        else " ".join(
            [f"{p.option} {p.type.split(',')[0].upper()}" for p in m.params]
            + ["--auth-file PATH"] * (m.kind == "status")
        )
    )
    by_kind: dict[str, list[tuple[str, tuple[Option, ...]]]] = {
        "rest": [("Only where needed (any --userid form, also --userid all)", SWEEP)] * m.changes_state
        + [("App authorization", (AUTH_FILE,))] * m.takes_token
        + [("Advanced call options", ADVANCED)],
        "token": [("Auth file", OAUTH), ("Advanced call options", OAUTH_ADVANCED)],
        "status": [("Auth file", (AUTH_FILE,))],
        "link": [],
    }
    sections = by_kind[m.kind]
    return [
        (
            "",
            f"{m.title}\n{m.description}. "
            + (f"Bitrix24 REST method: {m.rest}" if m.kind == "rest" else _WHAT[m.kind]),
        ),
        ("Usage", f"  oint bitrix24 {m.name} {usage}"),
        *(
            [("Parameters", Table(("Parameter", "CLI option", "Type", "Required", "Description"), params))]
            * bool(params)
        ),
        *[(title, _options(items)) for title, items in sections],
        ("Standard options", _options(GLOBAL)),
        ("Example (bash)", _example(m, "\\")),
        ("Example (CMD/bat)", _example(m, "^")),
        ("Environment variables", Table(None, list(ENV_VARS.items()))),
        ("Exit codes", Table(None, [(str(int(code)), text) for code, text in DESCRIPTIONS.items()])),
    ]
