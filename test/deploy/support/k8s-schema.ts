/**
 * Validation of rendered Kubernetes objects against the Kubernetes OpenAPI schemas, as compiled by
 * `kubernetes-models` (core kinds) and `@kubernetes-models/keda` / `@kubernetes-models/prometheus-operator` (CRDs).
 *
 * The compiled validators check types, required fields and enums but let unknown fields through, while the API
 * server (strict field validation, the kubectl default) refuses them. So every object is also type-checked by the
 * TypeScript compiler against the same models' interfaces: an object literal with a field the interface lacks is an
 * excess-property error, which catches misspelt or misplaced fields.
 */
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { ConfigMap, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import type { K8sObject } from './kustomize';

interface Model {
  validate(): void;
}
type ModelClass = new (data: never) => Model;

/** apiVersion/kind → the model class and the module that declares its TypeScript interface. */
const MODELS: Record<string, { model: ModelClass; module: string }> = {};
function register(model: ModelClass & { apiVersion: string; kind: string }, pkg: string): void {
  const path = model.apiVersion.includes('/') ? model.apiVersion : `v1`;
  MODELS[`${model.apiVersion}/${model.kind}`] = { model, module: `${pkg}/${path}/${model.kind}` };
}
for (const m of [ConfigMap, Secret, Service, ServiceAccount]) register(m as never, 'kubernetes-models');
for (const m of [
  Deployment,
  StatefulSet,
  HorizontalPodAutoscaler,
  PodDisruptionBudget,
  NetworkPolicy,
  Role,
  RoleBinding,
])
  register(m as never, 'kubernetes-models');
register(ScaledObject as never, '@kubernetes-models/keda');
register(ServiceMonitor as never, '@kubernetes-models/prometheus-operator');
register(PodMonitor as never, '@kubernetes-models/prometheus-operator');

export function objectId(o: K8sObject): string {
  return `${o.kind}/${o.metadata.name}`;
}

/** Schema errors of each object (by `Kind/name`); an unknown kind is an error too. */
export function validateSchemas(objects: readonly K8sObject[]): Record<string, string[]> {
  const errors: Record<string, string[]> = {};
  for (const o of objects) {
    const entry = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!entry) {
      errors[objectId(o)] = [`no schema registered for ${o.apiVersion} ${o.kind} (add its model to k8s-schema.ts)`];
      continue;
    }
    try {
      new entry.model(structuredClone(o) as never).validate();
    } catch (err) {
      errors[objectId(o)] = [err instanceof Error ? err.message : String(err)];
    }
  }
  return errors;
}

const ROOT = join(__dirname, '..', '..', '..');
const VIRTUAL = join(ROOT, 'test', 'deploy', 'support', '__rendered-manifests__.mts');

/**
 * Type-checks every object against its model's interface and returns the compiler's complaints by `Kind/name`
 * (excess properties, wrong types, missing required fields).
 */
export function typeCheckObjects(objects: readonly K8sObject[]): Record<string, string[]> {
  let text = '';
  const starts: { line: number; id: string }[] = [];
  objects.forEach((o, i) => {
    const entry = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!entry) return;
    starts.push({ line: text.split('\n').length - 1, id: objectId(o) });
    text += `import type { I${o.kind} as T${i} } from '${entry.module}';\n`;
    text += `export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};\n`;
  });
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  const getSource = host.getSourceFile.bind(host);
  host.fileExists = (f) => f === VIRTUAL || exists(f);
  host.readFile = (f) => (f === VIRTUAL ? text : read(f));
  host.getSourceFile = (f, lang, onError, create) =>
    f === VIRTUAL ? ts.createSourceFile(f, text, lang, true) : getSource(f, lang, onError, create);
  host.getCurrentDirectory = () => dirname(VIRTUAL);
  const program = ts.createProgram([VIRTUAL], options, host);
  const source = program.getSourceFile(VIRTUAL);
  const out: Record<string, string[]> = {};
  for (const d of ts.getPreEmitDiagnostics(program, source)) {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : 0;
    const owner = [...starts].reverse().find((s) => s.line <= line)?.id ?? '(file)';
    (out[owner] ??= []).push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  }
  return out;
}
