"""Every setting of the ledger, read from the environment in one place.

Each setting is an environment variable ``SMSLEDGER_<NAME>``; a ``.env`` file in
the working directory is read too. ``docs/configuration.md`` lists them all and
a test keeps it in step with this module. Durations carry their unit in the name.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ENV_PREFIX", "ConfigurationError", "Settings", "load_settings"]

ENV_PREFIX = "SMSLEDGER_"


_DATABASE_SCHEMES = ("sqlite:", "postgresql:", "postgres:")

_MAX_SECONDS = 10 * 365 * 86_400
"""Maximum duration any setting accepts; longer ones overflow microsecond columns."""

_MAX_VALIDITY_SECONDS = 30 * 86_400
"""Maximum validity period, the same as the API accepts for a Submit."""


class ConfigurationError(ValueError):
    """A setting has an invalid value; the message names the variable and the fix."""


class Settings(BaseSettings):
    """Settings of the ledger server and its tools."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True, allow_inf_nan=False
    )

    database_url: str = Field(
        default="",
        description=(
            "Where events are stored: sqlite:///PATH (embedded, the default under DATA_DIR) "
            "or postgresql://USER:PASSWORD@HOST:PORT/DBNAME?schema=SCHEMA."
        ),
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of the embedded SQLite database and its generated master key.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description=(
            "Base64 of 32 random bytes that wraps every per-subject key. Required with "
            "PostgreSQL; with SQLite a key file is generated in DATA_DIR when unset."
        ),
    )
    grpc_address: str = Field(
        default="127.0.0.1:50051", description="Address and port the gRPC server listens on."
    )
    grpc_reuse_port: bool = Field(
        default=False,
        description=(
            "Let several serve processes listen on one port (SO_REUSEPORT), the kernel "
            "spreading connections over them. Off, a port already in use stops the start."
        ),
    )
    grpc_max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=1024,
        description="Largest gRPC message accepted or sent, in bytes; larger ones are rejected.",
    )
    grpc_max_concurrent_rpcs: int = Field(
        default=2000, gt=0, description="RPCs in progress at once before new ones are rejected."
    )
    batch_max_commands: int = Field(
        default=1000, gt=0, description="Most commands in one ExecuteBatch call."
    )
    commit_max_batch: int = Field(
        default=1000, gt=0, description="Most commands the group commit puts in one transaction."
    )
    commit_max_queued: int = Field(
        default=50_000,
        gt=0,
        description=(
            "Most commands waiting for a transaction; beyond it calls get RESOURCE_EXHAUSTED."
        ),
    )
    default_validity_seconds: int = Field(
        default=48 * 3600, gt=0, description="Validity assumed for a Submit that names none."
    )
    expiry_grace_seconds: int = Field(
        default=600,
        ge=0,
        description="Wait after validity before the ledger records an inferred expiry.",
    )
    expiry_sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often overdue messages are looked for."
    )
    late_receipt_window_seconds: int = Field(
        default=86_400,
        ge=0,
        description=(
            "How long after the expiry deadline a receipt may still match its carrier id; "
            "later receipts are kept as orphans."
        ),
    )
    request_id_retention_seconds: int = Field(
        default=86_400, gt=0, description="How long a request id is remembered for replays."
    )
    max_raw_payload_bytes: int = Field(
        default=65_536, gt=0, description="Largest raw receipt payload accepted, in bytes."
    )
    retry_max_attempts: int = Field(
        default=3,
        ge=1,
        description=(
            "Attempts a message may have in all; after a final failure on the last one the "
            "ledger advises no retry. A connection's retry_max_attempts overrides it."
        ),
    )
    retry_base_delay_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wait advised before the second attempt, in seconds; later waits grow.",
    )
    retry_backoff_multiplier: float = Field(
        default=2.0,
        ge=1,
        description="Factor by which the advised wait grows from one attempt to the next.",
    )
    retry_max_delay_seconds: float = Field(
        default=3600.0, gt=0, description="Maximum wait advised before a retry, in seconds."
    )
    retry_jitter: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description=(
            "Fraction by which an advised wait is spread either way, the same for a given "
            "message and attempt; 0 turns the spread off."
        ),
    )
    db_pool_size: int = Field(
        default=5, gt=0, description="PostgreSQL connections each process keeps open."
    )
    db_max_overflow: int = Field(
        default=5, ge=0, description="Extra PostgreSQL connections opened under load."
    )
    db_lock_timeout_seconds: int = Field(
        default=5,
        ge=0,
        description=(
            "How long a write waits for the events table lock before failing (0 waits forever)."
        ),
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="Time in-flight RPCs get to finish on SIGTERM."
    )
    connections_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of carrier connection profiles. When set, only the connections it "
            "names are accepted."
        ),
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log line format of `smsledger serve`: json or text."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    create_tables: bool = Field(
        default=True,
        description=(
            "Create missing tables when a process starts. Turn it off where many processes "
            "start at once and `smsledger migrate` creates the tables beforehand."
        ),
    )
    metrics_address: str = Field(
        default="127.0.0.1:9464",
        description=(
            "Address and port of the Prometheus /metrics HTTP endpoint; empty disables it. "
            "OTLP export is configured apart, with the standard OTEL_EXPORTER_OTLP_* variables."
        ),
    )
    metrics_poll_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description=(
            "How often metrics read from the database (relay lag, projection lag, orphaned "
            "receipts) are refreshed, in seconds."
        ),
    )
    metrics_orphan_age_seconds: int = Field(
        default=3600,
        gt=0,
        description=(
            "Age in seconds after which a parked receipt (no message has its carrier id) "
            "counts in the ledger_receipts_orphaned gauge."
        ),
    )
    delivery_rate_window_seconds: int = Field(
        default=900,
        gt=0,
        description=(
            "Sliding window of the per-carrier delivery ratio gauge, in seconds: final "
            "receipts this process recorded within it."
        ),
    )
    projections_in_server: bool = Field(
        default=True,
        description=(
            "Run the read-model projections inside `smsledger serve`. On PostgreSQL one "
            "process per schema projects at a time (it holds an advisory lock), so several "
            "servers and `smsledger project` workers may all have it on."
        ),
    )
    projections_batch_size: int = Field(
        default=1000,
        gt=0,
        description="Maximum number of events the projections apply in one transaction.",
    )
    projections_poll_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Longest wait between looks at the event log for new events; on PostgreSQL a "
            "notification of each insert usually ends the wait sooner."
        ),
    )

    webhook_address: str = Field(
        default="127.0.0.1:8080",
        description=(
            "Address and port of the HTTP endpoint for aggregator callbacks "
            "(/hooks/<connection>). It runs beside the gRPC server when a connection has a "
            "webhook table; empty disables it."
        ),
    )
    webhook_public_base_url: str = Field(
        default="",
        description=(
            "Scheme, host, port and path prefix under which aggregators call the endpoint, "
            "such as https://hooks.example.com; signatures are checked against it. A "
            "connection's webhook.public_base_url overrides it."
        ),
    )
    webhook_max_body_bytes: int = Field(
        default=65_536,
        gt=0,
        description="Largest callback body accepted, in bytes; larger ones get HTTP 413.",
    )
    webhook_request_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Time a callback may take before it gets HTTP 503; keep it below the shortest "
            "provider timeout (Plivo waits 8 s)."
        ),
    )
    webhook_rate_per_second: float = Field(
        default=1000.0, gt=0, description="Callbacks accepted per second on each connection."
    )
    webhook_burst: int = Field(
        default=2000,
        gt=0,
        description=(
            "Callbacks accepted at once on a connection above its rate; beyond it HTTP 429."
        ),
    )
    webhook_replay_window_seconds: int = Field(
        default=900,
        gt=0,
        description="How long a callback's nonce or signature is remembered to refuse replays.",
    )
    webhook_replay_cache_size: int = Field(
        default=200_000, gt=0, description="Most nonces remembered at once per process."
    )
    stuck_after_seconds: int = Field(
        default=3600,
        gt=0,
        description=(
            "How long an accepted message may stay without a final outcome before it is "
            "listed as stuck; a connection's stuck_after_seconds overrides it."
        ),
    )

    nats_url: str = Field(
        default="",
        description=(
            "NATS server URL, or several separated by commas, of the event stream. When set, "
            "`smsledger serve` runs the relay that publishes the log to JetStream; empty "
            "leaves publishing to a separate `smsledger relay`."
        ),
    )
    nats_stream: str = Field(
        default="LEDGER_EVENTS",
        description="JetStream stream the events are published to; created or updated at start.",
    )
    nats_subject_prefix: str = Field(
        default="ledger.v1.events",
        description="First subject tokens; events go to <prefix>.<tenant>.<event type>.",
    )
    nats_duplicate_window_seconds: float = Field(
        default=7200.0,
        gt=0,
        description=(
            "How long JetStream drops repeated event ids, in seconds. Keep it above the "
            "longest relay or NATS outage; the server keeps every id of the window in memory."
        ),
    )
    nats_stream_replicas: int = Field(
        default=1, ge=1, le=5, description="Replicas of the stream in a NATS cluster."
    )
    nats_stream_max_age_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Age after which JetStream discards an event, in seconds; 0 keeps them all.",
    )
    nats_event_source: str = Field(
        default="/smsledger",
        min_length=1,
        description="CloudEvents source attribute (ce-source header) of every published event.",
    )
    relay_max_in_flight: int = Field(
        default=1024,
        gt=0,
        description="Publishes the relay keeps awaiting their JetStream acknowledgement at once.",
    )
    relay_batch_size: int = Field(
        default=1000, gt=0, description="Log entries the relay reads per query."
    )
    relay_poll_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        description=(
            "Maximum wait of the relay between reads of the log, in seconds; on PostgreSQL a "
            "notification of each insert usually ends the wait sooner."
        ),
    )
    relay_check_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How often the relay compares the stream with the log and publishes what a NATS "
            "crash lost, in seconds."
        ),
    )
    relay_publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Maximum wait for one JetStream acknowledgement, in seconds; then the relay "
            "reconnects and publishes again from its acknowledged position."
        ),
    )
    relay_lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "PostgreSQL only: a relay stops publishing when it could not write its position "
            "for this long, in seconds, and a relay taking over waits out this lease."
        ),
    )
    relay_encoder_processes: int = Field(
        default=1,
        ge=0,
        le=1,
        description=(
            "1 decodes events for the relay in a separate process, beside publishing; "
            "0 decodes them in a thread of the relay's process."
        ),
    )

    tokens_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of bearer tokens (stored as SHA-256 digests) and their roles and "
            "tenants. When unset, gRPC calls are not authenticated: keep the server on "
            "loopback then. `smsledger tokens hash` prints a new token and its entry."
        ),
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description=(
            "PEM certificate chain of the gRPC server. With TLS_KEY_FILE it turns "
            "GRPC_ADDRESS into a TLS-only port; no plaintext port remains."
        ),
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of TLS_CERT_FILE.")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description=(
            "PEM certificates of the CAs that sign client certificates. When set, every "
            "gRPC client must present a valid certificate from one of them (mutual TLS)."
        ),
    )
    client_rate_per_second: float = Field(
        default=2000.0,
        gt=0,
        description=(
            "gRPC calls accepted per second from one client (one token, or one peer host "
            "when authentication is off); beyond it RESOURCE_EXHAUSTED with a retry delay."
        ),
    )
    client_burst: int = Field(
        default=4000,
        gt=0,
        description="gRPC calls one client may make at once above its rate.",
    )
    client_max_in_flight: int = Field(
        default=256,
        gt=0,
        description=("gRPC calls of one client in progress at once; more get RESOURCE_EXHAUSTED."),
    )
    previous_master_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Comma-separated base64 master keys that subject keys may still be wrapped "
            "under during a rotation; reads try them after MASTER_KEY, new keys use "
            "MASTER_KEY only. Remove them once `smsledger keys rotate` has run."
        ),
    )
    checkpoint_key: SecretStr | None = Field(
        default=None,
        description=(
            "Base64 of a 32-byte Ed25519 seed that signs checkpoints of the log head "
            "(`smsledger checkpoint keygen` makes one). Keep it away from the database."
        ),
    )
    checkpoint_file: Path | None = Field(
        default=None,
        description=(
            "File that signed checkpoints are appended to, one JSON line each; keep it "
            "outside the database and its backups. Checkpoints are off while unset."
        ),
    )
    checkpoint_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often `serve` appends a checkpoint."
    )
    erasure_log_file: Path | None = Field(
        default=None,
        description=(
            "Append-only file of erasures (tenant, blind index, key id, time; never the "
            "number), so that `smsledger erase --reapply` can repeat them on a database "
            "restored from a backup. Keep it outside the database's backups."
        ),
    )

    @field_validator("*")
    @classmethod
    def _check_duration(cls, value: object, info: ValidationInfo) -> object:
        name = info.field_name or ""
        if name.endswith("_seconds") and isinstance(value, int | float):
            limit = _MAX_VALIDITY_SECONDS if name == "default_validity_seconds" else _MAX_SECONDS
            if value > limit:
                raise ValueError(f"is more than {limit:,} seconds")
        return value

    @field_validator("grpc_address", "metrics_address", "webhook_address")
    @classmethod
    def _check_address(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.field_name != "grpc_address":
            return value  # empty turns the endpoint off
        if value.startswith("unix:") and info.field_name == "grpc_address":
            return value  # gRPC also listens on Unix domain sockets
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65_535:
            raise ValueError(
                "is not HOST:PORT: use a host name or IP address and a port, such as "
                "127.0.0.1:50051, 0.0.0.0:50051 or [::]:50051"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(_DATABASE_SCHEMES):
            raise ValueError(
                "is not a database URL: use sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST:PORT/DBNAME?schema=SCHEMA"
            )
        return value

    @field_validator("nats_stream")
    @classmethod
    def _check_nats_stream(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", value):
            raise ValueError(
                "is not a JetStream stream name: use 1-255 letters, digits, '-' and '_'"
            )
        return value

    @field_validator("nats_subject_prefix")
    @classmethod
    def _check_nats_subject_prefix(cls, value: str) -> str:
        tokens = value.split(".")
        if not value or any(not t or any(c in t for c in " *>\t") for t in tokens):
            raise ValueError(
                "is not a subject prefix: use dot-separated tokens without spaces, '*' or '>'"
            )
        return value

    @property
    def nats_servers(self) -> tuple[str, ...]:
        """The NATS server URLs of ``nats_url``."""
        return tuple(url.strip() for url in self.nats_url.split(",") if url.strip())

    @field_validator("master_key")
    @classmethod
    def _check_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError("is not valid base64") from error
        if len(raw) != 32:
            raise ValueError(f"decodes to {len(raw)} bytes; 32 are needed")
        return value

    @field_validator("previous_master_keys")
    @classmethod
    def _check_previous_master_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for position, item in enumerate(value.get_secret_value().split(",")):
            try:
                raw = base64.b64decode(item.strip(), validate=True)
            except (binascii.Error, ValueError) as error:
                raise ValueError(f"key {position + 1} is not valid base64") from error
            if len(raw) != 32:
                raise ValueError(f"key {position + 1} decodes to {len(raw)} bytes; 32 are needed")
        return value

    def previous_master_key_bytes(self) -> tuple[bytes, ...]:
        """Return the previous master keys, oldest last, as configured."""
        if self.previous_master_keys is None:
            return ()
        items = self.previous_master_keys.get_secret_value().split(",")
        return tuple(base64.b64decode(item.strip()) for item in items if item.strip())

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def is_postgres(self) -> bool:
        """True when the database is PostgreSQL."""
        return self.resolved_database_url.startswith(("postgresql:", "postgres:"))

    def master_key_bytes(self) -> bytes:
        """Return the master key, generating the embedded default's key file if needed.

        Raises:
            ConfigurationError: PostgreSQL is configured without a master key.
        """
        if self.master_key is not None:
            return base64.b64decode(self.master_key.get_secret_value())
        if self.is_postgres:
            raise ConfigurationError(
                f"{ENV_PREFIX}MASTER_KEY is not set; PostgreSQL deployments need one shared "
                "key on every node. Generate one with: "
                "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
            )
        path = self.data_dir / "master.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return base64.b64decode(path.read_text().strip())


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (and ``overrides``).

    Raises:
        ConfigurationError: A value is invalid; the message names each
            variable, its value and the expected form.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = f"{ENV_PREFIX}{str(item['loc'][0]).upper()}" if item["loc"] else ENV_PREFIX
            value = item.get("input")
            if "MASTER_KEY" in name:
                printed = "(secret)"
            elif name.endswith("DATABASE_URL") and isinstance(value, str):
                # The URL may carry a password.
                printed = repr(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value))
            else:
                printed = repr(value)
            problems.append(f"{name}={printed}: {item['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
