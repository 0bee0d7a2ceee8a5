// The one place fast-xml-parser is configured. Its defaults drop attributes and turn
// numeric-looking text into numbers (a serial "0012" would become 12), so every
// document goes through these settings and nothing else.
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { ValidationError } from '../errors.js';

/** Attributes appear as `@name` keys; text of an element with attributes as `#text`. */
export const ATTR = '@';
export const TEXT = '#text';

/** A parsed element: attributes, child elements (always arrays where listed) and text. */
export type XmlNode = { [key: string]: string | XmlNode | XmlNode[] | string[] | undefined };

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  textNodeName: TEXT,
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
  suppressBooleanAttributes: false,
  processEntities: true,
});

/**
 * Serialises a plain object tree. Values are escaped by the builder (&, <, >, ', ").
 * Keys whose value is undefined are left out, so optional parts just stay unset.
 */
export function buildXml(doc: Record<string, unknown>): string {
  return builder.build(prune(doc)) as string;
}

function prune(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(prune);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = prune(x);
    return out;
  }
  return v;
}

/**
 * Parses XML text into a tree of XmlNode. `arrays` names the element tag names
 * that may repeat (e.g. 'host', 'disk'): they are always arrays, even with one item.
 */
export function parseXml(text: string, arrays: readonly string[] = []): XmlNode {
  const set = new Set(arrays);
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: ATTR,
    textNodeName: TEXT,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
    htmlEntities: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    commentPropName: false,
    isArray: (name, _path, _isLeaf, isAttribute) => !isAttribute && set.has(name),
  });
  let out: unknown;
  try {
    out = parser.parse(text, true);
  } catch (e) {
    throw new ValidationError(`not well-formed XML: ${(e as Error).message}`);
  }
  return out as XmlNode;
}

/** The child element `name` as an object (an empty element parses to ''). */
export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  const v = node?.[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v === '' ? {} : { [TEXT]: v };
  if (Array.isArray(v)) return children(node, name)[0];
  return v;
}

/** Every child element `name`, as objects. */
export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  const v = node?.[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (typeof x === 'string' ? (x === '' ? {} : { [TEXT]: x }) : x));
}

/** An attribute's value. */
export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[ATTR + name];
  return typeof v === 'string' ? v : undefined;
}

/** An element's text: `<name>text</name>` parses to a string, or to {#text} with attributes. */
export function text(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[name];
  if (typeof v === 'string') return v;
  if (v && !Array.isArray(v) && typeof v[TEXT] === 'string') return v[TEXT] as string;
  if (v && !Array.isArray(v)) return '';
  return undefined;
}

/**
 * A document parsed with its order kept (children as a list of one-key objects, attributes
 * under ':@'): for the rare document virt-iscsi hands back to libvirt whole (the domain a
 * migration sends, with one element changed), where the partial models above would lose
 * what they do not know.
 */
export type OrderedNode = Record<string, unknown> & { ':@'?: Record<string, string> };

const orderedOptions = {
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  textNodeName: TEXT,
  preserveOrder: true,
} as const;

export function parseOrdered(text: string): OrderedNode[] {
  const parser = new XMLParser({ ...orderedOptions, parseTagValue: false, parseAttributeValue: false, trimValues: true, processEntities: true, htmlEntities: true, ignoreDeclaration: true, ignorePiTags: true, commentPropName: false });
  try {
    return parser.parse(text, true) as OrderedNode[];
  } catch (e) {
    throw new ValidationError(`not well-formed XML: ${(e as Error).message}`);
  }
}

export function buildOrdered(doc: readonly OrderedNode[]): string {
  return new XMLBuilder({ ...orderedOptions, format: true, indentBy: '  ', suppressEmptyNode: true, suppressBooleanAttributes: false, processEntities: true }).build(doc) as string;
}
