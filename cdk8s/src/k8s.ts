/**
 * Small builders for the Kubernetes objects the charts share: metadata and
 * labels, the hardened security contexts, topology spread, disruption
 * budgets, and adding plain or Istio objects to a chart. Objects are plain
 * JSON (cdk8s ApiObject); these types cover the fields flatline sets, so a
 * typo in one is a compile error.
 */
import { ApiObject, type Chart } from 'cdk8s';
import { DEV_SEED, type Settings } from './settings.ts';

/** Labels and annotations. */
export type StringMap = Readonly<Record<string, string>>;

/** Object metadata as flatline writes it. */
export interface Meta {
  readonly name: string;
  readonly namespace?: string;
  readonly labels?: StringMap;
  readonly annotations?: StringMap;
}

/** A container probe (grpc, httpGet, tcpSocket or exec) with its timings. */
export interface Probe {
  readonly grpc?: { readonly port: number; readonly service?: string };
  readonly httpGet?: { readonly path: string; readonly port: number | string; readonly scheme?: 'HTTP' | 'HTTPS' };
  readonly tcpSocket?: { readonly port: number | string };
  readonly exec?: { readonly command: readonly string[] };
  readonly initialDelaySeconds?: number;
  readonly periodSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
}

/** An environment variable: a literal, or a reference to a Secret key or a pod field. */
export type EnvVar =
  | { readonly name: string; readonly value: string }
  | { readonly name: string; readonly valueFrom: { readonly secretKeyRef: { readonly name: string; readonly key: string } } }
  | { readonly name: string; readonly valueFrom: { readonly fieldRef: { readonly fieldPath: string } } };

/** A container as flatline writes it. */
export interface Container {
  readonly name: string;
  readonly image: string;
  readonly imagePullPolicy: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly workingDir?: string;
  readonly env?: readonly EnvVar[];
  readonly ports?: ReadonlyArray<{ readonly name: string; readonly containerPort: number; readonly protocol: 'TCP' }>;
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly startupProbe?: Probe;
  readonly resources: { readonly requests: StringMap; readonly limits: StringMap };
  readonly securityContext: ReturnType<typeof containerSecurity>;
  readonly volumeMounts?: ReadonlyArray<{ readonly name: string; readonly mountPath: string; readonly readOnly?: boolean; readonly subPath?: string }>;
}

/** A pod volume: an emptyDir, or files from a Secret or a ConfigMap. */
export type Volume =
  | { readonly name: string; readonly emptyDir: { readonly sizeLimit?: string; readonly medium?: 'Memory' } }
  | { readonly name: string; readonly secret: { readonly secretName: string; readonly defaultMode: number } }
  | { readonly name: string; readonly configMap: { readonly name: string; readonly defaultMode: number } };

/** The labels of every flatline object; app.kubernetes.io/name selects a workload's pods. */
export function labelsOf(name: string, component: string): StringMap {
  return { 'app.kubernetes.io/name': name, 'app.kubernetes.io/component': component, 'app.kubernetes.io/part-of': 'flatline' };
}

/** The selector of a workload's pods (a subset of labelsOf that never changes, as selectors must not). */
export function selectorOf(name: string): StringMap {
  return { 'app.kubernetes.io/name': name };
}

/** Metadata in the settings' namespace. */
export function meta(name: string, component: string, s: Settings, extra: { annotations?: StringMap; labels?: StringMap } = {}): Meta {
  return {
    name,
    namespace: s.namespace,
    labels: { ...labelsOf(name, component), ...extra.labels },
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
  };
}

/**
 * The marks of an object whose content comes from the secret seed: its
 * profile as a label (`kubectl get secret -l flatline.dev/profile=dev` finds
 * what must never reach a shared cluster) and, in the dev profile, what the
 * seed is worth as an annotation.
 */
export function seedMarks(s: Settings): { labels: StringMap; annotations?: StringMap } {
  if (s.profile === 'production') return { labels: { 'flatline.dev/profile': 'production' } };
  const publicSeed = s.seed === DEV_SEED;
  return {
    labels: { 'flatline.dev/profile': 'dev' },
    annotations: {
      'flatline.dev/secret-seed': publicSeed ? 'insecure-dev-seed' : 'dev-profile-seed',
      'flatline.dev/warning': publicSeed
        ? `derived from the public development seed ${JSON.stringify(DEV_SEED)}: anyone can recompute it; never apply to a cluster others can reach`
        : 'made by the dev profile: never apply to a cluster others can reach',
    },
  };
}

/** Adds a plain Kubernetes object to chart; its construct id is kind-name, unique per chart. */
export function addObject(chart: Chart, object: { apiVersion: string; kind: string; metadata: Meta } & Record<string, unknown>): ApiObject {
  return new ApiObject(chart, `${object.kind}-${object.metadata.name}`, object as ConstructorParameters<typeof ApiObject>[2]);
}

/** Adds an @kubernetes-models object (Istio's CRDs) to chart. */
export function addModel(chart: Chart, model: { kind: string; metadata?: { name?: string } | undefined; toJSON(): unknown }): ApiObject {
  return new ApiObject(chart, `${model.kind}-${model.metadata?.name ?? 'unnamed'}`, model.toJSON() as ConstructorParameters<typeof ApiObject>[2]);
}

/** The hardened container context every flatline container runs with (writable paths are emptyDir volumes). */
export function containerSecurity(uid: number) {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  } as const;
}

/** The pod context: non-root, volumes group-owned by uid (so Secret files mode 0440 are readable). */
export function podSecurity(uid: number) {
  return { runAsNonRoot: true, runAsUser: uid, runAsGroup: uid, fsGroup: uid, seccompProfile: { type: 'RuntimeDefault' } } as const;
}

/**
 * Spread a workload's pods one per node (hard) and across zones (soft). A
 * cordoned or drained node is tainted, and nodeTaintsPolicy Honor leaves it
 * out of the count, so the evicted replica may start on a remaining node
 * instead of waiting for the drained one.
 */
export function spreadOf(name: string) {
  const labelSelector = { matchLabels: selectorOf(name) };
  return [
    { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', nodeTaintsPolicy: 'Honor', labelSelector },
    { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
  ];
}

/** A PodDisruptionBudget that lets a drain evict one of the workload's pods at a time. */
export function disruptionBudget(name: string, component: string, s: Settings) {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(name, component, s),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorOf(name) } },
  };
}

/** A ServiceAccount whose token is not mounted (no flatline workload talks to the Kubernetes API). */
export function serviceAccount(name: string, component: string, s: Settings) {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, component, s), automountServiceAccountToken: false };
}

/** A writable emptyDir. */
export function emptyDir(name: string, sizeLimit = '64Mi'): Volume {
  return { name, emptyDir: { sizeLimit } };
}
