// OpenSSH host patterns (ssh_config `Host`, known_hosts host lists): `*` matches any
// run of characters, `?` exactly one, a leading `!` negates. Host names compare
// case-insensitively, as OpenSSH lowercases both sides.

/** True when `text` matches one glob `pattern` (no negation). */
export function matchGlob(pattern: string, text: string): boolean {
  const p = pattern.toLowerCase();
  const t = text.toLowerCase();
  // Iterative wildcard match with backtracking to the last `*`.
  let pi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = ti;
    } else if (star !== -1) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/**
 * Matches `text` against a pattern list as OpenSSH's match_pattern_list does:
 * 'negated' when a `!pattern` matches (the whole list then fails), 'match' when
 * a positive pattern matches, 'none' otherwise.
 */
export function matchPatternList(patterns: readonly string[], text: string): 'match' | 'negated' | 'none' {
  let matched = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    if (!matchGlob(negated ? raw.slice(1) : raw, text)) continue;
    if (negated) return 'negated';
    matched = true;
  }
  return matched ? 'match' : 'none';
}
