// A stand-in for `streamlm run`'s HTTP endpoint: serves serving/ui/ at /ui
// and fixed JSON and Prometheus text for the routes the dashboard polls.
// Used by dashboard_test.mjs (page logic without the binary) and by hand
// while working on the page:  node tests/ui/mock_server.mjs [port]
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const UI_DIR = path.resolve(here, '../../serving/ui');

const T0 = Date.parse('2026-12-01T12:00:00Z');

// Four decisions, newest first, shaped like evaluator/evaluator.cc writes
// them; the newest has no metrics or rules (a hand rollback, say).
export function fixtureDecisions() {
  const estimate = (mean, lo, hi, tokens) => ({mean, ci95: [lo, hi], sequences: 12, tokens});
  const cmp = (delta) => ({candidate: estimate(4.1, 4.0, 4.2, 300), champion: estimate(4.2, 4.1, 4.3, 300), delta});
  const rules = (ev, ad, fo) => [
    {name: 'evidence', metric: 'stream_tokens', observed: 120, threshold: 40, passed: ev},
    {name: 'adaptation', metric: 'stream_loss_delta', observed: -0.05, threshold: -0.0, passed: ad},
    {name: 'forgetting', metric: 'base_loss_delta', observed: 0.02, threshold: 0.5, passed: fo},
  ];
  return [
    {id: 'dec-000004', time: '2026-12-01T12:04:00.000Z', time_ms: T0 + 240000,
      candidate: 'snap-000004', champion: 'snap-000004', verdict: 'rolled_back',
      reason: 'rolled back by hand', duration_s: 0},
    {id: 'dec-000003', time: '2026-12-01T12:03:00.000Z', time_ms: T0 + 180000,
      candidate: 'snap-000004', champion: 'snap-000002', verdict: 'promoted',
      rules: rules(true, true, true),
      metrics: {stream_loss: cmp(estimate(-0.21, -0.3, -0.12, 420)),
        base_loss: cmp(estimate(0.04, -0.01, 0.09, 800))},
      reason: 'promoted: stream loss -0.2100 nats/token', duration_s: 0.42},
    {id: 'dec-000002', time: '2026-12-01T12:02:00.000Z', time_ms: T0 + 120000,
      candidate: 'snap-000003', champion: 'snap-000002', verdict: 'rejected',
      rules: rules(true, false, true),
      metrics: {stream_loss: cmp(estimate(0.03, -0.02, 0.08, 300)),
        base_loss: cmp(estimate(0.01, -0.03, 0.05, 800))},
      reason: 'rejected: adaptation: stream loss changed by +0.0300 nats/token, needs < -0.0000',
      duration_s: 0.37},
    {id: 'dec-000001', time: '2026-12-01T12:01:00.000Z', time_ms: T0 + 60000,
      candidate: 'snap-000002', champion: 'snap-000001', verdict: 'held',
      rules: rules(false, false, true),
      metrics: {stream_loss: cmp(estimate(-0.4, -0.9, 0.1, 20)),
        base_loss: cmp(estimate(0.02, -0.02, 0.06, 800))},
      reason: 'held: only 20 held-out stream tokens, need 40 before judging adaptation',
      duration_s: 0.3},
  ];
}

export function fixtureSnapshots() {
  const snap = (id, parent, step, aliases) => ({
    id, created_ms: T0 + step * 1000, origin: parent ? 'learner' : 'bootstrap',
    model_config: {family: 'gpt'},
    lineage: {parent, ranges: [], records_trained: step * 4, records_heldout: step,
      records_rejected: 0, tokens_trained: step * 128, step},
    metrics: {}, aliases,
  });
  return [snap('snap-000001', '', 0, 'previous'), snap('snap-000002', 'snap-000001', 15, ''),
    snap('snap-000003', 'snap-000002', 30, ''), snap('snap-000004', 'snap-000002', 45, 'champion')];
}

// Prometheus text as common/metrics.cc renders it, plus one latency histogram
// (e2e) whose percentiles are worked out by hand in dashboard_test.mjs. The
// other serving histograms are left out on purpose: the page must show "—".
export function fixtureMetrics(tick) {
  return [
    '# TYPE streamlm_records_rejected_total counter',
    'streamlm_records_rejected_total{reason="bad_json"} 3',
    'streamlm_records_rejected_total{reason="too_short"} 7',
    'streamlm_records_rejected_total{reason="invalid_utf8"} 1',
    '# TYPE streamlm_tokens_trained_total counter',
    `streamlm_tokens_trained_total ${1000 + 500 * tick}`,
    '# TYPE streamlm_records_trained_total counter',
    `streamlm_records_trained_total ${100 + 10 * tick}`,
    '# TYPE streamlm_learner_steps_total counter',
    `streamlm_learner_steps_total ${10 + tick}`,
    '# TYPE streamlm_learner_loss gauge',
    `streamlm_learner_loss ${(5 - 0.01 * tick).toFixed(3)}`,
    '# TYPE streamlm_e2e_request_latency_seconds histogram',
    // Every poll adds 10 requests in (0.1, 0.2] and 10 in (0.2, 0.5], so the
    // percentiles are the same over any window.
    'streamlm_e2e_request_latency_seconds_bucket{le="0.1"} 0',
    `streamlm_e2e_request_latency_seconds_bucket{le="0.2"} ${10 * (tick + 1)}`,
    `streamlm_e2e_request_latency_seconds_bucket{le="0.5"} ${20 * (tick + 1)}`,
    `streamlm_e2e_request_latency_seconds_bucket{le="+Inf"} ${20 * (tick + 1)}`,
    `streamlm_e2e_request_latency_seconds_sum ${5.1 * (tick + 1)}`,
    `streamlm_e2e_request_latency_seconds_count ${20 * (tick + 1)}`,
    '# TYPE streamlm_num_requests_running gauge',
    'streamlm_num_requests_running 2',
    '',
  ].join('\n');
}

const TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8'};

// Starts the mock on 127.0.0.1:`port` (0 = any). With `token` set, the admin
// routes answer 401 unless given `Authorization: Bearer <token>`.
// Resolves to {url, server, requests: [{path, auth}], close()}.
export function startMockServer({port = 0, token = ''} = {}) {
  let tick = 0;
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push({path: url.pathname, auth: req.headers.authorization || ''});
    const json = (status, body) => {
      res.writeHead(status, {'Content-Type': 'application/json'});
      res.end(JSON.stringify(body));
    };
    if (url.pathname.startsWith('/v1/admin/') && token &&
        req.headers.authorization !== 'Bearer ' + token) {
      return json(401, {error: {message: 'admin API needs a token', type: 'authentication_error'}});
    }
    if (url.pathname === '/ui' || url.pathname === '/ui/' || url.pathname.startsWith('/ui/')) {
      const rel = url.pathname.replace(/^\/ui\/?/, '') || 'index.html';
      const file = path.resolve(UI_DIR, rel);
      if (!file.startsWith(UI_DIR + path.sep) || !fs.existsSync(file)) return json(404, {error: {}});
      res.writeHead(200, {'Content-Type': TYPES[path.extname(file)] || 'text/plain'});
      return res.end(fs.readFileSync(file));
    }
    if (url.pathname === '/v1/models') {
      return json(200, {object: 'list', data: [{id: 'snap-000004', object: 'model', owned_by: 'streamlm'}]});
    }
    if (url.pathname === '/v1/admin/decisions') {
      const limit = Number(url.searchParams.get('limit') || 100);
      return json(200, fixtureDecisions().slice(0, limit));
    }
    if (url.pathname === '/v1/admin/snapshots') return json(200, fixtureSnapshots());
    if (url.pathname === '/metrics') {
      res.writeHead(200, {'Content-Type': 'text/plain; version=0.0.4'});
      return res.end(fixtureMetrics(tick++));
    }
    return json(404, {error: {message: 'not found'}});
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const addr = server.address();
      resolve({url: `http://127.0.0.1:${addr.port}`, server, requests,
        close: () => new Promise((r) => server.close(r))});
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const m = await startMockServer({port: Number(process.argv[2] || 8089)});
  console.log(`mock StreamLM at ${m.url}/ui`);
}
