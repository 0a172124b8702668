/**
 * Topic names.
 *
 * Grammar: dot-separated segments of `[A-Za-z0-9_-]`, 1 to {@link MAX_TOPIC_SEGMENTS}
 * segments, at most {@link MAX_TOPIC_LENGTH} characters. No empty segment and no
 * wildcard: `*` and `**` exist only in subscription patterns, never in a topic.
 *
 * Patterns: one grammar everywhere (subscriptions, grants, denies): `*` matches
 * exactly one segment, `**` zero or more. Patterns are compiled once
 * ({@link TopicPattern.compile}) and fan-out goes through a {@link TopicIndex}.
 */
import { MAX_TOPIC_LENGTH, MAX_TOPIC_SEGMENTS, TopicError } from './errors.js';

export { MAX_TOPIC_LENGTH, MAX_TOPIC_SEGMENTS, TopicError, type TopicErrorCode } from './errors.js';
export { TopicIndex, TopicPattern, patternProblem } from './pattern.js';

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** Returns why `topic` is not a valid topic, or `undefined` when it is. */
export function topicProblem(topic: unknown): string | undefined {
  if (typeof topic !== 'string') return 'topic must be a string';
  if (topic.length === 0) return 'topic must not be empty';
  if (topic.length > MAX_TOPIC_LENGTH) return `topic longer than ${MAX_TOPIC_LENGTH} characters`;
  const segments = topic.split('.');
  if (segments.length > MAX_TOPIC_SEGMENTS) return `topic has more than ${MAX_TOPIC_SEGMENTS} segments`;
  for (const s of segments) {
    if (s.length === 0) return `topic ${JSON.stringify(topic)} has an empty segment`;
    if (s.includes('*')) return `topic ${JSON.stringify(topic)} contains a wildcard; wildcards are only valid in subscriptions`;
    if (!SEGMENT.test(s)) return `topic segment ${JSON.stringify(s)} may only contain letters, digits, '_' and '-'`;
  }
  return undefined;
}

/** Throws a {@link TopicError} unless `topic` is valid. */
export function assertTopic(topic: unknown): asserts topic is string {
  const problem = topicProblem(topic);
  if (problem !== undefined) throw new TopicError('INVALID_TOPIC', problem);
}
