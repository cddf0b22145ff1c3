"""Guards for modules and languages that need optional dependencies.

The plain ``xtts-core`` install is torch-free so a CPU-only broker host can use the wire schemas.
Model modules call :func:`require_inference` first, so a missing extra fails with one line that
says what to install rather than a bare ``No module named 'torch'``.

The engine itself needs only the packages in :data:`INFERENCE_MODULES` (the ``engine`` extra);
Japanese, Chinese and Korean each need their own script package, imported when text in that
language is first normalised. :func:`require_language` is that check: without the package the
text fails with one line naming the language's extra, and every other language still works. A
slim install (an image without a package index, a small container) can then speak English with
``xtts-core[engine]`` alone; ``xtts-core[inference]`` installs every extra.
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType
from typing import Final

from xtts_core.errors import MissingExtraError

INFERENCE_MODULES = ("torch", "numpy", "tokenizers", "soundfile", "num2words")

LANGUAGE_EXTRAS: Final = MappingProxyType(
    {
        "ja": ("Japanese", ("cutlet", "fugashi", "unidic_lite")),
        "zh": ("Chinese", ("pypinyin",)),
        "ko": ("Korean", ("ko_speech_tools",)),
    }
)
"""Base language code -> (its name, the modules its text needs). The extra is named by the code."""


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require_inference(feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every inference dependency is importable."""
    missing = _missing(INFERENCE_MODULES)
    if missing:
        raise MissingExtraError(
            f"{feature} needs the inference extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'xtts-core[inference]'"
        )


def require_language(language: str) -> None:
    """Raise :class:`MissingExtraError` if text in ``language`` (a base code) needs a package
    that is not installed; languages without their own package always pass."""
    entry = LANGUAGE_EXTRAS.get(language)
    if entry is None:
        return
    name, modules = entry
    missing = _missing(modules)
    if missing:
        raise MissingExtraError(
            f"{name} text needs the {language} extra (missing: {', '.join(missing)}); "
            f"install it with: pip install 'xtts-core[{language}]'"
        )
