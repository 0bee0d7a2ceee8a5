// Writes schema/stack.schema.json, the JSON Schema of stack files that editors use
// (`# yaml-language-server: $schema=...`), from the key tables in src/workflows/stack-keys.ts.
//   node --import tsx scripts/gen-schema.ts           # write it
//   node --import tsx scripts/gen-schema.ts --check   # exit 1 when the committed one differs
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stackSchema } from '../src/workflows/stack-keys.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../schema/stack.schema.json', import.meta.url));

export function schemaText(): string {
  return `${JSON.stringify(stackSchema(), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = schemaText();
  if (process.argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {
      /* missing: differs */
    }
    if (committed !== text) {
      process.stderr.write(`gen-schema: ${SCHEMA_FILE} is not what src/workflows/stack-keys.ts says; run: node --import tsx scripts/gen-schema.ts\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(SCHEMA_FILE, text);
    process.stdout.write(`gen-schema: wrote ${SCHEMA_FILE}\n`);
  }
}
