"""`onereward ARGS` run in-process, for the CLI tests: a user's mistake must be one line on stderr with exit code 2."""

import sys


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `onereward ARGS` through cli.main (0 when it returns without exiting)."""
    from onereward import cli

    monkeypatch.setattr(sys, "argv", ["onereward", *map(str, args)])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err
