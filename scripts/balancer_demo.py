"""Start a balancer, stream a sentence through it with the official ElevenLabs SDK, save the audio.

What it shows: the whole serving path on one machine -- ``xtts-balancer`` with its worker
processes, the ``stream-input`` websocket, and the unmodified ``elevenlabs`` SDK (2.78.0) as the
client. Without ``--model-dir`` it writes a tiny checkpoint with random weights, so the WAV is
noise, not speech; pass a folder with the XTTS-v2 files for real speech. With ``--open`` (or
``--serve``) the server keeps running afterwards for the playground page at ``/playground/``,
which ``--open`` opens in the default browser; Ctrl+C stops it.

The SDK's realtime helper always connects with wss://. A real deployment serves TLS
(``service.tls_certfile``); this demo, which has no certificate, points the SDK's private websocket
base at plain ws:// instead (documented in shared/spec/elevenlabs-protocol.md §5.3 b; valid for the
pinned SDK version only).

    python scripts/balancer_demo.py --text "Hello there." --output balancer-demo.wav
    python scripts/balancer_demo.py --open
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import soundfile
from elevenlabs.client import ElevenLabs

from xtts_balancer.launch import listen_local, spawn_balancer

KEY = "demo-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="XTTS-v2 folder (default: random, tiny)")
    parser.add_argument("--voice", default="default", help="voice_id (default: the default voice)")
    parser.add_argument("--text", default="Hello from the balancer. This is streamed speech.")
    parser.add_argument("--output", type=Path, default=Path("balancer-demo.wav"))
    parser.add_argument(
        "--serve", action="store_true", help="keep serving for the playground page until Ctrl+C"
    )
    parser.add_argument(
        "--open", action="store_true", help="--serve, and open the page in the default browser"
    )
    args = parser.parse_args()

    from xtts_balancer.settings import hash_api_key

    tmp = Path(tempfile.mkdtemp(prefix="balancer-demo-"))
    model_dir = args.model_dir
    if model_dir is None:
        from xtts_core.random_checkpoint import write_random_checkpoint

        model_dir = write_random_checkpoint(tmp / "tiny", "tiny", seed=0)
    sock = listen_local(16)
    port = sock.getsockname()[1]
    config = {
        "service": {"host": "127.0.0.1", "port": port},
        # Random weights rarely pick the stop code: cap each sentence at ~2 s of audio.
        "model": {"directory": str(model_dir), "max_new_codes": None if args.model_dir else 40},
        "auth": {"api_key_hashes": [hash_api_key(KEY)]},
    }
    options = ["--bind", f"fd://{sock.fileno()}", "--log-level", "WARNING"]
    server = spawn_balancer(config, tmp, [sock], options)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(base + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the balancer did not become ready")
        client = ElevenLabs(api_key=KEY, base_url=base)
        client.text_to_speech._ws_base_url = f"ws://127.0.0.1:{port}"  # see the module docstring

        def pieces() -> Iterator[str]:  # as an LLM would stream it
            yield from (word + " " for word in args.text.split())

        t0 = time.perf_counter()
        first: float | None = None
        audio = bytearray()
        for chunk in client.text_to_speech.convert_realtime(
            voice_id=args.voice, text=pieces(), output_format="pcm_24000"
        ):
            first = first if first is not None else time.perf_counter() - t0
            audio += chunk
        samples = np.frombuffer(bytes(audio), "<i2")
        soundfile.write(args.output, samples, 24000, subtype="PCM_16")
        print(
            f"{args.output}: {samples.size / 24000:.2f} s of audio; first audio after "
            f"{first or 0:.2f} s, all of it after {time.perf_counter() - t0:.2f} s"
        )
        if args.serve or args.open:
            page = f"{base}/playground/"
            print(f"Try it in the browser: {page} (API key: {KEY}). Ctrl+C stops the server.")
            if args.open and not webbrowser.open(page):
                print("No browser could be opened here: open the address above yourself.")
            with contextlib.suppress(KeyboardInterrupt):
                server.wait()
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
