"""Guard for modules that need the ``inference`` extra.

The plain ``xtts-core`` install is torch-free so a CPU-only broker host can use the wire schemas.
Model modules call :func:`require_inference` first, so a missing extra fails with one line that
says what to install rather than a bare ``No module named 'torch'``.
"""

from __future__ import annotations

import importlib.util

from xtts_core.errors import MissingExtraError

INFERENCE_MODULES = (
    "torch", "numpy", "tokenizers", "soundfile", "num2words", "ko_speech_tools", "pypinyin",
    "cutlet", "unidic_lite",
)  # fmt: skip


def require_inference(feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every inference dependency is importable."""
    missing = [name for name in INFERENCE_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs the inference extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'xtts-core[inference]'"
        )
