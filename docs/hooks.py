"""MkDocs hook: the command-line reference is generated from segprune's own parsers at build time.

``<!-- cli-reference -->`` in a page becomes one section per subcommand (its description and a
table of every option with its default), so the reference is never written twice and cannot
go stale: a renamed option changes the page on the next build.
"""

from __future__ import annotations

import argparse

MARKER = "<!-- cli-reference -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | value | default | what it does |", "|---|---|---|---|"]
    for action in parser._actions:  # argparse has no public accessor for the declared actions
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.nargs == 0:
            value = ""
        elif action.choices:
            value = " \\| ".join(f"`{c}`" for c in action.choices)
        else:
            value = f"`{action.metavar or action.dest.upper()}`"
        default = "" if action.default in (None, False, argparse.SUPPRESS) or action.required else f"`{action.default}`"
        if action.required and action.option_strings:
            default = "required"
        rows.append(f"| {names} | {value} | {_cell(default)} | {_cell(action.help or '')} |")
    return rows


def cli_reference() -> str:
    from segprune.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    out = [_cell(parser.description or ""), ""]
    for name, command in sub.choices.items():
        out += [f"## segprune {name}", "", f"*{_cell(helps.get(name, ''))}*", "", _cell(command.description or ""),
                "", "```text", command.format_usage().strip(), "```", "", *_option_rows(command), ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
