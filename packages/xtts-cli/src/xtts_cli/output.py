"""Audio outputs: a file chosen by its extension, or raw PCM on stdout, written chunk by chunk.

Files are written to a temporary name beside the target (``NAME.XXXX.partial.EXT``) and renamed
only when the last sample is in, so a failed or interrupted run never leaves a file that looks
complete; the partial file is removed instead. WAV is written by :class:`WavWriter`, which
rewrites the header sizes after every chunk: the growing partial file is a valid WAV at every
moment and can be played while synthesis goes on. FLAC and OGG/Vorbis are encoded incrementally by
libsndfile. ``-`` is raw little-endian 16-bit mono PCM at the output rate, for piping into a
player.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from xtts_cli.errors import CliError, UsageError

#: Output extensions and their libsndfile format and subtype (WAV is written by WavWriter).
FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
STDOUT = "-"

Writer = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class OutputTarget:
    """Where audio goes: ``path`` (format from its extension) or stdout when ``path`` is None."""

    path: Path | None

    @classmethod
    def parse(cls, value: str | Path) -> OutputTarget:
        """Check the name before any work is done: known extension, writable folder, not a dir."""
        if str(value) == STDOUT:
            if sys.stdout.isatty():
                raise UsageError(
                    "refusing to write raw PCM to a terminal: pipe it into a player "
                    "(e.g. `| aplay -f S16_LE -r 24000 -c 1`) or give an output file"
                )
            return cls(None)
        path = Path(value)
        if path.suffix.lower() not in FORMATS:
            raise UsageError(
                f"cannot write {path}: unknown extension {path.suffix or '(none)'!r}; "
                f"use one of {', '.join(FORMATS)} or '-' for raw PCM on stdout"
            )
        check_writable_dir(path.parent)
        if path.is_dir():
            raise CliError(f"cannot write {path}: it is a directory")
        return cls(path)

    def describe(self, sample_rate: int) -> str:
        return str(self.path) if self.path else f"stdout (raw s16le mono {sample_rate} Hz)"


def check_writable_dir(folder: Path) -> None:
    """Fail with one line when files cannot be created in ``folder``."""
    folder = folder if str(folder) else Path()
    if not folder.is_dir():
        raise CliError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"output folder is not writable: {folder}")


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples as little-endian int16, clipped and truncated as xtts-core's ``pcm16_bytes``."""
    import torch

    from xtts_core.audio import pcm16_bytes

    return pcm16_bytes(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))


class WavWriter:
    """16-bit mono PCM WAV whose header is correct after every :meth:`write`."""

    HEADER = 44

    def __init__(self, file: BinaryIO, sample_rate: int) -> None:
        self.file = file
        self.sample_rate = sample_rate
        self.data_bytes = 0
        self._header()

    def write(self, samples: np.ndarray) -> None:
        data = pcm16(samples)
        self.file.seek(self.HEADER + self.data_bytes)
        self.file.write(data)
        self.data_bytes += len(data)
        self._header()
        self.file.flush()

    def _header(self) -> None:
        rate = self.sample_rate
        self.file.seek(0)
        self.file.write(
            b"RIFF"
            + struct.pack("<I", 36 + self.data_bytes)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data"
            + struct.pack("<I", self.data_bytes)
        )


@contextmanager
def open_output(target: OutputTarget, sample_rate: int) -> Iterator[Writer]:
    """A function that appends float samples to ``target``; the file appears only on success."""
    if target.path is None:
        out = sys.stdout.buffer

        def write_raw(samples: np.ndarray) -> None:
            out.write(pcm16(samples))
            out.flush()

        yield write_raw
        return
    fmt, subtype = FORMATS[target.path.suffix.lower()]
    with partial_file(target.path) as partial, partial.open("r+b") as file:
        if fmt == "WAV":
            yield WavWriter(file, sample_rate).write
        else:
            yield from _soundfile_writer(file, sample_rate, fmt, subtype)


@contextmanager
def partial_file(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` that replaces it on success, vanishes on failure."""
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{path.stem}.", suffix=f".partial{path.suffix}"
    )
    os.close(fd)
    partial = Path(name)
    partial.chmod(0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any file
    try:
        yield partial
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _soundfile_writer(file: BinaryIO, rate: int, fmt: str, subtype: str) -> Iterator[Writer]:
    import soundfile as sf

    try:
        sound = sf.SoundFile(file, "w", rate, 1, subtype, format=fmt)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise CliError(f"cannot encode {fmt}: {exc}") from None
    with sound:
        yield lambda samples: sound.write(np.clip(samples, -1.0, 1.0))


def _umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
