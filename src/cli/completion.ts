// Shell completion scripts made from the commander program itself: every command,
// subcommand and flag comes from the program's own definitions, so a new flag completes
// without touching this file. Values complete by what they name, in one table: domain
// names (`virsh list --all --name`), pool names (`virsh pool-list --all --name`), export
// names (the local export records, $XDG_STATE_HOME/virt-iscsi/exports/NAME.json), files,
// or a flag's own choices. zsh gets the same script through its bash compatibility
// (bashcompinit).
import type { Command, Option } from 'commander';

/** What a value names: the shell function that lists candidates (file: the shell's own file completion). */
type ValueKind = 'vm' | 'pool' | 'export' | 'file' | 'none';

/** Flags whose values name something, by flag; the rest take free text. */
const FLAG_KINDS: Record<string, ValueKind> = {
  '--vm': 'vm',
  '--pool': 'pool',
  '--file': 'file',
  '--identity': 'file',
  '--known-hosts': 'file',
  '--chap-secret-file': 'file',
  '--mutual-chap-secret-file': 'file',
  '--conf-dir': 'file',
  '--host-records': 'file',
  '--by-path': 'file',
  '--ceph-conf': 'file',
};

/** Positional arguments by command path and argument name ("*" for any command). */
const ARG_KINDS: Array<[path: string, arg: string, kind: ValueKind]> = [
  ['unexport', 'name', 'export'],
  ['status', 'names', 'export'],
  ['resize', 'name', 'export'],
  ['repair', 'names', 'export'],
  ['pool delete', 'name', 'pool'],
  ['pool volumes', 'name', 'pool'],
  ['*', 'vm', 'vm'],
  ['*', 'image', 'file'],
  ['*', 'path', 'file'],
  ['*', 'in', 'file'],
  ['*', 'out', 'file'],
  ['*', 'file', 'file'],
];

interface Spec {
  path: string;
  subs: string[];
  flags: string[];
  /** FLAG -> kind or "choice:a,b,c" */
  valued: Record<string, string>;
  /** One kind per positional argument; the last repeats when variadic. */
  args: string[];
  variadic: boolean;
}

function optionValue(o: Option): string | undefined {
  if (!o.required && !o.optional) return undefined;
  if (o.argChoices?.length) return `choice:${o.argChoices.join(',')}`;
  return FLAG_KINDS[o.long ?? ''] ?? 'none';
}

function specs(program: Command): Spec[] {
  const out: Spec[] = [];
  const walk = (cmd: Command, path: string): void => {
    const flags = ['--help'];
    const valued: Record<string, string> = {};
    for (const o of cmd.options) {
      for (const f of [o.long, o.short]) {
        if (!f) continue;
        flags.push(f);
        const v = optionValue(o);
        if (v) valued[f] = v;
      }
    }
    if (path === '') flags.push('--version');
    const args = cmd.registeredArguments.map((a) => {
      if (a.argChoices?.length) return `choice:${a.argChoices.join(',')}`;
      const hit = ARG_KINDS.find(([p, n]) => (p === path || p === '*') && n === a.name());
      return hit?.[2] ?? 'none';
    });
    const variadic = cmd.registeredArguments.at(-1)?.variadic ?? false;
    out.push({ path, subs: cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]), flags, valued, args, variadic });
    for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, '');
  return out;
}

/** Single-quoted for sh: nothing in it is expanded. */
const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** The completion script for `shell`, for the program `program` (named by its name()). */
export function completionScript(program: Command, shell: CompletionShell): string {
  const name = program.name();
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const all = specs(program);
  const table = (arr: string, entries: Array<[string, string]>): string =>
    `${arr}=(\n${entries.map(([k, v]) => `  [${q(k)}]=${q(v)}`).join('\n')}\n)`;
  const lines = [
    `# ${name} ${shell} completion, made by \`${name} completion ${shell}\` from the commands it has.`,
    `# Load it with: source <(${name} completion ${shell})   (or save it where your shell reads completions)`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit', 'autoload -U +X compinit && compinit -u'] : []),
    `typeset -gA ${fn}_subs ${fn}_flags ${fn}_valued ${fn}_args`,
    '# Keys are @ and the command path (@, @pool, @pool create); flags that take a value: @PATH|FLAG.',
    table(`${fn}_subs`, all.map((s) => [`@${s.path}`, s.subs.join(' ')])),
    table(`${fn}_flags`, all.map((s) => [`@${s.path}`, s.flags.join(' ')])),
    table(`${fn}_valued`, all.flatMap((s) => Object.entries(s.valued).map(([f, v]): [string, string] => [`@${s.path}|${f}`, v]))),
    table(`${fn}_args`, all.map((s) => [`@${s.path}`, `${s.args.join(' ')}${s.variadic ? '...' : ''}`])),
    `
# Candidates of one kind, one a line.
${fn}_list() {
  case "$1" in
    vm) command -v virsh >/dev/null && timeout 3 virsh -q -c "\${${fn}_connect:-qemu:///system}" list --all --name 2>/dev/null ;;
    pool) command -v virsh >/dev/null && timeout 3 virsh -q -c "\${${fn}_connect:-qemu:///system}" pool-list --all --name 2>/dev/null ;;
    export)
      local dir f
      case "\${XDG_STATE_HOME:-}" in /*) dir=$XDG_STATE_HOME ;; *) dir=$HOME/.local/state ;; esac
      for f in "$dir"/virt-iscsi/exports/*.json; do
        [ -e "$f" ] || continue
        f=\${f##*/}
        printf '%s\\n' "\${f%.json}"
      done ;;
    choice:*) printf '%s\\n' \${1#choice:} | tr ',' '\\n' ;;
  esac
}

${fn}() {
  # Keys go through a variable: zsh takes quotes inside a subscript literally. (Not "path":
  # zsh ties that name to PATH.)
  local cur=\${COMP_WORDS[COMP_CWORD]} cmdpath='' expect='' w i=1 npos=0 key
  ${fn}_connect=''
  COMPREPLY=()
  # Walk the words before the cursor: subcommands extend the path, flags may take the next word.
  while [ "$i" -lt "$COMP_CWORD" ]; do
    w=\${COMP_WORDS[i]}
    if [ -n "$expect" ]; then
      [ "$expect" = --connect ] && ${fn}_connect=$w
      expect=''
    elif [[ $w == -* ]]; then
      key="@$cmdpath|$w"
      [[ $w != *=* && -n \${${fn}_valued[$key]+x} ]] && expect=$w
    elif key="@$cmdpath" && [[ " \${${fn}_subs[$key]} " == *" $w "* ]]; then
      cmdpath=\${cmdpath:+$cmdpath }$w
    else
      npos=$((npos + 1))
    fi
    i=$((i + 1))
  done
  local kind='' c
  key="@$cmdpath"
  if [ -n "$expect" ]; then
    key="@$cmdpath|$expect"
    kind=\${${fn}_valued[$key]}
  elif [[ $cur == -* ]]; then
    kind=words:\${${fn}_flags[$key]}
  elif [ -n "\${${fn}_subs[$key]}" ]; then
    kind=words:\${${fn}_subs[$key]}
  else
    # Unquoted on purpose: the kinds are words without spaces (zsh splits here too, as
    # bashcompinit runs completion functions in sh emulation).
    local -a args
    args=(\${${fn}_args[$key]})
    if [ "$npos" -lt "\${#args[@]}" ]; then
      kind=\${args[npos]}
    elif [ "\${#args[@]}" -gt 0 ] && [[ \${args[\${#args[@]}-1]} == *... ]]; then
      kind=\${args[\${#args[@]}-1]}
    fi
    kind=\${kind%...}
  fi
  case "$kind" in
    ''|none) ;;
    file)
      type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
      while IFS= read -r c; do COMPREPLY+=("$c"); done < <(compgen -f -- "$cur") ;;
    words:*)
      for c in \${kind#words:}; do [[ $c == "$cur"* ]] && COMPREPLY+=("$c"); done ;;
    *)
      while IFS= read -r c; do
        [[ $c == "$cur"* ]] && COMPREPLY+=("$c")
      done < <(${fn}_list "$kind") ;;
  esac
  return 0
}
complete -F ${fn} ${name}
`,
  ];
  return lines.join('\n');
}
