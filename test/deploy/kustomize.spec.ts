/**
 * The test renderer (support/kustomize.ts) against the real kustomize in `kubectl kustomize`, for every overlay.
 * kubectl is not an npm package, so this comparison runs where kubectl is installed (it is on the project's
 * development machines); the renderer's own behaviour is pinned by the cases below everywhere.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { renderKustomization, type K8sObject } from './support/kustomize';

const DEPLOY = join(__dirname, '..', '..', 'deploy');
const OVERLAYS = ['production', 'cpu-only'];

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const haveKubectl = kubectl.status === 0;
const withKubectl = haveKubectl ? it : it.skip;

function byId(objects: readonly K8sObject[]): Map<string, unknown> {
  return new Map(
    objects.map((o) => [`${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`, o] as const),
  );
}

describe('test kustomize renderer', () => {
  withKubectl.each(OVERLAYS)('renders %s exactly like kubectl kustomize', (overlay) => {
    const r = spawnSync('kubectl', ['kustomize', join(DEPLOY, 'overlays', overlay)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const theirs = parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
    const ours = renderKustomization(join(DEPLOY, 'overlays', overlay));
    const a = byId(ours);
    const b = byId(theirs);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [id, object] of a) expect({ id, object }).toEqual({ id, object: b.get(id) });
  });

  it('merges containers and env by name, deletes with null, retags images, sets namespace and labels', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-kustomize-'));
    writeFileSync(
      join(dir, 'app.yaml'),
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: app }',
        'spec:',
        '  template:',
        '    spec:',
        '      nodeSelector: { gpu: "true" }',
        '      containers:',
        '        - name: app',
        '          image: registry:5000/team/app:1.0',
        '          env: [{ name: A, value: "1" }, { name: B, value: "2" }]',
        '          resources: { limits: { cpu: "1", nvidia.com/gpu: "1" } }',
        '        - { name: side, image: other:2 }',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'patch.yaml'),
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: app }',
        'spec:',
        '  template:',
        '    spec:',
        '      nodeSelector: null',
        '      containers:',
        '        - name: app',
        '          env: [{ name: B, value: "3" }, { name: C, value: "4" }]',
        '          resources: { limits: { nvidia.com/gpu: null } }',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'namespace: ns',
        'labels: [{ pairs: { team: a } }]',
        'resources: [app.yaml]',
        'patches: [{ path: patch.yaml }]',
        'images: [{ name: registry:5000/team/app, newName: mirror/app, newTag: "2.0" }]',
      ].join('\n'),
    );
    const [app] = renderKustomization(dir);
    expect(app).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'app', namespace: 'ns', labels: { team: 'a' } },
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'app',
                image: 'mirror/app:2.0',
                env: [
                  { name: 'B', value: '3' },
                  { name: 'C', value: '4' },
                  { name: 'A', value: '1' },
                ],
                resources: { limits: { cpu: '1' } },
              },
              { name: 'side', image: 'other:2' },
            ],
          },
        },
      },
    });
  });

  it('refuses kustomize features it does not implement instead of ignoring them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-kustomize-'));
    writeFileSync(join(dir, 'kustomization.yaml'), 'configMapGenerator: [{ name: x, literals: [a=b] }]\n');
    expect(() => renderKustomization(dir)).toThrow(/does not support "configMapGenerator"/);
  });
});
