"""The whole XTTS-v2 network as one module tree whose keys match a released ``model.pth``.

Holds the GPT (with its conditioning front end), the HiFi-GAN decoder (with the speaker encoder)
and the ``mel_stats`` divisor of the conditioning log-mels. No behaviour lives here beyond
construction: cloning is in ``voice.py``, decoding in ``generate.py``, vocoding in ``stream.py``.
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.model.xtts")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from xtts_core.config import XttsConfig  # noqa: E402
from xtts_core.model.gpt import GPT  # noqa: E402
from xtts_core.model.hifigan import HifiDecoder  # noqa: E402


class XttsModel(nn.Module):
    """GPT + HiFi-GAN decoder + speaker encoder, sized from an :class:`XttsConfig`."""

    def __init__(self, cfg: XttsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gpt = GPT(cfg.gpt)
        d = cfg.decoder
        self.hifigan_decoder = HifiDecoder(
            input_sample_rate=d.input_sample_rate,
            output_sample_rate=d.output_sample_rate,
            output_hop_length=d.output_hop_length,
            code_stride_len=cfg.gpt.code_stride_len,
            decoder_input_dim=d.decoder_input_dim,
            d_vector_dim=d.d_vector_dim,
            cond_d_vector_in_each_upsampling_layer=d.cond_d_vector_in_each_upsampling_layer,
        )
        self.register_buffer("mel_stats", torch.ones(80))
        self.mel_stats: Tensor

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.mel_stats.device
