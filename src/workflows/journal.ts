// The crash journal of an export: before each change, a line saying what is about to be
// made (and where), fsynced; after it, a line saying it was. kill -9, a power cut or a lost
// SSH link between two lines leaves the file behind, and from it `unexport NAME` knows the
// export and every piece it may have made (the names come from the export's record, written
// first), `status` shows it as interrupted, and running the same export again takes up the
// same names and finishes it. A run that ends (done, or fully rolled back) removes it.
//
// One JSON object a line, appended to $XDG_STATE_HOME/virt-iscsi/journal/NAME.jsonl on the
// machine that runs virt-iscsi. The last line may be torn by a crash: it is ignored.
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import type { DeviceFlags } from '../hypervisor/virsh.js';
import { syncDir } from '../runner/local.js';
import type { PlanJournal, Step } from '../plan/plan.js';
import { checkExportName } from './names.js';
import { parseRecord, type ExportRecord } from './records.js';

/** What the run that wrote the journal was doing: an export (the default), or a resize of one. */
export type JournalOp = 'export' | 'resize';

/** Something a step made that the record alone does not tell (the record names all the rest). */
export type JournalPiece =
  | { kind: 'controller'; host: string; vm: string; flags: DeviceFlags }
  /** A resize paused the domain (`resumed`: and ran it again); a run killed in between leaves it paused. */
  | { kind: 'paused'; host: string; vm: string; resumed?: boolean };

export type JournalEntry =
  | { t: 'begin'; at: string; pid: number; record: ExportRecord; op?: JournalOp; finish?: string }
  | { t: 'intent'; at: string; step: string; host?: string; title: string }
  | { t: 'piece'; at: string; piece: JournalPiece }
  | { t: 'done'; at: string; step: string; host?: string }
  | { t: 'undone'; at: string; step: string; host?: string }
  | { t: 'end'; at: string; outcome: 'done' | 'rolled-back' };

/** Beside the export records: .../virt-iscsi/journal when they are in .../virt-iscsi/exports. */
export const journalDir = (stateDir: string): string => posix.join(posix.dirname(stateDir), 'journal');
export const journalFile = (stateDir: string, name: string): string => posix.join(journalDir(stateDir), `${name}.jsonl`);

/** What a journal left behind says. */
export interface JournalState {
  file: string;
  name: string;
  /** The export as the last run that began it resolved it. */
  record: ExportRecord;
  /** How many runs began it (a run after a crash is the second). */
  runs: number;
  op: JournalOp;
  /** The command that finishes what the last run began, when it is not the export itself (a resize). */
  finish?: string;
  pid: number;
  startedAt: string;
  /** Steps whose change was (maybe) made and not taken back. */
  open: Array<{ step: string; host?: string; title: string; done: boolean }>;
  pieces: JournalPiece[];
}

// ---- the test pause ---------------------------------------------------------------------
// VIRT_ISCSI_TEST_PAUSE=POINT[,POINT...], each STEP[#N]:before|after, makes the run stop,
// printing a line on stderr, right before (the intent is on disk, nothing made) or right
// after (made, not yet marked done) the Nth step with that id; `undo-STEP:before` stops a
// rollback before it undoes that step. It waits there until the process gets a signal
// (SIGINT, SIGTERM, SIGHUP: then the run goes on, and rolls back) or is killed. The crash
// and signal tests use it; it changes nothing a user sees unless set.

function pausePoints(): Array<{ id: string; n: number; when: 'before' | 'after' }> {
  return (process.env.VIRT_ISCSI_TEST_PAUSE ?? '').split(',').flatMap((spec) => {
    const m = /^([a-z-]+)(?:#(\d+))?:(before|after)$/.exec(spec.trim());
    return m ? [{ id: m[1]!, n: Number(m[2] ?? 1), when: m[3] as 'before' | 'after' }] : [];
  });
}

const seen = new Map<string, number>();

export async function maybePause(id: string, when: 'before' | 'after'): Promise<void> {
  const points = pausePoints().filter((p) => p.id === id && p.when === when);
  if (points.length === 0) return;
  const n = (seen.get(`${id}:${when}`) ?? 0) + 1;
  seen.set(`${id}:${when}`, n);
  if (!points.some((p) => p.n === n)) return;
  process.stderr.write(`virt-iscsi: test pause ${when} ${id}#${n} (pid ${process.pid})\n`);
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await new Promise<void>((resolve) => {
    const go = (): void => {
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(sig, go);
      resolve();
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, go);
  });
  clearInterval(keepAlive);
}

// ---- writing ----------------------------------------------------------------------------

export class Journal implements PlanJournal {
  private constructor(
    readonly file: string,
    private readonly earlierRuns: number,
  ) {}

  /** Starts (or continues, after a crash) the journal of `record`'s export. */
  static async begin(stateDir: string, record: ExportRecord, o: { op?: JournalOp; finish?: string } = {}): Promise<Journal> {
    const dir = journalDir(stateDir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = journalFile(stateDir, record.name);
    const before = await readJournal(stateDir, record.name).catch(() => undefined);
    const j = new Journal(file, before?.runs ?? 0);
    await j.append({ t: 'begin', at: new Date().toISOString(), pid: process.pid, record, ...(o.op && o.op !== 'export' ? { op: o.op } : {}), ...(o.finish ? { finish: o.finish } : {}) });
    await syncDir(dir);
    return j;
  }

  private async append(e: JournalEntry): Promise<void> {
    const fh = await open(this.file, 'a', 0o600);
    try {
      await fh.write(`${JSON.stringify(e)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async intent(step: Step): Promise<void> {
    await this.append({ t: 'intent', at: new Date().toISOString(), step: step.id ?? 'step', ...(step.host ? { host: step.host } : {}), title: step.title });
    await maybePause(step.id ?? 'step', 'before');
  }

  async done(step: Step): Promise<void> {
    await maybePause(step.id ?? 'step', 'after');
    await this.append({ t: 'done', at: new Date().toISOString(), step: step.id ?? 'step', ...(step.host ? { host: step.host } : {}) });
  }

  async undoing(step: Step): Promise<void> {
    await maybePause(`undo-${step.id ?? 'step'}`, 'before');
  }

  async undone(step: Step): Promise<void> {
    await this.append({ t: 'undone', at: new Date().toISOString(), step: step.id ?? 'step', ...(step.host ? { host: step.host } : {}) });
  }

  /** A piece the record does not name is about to be made (`before`), or was (`after`). */
  async piece(p: JournalPiece, when: 'before' | 'after'): Promise<void> {
    if (when === 'before') await this.append({ t: 'piece', at: new Date().toISOString(), piece: p });
    await maybePause(p.kind, when);
  }

  /** A paused domain runs again: written after the fact (a kill before it leaves the pause on record). */
  async resumed(host: string, vm: string): Promise<void> {
    await this.append({ t: 'piece', at: new Date().toISOString(), piece: { kind: 'paused', host, vm, resumed: true } });
  }

  /**
   * The run ended. Done: the records say all, the journal goes. Rolled back: it goes too,
   * unless an earlier run (that crashed) may have made pieces this run found in place and
   * so did not take back: then it stays, and `unexport` finishes.
   */
  async end(outcome: 'done' | 'rolled-back'): Promise<void> {
    await this.append({ t: 'end', at: new Date().toISOString(), outcome });
    if (outcome === 'done' || this.earlierRuns === 0) await rm(this.file, { force: true });
  }
}

// ---- reading ----------------------------------------------------------------------------

/** The journal of export `name`, or undefined when there is none (nothing was interrupted). */
export async function readJournal(stateDir: string, name: string): Promise<JournalState | undefined> {
  const file = journalFile(stateDir, name);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return parseJournal(file, name, text);
}

export function parseJournal(file: string, name: string, text: string): JournalState | undefined {
  const entries: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      entries.push(JSON.parse(line) as JournalEntry);
    } catch {
      break; // a line torn by the crash: nothing after it was written
    }
  }
  let state: JournalState | undefined;
  for (const e of entries) {
    switch (e.t) {
      case 'begin':
        state = {
          file,
          name,
          record: parseRecord(`${file} (begin)`, JSON.stringify(e.record)),
          runs: (state?.runs ?? 0) + 1,
          op: e.op === 'resize' ? 'resize' : 'export',
          // Printed by status as the fix: only ever the resize command that wrote it.
          ...(typeof e.finish === 'string' && e.op === 'resize' && /^virt-iscsi resize [^\x00-\x1f\x7f]+$/.test(e.finish) ? { finish: e.finish } : {}),
          pid: Number(e.pid),
          startedAt: String(e.at),
          open: state?.open ?? [],
          pieces: state?.pieces ?? [],
        };
        if (state.record.name !== name) throw new Error(`${file} is the journal of ${state.record.name}, not ${name}`);
        break;
      case 'intent':
        state?.open.push({ step: String(e.step), ...(e.host ? { host: String(e.host) } : {}), title: String(e.title), done: false });
        break;
      case 'done': {
        const i = lastIndex(state?.open ?? [], (x) => x.step === e.step && x.host === e.host && !x.done);
        if (i >= 0) state!.open[i]!.done = true;
        break;
      }
      case 'undone': {
        const i = lastIndex(state?.open ?? [], (x) => x.step === e.step && x.host === e.host);
        if (i >= 0) state!.open.splice(i, 1);
        break;
      }
      case 'piece':
        if (e.piece?.kind === 'controller' || e.piece?.kind === 'paused') state?.pieces.push(e.piece);
        break;
      case 'end':
        if (e.outcome === 'done') state = undefined;
        break;
    }
  }
  return state;
}

function lastIndex<T>(xs: readonly T[], f: (x: T) => boolean): number {
  for (let i = xs.length - 1; i >= 0; i--) if (f(xs[i]!)) return i;
  return -1;
}

/** Every journal left in the state dir: the exports that were interrupted. */
export async function listJournals(stateDir: string): Promise<{ journals: JournalState[]; unreadable: Array<{ file: string; error: string }> }> {
  const dir = journalDir(stateDir);
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { journals: [], unreadable: [] };
    throw e;
  }
  const out = { journals: [] as JournalState[], unreadable: [] as Array<{ file: string; error: string }> };
  for (const f of files) {
    const name = f.slice(0, -'.jsonl'.length);
    const file = posix.join(dir, f);
    try {
      checkExportName(name);
      const j = await readJournal(stateDir, name);
      if (j) out.journals.push(j);
    } catch (e) {
      out.unreadable.push({ file, error: (e as Error).message });
    }
  }
  return out;
}

export async function removeJournal(stateDir: string, name: string): Promise<void> {
  await rm(journalFile(stateDir, name), { force: true });
}

/** The process that wrote the journal still runs on this machine (then it is not interrupted, only busy). */
export function stillRunning(j: JournalState): boolean {
  if (!Number.isInteger(j.pid) || j.pid <= 0) return false;
  try {
    process.kill(j.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
