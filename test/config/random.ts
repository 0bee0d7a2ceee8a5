// Seeded pseudo-random values for round-trip tests (mulberry32): a failing case can be
// replayed from its seed.

export interface Rng {
  int(min: number, max: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
  word(alphabet: string, min: number, max: number): string;
}

export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r: Rng = {
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
    word: (alphabet, min, max) => {
      const chars = [...alphabet];
      let s = '';
      const n = r.int(min, max);
      for (let i = 0; i < n; i++) s += r.pick(chars);
      return s;
    },
  };
  return r;
}

export const LOWER = 'abcdefghijklmnopqrstuvwxyz';
export const ALNUM = `${LOWER}ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789`;

/** A valid-looking IQN. */
export function randomIqn(r: Rng): string {
  return `iqn.${r.int(2000, 2030)}-${String(r.int(1, 12)).padStart(2, '0')}.${r.word(LOWER, 2, 8)}.${r.word(LOWER, 2, 8)}:${r.word(`${LOWER}0123456789.-`, 1, 20)}`;
}
