"""The ``output_format`` values we serve and their byte formats (§2.8, §2.8, §2.8)."""

from __future__ import annotations

from enum import Enum
from typing import Literal, NamedTuple, TypeAlias, cast

from xtts_core.protocol.codes import ErrorCode, invalid_message

# --- output formats (§2.8) ------------------------------------------------------------------------


Codec: TypeAlias = Literal["pcm", "ulaw", "alaw", "mp3", "opus", "wav", "aac", "flac"]


class AudioFormat(NamedTuple):
    """A parsed ``output_format``: codec, sample rate in Hz and bit rate in kbit/s (None if raw)."""

    codec: Codec
    sample_rate: int
    bitrate_kbps: int | None


class OutputFormat(str, Enum):
    """The ``output_format`` values we serve (§2.8 and the extras real clients send, §2.8).

    ``pcm_R``: raw s16le mono; ``ulaw_8000``/``alaw_8000``: raw G.711; ``mp3_R_B``: MPEG audio at
    B kbit/s; ``opus_48000_B``: Opus in Ogg; ``wav_R``: RIFF/WAV, whole-file HTTP ``convert`` only
    (§4.1). ``mp3_44100`` (the websocket spec's default, with no bit rate) means ``mp3_44100_128``
    (§2.8).
    """

    PCM_8000 = "pcm_8000"
    PCM_16000 = "pcm_16000"
    PCM_22050 = "pcm_22050"
    PCM_24000 = "pcm_24000"
    PCM_32000 = "pcm_32000"
    PCM_44100 = "pcm_44100"
    PCM_48000 = "pcm_48000"
    ULAW_8000 = "ulaw_8000"
    ALAW_8000 = "alaw_8000"
    MP3_22050_32 = "mp3_22050_32"
    MP3_24000_48 = "mp3_24000_48"
    MP3_44100 = "mp3_44100"
    MP3_44100_32 = "mp3_44100_32"
    MP3_44100_64 = "mp3_44100_64"
    MP3_44100_96 = "mp3_44100_96"
    MP3_44100_128 = "mp3_44100_128"
    MP3_44100_192 = "mp3_44100_192"
    OPUS_48000_32 = "opus_48000_32"
    OPUS_48000_64 = "opus_48000_64"
    OPUS_48000_96 = "opus_48000_96"
    OPUS_48000_128 = "opus_48000_128"
    OPUS_48000_192 = "opus_48000_192"
    WAV_8000 = "wav_8000"
    WAV_16000 = "wav_16000"
    WAV_22050 = "wav_22050"
    WAV_24000 = "wav_24000"
    WAV_32000 = "wav_32000"
    WAV_44100 = "wav_44100"
    WAV_48000 = "wav_48000"

    @property
    def audio_format(self) -> AudioFormat:
        """Codec, sample rate and bit rate of this format."""
        codec, rate, *kbps = self.value.split("_")
        bitrate = int(kbps[0]) if kbps else (128 if codec == "mp3" else None)
        return AudioFormat(cast(Codec, codec), int(rate), bitrate)

    @property
    def streamable(self) -> bool:
        """Whether the websockets and streaming HTTP endpoints serve it (every format but wav)."""
        return not self.value.startswith("wav_")


def check_output_format(value: object, *, streaming: bool) -> OutputFormat:
    """The :class:`OutputFormat` named by ``value``; ``ValueError`` with a one-line reason if none."""
    if isinstance(value, OutputFormat):
        fmt = value
    else:
        try:
            fmt = OutputFormat(value)
        except ValueError:
            allowed = ", ".join(f.value for f in OutputFormat if f.streamable or not streaming)
            raise ValueError(f"unsupported output_format {value!r}; supported: {allowed}") from None
    if streaming and not fmt.streamable:
        raise ValueError(
            f"output_format {fmt.value!r} is served only by the whole-file HTTP endpoint, not by "
            "streaming endpoints"
        )
    return fmt


def parse_output_format(value: str, *, streaming: bool = True) -> AudioFormat:
    """Parse an ``output_format`` such as ``"pcm_24000"`` into ``AudioFormat("pcm", 24000, None)``.

    Args:
        value: the ``output_format`` as the client sent it.
        streaming: refuse ``wav_*``, which only the whole-file HTTP endpoint serves (§4.1).

    Raises:
        ProtocolError: the value is not a format we serve; the message lists the ones we do.
    """
    try:
        return check_output_format(value, streaming=streaming).audio_format
    except ValueError as exc:
        raise invalid_message(str(exc), ErrorCode.UNSUPPORTED_OUTPUT_FORMAT) from None
