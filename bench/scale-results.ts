// The shapes of bench/scale.ts's results (bench/results.json key `scale`), shared with the
// plot (bench/plot.ts) that draws them.
import type { machine } from './common.js';

export type Variant = 'virt-iscsi, local' | 'raw script, local' | 'virt-iscsi, ssh';
export type Op = 'apply' | 'status' | 'reapply' | 'destroy';
export const OPS: readonly Op[] = ['apply', 'status', 'reapply', 'destroy'];

export interface ScaleRow {
  n: number;
  variant: Variant;
  op: Op;
  /** Median wall time. */
  ms: number;
  runsMs: number[];
  /** Peak RSS (median over the runs), apply only. */
  rssMiB?: number;
  /** (T(N) - T(M)) / (N - M), ms per export. */
  marginalMs?: number;
}

export interface ScaleGoal {
  what: string;
  goal: string;
  value: string;
  met: boolean | 'not measured';
}

export interface ScaleResults {
  date: string;
  machine: ReturnType<typeof machine>;
  vms: number;
  imageMiB: number;
  /** The mode apply chose (status --json), e.g. direct. */
  mode?: string;
  rows: ScaleRow[];
  goals: ScaleGoal[];
}

export interface Sample {
  n: number;
  variant: Variant;
  op: Op;
  ms: number;
  rssKb?: number;
}
