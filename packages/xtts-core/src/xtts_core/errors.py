"""The one exception hierarchy of xtts-core.

Every failure a user can cause (a bad file, a bad argument, bad audio, an unsupported language)
surfaces as an :class:`XttsError` subclass with a message that names the thing at fault, so that
the CLI can print one readable line and the servers can answer with a clear error instead of a
stack of torch internals.
"""

from __future__ import annotations


class XttsError(Exception):
    """Base class of every error raised on purpose by xtts-core."""


class CheckpointError(XttsError):
    """A checkpoint file is missing, unreadable, not an XTTS checkpoint, or does not fit the config."""


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint asked to run or import something outside the allow-list."""


class TextError(XttsError, ValueError):
    """The text cannot be spoken: empty, too long, or in an unsupported language."""


class UnsupportedLanguageError(TextError):
    """The language code is not one the loaded model supports."""


class TextTooLongError(TextError):
    """The text encodes to more tokens than the GPT's text position table holds."""


class AudioError(XttsError, ValueError):
    """Reference audio is missing, unreadable, silent or too short."""


class DeviceError(XttsError, RuntimeError):
    """The requested device or dtype is not available on this machine."""


class MissingExtraError(XttsError, ImportError):
    """A module needs an optional dependency set that is not installed."""


class ParameterError(XttsError, ValueError):
    """A synthesis or sampling parameter is out of range."""
