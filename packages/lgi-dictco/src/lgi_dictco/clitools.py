"""Pieces every LGI command shares (lgi dictco, lgi fit/render, lgi encode/decode): only click here.

They live in lgi-dictco because it is the lowest package that both lgi-train and lgi depend on, and the
one that owns the atomic writer (:mod:`lgi_dictco.fileio`) whose checks they run.
"""

from __future__ import annotations

from pathlib import Path

import click

FORCE = click.option("--force", is_flag=True, help="Replace the output even if it is read-only.")


def preflight(output: str | Path, force: bool = False) -> None:
    """Refuse an output that cannot be written before any work (an encode or a fit runs for minutes).

    Raises:
        click.ClickException: one line naming the file and the reason.
    """
    from lgi_dictco.fileio import OutputError, check_output

    try:
        check_output(output, force=force)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
