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

// metrics.feedback of a decision (DESIGN.md "Decision record"), by hand:
// dec-000003 scored all four sets, dec-000002 the held-out set alone.
// E = {mean, ci95, n}; the numbers are checked in dashboard_test.mjs.
const E = (mean, lo, hi, n) => ({mean, ci95: [lo, hi], n});
export function fixtureFeedback(which) {
  if (which === 'dec-000003') {
    return {
      reference: 'snap-000001',
      trained: {records: 120, users: {alice: 40, bob: 80}},
      sets: {
        heldout: {records: 50, pairs: 40, ratings: 5, corrections: 5,
          preference_accuracy: {candidate: E(0.81, 0.70, 0.90, 40), champion: E(0.52, 0.40, 0.64, 40),
            reference: E(0.5, 0.38, 0.62, 40), delta: E(0.29, 0.15, 0.43, 40)},
          reward_margin: {candidate: E(0.9, 0.5, 1.3, 40), champion: E(0.1, -0.2, 0.4, 40),
            delta: E(0.8, 0.4, 1.2, 40)},
          correction_logprob: {candidate: E(-1.2, -1.5, -0.9, 5), champion: E(-1.4, -1.7, -1.1, 5),
            reference: E(-1.45, -1.75, -1.15, 5), delta: E(0.2, 0.05, 0.35, 5)},
          rating_reward: {candidate: E(0.3, 0.1, 0.5, 5), champion: E(0.2, 0.0, 0.4, 5),
            delta: E(0.1, -0.05, 0.25, 5)}},
        established: {records: 30, pairs: 24, ratings: 3, corrections: 3,
          preference_accuracy: {candidate: E(0.75, 0.58, 0.88, 24), champion: E(0.54, 0.37, 0.71, 24),
            reference: E(0.5, 0.33, 0.67, 24), delta: E(0.21, 0.02, 0.4, 24)}},
        new: {records: 20, pairs: 16, ratings: 2, corrections: 2,
          preference_accuracy: {candidate: E(0.875, 0.66, 0.97, 16), champion: E(0.5, 0.28, 0.72, 16),
            reference: E(0.5, 0.28, 0.72, 16), delta: E(0.375, 0.12, 0.62, 16)}},
        trusted: {records: 3, pairs: 0, ratings: 1, corrections: 2,
          correction_logprob: {candidate: E(-2.0, -2.5, -1.5, 2), champion: E(-1.9, -2.4, -1.4, 2),
            reference: E(-1.9, -2.4, -1.4, 2), delta: E(-0.1, -0.3, 0.1, 2)},
          rating_reward: {candidate: E(0.3, 0.3, 0.3, 1), champion: E(0.2, 0.2, 0.2, 1),
            delta: E(0.1, 0.1, 0.1, 1)}},
      },
    };
  }
  return {
    reference: 'snap-000001',
    trained: {records: 60, users: {bob: 60}},
    sets: {heldout: {records: 12, pairs: 10, ratings: 1, corrections: 1,
      preference_accuracy: {candidate: E(0.5, 0.24, 0.76, 10), champion: E(0.6, 0.31, 0.83, 10),
        reference: E(0.5, 0.24, 0.76, 10), delta: E(-0.1, -0.35, 0.15, 10)},
      reward_margin: {candidate: E(0.05, -0.3, 0.4, 10), champion: E(0.2, -0.1, 0.5, 10),
        delta: E(-0.15, -0.4, 0.1, 10)}}},
  };
}

const feedbackRules = (improvement, established, trusted, contradiction) => [
  {name: 'feedback_improvement', metric: 'heldout_preference_accuracy_delta',
    observed: improvement, ci95: improvement > 0 ? [0.15, 0.43] : [-0.35, 0.15], threshold: 0,
    passed: improvement > 0},
  {name: 'feedback_established', metric: 'established_preference_accuracy_delta',
    observed: established, threshold: -0.05, passed: established >= -0.05},
  {name: 'feedback_trusted', metric: 'trusted_correction_logprob_delta', observed: trusted,
    ci95: [-0.3, 0.1], threshold: -0.5, passed: trusted >= -0.5},
  {name: 'feedback_contradiction', metric: 'feedback_contradictions', observed: contradiction,
    threshold: 10, passed: contradiction <= 10},
];

// Four decisions, newest first, shaped like evaluator/evaluator.cc writes
// them; the newest is a rollback by the monitor (evaluator/rollback.cc: its
// live stream loss rose, champion − previous, CI above the tolerance); the two
// in the middle carry human-feedback metrics (fixtureFeedback), the oldest
// an empty metrics.feedback.
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
      candidate: 'snap-000004', champion: 'snap-000005', verdict: 'rolled_back',
      trigger: 'monitor',
      rules: [
        {name: 'serving_errors', metric: 'error_rate_increase', observed: 0.001, threshold: 0.02,
          passed: true, ci95: [-0.004, 0.006]},
        {name: 'negative_feedback', metric: 'negative_feedback_rate_increase', observed: 0,
          threshold: 0.1, passed: true},
        {name: 'live_stream_loss', metric: 'stream_loss_increase', observed: 0.31, threshold: 0.05,
          passed: false, ci95: [0.22, 0.4]},
      ],
      metrics: {rollback: {stream_loss: {champion: estimate(4.5, 4.4, 4.6, 900),
        previous: estimate(4.19, 4.1, 4.3, 900), delta: estimate(0.31, 0.22, 0.4, 900)}}},
      reason: 'rolled back snap-000005 to snap-000004: the loss on 40 held-out stream records ' +
        '(900 tokens) since the promotion rose by +0.3100 nats/token (95% CI [+0.2200, +0.4000] ' +
        'wholly above the tolerance 0.0500)',
      duration_s: 0.8},
    {id: 'dec-000003', time: '2026-12-01T12:03:00.000Z', time_ms: T0 + 180000,
      candidate: 'snap-000004', champion: 'snap-000002', verdict: 'promoted', reference: 'snap-000001',
      rules: rules(true, true, true).concat(feedbackRules(0.29, 0.21, -0.1, 3)),
      metrics: {stream_loss: cmp(estimate(-0.21, -0.3, -0.12, 420)),
        base_loss: cmp(estimate(0.04, -0.01, 0.09, 800)), feedback: fixtureFeedback('dec-000003')},
      reason: 'promoted: stream loss -0.2100 nats/token', duration_s: 0.42},
    {id: 'dec-000002', time: '2026-12-01T12:02:00.000Z', time_ms: T0 + 120000,
      candidate: 'snap-000003', champion: 'snap-000002', verdict: 'rejected', reference: 'snap-000001',
      rules: rules(true, false, true).concat(feedbackRules(-0.1, 0, 0, 0).slice(0, 1)),
      metrics: {stream_loss: cmp(estimate(0.03, -0.02, 0.08, 300)),
        base_loss: cmp(estimate(0.01, -0.03, 0.05, 800)), feedback: fixtureFeedback('dec-000002')},
      reason: 'rejected: adaptation: stream loss changed by +0.0300 nats/token, needs < -0.0000',
      duration_s: 0.37},
    {id: 'dec-000001', time: '2026-12-01T12:01:00.000Z', time_ms: T0 + 60000,
      candidate: 'snap-000002', champion: 'snap-000001', verdict: 'held',
      rules: rules(false, false, true),
      metrics: {stream_loss: cmp(estimate(-0.4, -0.9, 0.1, 20)),
        base_loss: cmp(estimate(0.02, -0.02, 0.06, 800)),
        // No feedback yet: what the evaluator writes then (no feedback row).
        feedback: {reference: 'snap-000001', trained: {records: 0, users: {}}, sets: {}}},
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
    // Human feedback counters (the learner's); names as in the feedback spec.
    '# TYPE streamlm_feedback_consumed_total counter',
    'streamlm_feedback_consumed_total 150',
    '# TYPE streamlm_feedback_trained_total counter',
    'streamlm_feedback_trained_total 120',
    '# TYPE streamlm_feedback_heldout_total counter',
    'streamlm_feedback_heldout_total 20',
    '# TYPE streamlm_feedback_rejected_total counter',
    'streamlm_feedback_rejected_total{reason="bad_field"} 2',
    'streamlm_feedback_rejected_total{reason="missing_field"} 6',
    '# TYPE streamlm_feedback_limited_total counter',
    'streamlm_feedback_limited_total 2',
    '# TYPE streamlm_feedback_user_total counter',
    'streamlm_feedback_user_total{user="alice"} 40',
    'streamlm_feedback_user_total{user="bob"} 80',
    'streamlm_feedback_user_total{user="carol"} 12',
    '# TYPE streamlm_feedback_contradictions_total counter',
    'streamlm_feedback_contradictions_total 3',
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
