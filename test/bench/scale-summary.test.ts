// The scale benchmark's arithmetic and plot (bench/scale.ts, bench/plot.ts) on runs made
// up here: medians, the marginal cost between Ns, which goals are met, and an SVG that an
// XML parser we did not write reads back with a line per variant and command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser } from 'fast-xml-parser';
import { summarize, type Sample } from '../../bench/scale.js';
import { scaleSvg } from '../../bench/plot.js';

const runs = (n: number, variant: Sample['variant'], op: Sample['op'], ms: number[], rssKb?: number): Sample[] =>
  ms.map((x) => ({ n, variant, op, ms: x, ...(rssKb !== undefined ? { rssKb } : {}) }));

const samples: Sample[] = [
  ...runs(1, 'raw script, local', 'apply', [300, 320, 310]),
  ...runs(50, 'raw script, local', 'apply', [15000, 15100, 14900]),
  ...runs(1, 'virt-iscsi, local', 'apply', [1700, 1800, 1600], 80 * 1024),
  // Marginal (16000 - 1700) / 49 = 292 ms: <= 1.2 x (15000 - 310) / 49 = 300 ms.
  ...runs(50, 'virt-iscsi, local', 'apply', [16000, 30000, 15000], 120 * 1024),
  ...runs(50, 'raw script, local', 'destroy', [10000]),
  ...runs(50, 'virt-iscsi, local', 'destroy', [20000]),
  ...runs(200, 'virt-iscsi, local', 'status', [2500]),
  ...runs(200, 'virt-iscsi, ssh', 'status', [2900]),
  ...runs(200, 'virt-iscsi, local', 'reapply', [2000]),
  ...runs(200, 'virt-iscsi, local', 'apply', [60000], 160 * 1024),
];

test('medians, marginal cost per export between Ns, and the goals', () => {
  const r = summarize(samples, 'direct');
  const row = (n: number, variant: Sample['variant'], op: Sample['op']) => r.rows.find((x) => x.n === n && x.variant === variant && x.op === op)!;
  assert.equal(row(1, 'virt-iscsi, local', 'apply').ms, 1700);
  assert.equal(row(1, 'virt-iscsi, local', 'apply').marginalMs, 1700);
  assert.equal(row(50, 'virt-iscsi, local', 'apply').ms, 16000);
  assert.deepEqual(row(50, 'virt-iscsi, local', 'apply').runsMs, [16000, 30000, 15000]);
  assert.equal(row(50, 'virt-iscsi, local', 'apply').marginalMs, 292);
  assert.equal(row(50, 'raw script, local', 'apply').marginalMs, 300);
  assert.equal(row(50, 'virt-iscsi, local', 'apply').rssMiB, 120);
  // 200 follows 50 in the apply series: (60000 - 16000) / 150.
  assert.equal(row(200, 'virt-iscsi, local', 'apply').marginalMs, 293);
  // Without a smaller N, the marginal cost is the whole time over N.
  assert.equal(row(50, 'virt-iscsi, local', 'destroy').marginalMs, 400);

  const goal = (what: string) => r.goals.find((g) => g.what === what)!;
  assert.equal(goal('apply of 50: marginal cost per export').met, true);
  assert.equal(goal('destroy of 50: marginal cost per export').met, false);
  assert.equal(goal('apply of 200: marginal cost per export').met, 'not measured');
  assert.equal(goal('status of 200, local').met, false);
  assert.equal(goal('status of 200, over SSH').met, true);
  assert.equal(goal('no-op apply of 200').met, true);
  assert.equal(goal('peak RSS of apply of 200').met, false);
  assert.equal(goal('peak RSS of apply of 200').value, '168 MB');
});

test('the plot is SVG with a line for each variant of each command', () => {
  const svg = scaleSvg(summarize(samples, 'direct'));
  const doc = new XMLParser({ ignoreAttributes: false, isArray: (name) => name === 'polyline' || name === 'circle' }).parse(svg) as {
    svg: { '@_xmlns': string; polyline: Array<{ '@_points': string; '@_stroke': string }>; circle: unknown[] };
  };
  assert.equal(doc.svg['@_xmlns'], 'http://www.w3.org/2000/svg');
  // apply: virt-iscsi local and raw; status: local and ssh; no-op apply: local; destroy: local and raw.
  assert.equal(doc.svg.polyline.length, 7);
  const points = doc.svg.polyline.map((p) => p['@_points'].split(' ').length).sort();
  assert.deepEqual(points, [1, 1, 1, 1, 1, 2, 3]);
  for (const p of doc.svg.polyline) for (const xy of p['@_points'].split(' ')) assert.match(xy, /^\d+(\.\d)?,\d+(\.\d)?$/);
  assert.equal(doc.svg.circle.length, 10);
});
