// rtslib-fb's saveconfig.json (what `targetcli saveconfig` writes and the
// target.service restores at boot), read into the parts we use. CHAP passwords are in
// that file; they are dropped here and never leave this function. Sample (targetcli-fb
// 2.1.53, abridged; the whole capture is test/fixtures/lio/saveconfig.json):
//
//   { "storage_objects": [ { "dev": "/var/lib/d1.img", "name": "vi_d1_lun1",
//       "plugin": "fileio", "size": 67108864, "write_back": true, "wwn": "SER0001" } ],
//     "targets": [ { "fabric": "iscsi", "wwn": "iqn.2024-01.test.lab:disk1",
//       "tpgs": [ { "tag": 1, "enable": true,
//         "attributes": { "authentication": 1, "generate_node_acls": 0, ... },
//         "luns": [ { "index": 1, "storage_object": "/backstores/fileio/vi_d1_lun1" } ],
//         "node_acls": [ { "node_wwn": "iqn.1993-08.org.debian:01:de888379e257",
//           "chap_userid": "labuser", "chap_password": "...", "chap_mutual_userid": "tgtuser",
//           "mapped_luns": [ { "index": 1, "tpg_lun": 1, "write_protect": false } ] } ],
//         "portals": [ { "ip_address": "127.0.0.1", "port": 3260 } ] } ] } ] }
import { ValidationError } from '../../errors.js';
import type { Portal } from '../../names/portal.js';

/** Where rtslib-fb saves (targetcli-fb >= 2.1.fb47), then where older versions did. */
export const SAVECONFIG_PATHS = ['/etc/rtslib-fb-target/saveconfig.json', '/etc/target/saveconfig.json'] as const;

export interface SavedStorageObject {
  plugin: string;
  name: string;
  path?: string;
  sizeBytes?: number;
  /** The unit serial number initiators read (VPD page 0x80). */
  wwn?: string;
  readonly?: boolean;
}

export interface SavedMappedLun {
  mappedLun: number;
  tpgLun: number;
  writeProtect: boolean;
}

export interface SavedAcl {
  initiator: string;
  chapUser?: string;
  chapMutualUser?: string;
  mappedLuns: SavedMappedLun[];
}

export interface SavedTpg {
  tag: number;
  enabled: boolean;
  attributes: Record<string, number | string>;
  chapUser?: string;
  chapMutualUser?: string;
  /** TPG LUN number -> "/backstores/PLUGIN/NAME". */
  luns: Array<{ lun: number; storageObject: string }>;
  acls: SavedAcl[];
  portals: Portal[];
}

export interface SavedTarget {
  iqn: string;
  tpgs: SavedTpg[];
}

export interface SavedConfig {
  storageObjects: SavedStorageObject[];
  targets: SavedTarget[];
}

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`saveconfig.json: ${where} is not an object`, 'saveconfig');
  return v as Json;
}

function list(v: unknown, where: string): Json[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ValidationError(`saveconfig.json: ${where} is not a list`, 'saveconfig');
  return v.map((x, i) => obj(x, `${where}[${i}]`));
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValidationError(`saveconfig.json: ${where} is not an integer`, 'saveconfig');
  return v;
}

/** Copies the optional string fields that are set (keeps `exactOptionalPropertyTypes` happy). */
function withOptional<T extends object>(base: T, extra: Record<string, string | number | boolean | undefined>): T {
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (base as Record<string, unknown>)[k] = v;
  return base;
}

// rtslib writes IPv6 portal addresses in brackets ("[::1]").
function portal(p: Json, where: string): Portal {
  const ip = str(p['ip_address']);
  if (!ip) throw new ValidationError(`saveconfig.json: ${where} has no ip_address`, 'saveconfig');
  return { host: ip.replace(/^\[(.*)\]$/, '$1'), port: num(p['port'], `${where}.port`) };
}

export function parseSaveconfig(text: string): SavedConfig {
  let root: Json;
  try {
    root = obj(JSON.parse(text), 'the document');
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    // JSON.parse quotes the text it choked on, line breaks and all: one line here.
    throw new ValidationError(`saveconfig.json is not JSON: ${(e as Error).message.replace(/\s+/g, ' ').slice(0, 200)}`, 'saveconfig');
  }
  const storageObjects = list(root['storage_objects'], 'storage_objects').map((so, i) =>
    withOptional<SavedStorageObject>(
      { plugin: str(so['plugin']) ?? '', name: str(so['name']) ?? '' },
      {
        path: str(so['dev']),
        sizeBytes: typeof so['size'] === 'number' ? num(so['size'], `storage_objects[${i}].size`) : undefined,
        wwn: str(so['wwn']),
        readonly: typeof so['readonly'] === 'boolean' ? so['readonly'] : undefined,
      },
    ),
  );
  const targets = list(root['targets'], 'targets')
    .filter((t) => t['fabric'] === 'iscsi')
    .map((t, ti) => ({
      iqn: str(t['wwn']) ?? '',
      tpgs: list(t['tpgs'], `targets[${ti}].tpgs`).map((g, gi) => {
        const where = `targets[${ti}].tpgs[${gi}]`;
        const attributes: Record<string, number | string> = {};
        for (const [k, v] of Object.entries(obj(g['attributes'] ?? {}, `${where}.attributes`))) {
          if (typeof v === 'number' || typeof v === 'string') attributes[k] = v;
        }
        return withOptional<SavedTpg>(
          {
            tag: num(g['tag'], `${where}.tag`),
            enabled: g['enable'] !== false,
            attributes,
            luns: list(g['luns'], `${where}.luns`).map((l, li) => ({
              lun: num(l['index'], `${where}.luns[${li}].index`),
              storageObject: str(l['storage_object']) ?? '',
            })),
            acls: list(g['node_acls'], `${where}.node_acls`).map((a, ai) =>
              withOptional<SavedAcl>(
                {
                  initiator: str(a['node_wwn']) ?? '',
                  mappedLuns: list(a['mapped_luns'], `${where}.node_acls[${ai}].mapped_luns`).map((m, mi) => ({
                    mappedLun: num(m['index'], `${where}.node_acls[${ai}].mapped_luns[${mi}].index`),
                    tpgLun: num(m['tpg_lun'], `${where}.node_acls[${ai}].mapped_luns[${mi}].tpg_lun`),
                    writeProtect: m['write_protect'] === true,
                  })),
                },
                { chapUser: str(a['chap_userid']), chapMutualUser: str(a['chap_mutual_userid']) },
              ),
            ),
            portals: list(g['portals'], `${where}.portals`).map((p, pi) => portal(p, `${where}.portals[${pi}]`)),
          },
          { chapUser: str(g['chap_userid']), chapMutualUser: str(g['chap_mutual_userid']) },
        );
      }),
    }));
  return { storageObjects, targets };
}
