"""Speech backends a worker can drive; ``model.backend`` picks one (see :mod:`.base`).

``xtts`` (the default) and ``tone`` are built in; any other value is an import path
``package.module:Class`` naming a :class:`~xtts_balancer.backends.base.Backend` subclass, so a
third-party engine plugs in without changing this package. Built-in backends are imported only
when a worker loads them, so the front process never imports torch for them.
"""

from __future__ import annotations

import importlib

from xtts_balancer.backends.base import Backend

__all__ = ["BUILTIN_BACKENDS", "backend_class"]

#: Built-in backend names and their import paths.
BUILTIN_BACKENDS = {
    "xtts": "xtts_balancer.backends.xtts:XttsBackend",
    "tone": "xtts_balancer.backends.tone:ToneBackend",
}


def backend_class(spec: str) -> type[Backend]:
    """The backend class ``spec`` names (a built-in name or ``package.module:Class``).

    Raises:
        ValueError: ``spec`` is malformed, its module cannot be imported, or it names no
            :class:`Backend` subclass; the message names ``spec``.
    """
    path = BUILTIN_BACKENDS.get(spec, spec)
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute.isidentifier():
        raise ValueError(
            f"backend {spec!r} is neither a built-in name ({', '.join(BUILTIN_BACKENDS)}) nor an "
            "import path 'package.module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"backend {spec!r}: cannot import {module_name!r} ({exc})") from None
    cls = getattr(module, attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"backend {spec!r}: {module_name}.{attribute} is not a Backend subclass")
    return cls
