"""The one exception hierarchy of xtts-core.

Every failure a user can cause (a bad file, a bad argument, bad audio, an unsupported language)
surfaces as an :class:`XttsError` subclass with a message that names the thing at fault, so that
the CLI can print one readable line and the servers can answer with a clear error instead of a
stack of torch internals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


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


class CapacityError(XttsError, RuntimeError):
    """Every stream slot of a batch decoder is taken: the caller should queue or refuse."""


class JobCancelledError(XttsError):
    """A scheduled synthesis job was cancelled (or its scheduler closed): no more audio comes."""


class ProtocolError(XttsError, ValueError):
    """A websocket message or query parameter breaks the ElevenLabs protocol (see xtts_core.protocol).

    ``str(exc)`` is one line a server can send back verbatim as the ``message`` of an
    ElevenLabs-style error; ``error`` is the machine-readable code for that message's ``error``
    field and ``code`` the websocket close code to close with. Both come from the protocol's
    vocabulary (:class:`xtts_core.protocol.ErrorCode`, :class:`xtts_core.protocol.CloseCode`);
    :func:`xtts_core.protocol.invalid_message` builds the common case.
    """

    def __init__(self, message: str, *, error: str, code: int) -> None:
        message = " ".join(message.splitlines()).strip()
        super().__init__(message)
        self.message = message
        self.error = error
        self.code = code

    def __reduce__(self) -> tuple[Callable[..., ProtocolError], tuple[str]]:
        # Keep error and code when the exception crosses a process boundary (pickle).
        return functools.partial(type(self), error=self.error, code=self.code), (self.message,)


class SettingsError(XttsError, ValueError):
    """Service settings cannot be loaded: a missing or malformed YAML file, or invalid values.

    Not to be confused with ``pydantic_settings.SettingsError``, which
    :func:`xtts_core.settings.load_settings` converts into this one.
    """
