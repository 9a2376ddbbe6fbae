#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

// Before any of keyrelay's code runs: V8 may decide that objects made at one place in the code
// live long, from what it sees at a few collections, and from then on make them in the old
// generation. Under a steady stream of requests that guess is sometimes wrong for objects of the
// request path, and the process then collects garbage three times as long per request for the
// rest of its life (docs/performance.md, "Slow starts"). A relay's objects are short-lived.
setFlagsFromString('--no-allocation-site-pretenuring');

const { main } = await import('../dist/cli.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`keyrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
