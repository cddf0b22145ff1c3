"""Balancer settings: one pydantic-settings model, from the YAML at ``XTTS_CONFIG_FILE`` plus env.

The original system's keys are accepted where they still mean something (``service.host/port/
instances/standalone_mode/broker_host/broker_port/log_dir``, ``model.directory/voices_dir/
ref_file/language/device``); everything else is ours. Environment overrides use the prefix
``XTTS_BALANCER_`` and ``__`` between levels (``XTTS_BALANCER_SERVICE__PORT=9000``). Unknown keys
are errors naming the key, and every error names the file (see :mod:`xtts_core.settings`).
``configs/balancer.example.yaml`` documents every key. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from xtts_balancer.backends import BUILTIN_BACKENDS, backend_class
from xtts_balancer.cluster_settings import ClusterSection
from xtts_balancer.openai_models import OpenAISection
from xtts_core.cluster import ApiKeys, hash_api_key
from xtts_core.logs import LogFormat
from xtts_core.protocol import MAX_CONTEXTS_PER_SOCKET, OutputFormat
from xtts_core.settings import ApiKeyAuthSection, ServiceSettings, SettingsSection

__all__ = [
    "AdminSection",
    "AuthSection",
    "BalancerSettings",
    "ClusterSection",
    "LimitsSection",
    "ModelSection",
    "PlaygroundSection",
    "QueueSection",
    "ServiceSection",
    "StreamSection",
    "WorkersSection",
    "hash_api_key",
]


class ServiceSection(SettingsSection):
    """Where and how the server listens (``service:``)."""

    host: str = "127.0.0.1"
    """Bind address; ``0.0.0.0`` for every interface."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Bind port; 0 picks a free one."""
    instances: int = Field(default=1, ge=1)
    """Worker processes to run (the original's key); each holds one model."""
    standalone_mode: bool = True
    """``false`` = broker mode: register with the broker, accept only streams it signed."""
    broker_host: str | None = None
    """Broker address (broker mode), unless ``cluster.broker_urls`` or ``cluster.broker_url``
    name the brokers."""
    broker_port: int | None = Field(default=None, ge=1, le=65535)
    """Broker port (broker mode), with ``broker_host``."""
    log_dir: Path | None = None
    """Folder for one JSON line per generation (``generations_<date>.log``); none = off."""
    graceful_timeout_s: float = Field(default=10.0, ge=0)
    """On SIGTERM/SIGINT: how long running streams may finish before they are closed with 1001."""
    websocket_ping_interval_s: float | None = Field(default=None, gt=0)
    """Server pings to detect dead clients; off by default, as in Hypercorn."""
    tls_certfile: Path | None = None
    """PEM certificate: serve https/wss (the official SDK insists on wss)."""
    tls_keyfile: Path | None = None
    """PEM private key for ``tls_certfile``."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` for a log pipeline: one JSON object per line (see
    :mod:`xtts_core.logs`)."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSection:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile must be set together")
        return self


class ModelSection(SettingsSection):
    """The checkpoint and the voices (``model:``)."""

    backend: str = "xtts"
    """What speaks: ``xtts`` (default), ``tone`` (a test tone per character, see
    :mod:`xtts_balancer.backends.tone`) or ``package.module:Class``, a third-party
    :class:`~xtts_balancer.backends.base.Backend`."""
    backend_options: dict[str, Any] = Field(default_factory=dict)
    """Options the backend reads (``tone``: ``ms_per_char``, ``realtime_factor``); xtts takes none."""
    directory: Path | None = None
    """Checkpoint folder (config.json, model.pth, vocab.json, optional speakers_xtts.pth);
    required by the xtts backend."""
    voices_dir: Path | None = None
    """Folder of reference clips (wav, mp3, flac, ogg); each file's stem is a voice id."""
    ref_file: Path | None = None
    """Reference clip of the default voice; relative paths are relative to ``directory``."""
    language: str = "en"
    """Language when the client names none (``language_code``)."""
    device: str = "auto"
    """Device when ``workers.devices`` is empty: ``auto`` (cuda if present), ``cpu``, ``cuda:0``."""
    dtype: Literal["fp32", "bf16", "fp16", "int8"] = "fp32"
    """GPT precision (see xtts_core.loader)."""
    voice_cache_dir: Path | None = None
    """Where cloned voices are cached so N workers clone each clip once; none = a temp folder."""
    max_new_codes: int | None = Field(default=None, ge=1)
    """Cap on audio codes per segment (one code = 46.4 ms); none = the model's."""
    noise_reduction: bool = False
    """Run noisereduce on each chunk (changes the audio; off by default)."""
    voice_aliases: dict[str, str] = Field(default_factory=dict)
    """Other names for our voices: a foreign voice id or name (ElevenLabs'
    ``21m00Tcm4TlvDq8ikWAM``, ``Rachel``) -> one of our voice ids, honoured wherever a voice id is
    taken (see :mod:`xtts_balancer.voice_names`)."""
    unknown_voice_fallback: bool = False
    """Speak a voice id that is neither served nor an alias with the default voice (logged with
    the session id) instead of refusing it with ``voice_not_found``."""

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in BUILTIN_BACKENDS:  # built-ins import torch: checked in the worker
            backend_class(value)  # raises ValueError naming the import path
        return value

    @field_validator("directory")
    @classmethod
    def _is_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_dir():
            raise ValueError(f"model directory {value} does not exist or is not a folder")
        return value.expanduser() if value is not None else None

    @field_validator("voices_dir")
    @classmethod
    def _voices_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_dir():
            raise ValueError(f"voices_dir {value} does not exist or is not a folder")
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _ref_file(self) -> ModelSection:
        if self.backend == "xtts" and self.directory is None:
            raise ValueError("the xtts backend needs model.directory")
        if self.ref_file is not None:
            path = self.ref_file.expanduser()
            if not path.is_absolute() and self.directory is not None:
                path = self.directory / path
            if not path.is_file():
                raise ValueError(f"ref_file {path} does not exist")
            self.ref_file = path
        return self

    @property
    def worker_device(self) -> str | None:
        """``device`` as the loader takes it (``None`` = cuda if present, else cpu)."""
        return None if self.device == "auto" else self.device


class WorkersSection(SettingsSection):
    """Worker processes and their supervision (``workers:``)."""

    devices: list[str] = Field(default_factory=list)
    """Devices assigned round-robin to workers (e.g. ``[cuda:0, cuda:1]``); empty = model.device."""
    slots_per_worker: int = Field(default=1, ge=1)
    """Sessions one worker serves at once, batched: each worker runs one
    :class:`~xtts_core.scheduler.BatchScheduler` with this many stream slots, so concurrent
    sessions share every decode step. Capacity is the sum of free slots."""
    startup_timeout_s: float = Field(default=300.0, gt=0)
    """A worker that is not warm within this is killed and restarted."""
    restart_backoff_s: float = Field(default=1.0, ge=0)
    """Delay before the first restart of a dead worker; doubles per consecutive failure (max 30 s)."""
    max_restarts: int = Field(default=10, ge=0)
    """Restarts allowed per worker slot; after that it stays down (logged, /ready may fail)."""
    stop_timeout_s: float = Field(default=5.0, gt=0)
    """On shutdown: time a worker gets to exit after being asked, before it is killed."""
    torch_threads: int | None = Field(default=None, ge=1)
    """Intra-op threads per worker (torch.set_num_threads); none = torch's default."""
    warmup_text: str = "Warm up."
    """Synthesised once per worker before it counts as ready."""
    stall_timeout_s: float = Field(default=60.0, gt=0)
    """A job that sends nothing for this long means a hung worker: it is killed and restarted."""
    ping_interval_s: float | None = Field(default=5.0, gt=0)
    """How often a warm worker with no job is pinged; none = never (busy workers are watched by
    ``stall_timeout_s``)."""
    ping_timeout_s: float = Field(default=10.0, gt=0)
    """A pinged worker that does not answer within this is hung: it is killed and restarted."""
    kv_pool_bytes: int | None = Field(default=None, ge=1)
    """Most bytes one worker's KV pool may take (xtts: ``slots_per_worker`` streams of the
    model's positions); none = whatever the device has free. A worker whose pool does not fit
    fails at start with the numbers and the streams that would fit."""
    capacity_aware: bool = False
    """Lease a worker's slot only while its measured decode steps say one more stream stays
    faster than real time (each worker reports that to the front); off = fixed slots."""
    realtime_safety: float = Field(default=0.8, gt=0, le=1)
    """Share of a code's 46.4 ms of audio a decode step may take and still count as real time."""
    cuda_graphs: bool = True
    """On a CUDA device, run each decode step as one captured CUDA graph instead of hundreds of
    kernel launches (captured at worker start, one per batch and span size); no effect on CPU.
    Off only to rule them out when chasing a problem."""


class QueueSection(SettingsSection):
    """Waiting for a free slot (``queue:``)."""

    max_queue: int = Field(default=16, ge=0)
    """Sessions that may wait for a slot; the next one is refused with 1013 (0 = never wait)."""
    queue_timeout_s: float = Field(default=30.0, gt=0)
    """A session that waits longer is refused with 1013."""
    slot_lease: Literal["utterance", "session"] = "utterance"
    """How long a websocket holds its worker slot: ``utterance`` from its first segment to the
    last it has queued, so sockets idle between turns hold none and each turn queues in arrival
    order; ``session`` from its first message to its end, so a turn never waits, but every open
    socket uses a slot."""


class AuthSection(ApiKeyAuthSection):
    """API keys (``auth:``); ``xtts-balancer hash-key KEY`` prints a key's hash."""

    missing_keys_advice: ClassVar[str] = "a key hash"

    max_sessions_per_key: int | None = Field(default=None, ge=1)
    """Concurrent sessions one key may hold; none = no limit."""


class LimitsSection(SettingsSection):
    """Input limits (``limits:``); each breach is an error message and a close, never a crash."""

    max_message_bytes: int = Field(default=65536, ge=1024)
    """Largest client frame accepted; larger ones get an error and close 1009."""
    max_text_chars: int = Field(default=20000, ge=1)
    """Most characters of text one session may send in total."""
    max_sessions: int | None = Field(default=None, ge=1)
    """Open sessions (streaming or waiting) across all keys; none = only the queue limits."""
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest ``POST /v1/voices/add`` request (all reference files together); larger is 413."""
    max_contexts_per_socket: int = Field(default=MAX_CONTEXTS_PER_SOCKET, ge=1)
    """Concurrent contexts one ``multi-stream-input`` socket may hold (ElevenLabs: 5); opening
    one more is the ``max_active_conversations`` error and a close with 1008."""


class StreamSection(SettingsSection):
    """Streaming behaviour (``stream:``)."""

    default_output_format: OutputFormat = OutputFormat.MP3_44100_128
    """Websocket format when the query names none: mp3_44100_128, as at ElevenLabs; pcm_24000
    keeps the original server's default for clients that expect raw PCM without asking. HTTP
    speech always defaults to mp3_44100_128."""
    max_chunk_ms: int = Field(default=250, ge=20, le=2000)
    """Longest audio per message; keeps every frame far under the SDK's 1 MiB limit."""
    first_chunk_codes: int = Field(default=6, ge=1)
    """Audio codes before the first chunk of a segment is vocoded (latency)."""
    chunk_codes: int = Field(default=20, ge=1)
    """Largest later chunk, in codes."""
    pacing: bool = False
    """Send audio no faster than real time (plus ``pacing_lead_ms``); off, as at ElevenLabs."""
    pacing_lead_ms: float = Field(default=300.0, ge=0)
    """How far ahead of real time paced audio may run."""
    ms_per_char: float = Field(default=70.0, gt=0)
    """Speaking-rate estimate used to place characters in time for alignment (at speed 1)."""

    @field_validator("default_output_format")
    @classmethod
    def _streamable(cls, value: OutputFormat) -> OutputFormat:
        if not value.streamable:
            raise ValueError(f"{value.value} is served only by the whole-file HTTP endpoint")
        return value


class MetricsSection(SettingsSection):
    """Prometheus metrics (``metrics:``)."""

    enabled: bool = True
    """Serve ``GET /metrics``."""


class AdminSection(SettingsSection):
    """Protection of the operational endpoints (``admin:``); see :mod:`xtts_balancer.admin`."""

    key_hashes: list[str] = Field(default_factory=list)
    """Keys that may read ``/metrics`` and ``/workers`` (``Authorization: Bearer KEY`` or
    ``xi-api-key``), as ``sha256:<hex>``; empty = open. ``/health``, ``/ready`` and
    ``/workers/idle`` are always open."""
    host: str = "127.0.0.1"
    """Bind address of the admin listener."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """A separate listener serving only the operational endpoints; ``/metrics`` and ``/workers``
    then leave the public port. None = everything on ``service.port``."""

    @field_validator("key_hashes")
    @classmethod
    def _hash_form(cls, value: list[str]) -> list[str]:
        ApiKeys(value)  # raises ValueError naming the first malformed entry
        return value


class PlaygroundSection(SettingsSection):
    """The browser page at ``/playground/`` (``playground:``); see :mod:`xtts_balancer.playground`."""

    enabled: bool = True
    """Serve the page. It is static and holds no data or secret: with auth on it asks for a key
    and sends it with each request it makes, so it can do nothing without one."""


class BalancerSettings(ServiceSettings):
    """Everything the balancer reads; see ``configs/balancer.example.yaml``."""

    model_config = SettingsConfigDict(env_prefix="XTTS_BALANCER_")
    config_file_env: ClassVar[str | None] = "XTTS_CONFIG_FILE"

    service: ServiceSection = ServiceSection()
    model: ModelSection
    workers: WorkersSection = WorkersSection()
    queue: QueueSection = QueueSection()
    auth: AuthSection
    """Required: either key hashes or an explicit ``enabled: false``."""
    limits: LimitsSection = LimitsSection()
    stream: StreamSection = StreamSection()
    metrics: MetricsSection = MetricsSection()
    admin: AdminSection = AdminSection()
    cluster: ClusterSection = ClusterSection()
    playground: PlaygroundSection = PlaygroundSection()
    openai: OpenAISection = OpenAISection()

    @model_validator(mode="after")
    def _broker_mode(self) -> BalancerSettings:
        if self.service.standalone_mode:
            return self
        service, cluster = self.service, self.cluster
        named = service.broker_host is not None and service.broker_port is not None
        if not (named or cluster.broker_url or cluster.broker_urls):
            raise ValueError(
                "standalone_mode: false needs broker_host and broker_port, cluster.broker_url "
                "or cluster.broker_urls"
            )
        if cluster.secret is None:
            raise ValueError(
                "standalone_mode: false needs cluster.secret (the broker's shared secret)"
            )
        return self

    @property
    def broker_urls(self) -> list[str]:
        """The base URLs of the brokers to register with (broker mode)."""
        cluster, service = self.cluster, self.service
        if cluster.broker_urls:
            return cluster.broker_urls
        if cluster.broker_url:
            return [cluster.broker_url]
        return [f"http://{service.broker_host}:{service.broker_port}"]

    @model_validator(mode="after")
    def _admin_port(self) -> BalancerSettings:
        if self.admin.port is not None and self.admin.port == self.service.port:
            raise ValueError("admin.port must differ from service.port (or be null)")
        return self

    def device_for(self, index: int) -> str | None:
        """The device of worker ``index``: round-robin over ``workers.devices``."""
        devices = self.workers.devices
        return devices[index % len(devices)] if devices else self.model.worker_device
