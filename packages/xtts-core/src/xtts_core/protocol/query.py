"""The websocket URL's query parameters, the same for both sockets (§2.2, §3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from xtts_core.protocol._base import _describe, _Model
from xtts_core.protocol.codes import (
    DEFAULT_INACTIVITY_TIMEOUT_S,
    MAX_INACTIVITY_TIMEOUT_S,
    ErrorCode,
    invalid_message,
)
from xtts_core.protocol.formats import AudioFormat, OutputFormat, check_output_format

# --- query parameters (§2.2) ---------------------------------------------------------------------


class StreamInputQuery(_Model):
    """Query parameters of both websocket URLs (§2.2, §3); all optional, unknown ones ignored.

    Booleans arrive as ``true``/``false``. Build it with :meth:`parse`, which raises
    :class:`~xtts_core.errors.ProtocolError`.
    """

    model_config = ConfigDict(protected_namespaces=())

    model_id: str | None = None
    """Model requested; clients send ElevenLabs ids, the server maps them to what it runs."""
    language_code: str | None = None
    """ISO 639-1 language to force."""
    enable_logging: bool = True
    """``false`` = zero-retention mode."""
    enable_ssml_parsing: bool = False
    """Parse SSML tags such as ``<break/>``."""
    output_format: OutputFormat = OutputFormat.MP3_44100
    """Encoding of the ``audio`` bytes (§2.8); the spec default is ``mp3_44100``."""
    inactivity_timeout: int = Field(DEFAULT_INACTIVITY_TIMEOUT_S, ge=1)
    """Seconds of client silence before the stream is closed; values above 180 are clamped."""
    sync_alignment: bool = False
    """``true``: every chunk carries its own timings; ``false``: each generation's first chunk."""
    auto_mode: bool = False
    """Turn off the chunk schedule and buffering (for clients sending whole sentences)."""
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"
    """Number and date spelling normaliser."""
    seed: int | None = Field(None, ge=0, le=4294967295)
    """Best-effort determinism."""
    authorization: str | None = None
    """Bearer token (§1.2)."""
    optimize_streaming_latency: int = Field(0, ge=0, le=4)
    """Deprecated on websockets; accepted and ignored."""
    apply_language_text_normalization: bool | None = None
    """Language-specific normalisation (livekit sends it)."""
    single_use_token: str | None = None
    """Single-use token replacing the API key (§1.2)."""
    xi_api_key: str | None = None
    """API key in the query (undocumented, common in hand-written clients, §1.2)."""

    @field_validator("output_format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> OutputFormat:
        try:
            return check_output_format(value, streaming=True)
        except ValueError as exc:
            raise PydanticCustomError("output_format", "{reason}", {"reason": str(exc)}) from None

    @field_validator("inactivity_timeout")
    @classmethod
    def _clamp_timeout(cls, value: int) -> int:
        return min(value, MAX_INACTIVITY_TIMEOUT_S)

    @property
    def audio_format(self) -> AudioFormat:
        """Codec, sample rate and bit rate of :attr:`output_format`."""
        return self.output_format.audio_format

    @classmethod
    def parse(cls, query: str | bytes | Mapping[str, str]) -> StreamInputQuery:
        """Validate a raw query string (``a=1&b=2``) or a mapping (e.g. Starlette's ``QueryParams``).

        A repeated parameter keeps its last value; an empty value counts as absent.

        Raises:
            ProtocolError: a value is invalid (one line naming the parameter).
        """
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        pairs = (
            parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query.items()
        )
        params = {key: value for key, value in pairs if value != ""}
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            fmt_error = any(err["type"] == "output_format" for err in exc.errors())
            raise invalid_message(
                "invalid query: " + _describe(exc),
                ErrorCode.UNSUPPORTED_OUTPUT_FORMAT if fmt_error else ErrorCode.INVALID_MESSAGE,
            ) from exc
