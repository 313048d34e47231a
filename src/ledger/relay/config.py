"""Configuration of the outbox relay and of the stream it publishes to."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ledger.settings import Settings

__all__ = ["DEFAULT_STREAM", "DEFAULT_SUBJECT_PREFIX", "RelayConfig", "relay_config"]

DEFAULT_STREAM = "LEDGER_EVENTS"
"""Name of the JetStream stream that contains the ledger's events."""

DEFAULT_SUBJECT_PREFIX = "ledger.v1.events"
"""Subjects are ``<prefix>.<tenant>.<event type>``."""


@dataclass(frozen=True)
class RelayConfig:
    """How the relay connects, publishes, checks the stream and shares the work.

    Attributes:
        nats_servers: NATS server URLs; the client fails over between them.
        stream: JetStream stream name; it also names the relay's row in the
            ``relay_position`` table, so relays of different streams are independent.
        subject_prefix: First tokens of every subject; the stream takes
            ``<prefix>.>``.
        duplicate_window_seconds: How long JetStream remembers a ``Nats-Msg-Id``
            and drops copies. Set it well above the longest relay or NATS outage.
        stream_replicas: Stream replicas in a NATS cluster.
        stream_max_age_seconds: Age after which JetStream discards an event;
            0 keeps events until the stream is purged.
        event_source: CloudEvents ``source`` attribute of every event.
        max_in_flight: Publishes awaiting their acknowledgement at once.
        batch_size: Log entries read per query.
        poll_interval_seconds: Maximum wait for new log entries before reading
            again. PostgreSQL notifications usually wake the relay sooner.
        check_interval_seconds: Pause between two comparisons of the stream
            with the log.
        publish_timeout_seconds: Maximum wait for one acknowledgement before
            the relay treats the connection as failed and publishes again.
        lease_seconds: On PostgreSQL, how long a relay keeps publishing without
            a successful write to its position row; a relay that takes over
            waits out the previous holder's lease first.
        commit_interval_seconds: How often the acknowledged position is written.
        encoder_processes: 1 decodes events in a separate process so that
            decoding runs beside publishing; 0 decodes in a worker thread.
    """

    nats_servers: tuple[str, ...]
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    duplicate_window_seconds: float = 7200.0
    stream_replicas: int = 1
    stream_max_age_seconds: float = 0.0
    event_source: str = "/smsledger"
    max_in_flight: int = 1024
    batch_size: int = 1000
    poll_interval_seconds: float = 0.5
    check_interval_seconds: float = 30.0
    publish_timeout_seconds: float = 5.0
    lease_seconds: float = 10.0
    commit_interval_seconds: float = 0.2
    encoder_processes: int = 1

    @property
    def stream_subjects(self) -> str:
        """The subject filter of the stream: every event subject."""
        return f"{self.subject_prefix}.>"


def relay_config(settings: Settings, **overrides: object) -> RelayConfig:
    """Return the relay configuration the settings describe.

    Raises:
        ValueError: No NATS server is configured.
    """
    servers = settings.nats_servers
    if not servers:
        raise ValueError(
            "SMSLEDGER_NATS_URL is not set: name the NATS server, such as nats://127.0.0.1:4222"
        )
    config = RelayConfig(
        nats_servers=servers,
        stream=settings.nats_stream,
        subject_prefix=settings.nats_subject_prefix,
        duplicate_window_seconds=settings.nats_duplicate_window_seconds,
        stream_replicas=settings.nats_stream_replicas,
        stream_max_age_seconds=settings.nats_stream_max_age_seconds,
        event_source=settings.nats_event_source,
        max_in_flight=settings.relay_max_in_flight,
        batch_size=settings.relay_batch_size,
        poll_interval_seconds=settings.relay_poll_interval_seconds,
        check_interval_seconds=settings.relay_check_interval_seconds,
        publish_timeout_seconds=settings.relay_publish_timeout_seconds,
        lease_seconds=settings.relay_lease_seconds,
        encoder_processes=settings.relay_encoder_processes,
    )
    return replace(config, **overrides)  # type: ignore[arg-type]
