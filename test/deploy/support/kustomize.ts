/**
 * A small kustomize renderer for the features deploy/ uses: `resources` (files and directories), `namespace`,
 * `labels` (metadata only), `images` and strategic-merge `patches` by file. It exists because the tests must render
 * the manifests on any machine, and neither kustomize nor kubectl is an npm package; where `kubectl` is installed,
 * kustomize.spec.ts checks that this renderer's output equals `kubectl kustomize`. Any other kustomization field
 * is refused rather than ignored, so a manifest change that needs more of kustomize fails loudly here.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  patches?: { path?: string; patch?: string; target?: unknown }[];
}

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);

/** Kinds that have no namespace (the ones a Gantry deployment could plausibly contain). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'StorageClass',
  'PersistentVolume',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
]);

/** List fields merged element by element (by this key) in a strategic merge patch; other lists are replaced. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
};

export function loadYamlDocuments(file: string): JsonObject[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: JsonObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as Json;
    if (value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${file}: a document is not a mapping`);
    out.push(value);
  }
  return out;
}

function asObject(doc: JsonObject, file: string): K8sObject {
  const meta = doc['metadata'];
  if (
    typeof doc['apiVersion'] !== 'string' ||
    typeof doc['kind'] !== 'string' ||
    !meta ||
    typeof meta !== 'object' ||
    Array.isArray(meta) ||
    typeof meta['name'] !== 'string'
  ) {
    throw new Error(`${file}: every resource needs apiVersion, kind and metadata.name`);
  }
  return doc as unknown as K8sObject;
}

/** Renders the kustomization in `dir` (like `kubectl kustomize dir`). */
export function renderKustomization(dir: string): K8sObject[] {
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
    .map((f) => join(dir, f))
    .find((f) => existsSync(f));
  if (!file) throw new Error(`${dir}: no kustomization.yaml`);
  const [doc] = loadYamlDocuments(file);
  const k = (doc ?? {}) as unknown as Kustomization;
  for (const field of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`${file}: the test renderer does not support "${field}"`);
  }

  const objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) objects.push(...renderKustomization(path));
    else objects.push(...loadYamlDocuments(path).map((d) => asObject(d, path)));
  }
  assertUnique(objects, file);

  for (const p of k.patches ?? []) {
    if (!p.path || p.patch !== undefined || p.target !== undefined) {
      throw new Error(`${file}: only patches given by path (strategic merge, target from the patch) are supported`);
    }
    const path = resolve(dir, p.path);
    for (const patch of loadYamlDocuments(path).map((d) => asObject(d, path))) {
      const target = objects.find((o) => sameId(o, patch));
      if (!target) throw new Error(`${path}: no resource ${patch.kind}/${patch.metadata.name} to patch`);
      strategicMerge(target as unknown as JsonObject, patch as unknown as JsonObject);
    }
  }

  for (const image of k.images ?? []) {
    for (const o of objects) for (const c of podContainers(o)) c.image = retag(c.image, image);
  }

  if (k.namespace) {
    for (const o of objects) {
      if (CLUSTER_SCOPED.has(o.kind)) continue;
      const previous = o.metadata.namespace;
      o.metadata.namespace = k.namespace;
      if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
        const subjects = (o['subjects'] ?? []) as { kind: string; namespace?: string }[];
        for (const s of subjects) {
          if (s.kind === 'ServiceAccount' && (s.namespace === undefined || s.namespace === previous)) {
            s.namespace = k.namespace;
          }
        }
      }
    }
  }

  for (const l of k.labels ?? []) {
    if (l.includeSelectors || l.includeTemplates) {
      throw new Error(`${file}: labels with includeSelectors/includeTemplates are not supported by the test renderer`);
    }
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...l.pairs };
  }
  return objects;
}

function sameId(a: K8sObject, b: K8sObject): boolean {
  const group = (v: string) => (v.includes('/') ? v.split('/')[0] : '');
  return a.kind === b.kind && a.metadata.name === b.metadata.name && group(a.apiVersion) === group(b.apiVersion);
}

function assertUnique(objects: K8sObject[], file: string): void {
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(id)) throw new Error(`${file}: ${id} is defined twice`);
    seen.add(id);
  }
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Kubernetes strategic merge patch, for maps, `null` deletions and the list merge keys above. */
export function strategicMerge(target: JsonObject, patch: JsonObject): void {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (value === null) {
      delete target[key];
    } else if (isObject(value) && isObject(current)) {
      strategicMerge(current, value);
    } else if (Array.isArray(value) && Array.isArray(current) && MERGE_KEYS[key]) {
      // As kustomize orders it: the patch's items first (merged into the originals they name), then the originals
      // the patch does not name.
      const mergeKey = MERGE_KEYS[key];
      const keyOf = (v: Json) => (isObject(v) ? v[mergeKey] : undefined);
      const merged = value.map((item) => {
        const existing = current.find((c) => keyOf(c) !== undefined && keyOf(c) === keyOf(item));
        if (isObject(existing) && isObject(item)) {
          strategicMerge(existing, item);
          return existing;
        }
        return structuredClone(item);
      });
      const named = new Set(value.map(keyOf));
      target[key] = [...merged, ...current.filter((c) => !named.has(keyOf(c)))];
    } else {
      target[key] = structuredClone(value);
    }
  }
}

/** The containers and init containers of a workload's pod template (or of a Pod). */
export function podContainers(o: K8sObject): { name: string; image: string; [k: string]: unknown }[] {
  const spec = podSpec(o);
  if (!spec) return [];
  return [...((spec['initContainers'] ?? []) as never[]), ...((spec['containers'] ?? []) as never[])];
}

/** The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job) or a Pod. */
export function podSpec(o: K8sObject): Record<string, unknown> | undefined {
  const spec = o['spec'] as Record<string, unknown> | undefined;
  if (!spec) return undefined;
  if (o.kind === 'Pod') return spec;
  const template = spec['template'] as { spec?: Record<string, unknown> } | undefined;
  return template?.spec;
}

function retag(image: string, rule: { name: string; newName?: string; newTag?: string; digest?: string }): string {
  const at = image.indexOf('@');
  const withoutDigest = at >= 0 ? image.slice(0, at) : image;
  const colon = withoutDigest.lastIndexOf(':');
  const hasTag = colon > withoutDigest.lastIndexOf('/');
  const name = hasTag ? withoutDigest.slice(0, colon) : withoutDigest;
  if (name !== rule.name) return image;
  const tag = hasTag ? withoutDigest.slice(colon + 1) : undefined;
  const newName = rule.newName ?? name;
  if (rule.digest) return `${newName}@${rule.digest}`;
  const newTag = rule.newTag ?? tag;
  return newTag ? `${newName}:${newTag}` : newName;
}
