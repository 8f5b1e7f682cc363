/** The `/v1` routes of API.md §3 that this gateway serves, with an example path for each. */
export interface RouteCase {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** OpenAPI path template. */
  template: string;
  /** A concrete path. */
  path: string;
  admin: boolean;
  body?: unknown;
}

const ID = '01JTESTTESTTESTTESTTESTTES';

export const V1_ROUTES: RouteCase[] = [
  { method: 'POST', template: '/v1/jobs', path: '/v1/jobs', admin: false, body: { type: 'noop' } },
  { method: 'GET', template: '/v1/jobs', path: '/v1/jobs', admin: false },
  { method: 'GET', template: '/v1/jobs/{id}', path: `/v1/jobs/${ID}`, admin: false },
  { method: 'POST', template: '/v1/jobs/{id}/cancel', path: `/v1/jobs/${ID}/cancel`, admin: false },
  { method: 'POST', template: '/v1/jobs/{id}/retry', path: `/v1/jobs/${ID}/retry`, admin: false },
  {
    method: 'PUT',
    template: '/v1/jobs/{id}/priority',
    path: `/v1/jobs/${ID}/priority`,
    admin: false,
    body: { priority: 'high' },
  },
  { method: 'GET', template: '/v1/jobs/{id}/events', path: `/v1/jobs/${ID}/events`, admin: false },
  { method: 'POST', template: '/v1/batches', path: '/v1/batches', admin: false, body: { jobs: [{ type: 'noop' }] } },
  { method: 'GET', template: '/v1/batches/{id}', path: `/v1/batches/${ID}`, admin: false },
  { method: 'GET', template: '/v1/queue', path: '/v1/queue', admin: false },
  { method: 'GET', template: '/v1/queue/metrics', path: '/v1/queue/metrics', admin: false },
  { method: 'GET', template: '/v1/queue/events', path: '/v1/queue/events', admin: false },
  { method: 'POST', template: '/v1/queue/pause', path: '/v1/queue/pause', admin: true },
  { method: 'POST', template: '/v1/queue/resume', path: '/v1/queue/resume', admin: true },
  { method: 'POST', template: '/v1/queue/drain', path: '/v1/queue/drain', admin: true },
  { method: 'POST', template: '/v1/queue/clear', path: '/v1/queue/clear', admin: true },
  {
    method: 'PUT',
    template: '/v1/queue/config',
    path: '/v1/queue/config',
    admin: true,
    body: { maxConcurrentJobs: 4 },
  },
  { method: 'GET', template: '/v1/workers', path: '/v1/workers', admin: false },
  {
    method: 'POST',
    template: '/v1/workers/{id}/gpus/{uuid}/cordon',
    path: '/v1/workers/w1/gpus/GPU-11111111-2222-3333-4444-555555555555/cordon',
    admin: true,
  },
  {
    method: 'POST',
    template: '/v1/workers/{id}/gpus/{uuid}/uncordon',
    path: '/v1/workers/w1/gpus/GPU-11111111-2222-3333-4444-555555555555/uncordon',
    admin: true,
  },
  { method: 'GET', template: '/v1/concurrency/stats', path: '/v1/concurrency/stats', admin: false },
  { method: 'GET', template: '/v1/config', path: '/v1/config', admin: true },
  { method: 'GET', template: '/v1/whoami', path: '/v1/whoami', admin: false },
  { method: 'GET', template: '/v1/tenants', path: '/v1/tenants', admin: true },
  { method: 'GET', template: '/v1/tenants/me', path: '/v1/tenants/me', admin: false },
  { method: 'GET', template: '/v1/webhooks/failed', path: '/v1/webhooks/failed', admin: true },
  { method: 'POST', template: '/v1/webhooks/failed/{id}/replay', path: '/v1/webhooks/failed/123/replay', admin: true },
  {
    method: 'POST',
    template: '/v1/schedules',
    path: '/v1/schedules',
    admin: false,
    body: { name: 'n', cron: '0 0 1 1 *', job: { type: 'noop' } },
  },
  { method: 'GET', template: '/v1/schedules', path: '/v1/schedules', admin: false },
  { method: 'GET', template: '/v1/schedules/{id}', path: `/v1/schedules/${ID}`, admin: false },
  { method: 'DELETE', template: '/v1/schedules/{id}', path: `/v1/schedules/${ID}`, admin: false },
  { method: 'POST', template: '/v1/schedules/{id}/pause', path: `/v1/schedules/${ID}/pause`, admin: false },
  { method: 'POST', template: '/v1/schedules/{id}/resume', path: `/v1/schedules/${ID}/resume`, admin: false },
];
