// Client-chosen text on its way to a log line or a terminal (docs/reliability.md, case 36, the pure part):
// control, C1, line-separator and bidi characters become visible escapes, long values are cut to
// a bound with their length said, and nothing is ever split in the middle of a character.
import { describe, expect, it } from 'vitest';
import { escapeText } from '../src/observability/escape.js';
import { prettyLine } from '../src/observability/pretty.js';

describe('escapeText', () => {
  it('escapes newlines, ANSI, C1, separators, bidi overrides, the BOM and lone surrogates', () => {
    const hostile = 'a\nb\r\u001b[31mred\u001b[0m\u009b2J\u2028\u2029\u202eevil\u2066\ufeff\ud800z\tend';
    expect(escapeText(hostile, 1000)).toBe(
      'a\\x0ab\\x0d\\x1b[31mred\\x1b[0m\\x9b2J\\u2028\\u2029\\u202eevil\\u2066\\ufeff\\ud800z\\x09end',
    );
  });

  it('leaves ordinary text, accents and emoji alone', () => {
    expect(escapeText('gpt-4o-mini für Zoë 🚀 数据', 100)).toBe('gpt-4o-mini für Zoë 🚀 数据');
  });

  it('keeps printable ASCII up to the bound as it is, and escapes DEL, the first character past it', () => {
    expect(escapeText('x'.repeat(200), 200)).toBe('x'.repeat(200));
    expect(escapeText('x'.repeat(201), 200)).toBe(`${'x'.repeat(200)}…[201 chars]`);
    expect(escapeText('~ ok\u007f', 100)).toBe('~ ok\\x7f');
  });

  it('cuts a 100 KB value to the bound and says how long it was', () => {
    const out = escapeText('x'.repeat(100 * 1024), 200);
    expect(out).toBe(`${'x'.repeat(200)}…[102400 chars]`);
  });

  it('counts escapes against the bound and never splits an escape or a surrogate pair', () => {
    expect(escapeText('\n'.repeat(10), 10)).toBe('\\x0a\\x0a…[10 chars]');
    expect(escapeText('ab🚀', 3)).toBe('ab…[4 chars]');
    expect(escapeText('ab🚀', 4)).toBe('ab🚀');
  });
});

describe('the pretty printer', () => {
  it('prints one line per entry with every value escaped, and an error stack below it', () => {
    const json = JSON.stringify({
      level: 40,
      time: '2030-01-31T12:34:56.789Z',
      service: 'keyrelay',
      msg: 'request',
      model: 'evil\u001b[2J\u009b',
      status: 502,
      tokens: { input: 1 },
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x (y.js:1:1)' },
    });
    expect(prettyLine(json, false)).toBe(
      '12:34:56.789 WARN  request model=evil\\x1b[2J\\x9b status=502 tokens={"input":1}\n    Error: boom\n        at x (y.js:1:1)\n',
    );
  });

  it('colours the level only when asked, and passes a line that is not JSON through escaped', () => {
    expect(prettyLine(JSON.stringify({ level: 30, msg: 'hi' }), true)).toBe('\u001b[32mINFO \u001b[0m hi\n');
    expect(prettyLine('not json \u001b[31m', false)).toBe('not json \\x1b[31m\n');
  });
});
