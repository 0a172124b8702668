/**
 * Code blocks of the project's Markdown documents and the markers that say how
 * the test suite runs each one. Every fenced block must be preceded, on the
 * line right above its fence, by one marker:
 *
 *   <!-- test: install NAME -->            an `npm install` line, run against the packed package
 *   <!-- test: run NAME [background] [needs=CAPABILITY] -->   a Node program (TypeScript)
 *   <!-- test: browser NAME -->            a browser module (TypeScript), bundled and loaded in Chromium
 *   <!-- test: bundle NAME -->             the shell command that bundles browser module NAME
 *   <!-- test: session -->                 a protocol transcript (`>` sent, `<` received), replayed
 *   <!-- test: frames -->                  server frames, checked against the protocol
 *   <!-- test: cli -->                     a shell session of `npx outbox-hub` commands, run by `sh -e` in the
 *                                          installed project against a hub (localhost:8080/8081 point at it)
 *   <!-- test: skip: REASON -->            not run here, and why
 *
 * A block without a marker is an error, so no example goes untested silently.
 */
import { readFileSync } from 'node:fs';

/** Kinds of marker. */
export type BlockKind = 'install' | 'run' | 'browser' | 'bundle' | 'session' | 'frames' | 'cli' | 'skip';

const KINDS: readonly BlockKind[] = ['install', 'run', 'browser', 'bundle', 'session', 'frames', 'cli', 'skip'];
const NAMED: ReadonlySet<BlockKind> = new Set(['install', 'run', 'browser', 'bundle']);

/** One fenced code block with its marker. */
export interface DocBlock {
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  readonly code: string;
  readonly kind: BlockKind;
  /** For install, run, browser and bundle blocks. */
  readonly name: string;
  /** `background`, `needs=transactions`, ... */
  readonly flags: ReadonlySet<string>;
  /** For skip markers. */
  readonly reason: string;
}

/** A fenced block whose marker is missing or malformed. */
export interface MarkerProblem {
  readonly file: string;
  readonly line: number;
  readonly problem: string;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)/;
const MARKER = /^<!--\s*test:\s*(.*?)\s*-->\s*$/;

/** Parses `file` into its code blocks; blocks without a valid marker are returned as problems. */
export function readDocBlocks(file: string): { blocks: DocBlock[]; problems: MarkerProblem[] } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  const problems: MarkerProblem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? '');
    if (!open) continue;
    const fence = open[1] ?? '```';
    let end = i + 1;
    while (end < lines.length && !(lines[end] ?? '').trimStart().startsWith(fence)) end++;
    const code = lines.slice(i + 1, end).join('\n') + '\n';
    const line = i + 1;
    const marker = MARKER.exec(lines[i - 1] ?? '');
    i = end;
    if (!marker) {
      problems.push({ file, line, problem: 'no <!-- test: ... --> marker on the line above the fence' });
      continue;
    }
    const spec = marker[1] ?? '';
    if (spec.startsWith('skip:')) {
      const reason = spec.slice('skip:'.length).trim();
      if (reason === '') problems.push({ file, line, problem: 'a skip marker must give a reason' });
      else blocks.push({ file, line, lang: open[2] ?? '', code, kind: 'skip', name: '', flags: new Set(), reason });
      continue;
    }
    const [kind = '', ...rest] = spec.split(/\s+/);
    if (!(KINDS as readonly string[]).includes(kind) || kind === 'skip') {
      problems.push({ file, line, problem: `unknown marker kind '${kind}'` });
      continue;
    }
    const k = kind as BlockKind;
    const name = NAMED.has(k) ? (rest.shift() ?? '') : '';
    if (NAMED.has(k) && !/^[a-z][a-z0-9-]*$/.test(name)) {
      problems.push({ file, line, problem: `a ${k} marker needs a name of [a-z0-9-]` });
      continue;
    }
    blocks.push({ file, line, lang: open[2] ?? '', code, kind: k, name, flags: new Set(rest), reason: '' });
  }
  return { blocks, problems };
}

/** Where a block is, for failure messages. */
export function where(b: DocBlock): string {
  return `${b.file}:${b.line} (${b.kind}${b.name ? ` ${b.name}` : ''})`;
}
