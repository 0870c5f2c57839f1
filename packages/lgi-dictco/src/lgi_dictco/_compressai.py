"""compressai's rANS coder, fast: ``from lgi_dictco._compressai import ans``; the rest, quietly.

The ``.lgi`` streams need only compressai's ``ans`` extension (``RansDecoder``, ``BufferedRansEncoder``:
plain C++, no torch). Importing ``compressai`` itself runs its ``__init__``, which imports every model,
dataset and registry (torch_geometric among them): 10–13 s on a 2-core machine, most of a first
``lgi decode``. So ``ans`` is loaded from compressai's folder by itself, under its own name
``compressai.ans``; a later ``import compressai`` (the DCAE codec) finds it in ``sys.modules`` and
uses that same module (the extension must not be initialized twice).

``full()`` imports all of compressai, silencing the FutureWarning that compressai 1.2.8's import-time
``torch.jit.script`` raises under torch ≥ 2.10 (the warning is about compressai's code, not the user's).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["ans", "full"]


def _load_ans() -> ModuleType:
    if "compressai.ans" in sys.modules:
        return sys.modules["compressai.ans"]
    if "compressai" in sys.modules:  # already imported whole: it holds ans
        from compressai import ans as loaded

        return loaded
    spec = importlib.util.find_spec("compressai")  # finds the folder; runs nothing of it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("compressai is not installed (pip install compressai)")
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"ans{suffix}"
            if path.is_file():
                ext_spec = importlib.util.spec_from_file_location("compressai.ans", path)
                module = importlib.util.module_from_spec(ext_spec)
                ext_spec.loader.exec_module(module)
                sys.modules["compressai.ans"] = module
                return module
    raise ImportError(f"compressai has no ans extension in {list(spec.submodule_search_locations)}")


def full() -> ModuleType:
    """All of compressai (models, entropy models), imported quietly; ``compressai.ans`` is ``ans``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import compressai
    if getattr(compressai, "ans", None) is not ans:
        compressai.ans = ans  # loaded alone before the package: make the attribute the same module
    return compressai


ans = _load_ans()
