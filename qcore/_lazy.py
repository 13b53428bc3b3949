"""Package attributes resolved on first use (PEP 562).

A board that only loads and runs a model should not pay for importing the quantization
passes, the observers or the file writer: each package lists its public names with the
submodule that defines them and imports that submodule when a name is first read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], table: Mapping[str, str], *,
                 base: str | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` for names defined in submodules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    namespace : dict
        The package's ``globals()``; a resolved name is stored there, so the lookup runs
        once per name.
    table : mapping of str to str
        Public name -> submodule (relative to ``base``, without the leading dot) that
        defines it. A name equal to its submodule's name exports the submodule itself.
    base : str, optional
        The package the submodule paths are relative to (default: ``package``; a plain
        module such as ``qcore.api`` names its parent package here).

    Returns
    -------
    tuple of callable
        ``(__getattr__, __dir__)`` to assign in the package.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = import_module(f".{module}", base or package)
        value = loaded if name == module else getattr(loaded, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
