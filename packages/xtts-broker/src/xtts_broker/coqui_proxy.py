"""coqui's xtts-streaming-server API through the broker.

It takes the paths of the ElevenLabs HTTP API (:mod:`xtts_broker.http_proxy`): ``GET
/studio_speakers``, ``POST /clone_speaker``, ``/tts_stream`` and ``/tts`` are routed as speech
(they hold a worker slot on the balancer; their bodies may be larger, see
``http_proxy._BODY_LIMITS``), with the same auth, failover, metrics and drain; ``GET /languages``
is a listing any healthy balancer answers. The balancer's answers and errors are relayed as they
came.
"""

from __future__ import annotations

from starlette.routing import Route

from xtts_broker.http_proxy import listing, speech

__all__ = ["coqui_routes"]


def coqui_routes() -> list[Route]:
    """The broker's routes for coqui's API."""
    return [
        Route("/studio_speakers", speech, methods=["GET"]),
        Route("/clone_speaker", speech, methods=["POST"]),
        Route("/tts_stream", speech, methods=["POST"]),
        Route("/tts", speech, methods=["POST"]),
        Route("/languages", listing, methods=["GET"]),
    ]
