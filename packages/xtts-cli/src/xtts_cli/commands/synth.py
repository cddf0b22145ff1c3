"""``xtts synth``: text to an audio file, or to raw PCM on stdout, at once or streamed.

Everything that can be checked without the model is checked first (output name, text, voice
flags, model files, language, streaming constraints), so a typo fails in well under a second
instead of after a model load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xtts_cli.console import info
from xtts_cli.engine_and_voice import EngineOptions, SpeechSetup, VoiceOptions
from xtts_cli.errors import UsageError
from xtts_cli.option_groups import grouped_options
from xtts_cli.options import STREAM_PANEL, LanguageOption, SpeedOption, SplitOption
from xtts_cli.output import OutputTarget, open_output
from xtts_cli.sampling import SamplingOptions, StreamingOptions
from xtts_cli.synthesis import Utterance, run_oneshot, run_stream
from xtts_cli.text_input import read_text

if TYPE_CHECKING:
    import numpy as np

    from xtts_cli.model_files import ModelFiles
    from xtts_core.config import XttsConfig


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


@grouped_options
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
    *,
    voice_options: VoiceOptions,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", min=1000, help="Resample the output to this rate (Hz)."),
    ] = None,
    split_text: SplitOption = True,
    noise_reduction: Annotated[
        bool, typer.Option("--noise-reduction", help="Spectral-gating denoise (changes the audio).")
    ] = False,
    sampling_options: SamplingOptions,
    speed: SpeedOption = 1.0,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            rich_help_panel=STREAM_PANEL,
            help="Write chunks as they are made and report time to first audio and chunk latency.",
        ),
    ] = False,
    streaming: StreamingOptions,
    model_options: EngineOptions,
) -> None:
    """Speak a text with a cloned, named or saved voice.

    Examples: xtts synth -m XTTS-v2 -t "Hello there." -r me.wav -o hello.wav;
    echo "Hello." | xtts synth -m XTTS-v2 -s "Ana Florence" --stream -o - | aplay -f S16_LE -r 24000
    """
    target = OutputTarget.parse(output)
    content = read_text(text, text_file)
    setup = SpeechSetup.check(model_options, voice_options)
    model_config = check_model_inputs(setup.files, content, language, split_text)
    rate = model_config.decoder.output_sample_rate
    out_rate = sample_rate or rate
    if stream and out_rate != rate:
        raise UsageError(
            f"--stream writes chunks at the model's {rate} Hz and cannot resample them: "
            "drop --sample-rate or --stream"
        )
    params = sampling_options.params(model_config.sampling)
    options = streaming.stream_options(noise_reduction)
    engine, chosen = setup.load()
    utterance = Utterance(content, language, chosen, params, speed, split_text)
    with open_output(target, out_rate) as write:
        if stream:
            stats = run_stream(engine, utterance, options, write)
        else:
            wav, stats = run_oneshot(engine, utterance)
            if noise_reduction:
                wav = denoise(wav, rate)
            write(wav if out_rate == rate else resample(wav, rate, out_rate))
    info(f"wrote {target.describe(out_rate)}: {stats.summary()}")
