import { usage } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `90s`, `10m`, `2h`, `1d`, `1w` and sums of them (`1h30m`); NaN when malformed. */
export function parseSpan(text: string): number {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(t)) return Number.NaN;
  let ms = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
  return Number.isSafeInteger(ms) ? ms : Number.NaN;
}

/** Full ISO-8601 with a zone (`Z`, `+02:00`). */
const ISO_ZONED = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/;
/** ISO-8601 without a zone: the local time of this machine (a date alone is its midnight). */
const ISO_LOCAL = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?)?$/;

const TIME_HELP = 'an ISO-8601 time (2026-11-25T10:42:00Z, or 2026-11-25T10:42 in local time), or a time ago (30s, 10m, 2h, 1d, 1h30m)';

/**
 * A point in time as an operator types it: ISO-8601 (with a zone, or local
 * time without one), `now`, or a time ago (`10m`, `2h`, `1d`, `1h30m`,
 * optionally followed by `ago`). Anything else is a usage error naming `what`.
 */
export function parseTime(text: string, what = 'time', now: Date = new Date()): Date {
  const t = text.trim();
  if (t === 'now') return new Date(now.getTime());
  const ago = parseSpan(t.replace(/\s*ago$/, ''));
  if (!Number.isNaN(ago)) return new Date(now.getTime() - ago);
  if (ISO_ZONED.test(t)) {
    const d = new Date(t);
    if (!Number.isNaN(d.getTime()) && sameCalendarDate(t, d)) return d;
  }
  const local = ISO_LOCAL.exec(t);
  if (local) {
    const [y, mo, d, h = '0', mi = '0', s = '0', ms = '0'] = local.slice(1);
    const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(ms.padEnd(3, '0')));
    // Rolled-over fields (February 30th, 25:00) are typing mistakes, not times.
    if (
      date.getFullYear() === Number(y) &&
      date.getMonth() === Number(mo) - 1 &&
      date.getDate() === Number(d) &&
      date.getHours() === Number(h)
    )
      return date;
  }
  throw usage(`bad ${what} ${JSON.stringify(text)}: use ${TIME_HELP}`);
}

/** The zoned ISO text names a real calendar day (Date would roll 2026-02-30 over into March). */
function sameCalendarDate(text: string, d: Date): boolean {
  const offset = /([+-])(\d\d):(\d\d)$/.exec(text);
  const shift = offset ? (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3])) * 60_000 : 0;
  return new Date(d.getTime() + shift).toISOString().slice(0, 10) === text.slice(0, 10);
}

/** A duration in seconds, short: `0s`, `42s`, `3m 5s`, `2h 5m`, `3d 4h`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${Math.floor((s % 3_600) / 60) ? ` ${Math.floor((s % 3_600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3_600) ? ` ${Math.floor((s % 86_400) / 3_600)}h` : ''}`;
}

/** `at` relative to `now`: `just now`, `5m ago`, `in 2h`. */
export function formatRelative(at: Date | string, now: Date = new Date()): string {
  const ms = now.getTime() - new Date(at).getTime();
  if (Number.isNaN(ms)) return String(at);
  if (Math.abs(ms) < 1_000) return 'just now';
  return ms > 0 ? `${formatAge(ms / 1000)} ago` : `in ${formatAge(-ms / 1000)}`;
}
