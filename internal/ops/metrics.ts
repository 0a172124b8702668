import { Gauge, Histogram, type Registry } from '../telemetry/index.js';
import type { Snapshot } from './queries.js';

/**
 * Topics exported as metrics, the most bytes first: the label's cardinality stays bounded
 * whatever topics writers invent (the API and the page list up to MAX_TOPICS).
 */
export const TOPIC_METRICS = 20;

/**
 * What ops exports from each sample, per consumer group: measured from the
 * store, so it goes on being reported (and alerted on) when every consumer of
 * a group is gone, unlike the gateways' own gauges.
 */
export class OpsMetrics {
  readonly #lagEvents: Gauge<'group'>;
  readonly #lagSeconds: Gauge<'group'>;
  readonly #gateways: Gauge<'group'>;
  readonly #deadLetters: Gauge<'group'>;
  readonly #lapsed: Gauge<'component'>;
  readonly #sampleSeconds: Histogram;
  readonly #retention: Record<'first' | 'retained' | 'trimmed' | 'oldest' | 'bytes', Gauge<'partition'>>;
  readonly #topicEvents: Gauge<'topic'>;
  readonly #topicBytes: Gauge<'topic'>;
  readonly #known = new Set<string>();
  readonly #knownTopics = new Set<string>();

  constructor(registry: Registry) {
    const registers = [registry];
    const perGroup = (name: string, help: string): Gauge<'group'> => new Gauge({ name, help, labelNames: ['group'], registers });
    this.#lagEvents = perGroup('ops_group_lag_events', "Events after a consumer group's cursors that match its filter (sampled)");
    this.#lagSeconds = perGroup(
      'ops_group_lag_seconds',
      'Age of the oldest event a consumer group has not acknowledged yet that matches its filter (sampled)',
    );
    this.#gateways = perGroup('ops_group_gateways', 'Gateways serving members of a consumer group (0: nobody consumes it)');
    this.#deadLetters = perGroup('ops_group_dead_letters', 'Dead letters of a consumer group waiting for an operator');
    this.#lapsed = new Gauge({
      name: 'ops_lapsed_replicas',
      help: 'Replicas that stopped heartbeating without leaving in the last hour',
      labelNames: ['component'],
      registers,
    });
    const perPartition = (name: string, help: string): Gauge<'partition'> =>
      new Gauge({ name, help, labelNames: ['partition'], registers });
    this.#retention = {
      first: perPartition('ops_retention_first_seq', 'First sequence a log partition still holds (lower ones were trimmed; sampled)'),
      retained: perPartition('ops_retention_retained_events', 'Events a log partition holds, first to last (sampled)'),
      trimmed: perPartition('ops_retention_trimmed_events', 'Events retention trimmed from a log partition so far (sampled)'),
      oldest: perPartition('ops_retention_oldest_age_seconds', 'Age of the first event a log partition still holds (sampled)'),
      bytes: perPartition(
        'ops_retention_retained_bytes',
        'Stored size (BSON) of the events a log partition holds, as far as counted (sampled)',
      ),
    };
    const perTopic = (name: string, help: string): Gauge<'topic'> => new Gauge({ name, help, labelNames: ['topic'], registers });
    this.#topicEvents = perTopic(
      'ops_retention_topic_events',
      `Events the log holds of a topic, over every partition (the ${TOPIC_METRICS} topics with the most bytes; sampled)`,
    );
    this.#topicBytes = perTopic(
      'ops_retention_topic_bytes',
      `Stored size (BSON) of the events the log holds of a topic (the ${TOPIC_METRICS} topics with the most bytes; sampled)`,
    );
    this.#sampleSeconds = new Histogram({
      name: 'ops_sample_seconds',
      help: 'Time one ops sample (heads, group lag, replicas) took',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  record(snap: Snapshot): void {
    this.#sampleSeconds.observe(snap.tookMs / 1000);
    this.#lapsed.set({ component: 'drainer' }, snap.lapsed.drainers.length);
    this.#lapsed.set({ component: 'gateway' }, snap.lapsed.gateways.length);
    for (const r of snap.retention) {
      const label = { partition: String(r.partition) };
      this.#retention.first.set(label, r.first);
      this.#retention.retained.set(label, r.retained);
      this.#retention.trimmed.set(label, r.trimmed);
      this.#retention.oldest.set(label, r.oldestAgeSeconds);
      this.#retention.bytes.set(label, r.bytes);
    }
    // Snapshot topics come most bytes first; one that drops out of the top stops being exported.
    const top = new Set<string>();
    for (const t of snap.topics.slice(0, TOPIC_METRICS)) {
      top.add(t.topic);
      this.#topicEvents.set({ topic: t.topic }, t.events);
      this.#topicBytes.set({ topic: t.topic }, t.bytes);
    }
    for (const topic of this.#knownTopics) {
      if (top.has(topic)) continue;
      this.#topicEvents.remove({ topic });
      this.#topicBytes.remove({ topic });
      this.#knownTopics.delete(topic);
    }
    for (const topic of top) this.#knownTopics.add(topic);
    const seen = new Set<string>();
    for (const g of snap.groups) {
      seen.add(g.group);
      const label = { group: g.group };
      this.#lagEvents.set(label, g.lagEvents);
      this.#lagSeconds.set(label, g.maxLagSeconds);
      this.#gateways.set(label, g.gateways);
      this.#deadLetters.set(label, g.deadLetters);
    }
    for (const name of this.#known) if (!seen.has(name)) this.forgetGroup(name);
    for (const name of seen) this.#known.add(name);
  }

  /** Stops exporting a group (deleted). */
  forgetGroup(group: string): void {
    this.#known.delete(group);
    for (const g of [this.#lagEvents, this.#lagSeconds, this.#gateways, this.#deadLetters]) g.remove({ group });
  }
}
