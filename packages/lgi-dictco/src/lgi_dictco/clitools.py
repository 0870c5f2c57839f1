"""Pieces every LGI command shares (lgi dictco, lgi fit/render, lgi encode/decode): only click here
(torch only inside :func:`check_device`, when a GPU is asked for).

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


# --- checks every command makes before work (one line each, naming the real problem) --------------

#: What a file's first bytes say it is: a wrong file given where another is expected is named as what
#: it is, not reported as whatever error the loader trips over first.
_SIGNATURES = (
    (b"\x89LGI", "a .lgi file (an image coded by `lgi encode`)"),
    (b"DCAE", "a .dcae file (coded by `lgi dictco compress`)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def root_flags(ctx: click.Context | None = None) -> tuple[int, bool]:
    """(verbosity, quiet) given to the umbrella group (``lgi -v``, ``lgi -q``): a command honours them
    as if they had been given to it."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    obj = obj if isinstance(obj, dict) else {}
    return int(obj.get("verbose", 0)), bool(obj.get("quiet", False))


def describe_file(path: str | Path) -> str | None:
    """What ``path`` is by its first bytes ("a .lgi file ...", "a PNG image"), or None if unknown."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return "an AVIF/HEIF image" if head[8:12] in (b"avif", b"avis", b"heic", b"mif1") else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    return None


def check_input_file(path: str | Path, what: str, option: str | None = None) -> Path:
    """An input that must be one existing file: a folder or a missing path is one line.

    Args:
        path: the path given.
        what: what the command reads there ("image", "checkpoint").
        option: the flag that named it (``--resume``), for the message; None for an argument.
    """
    path = Path(path)
    flag = f"{option} " if option else ""
    if path.is_dir():
        raise click.ClickException(f"{flag}{path} is a folder; give one {what} file")
    if not path.is_file():
        raise click.ClickException(f"{flag}{what} not found: {path}")
    return path


def _alternatives(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def check_suffix(output: str | Path, suffixes: tuple[str, ...], what: str) -> None:
    """The output's extension must say what it holds (a .dcae named x.png would fool every viewer).

    Raises:
        click.BadParameter: a usage error (exit status 2) naming ``-o``.
    """
    output = Path(output)
    if output.suffix.lower() not in suffixes:
        raise click.BadParameter(f"{output} does not end in {_alternatives(suffixes)}: this command writes {what}",
                                 param_hint="'-o' / '--output'")


def check_device(name: str, *, auto: bool = False) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (and ``auto`` where a command allows it), and a GPU if asked for.

    Returns:
        the name, unchanged.

    Raises:
        click.BadParameter: a usage error (exit status 2) naming ``--device`` and the valid names.
    """
    import re

    valid = ("auto, " if auto else "") + "cpu, cuda or cuda:N"
    if not re.fullmatch(r"cpu|cuda(:\d+)?" + ("|auto" if auto else ""), name):
        raise click.BadParameter(f"{name!r} is not a device; use {valid}", param_hint="'--device'")
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter(f"{name}: no CUDA GPU is available on this machine; use cpu",
                                     param_hint="'--device'")
        count = torch.cuda.device_count()
        if int(name.partition(":")[2] or 0) >= count:
            raise click.BadParameter(f"{name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}",
                                     param_hint="'--device'")
    return name


def check_count(value: int | float | None, option: str, minimum: int | float = 1) -> None:
    """A count or budget that must be at least ``minimum`` (``--steps 0`` is refused up front, not run).

    Raises:
        click.BadParameter: a usage error (exit status 2) naming the option.
    """
    if value is not None and not value >= minimum:
        raise click.BadParameter(f"must be >= {minimum}, got {value}", param_hint=f"'{option}'")


def check_torch_file(path: str | Path, wanted: str, option: str | None = None) -> None:
    """A checkpoint given on the command line must be a file ``torch.save`` wrote: anything else (a
    .lgi file, an image, junk) is named as what it is, before torch's unpickling paragraph can be.

    Args:
        path: an existing file.
        wanted: what the command takes there ("a DCAE checkpoint (.pt)").
        option: the flag that named it, for the message.
    """
    name = f"{option} {path}" if option else str(path)
    what = describe_file(path)
    if what is not None and what.startswith("a .lgi"):
        raise click.ClickException(f"{name} is a .lgi file: decode it with `lgi decode {path} -o OUT.png`; "
                                   f"this takes {wanted}")
    if what is not None:
        raise click.ClickException(f"{name} is {what}, not {wanted}")
    with open(path, "rb") as f:
        head = f.read(8)
    # torch.save writes a zip archive (PK\3\4); before torch 1.6 a pickle (protocol byte 0x80).
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        where = f" ({option})" if option else ""
        raise click.ClickException(f"cannot read checkpoint {path}{where}: it is not {wanted}; torch.save did "
                                   f"not write it (it starts with {head!r})")
