// Writes docs/metering.md from the metering table: `npm run docs:metering`.
import { writeFileSync } from 'node:fs';
import { costOf } from '../src/operations/costs.js';
import { meteringMarkdown } from '../src/operations/metering-doc.js';

const target = new URL('../docs/metering.md', import.meta.url);
writeFileSync(target, meteringMarkdown(costOf));
console.log(`wrote ${target.pathname}`);
