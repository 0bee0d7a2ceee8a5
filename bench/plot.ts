// bench/scale.svg from the scale benchmark's results: one panel per command (apply,
// status, no-op apply, destroy), seconds against N, virt-iscsi beside the raw script and
// beside the baseline measured before the per-run read cache (results.json scaleBaseline). Plain SVG
// (polylines, axes, a legend), so the README shows it with nothing to install.
//   node --import tsx bench/plot.ts    redraws it from bench/results.json
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readResults, root } from './common.js';
import type { Op, ScaleResults, ScaleRow, Variant } from './scale-results.js';

const PANELS: ReadonlyArray<{ op: Op; title: string }> = [
  { op: 'apply', title: 'apply -f (raw: export N)' },
  { op: 'status', title: 'status (raw: tgtadm, virsh)' },
  { op: 'reapply', title: 'apply -f again (nothing to do)' },
  { op: 'destroy', title: 'destroy -f (raw: unexport N)' },
];
/** The baseline's local run, drawn beside the new one. */
const BEFORE = 'virt-iscsi, local, before' as const;
type Series = Variant | typeof BEFORE;
const STYLE: Record<Series, { color: string; dash: string }> = {
  [BEFORE]: { color: '#999999', dash: '2 3' },
  'virt-iscsi, local': { color: '#1f77b4', dash: '' },
  'virt-iscsi, ssh': { color: '#2ca02c', dash: '' },
  'raw script, local': { color: '#d62728', dash: '6 4' },
};

const W = 300;
const H = 220;
const M = { left: 48, right: 12, top: 28, bottom: 40 };
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** About five round tick values from 0 to at least `max` (whole numbers when `whole`). */
function ticks(max: number, whole = false): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = whole ? Math.max(1, max / 5) : max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw && (!whole || Number.isInteger(s)))!;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function panel(rows: ReadonlyArray<Omit<ScaleRow, 'variant'> & { variant: Series }>, op: Op, title: string, x0: number): string {
  const mine = rows.filter((r) => r.op === op);
  const ns = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  const xt = ticks(Math.max(...ns, 1), true);
  const yt = ticks(Math.max(...mine.map((r) => r.ms / 1000), 0.1));
  const xMax = xt[xt.length - 1]!;
  const yMax = yt[yt.length - 1]!;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (n: number): number => x0 + M.left + (n / xMax) * pw;
  const Y = (s: number): number => M.top + ph - (s / yMax) * ph;
  const out: string[] = [`<text x="${x0 + M.left + pw / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(title)}</text>`];
  for (const v of yt) {
    out.push(`<line x1="${X(0)}" x2="${X(xMax)}" y1="${Y(v)}" y2="${Y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${X(0) - 4}" y="${Y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  for (const n of xt) out.push(`<text x="${X(n)}" y="${Y(0) + 14}" text-anchor="middle">${n}</text>`);
  out.push(`<line x1="${X(0)}" x2="${X(xMax)}" y1="${Y(0)}" y2="${Y(0)}" stroke="#333"/>`, `<line x1="${X(0)}" x2="${X(0)}" y1="${Y(0)}" y2="${Y(yMax)}" stroke="#333"/>`);
  out.push(`<text x="${X(xMax / 2)}" y="${H - 8}" text-anchor="middle">exports (N)</text>`);
  out.push(`<text transform="translate(${x0 + 12} ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">seconds</text>`);
  for (const [variant, style] of Object.entries(STYLE) as Array<[Series, (typeof STYLE)[Series]]>) {
    const pts = mine.filter((r) => r.variant === variant).sort((a, b) => a.n - b.n);
    if (!pts.length) continue;
    const dash = style.dash ? ` stroke-dasharray="${style.dash}"` : '';
    out.push(`<polyline fill="none" stroke="${style.color}" stroke-width="2"${dash} points="${pts.map((p) => `${X(p.n).toFixed(1)},${Y(p.ms / 1000).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) out.push(`<circle cx="${X(p.n).toFixed(1)}" cy="${Y(p.ms / 1000).toFixed(1)}" r="3" fill="${style.color}"><title>${esc(`${variant}, N = ${p.n}: ${(p.ms / 1000).toFixed(2)} s`)}</title></circle>`);
  }
  return out.join('\n');
}

/** The SVG document for these results; `before`: the local run of an earlier baseline, drawn beside (N it measured only). */
export function scaleSvg(r: ScaleResults, before?: ScaleResults): string {
  const width = W * PANELS.length;
  const legendY = H + 14;
  const ns = new Set(r.rows.map((x) => x.n));
  const rows: Array<Omit<ScaleRow, 'variant'> & { variant: Series }> = [...r.rows, ...(before?.rows ?? []).filter((x) => x.variant === 'virt-iscsi, local' && ns.has(x.n)).map((x) => ({ ...x, variant: BEFORE }))];
  const present = (Object.keys(STYLE) as Series[]).filter((v) => rows.some((x) => x.variant === v));
  const legend = present.map((v, i) => {
    const x = 60 + i * 210;
    const s = STYLE[v];
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    return `<line x1="${x}" x2="${x + 28}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="2"${dash}/><text x="${x + 34}" y="${legendY + 4}">${esc(v)}</text>`;
  });
  const load = r.machine.loadavg ? `, load average ${r.machine.loadavg[0]}` : '';
  const note = `${r.vms} domains, ${r.imageMiB} MiB images${r.mode ? `, mode ${r.mode}` : ''}; ${r.machine.cpus} CPUs${load}; ${r.date.slice(0, 10)}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 44}" viewBox="0 0 ${width} ${H + 44}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...PANELS.map((p, i) => panel(rows, p.op, p.title, i * W)),
    ...legend,
    `<text x="${width - 8}" y="${H + 38}" text-anchor="end" fill="#666">${esc(note)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

export function writeScaleSvg(r: ScaleResults, file: string, before?: ScaleResults): void {
  writeFileSync(file, scaleSvg(r, before));
}

// Run as a program (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const scale = readResults().scale as ScaleResults | undefined;
  if (!scale) {
    process.stderr.write('plot: bench/results.json has no "scale" results; run bench/scale.ts first\n');
    process.exitCode = 1;
  } else {
    writeScaleSvg(scale, join(root, 'bench', 'scale.svg'), readResults().scaleBaseline as ScaleResults | undefined);
    process.stdout.write('written to bench/scale.svg\n');
  }
}
