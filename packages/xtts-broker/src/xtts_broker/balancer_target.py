"""Where and how the broker opens a client's stream at a balancer: the URL and the signed headers.

A pure function, apart from the relay in :mod:`xtts_broker.proxy`, so that what a balancer
receives (a percent-encoded ``voice_id``, the client's query re-encoded rather than pasted, the
broker's signature over the path and session id, and the client's ``xi-api-key`` when it sent
one) is decided in one place.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

from xtts_core.cluster import sign_request

__all__ = ["balancer_stream_target"]


def balancer_stream_target(
    base_url: str, voice_id: str, endpoint: str, client_query: str, *,
    secret: str, session_id: str, api_key: str | None,
) -> tuple[str, dict[str, str]]:  # fmt: skip
    """``(url, headers)`` of the websocket to open at the balancer at ``base_url``
    (``http(s)://host:port``) for a client stream of ``endpoint`` (e.g. ``stream-input``)."""
    path = f"/v1/text-to-speech/{voice_id}/{endpoint}"
    query = urlencode(parse_qsl(client_query, keep_blank_values=True))
    base = base_url.replace("http", "ws", 1)
    url = f"{base}/v1/text-to-speech/{quote(voice_id, safe='')}/{endpoint}"
    if query:
        url += f"?{query}"
    headers = sign_request(secret, "GET", path, session_id=session_id)
    if api_key:
        headers["xi-api-key"] = api_key
    return url, headers
