import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseYamlSubset } from '../../src/util/yaml-subset.js';
import { ValidationError } from '../../src/errors.js';

test('stack-file YAML: mappings, sequences of mappings, scalars, flow lists, comments', () => {
  const doc = [
    '# a stack',
    '---',
    'defaults:',
    '  storage: ssh://root@stor1   # trailing comment',
    '  hypervisor: local',
    'exports:',
    '  - name: web1-data',
    '    image: /srv/iscsi/web1.img',
    '    readonly: false',
    '    lun: 2',
    '    allow: [iqn.1993-08.org.debian:01:a, "10.0.0.0/24", \'x,y\']',
    "  - name: 'it''s'",
    '    image: "/srv/iso/debian #12.iso"',
    '    note: a#b',
    '    nothing:',
    '    opts:',
    '      - a',
    '      -',
    '        nested: ~',
    'top:',
    '- x',
    '- "y\\n"',
  ].join('\n');
  assert.deepEqual(parseYamlSubset(doc), {
    defaults: { storage: 'ssh://root@stor1', hypervisor: 'local' },
    exports: [
      { name: 'web1-data', image: '/srv/iscsi/web1.img', readonly: false, lun: 2, allow: ['iqn.1993-08.org.debian:01:a', '10.0.0.0/24', 'x,y'] },
      { name: "it's", image: '/srv/iso/debian #12.iso', note: 'a#b', nothing: null, opts: ['a', { nested: null }] },
    ],
    top: ['x', 'y\n'],
  });
});

test('stack-file YAML: a document starting with { is JSON', () => {
  assert.deepEqual(parseYamlSubset('{"exports": [{"name": "a"}]}'), { exports: [{ name: 'a' }] });
});

test('stack-file YAML: what the subset does not read is refused with the line number', () => {
  const cases: Array<[string, RegExp]> = [
    ['a: &x 1', /line 1: anchors and aliases/],
    ['a: *x', /line 1: anchors and aliases/],
    ['a: !!str 1', /line 1: tags/],
    ['a: |\n  text', /line 1: multi-line scalars/],
    ['a: {b: 1}', /line 1: flow mappings/],
    ['a:\n\tb: 1', /line 2: indent with spaces, not tabs/],
    ['a: 1\na: 2', /line 2: key "a" is given twice/],
    ['a:\n  b: 1\n c: 2', /line 3: unexpected indentation/],
    ['- a\nb: 1', /line 2: unexpected "b: 1"/],
    ['a: "open', /line 1: unterminated double-quoted string/],
    ['a: [x, [y]]', /line 1: a \[list\] holds only non-empty scalars/],
    ['just text', /line 1: expected "key: value"/],
    ['  a: 1', /line 1: the first line must not be indented/],
    ['{"a": }', /not valid JSON/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseYamlSubset(text, 'stack.yaml'), (e: unknown) => e instanceof ValidationError && re.test(e.message) && e.message.startsWith('stack.yaml'), text);
  }
});
