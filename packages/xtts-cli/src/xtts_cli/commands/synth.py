"""``xtts synth``: text to an audio file, or to raw PCM on stdout, at once or streamed.

Everything that can be checked without the model is checked first (output name, text, voice
flags, model files, language, streaming constraints), so a typo fails in well under a second
instead of after a model load.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xtts_cli.console import info
from xtts_cli.errors import CliError, UsageError
from xtts_cli.options import (
    CheckpointOption,
    ConfigOption,
    DeviceOption,
    Dtype,
    DtypeOption,
    LanguageOption,
    ModelDirOption,
    ModelSource,
    SpeakersOption,
    TokenizerOption,
    load_engine,
)
from xtts_cli.output import OutputTarget, open_output
from xtts_cli.synthesis import (
    ChunkOption,
    FirstChunkOption,
    LengthOption,
    LookaheadOption,
    MaxCodesOption,
    OverlapOption,
    ReferenceOption,
    RepetitionOption,
    SampleOption,
    Sampling,
    SeedOption,
    SpeakerOption,
    SpeedOption,
    SplitOption,
    TemperatureOption,
    TopKOption,
    TopPOption,
    VoiceOption,
    check_voice_inputs,
    run_oneshot,
    run_stream,
    select_voice,
    stream_options,
)

if TYPE_CHECKING:
    import numpy as np

    from xtts_cli.options import ModelFiles
    from xtts_core.config import XttsConfig


def read_text(text: str | None, text_file: Path | None) -> str:
    """The text to speak from ``--text``, ``--text-file`` (``-``: stdin) or piped stdin."""
    if text is not None and text_file is not None:
        raise UsageError("give --text or --text-file, not both")
    if text is not None:
        content = text
    elif text_file is not None and str(text_file) != "-":
        try:
            content = text_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read text file {text_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"text file {text_file} is not UTF-8") from None
    elif text_file is not None or not sys.stdin.isatty():
        content = sys.stdin.read()
    else:
        raise UsageError("no text given and stdin is a terminal: pass the text or pipe it in")
    if not content.strip():
        raise UsageError("text is empty: there is nothing to speak")
    return content


def check_model_inputs(files: ModelFiles, text: str, language: str, split_text: bool) -> XttsConfig:
    """The checkpoint's config, with the language and every segment of the text checked against
    its vocabulary (what the engine checks again, but before the slow model load)."""
    from xtts_core.config import XttsConfig
    from xtts_core.text.split import split_sentences
    from xtts_core.text.tokenizer import XttsTokenizer

    config = XttsConfig.from_json_file(files.config)
    tokenizer = XttsTokenizer.from_file(files.vocab, config.gpt.max_text_tokens)
    tokenizer.check_language(language)
    for segment in split_sentences(text, language) if split_text else [text]:
        tokenizer.encode(segment, language)
    return config


def denoise(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Stationary spectral gating over the whole signal (streamed runs denoise per chunk)."""
    import noisereduce
    import numpy as np

    out: np.ndarray = noisereduce.reduce_noise(y=samples, sr=sample_rate, stationary=True)
    return out.astype(np.float32)


def resample(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    import torch

    from xtts_core.audio import resample as resample_tensor

    out: np.ndarray = resample_tensor(torch.from_numpy(samples)[None], rate, new_rate)[0].numpy()
    return out


def synth(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file (.wav, .flac, .ogg: format from the extension), or - for raw "
            "16-bit mono PCM on stdout.",
        ),
    ],
    text: Annotated[str | None, typer.Option("--text", "-t", help="Text to speak.")] = None,
    text_file: Annotated[
        Path | None,
        typer.Option("--text-file", "-f", help="UTF-8 file with the text (- for stdin)."),
    ] = None,
    language: LanguageOption = "en",
    reference: ReferenceOption = None,
    speaker: SpeakerOption = None,
    voice: VoiceOption = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", min=1000, help="Resample the output to this rate (Hz)."),
    ] = None,
    split_text: SplitOption = True,
    noise_reduction: Annotated[
        bool, typer.Option("--noise-reduction", help="Spectral-gating denoise (changes the audio).")
    ] = False,
    temperature: TemperatureOption = None,
    top_k: TopKOption = None,
    top_p: TopPOption = None,
    repetition_penalty: RepetitionOption = None,
    length_penalty: LengthOption = None,
    speed: SpeedOption = 1.0,
    seed: SeedOption = None,
    sample: SampleOption = True,
    max_codes: MaxCodesOption = None,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            rich_help_panel="Streaming",
            help="Write chunks as they are made and report time to first audio and chunk latency.",
        ),
    ] = False,
    stream_chunk_size: ChunkOption = 20,
    stream_first_chunk_size: FirstChunkOption = 6,
    stream_overlap: OverlapOption = 0,
    stream_lookahead: LookaheadOption = None,
    model_dir: ModelDirOption = None,
    config: ConfigOption = None,
    checkpoint: CheckpointOption = None,
    tokenizer: TokenizerOption = None,
    speakers: SpeakersOption = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = Dtype.fp32,
) -> None:
    """Speak a text with a cloned, named or saved voice.

    Examples: xtts synth -m XTTS-v2 -t "Hello there." -r me.wav -o hello.wav;
    echo "Hello." | xtts synth -m XTTS-v2 -s "Ana Florence" --stream -o - | aplay -f S16_LE -r 24000
    """
    target = OutputTarget.parse(output)
    content = read_text(text, text_file)
    files = ModelSource(model_dir, config, checkpoint, tokenizer, speakers).files()
    check_voice_inputs(files, reference, speaker, voice)
    model_config = check_model_inputs(files, content, language, split_text)
    rate = model_config.decoder.output_sample_rate
    out_rate = sample_rate or rate
    if stream and out_rate != rate:
        raise UsageError(
            f"--stream writes chunks at the model's {rate} Hz and cannot resample them: "
            "drop --sample-rate or --stream"
        )
    params = Sampling(
        temperature, top_k, top_p, repetition_penalty, length_penalty, sample, seed, max_codes
    ).params(model_config.sampling)
    options = stream_options(
        stream_first_chunk_size,
        stream_chunk_size,
        stream_overlap,
        stream_lookahead,
        noise_reduction,
    )
    engine = load_engine(files, device, dtype)
    chosen = select_voice(engine, reference, speaker, voice)
    with open_output(target, out_rate) as write:
        if stream:
            stats = run_stream(
                engine, content, language, chosen, params, speed, options, split_text, write
            )
        else:
            wav, stats = run_oneshot(engine, content, language, chosen, params, speed, split_text)
            if noise_reduction:
                wav = denoise(wav, rate)
            write(wav if out_rate == rate else resample(wav, rate, out_rate))
    info(f"wrote {target.describe(out_rate)}: {stats.summary()}")
