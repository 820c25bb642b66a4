/** Ingestion's own metrics, in the process registry. */
import { Counter, Gauge, Histogram } from 'prom-client';
import { LastMinute, type ServiceMetrics } from '@flatline/platform';

/** Counters and gauges of polling, the outbox, forwarding and leases. */
export type IngestionMetrics = ReturnType<typeof createIngestionMetrics>;

/** Registers ingestion's metrics in base's registry. */
export function createIngestionMetrics(base: ServiceMetrics) {
  const registers = [base.registry];
  // What the storage client observed of the mesh's faults (the Istio plane's fault filter runs inside it, unseen otherwise).
  const faultAborted = new LastMinute();
  const appendSeconds = new LastMinute();
  return {
    /** An Append the client's fault filter aborted (grpc-js-xds's "Fault injected"). */
    faultAborted,
    /** Every Append's time, failed or not, in seconds. */
    appendSeconds,
    appendsFaultAbortedLastMinute: new Gauge({
      name: 'flatline_ingestion_appends_fault_aborted_last_minute',
      help: 'Appends the mesh fault filter in the storage client aborted in the last 60 s (status details "Fault injected")',
      registers,
      collect() {
        this.set(faultAborted.read().n);
      },
    }),
    appendsLastMinute: new Gauge({
      name: 'flatline_ingestion_appends_last_minute',
      help: 'Append calls of the last 60 s, failed or not (beside the ones the mesh fault filter aborted: the share a fault with a percentage hit)',
      registers,
      collect() {
        this.set(appendSeconds.read().n);
      },
    }),
    appendSlowestLastMinute: new Gauge({
      name: 'flatline_ingestion_append_slowest_seconds_last_minute',
      help: 'The longest Append call of the last 60 s, failed or not (a mesh delay shows here), in seconds',
      registers,
      collect() {
        this.set(appendSeconds.read().max);
      },
    }),
    polls: new Counter({ name: 'flatline_ingestion_polls_total', help: 'Polls of a flat, by outcome', labelNames: ['outcome'] as const, registers }),
    pollSeconds: new Histogram({
      name: 'flatline_ingestion_poll_duration_seconds',
      help: 'Time of a poll that reached the device gateway',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
    readings: new Counter({ name: 'flatline_ingestion_readings_total', help: 'New readings written to the outbox', registers }),
    missed: new Counter({
      name: 'flatline_ingestion_readings_missed_total',
      help: 'Readings a device no longer had when polled (a gap between polls longer than its window)',
      registers,
    }),
    outboxFetches: new Gauge({ name: 'flatline_ingestion_outbox_fetches', help: 'Fetch results waiting in the outbox', registers }),
    outboxReadings: new Gauge({ name: 'flatline_ingestion_outbox_readings', help: 'Readings waiting in the outbox', registers }),
    resets: new Counter({
      name: 'flatline_ingestion_device_resets_total',
      help: 'Devices whose seq went backwards (reset or replaced meter): their readings continue in a new epoch',
      registers,
    }),
    outboxBytes: new Gauge({ name: 'flatline_ingestion_outbox_bytes', help: 'Bytes the outbox uses', registers }),
    outboxLimitBytes: new Gauge({ name: 'flatline_ingestion_outbox_limit_bytes', help: 'The outbox size bound (FLATLINE_OUTBOX_MAX_BYTES)', registers }),
    outboxFull: new Counter({
      name: 'flatline_ingestion_outbox_full_fetches_total',
      help: 'Fetch results not kept because the outbox was full (their readings stay on the devices for their window)',
      registers,
    }),
    outboxErrors: new Counter({ name: 'flatline_ingestion_outbox_errors_total', help: 'Failed outbox writes (the readings are fetched again next poll)', registers }),
    forwarded: new Counter({ name: 'flatline_ingestion_forwarded_readings_total', help: 'Readings storage acknowledged', registers }),
    forwardErrors: new Counter({ name: 'flatline_ingestion_forward_errors_total', help: 'Failed Append calls, by status', labelNames: ['code'] as const, registers }),
    dropped: new Counter({ name: 'flatline_ingestion_dropped_readings_total', help: 'Readings dropped after a failed Append (FLATLINE_FORWARD_ON_FAILURE=drop only)', registers }),
    deadLetters: new Counter({ name: 'flatline_ingestion_dead_letters_total', help: 'Fetch results storage refused as invalid, kept aside', registers }),
    flatsHeld: new Gauge({ name: 'flatline_ingestion_flats_held', help: 'Flats this replica polls', registers }),
    bucketsHeld: new Gauge({ name: 'flatline_ingestion_buckets_held', help: 'Lease buckets this replica holds', registers }),
  };
}
