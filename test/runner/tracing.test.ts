// VIRT_ISCSI_TRACE: each command on the real local runner, traced with host, time and exit
// code; secrets masked; the result and errors pass through unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRunner } from '../../src/runner/local.js';
import { TracingRunner } from '../../src/runner/tracing.js';

test('every command, write and read is traced as it ends; secrets stay masked', async () => {
  const lines: string[] = [];
  const r = new TracingRunner(new LocalRunner(), (l) => void lines.push(l));
  const dir = mkdtempSync(join(tmpdir(), 'vit-trace-'));
  try {
    const res = await r.run(['sh', '-c', 'echo out; exit 3', 'hunter2-secret'], { secrets: ['hunter2-secret'] });
    assert.deepEqual(res, { stdout: 'out\n', stderr: '', exitCode: 3 });
    await r.writeFile(join(dir, 'f'), 'x');
    assert.equal(await r.readFile(join(dir, 'missing')), undefined);
    await assert.rejects(r.run([]), TypeError);
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^trace \+\d+ms \d+ms local exit 3: sh -c 'echo out; exit 3' \*{8}\n$/);
    assert.ok(!lines.join('').includes('hunter2'));
    assert.match(lines[1]!, new RegExp(`local ok: write ${join(dir, 'f')}\\n$`));
    assert.match(lines[2]!, /local missing: read .*\/missing\n$/);
    assert.match(lines[3]!, /local error: \n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
