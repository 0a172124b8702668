import { HubError } from '../errors/index.js';

/** Longest topic or pattern accepted, in characters. */
export const MAX_TOPIC_LENGTH = 200;
/** Most segments accepted in a topic or pattern. */
export const MAX_TOPIC_SEGMENTS = 16;

/** Why a topic or pattern was refused. */
export type TopicErrorCode = 'INVALID_TOPIC' | 'INVALID_PATTERN';

/** Raised for malformed topics and patterns. */
export class TopicError extends HubError<TopicErrorCode> {}
