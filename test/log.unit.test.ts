/**
 * Every key appears once per log line: bound fields (root, child, grandchild) and a line's
 * own fields merge instead of repeating a key, which JSON.parse would hide (it keeps the
 * last value silently). Lines are parsed from their raw text by a strict parser that
 * rejects a repeated key at any depth.
 */
import { createLogger, type Logger } from '../internal/log/index.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

class DuplicateKeyError extends Error {}

/** Parses one JSON text, throwing DuplicateKeyError when an object names a key twice (after unescaping). */
function parseStrict(text: string): Json {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at ${i} in ${text}`);
  };
  const skipSpace = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const consume = (literal: string): void => {
    if (text.slice(i, i + literal.length) !== literal) fail(`expected ${literal}`);
    i += literal.length;
  };
  const string = (): string => {
    // The token's raw text, escapes included, is decoded by JSON.parse: "a" and "\u0061" are one key.
    const start = i;
    consume('"');
    while (text[i] !== '"') {
      if (i >= text.length) fail('unterminated string');
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): Json => {
    skipSpace();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: { [key: string]: Json } = {};
      const seen = new Set<string>();
      skipSpace();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        skipSpace();
        const key = string();
        if (seen.has(key)) throw new DuplicateKeyError(`key ${JSON.stringify(key)} appears twice in ${text}`);
        seen.add(key);
        skipSpace();
        consume(':');
        Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
        skipSpace();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return out;
        } else fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const out: Json[] = [];
      skipSpace();
      if (text[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        skipSpace();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return out;
        } else fail('expected , or ]');
      }
    }
    if (c === '"') return string();
    for (const [literal, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) return fail('unexpected token');
    i += m[0].length;
    return Number(m[0]);
  };
  const out = value();
  skipSpace();
  if (i !== text.length) fail('trailing text');
  return out;
}

type Line = Record<string, Json>;

/** A logger writing into `lines`, each line parsed strictly (so a repeated key fails the test that logged it). */
function capture(options: Parameters<typeof createLogger>[0] = {}): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const log = createLogger({
    ...options,
    write: (raw) => {
      expect(raw.endsWith('\n')).toBe(true);
      lines.push(parseStrict(raw.slice(0, -1)) as Line);
    },
  });
  return { log, lines };
}

describe('strict line parser', () => {
  it('rejects a repeated key, also when spelled with escapes or nested, and parses what JSON.parse parses', () => {
    expect(() => parseStrict('{"member":"a","member":"a"}')).toThrow(DuplicateKeyError);
    expect(() => parseStrict('{"partition":1,"x":{"y":[{"z":1,"\\u007a":2}]}}')).toThrow(DuplicateKeyError);
    const text = '{"a":[1,-2.5e3,true,false,null,"q\\"\\\\"],"b":{},"c":[],"__proto__":{"d":"é"}}';
    expect(parseStrict(text)).toEqual(JSON.parse(text));
    expect(Object.keys(parseStrict(text) as object)).toEqual(['a', 'b', 'c', '__proto__']);
  });
});

describe('logger: each key once per line', () => {
  it('root fields overlapped by a line: the line wins', () => {
    const { log, lines } = capture({ fields: { binary: 'drainer', member: 'dev-drainer-1' } });
    log.info('drainer starting', { member: 'dev-drainer-1', partitions: 16 });
    log.info('renamed', { member: 'dev-drainer-2' });
    expect(lines[0]).toMatchObject({ level: 30, binary: 'drainer', member: 'dev-drainer-1', partitions: 16, msg: 'drainer starting' });
    expect(lines[1]).toMatchObject({ member: 'dev-drainer-2' });
    expect(typeof lines[0]?.['pid']).toBe('number');
    expect(typeof lines[0]?.['hostname']).toBe('string');
  });

  it('a child re-binding its parent’s field replaces it, in place; so does a grandchild', () => {
    const { log, lines } = capture({ fields: { binary: 'drainer', member: 'dev-drainer-1' } });
    const child = log.child({ member: 'dev-drainer-1', partition: 1 });
    const grandchild = child.child({ partition: 2, epoch: 7 });
    child.info('claimed');
    grandchild.warn('fenced');
    grandchild.error('batch failed', { partition: 3, err: new Error('boom') });
    log.info('root again');
    expect(lines.map((l) => [l['member'], l['partition'], l['epoch']])).toEqual([
      ['dev-drainer-1', 1, undefined],
      ['dev-drainer-1', 2, 7],
      ['dev-drainer-1', 3, 7],
      ['dev-drainer-1', undefined, undefined],
    ]);
    // Pino's shape first, bound fields in binding order, the message last.
    expect(Object.keys(lines[2] as Line)).toEqual([
      'level',
      'time',
      'pid',
      'hostname',
      'binary',
      'member',
      'partition',
      'epoch',
      'err',
      'msg',
    ]);
    expect(lines[2]?.['err']).toMatchObject({ type: 'Error', message: 'boom' });
  });

  it('an undefined line field leaves the bound value', () => {
    const { log, lines } = capture();
    log.child({ partition: 4 }).info('x', { partition: undefined });
    expect(lines[0]).toMatchObject({ partition: 4 });
  });

  it('fields named like pino’s own keys are renamed instead of repeating level, time or msg', () => {
    const { log, lines } = capture();
    log.child({ msg: 'bound', level: 'custom' }).info('real', { time: 'then', msg: 'line', msgField: 'taken', pid: 1 });
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'real',
      pid: 1,
      levelField: 'custom',
      timeField: 'then',
      msgField: 'taken',
      msgField_: 'line',
    });
    expect(typeof lines[0]?.['time']).toBe('number');
  });

  it('a repeat summary over bound fields carries each key once', async () => {
    const { log, lines } = capture({ repeatWindowMs: 100, fields: { member: 'm' } });
    const child = log.child({ partition: 1, repeated: 'bound' });
    for (let i = 0; i < 3; i++) child.warn('drain batch failed', { partition: 1, err: new Error('down') });
    await new Promise((r) => setTimeout(r, 250));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ member: 'm', partition: 1, repeated: 2, level: 40 });
    expect(lines[1]?.['msg']).toMatch(/^drain batch failed \(2 more in the last \d+ s\)$/);
  });

  it('keeps scrubbing bound and line fields', () => {
    const { log, lines } = capture({ secrets: ['s3cr3t-pass'], fields: { url: 'mongodb://app:s3cr3t-pass@db/' } });
    log.child({ url: 'mongodb://app:other-pass@db/' }).info('connecting', { token: 's3cr3t-pass' });
    expect(lines[0]).toMatchObject({ url: 'mongodb://app:***@db/', token: '***' });
  });

  it('writes nothing below the level', () => {
    const { log, lines } = capture({ level: 'warn' });
    log.child({ partition: 1 }).info('hidden', { partition: 2 });
    log.debug('hidden');
    expect(lines).toEqual([]);
  });
});
