"use strict";
// Reads the SMS Delivery Ledger's events from NATS JetStream, drops repeated
// event ids, checks per-message version order and prints one JSON line per
// event. Settings come from the environment (see README.md).

const { connect } = require("@nats-io/transport-node");
const {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
} = require("@nats-io/jetstream");
const { ledger } = require("./gen/events.js");

const settings = {
  servers: (process.env.NATS_URL || "nats://127.0.0.1:4222").split(","),
  stream: process.env.STREAM || "LEDGER_EVENTS",
  subjects: process.env.SUBJECTS || "ledger.v1.events.>",
  durable: process.env.DURABLE || "",
  startSequence: process.env.START_SEQUENCE || "",
  startTime: process.env.START_TIME || "",
  expect: Number(process.env.EXPECT || 0),
  idleMs: Number(process.env.IDLE_MS || 5000),
};

// Returns what the consumer reads from an event's body: the kind of body and
// the fields a downstream system typically keys on.
function bodyFields(event) {
  switch (event.body) {
    case "submission": {
      const b = event.submission;
      return {
        country: b.country,
        destination_masked: b.destinationMasked,
        carrier: b.carrier,
        segment_count: b.segmentCount,
      };
    }
    case "acceptance": {
      const b = event.acceptance;
      return { carrier: b.carrier, segments: b.segments.map((s) => s.segment) };
    }
    case "receipt": {
      const b = event.receipt;
      return {
        connection: b.connection,
        segment: b.segment,
        status: b.status,
        final: b.final,
        error_code: b.errorCode,
        effect: ledger.v1.ReceiptEffect[b.effect],
      };
    }
    case "inferredExpiry":
      return { reason: event.inferredExpiry.reason };
    case "retryAdvice":
      return { retry: event.retryAdvice.retry, reason: event.retryAdvice.reason };
    default:
      return {};
  }
}

// Returns the start of delivery: a stream sequence, a time (RFC 3339), or the beginning.
function startOptions() {
  if (settings.startSequence) {
    return {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Number(settings.startSequence),
    };
  }
  if (settings.startTime) {
    return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: settings.startTime };
  }
  return { deliver_policy: DeliverPolicy.All };
}

// A durable consumer keeps its position on the server across restarts; an
// ordered consumer is ephemeral and suits one-off replays.
async function openConsumer(nc) {
  const js = jetstream(nc);
  if (!settings.durable) {
    return js.consumers.get(settings.stream, {
      filter_subjects: settings.subjects,
      ...startOptions(),
    });
  }
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.info(settings.stream, settings.durable);
  } catch {
    await jsm.consumers.add(settings.stream, {
      durable_name: settings.durable,
      ack_policy: AckPolicy.Explicit,
      filter_subject: settings.subjects,
      ...startOptions(),
    });
  }
  return js.consumers.get(settings.stream, settings.durable);
}

async function main() {
  const nc = await connect({ servers: settings.servers });
  const consumer = await openConsumer(nc);
  const messages = await consumer.consume({ max_messages: 256 });

  // JetStream drops republished copies only within its duplicate window, so
  // a consumer drops repeated event ids itself. A real consumer stores the
  // ids it applied together with its effects; this one keeps them in memory.
  const seen = new Set();
  const lastVersion = new Map();
  let duplicates = 0;
  let outOfOrder = 0;

  let idle = setTimeout(() => messages.stop(), settings.idleMs);
  for await (const m of messages) {
    clearTimeout(idle);
    idle = setTimeout(() => messages.stop(), settings.idleMs);

    const id = m.headers.get("Nats-Msg-Id");
    if (seen.has(id)) {
      duplicates += 1;
      m.ack();
      continue;
    }
    const event = ledger.v1.Event.decode(m.data);
    const aggregate = m.headers.get("Ledger-Aggregate-Id");
    const version = Number(m.headers.get("Ledger-Version"));
    if ((lastVersion.get(aggregate) || 0) >= version) {
      outOfOrder += 1;
    }
    lastVersion.set(aggregate, version);
    seen.add(id);

    console.log(
      JSON.stringify({
        sequence: m.seq,
        position: Number(m.headers.get("Ledger-Position")),
        id: event.eventId,
        type: event.type,
        ce_type: m.headers.get("ce-type"),
        tenant: event.tenant,
        message_id: event.messageId,
        version: Number(event.version),
        status: ledger.v1.MessageStatus[event.status],
        body: event.body || "",
        fields: bodyFields(event),
      }),
    );
    m.ack();
    if (settings.expect && seen.size >= settings.expect) {
      break;
    }
  }
  clearTimeout(idle);
  console.error(
    JSON.stringify({ events: seen.size, duplicates, out_of_order: outOfOrder }),
  );
  await nc.drain();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
