// Types of controller.mjs (plain JavaScript so that it runs on Node with no build step).
export declare const DELETION_COST_ANNOTATION: 'controller.kubernetes.io/pod-deletion-cost';
export declare const BUSY_METRIC: 'gantry_worker_slots_busy';

export interface PodLike {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  status?: { podIP?: string; phase?: string };
}

export interface Settings {
  apiUrl: string;
  namespace: string;
  tokenFile: string;
  caFile: string;
  labelSelector: string;
  metricsPort: number;
  intervalMs: number;
  metricsTimeoutMs: number;
  healthPort: number;
}

export declare function parseBusySlots(text: string): number | undefined;
export declare function deletionCost(busy: number): string;
export declare function planPatches(
  pods: readonly PodLike[],
  busyByPod: ReadonlyMap<string, number>,
): { name: string; cost: string }[];
export declare function settingsFromEnv(env?: Record<string, string | undefined>): Settings;
export declare function reconcileOnce(settings: Settings): Promise<{ name: string; cost: string }[]>;
export declare function main(env?: Record<string, string | undefined>): Promise<void>;
