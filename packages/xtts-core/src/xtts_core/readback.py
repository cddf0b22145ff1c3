"""Device values for the host without stalling the device: copied when created, read when needed.

The batched decoder reads the codes it drew back to the host once per step; on CUDA that copy
must not make the next forward wait, so it goes to pinned memory without blocking and an event
marks its end.
"""

from __future__ import annotations

from xtts_core._extras import require_inference

require_inference("xtts_core.readback")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["ReadBack"]


class ReadBack:
    """Values of a device tensor for the host, copied when created and read when needed.

    On CUDA the copy goes to pinned memory without blocking and an event marks its end, so work
    queued after it (the next forward) does not have to finish before the values can be read.
    """

    def __init__(self, values: Tensor) -> None:
        self._event: torch.cuda.Event | None = None
        if values.is_cuda:
            self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self._host.copy_(values, non_blocking=True)
            self._event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self._event.record()
        else:
            self._host = values

    def tolist(self) -> list[int]:
        if self._event is not None:
            self._event.synchronize()
        values: list[int] = self._host.tolist()
        return values
