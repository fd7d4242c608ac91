// The operator dashboard (/ui, serving/ui/) in headless Chromium.
//
// 1. Against mock_server.mjs (fixed JSON and Prometheus text): the decision
//    chart holds the fixture's decisions, percentiles worked out by hand from
//    the fixture's histogram buckets, absent metrics shown as "—", rejects by
//    reason, lineage order, and the admin-token flow on 401.
// 2. End to end against the real binary: `streamlm run` with the tiny config,
//    ~600 text records produced with kcat, at least 2 decisions awaited; the
//    page's decision chart holds exactly the decisions /v1/admin/decisions
//    returns (ids), the header names /v1/models' champion, no console or page
//    errors; a full-page screenshot goes to build/artifacts/dashboard.png.
//
// Needs Chromium (Debian package `chromium`) and playwright-core (build/npm,
// scripts/npm_deps.sh). Without them the tests skip, or fail when CI=true.
// Environment (CTest sets these): STREAMLM_NODE_MODULES, STREAMLM_BINARY,
// STREAMLM_SOURCE_DIR, STREAMLM_ARTIFACTS_DIR, STREAMLM_CHROMIUM.
//   node --test tests/ui/dashboard_test.mjs
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, spawnSync} from 'node:child_process';
import {createRequire} from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import {fileURLToPath} from 'node:url';

import {fixtureDecisions, startMockServer} from './mock_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.STREAMLM_SOURCE_DIR || path.resolve(here, '../..');
const BUILD_DIR = path.join(SOURCE_DIR, 'build');
const BINARY = process.env.STREAMLM_BINARY || path.join(BUILD_DIR, 'apps/streamlm');
const ARTIFACTS = process.env.STREAMLM_ARTIFACTS_DIR || path.join(BUILD_DIR, 'artifacts');
const CHROMIUM = process.env.STREAMLM_CHROMIUM || '/usr/bin/chromium';
const IN_CI = process.env.CI === 'true';

// ------------------------------------------------------------ dependencies

function loadPlaywright() {
  const dirs = [process.env.STREAMLM_NODE_MODULES, ...(process.env.NODE_PATH || '').split(path.delimiter),
    path.join(BUILD_DIR, 'npm/node_modules')].filter(Boolean);
  for (const dir of dirs) {
    try {
      return createRequire(path.join(dir, 'noop.js'))('playwright-core');
    } catch (e) {
      // try the next place
    }
  }
  return null;
}

const playwright = loadPlaywright();
const missing = [];
if (!playwright) missing.push('playwright-core (run scripts/npm_deps.sh)');
if (!fs.existsSync(CHROMIUM)) missing.push(`chromium at ${CHROMIUM} (apt-get install chromium)`);

// Skips `t` (or fails it under CI) when something it needs is absent.
function requireDeps(t, extra = []) {
  const absent = missing.concat(extra);
  if (!absent.length) return true;
  const msg = 'dashboard test needs ' + absent.join(', ');
  if (IN_CI) assert.fail(msg + ' (CI=true: a missing dependency fails)');
  t.skip(msg);
  return false;
}

// ------------------------------------------------------------ browser helpers

async function openBrowser() {
  return playwright.chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

// A page that records console errors and uncaught exceptions in `errors`.
async function openPage(browser, errors) {
  const page = await browser.newPage({viewport: {width: 1440, height: 900}});
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url || ''})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return page;
}

// Waits until the page has completed `n` polls after now.
async function waitForUpdates(page, n, timeoutMs = 30000) {
  const since = await page.evaluate(() => (window.streamlmDashboard ? window.streamlmDashboard.lastUpdate : 0));
  let seen = since;
  for (let i = 0; i < n; ++i) {
    await page.waitForFunction((s) => window.streamlmDashboard && window.streamlmDashboard.lastUpdate > s,
        seen, {timeout: timeoutMs});
    seen = await page.evaluate(() => window.streamlmDashboard.lastUpdate);
  }
}

// What the decision chart holds: ids of each dataset's points, oldest first.
function chartIds(page) {
  return page.evaluate(() => window.streamlmDashboard.charts.decisions.data.datasets.map(
      (ds) => ds.data.map((p) => p.id)));
}

const text = (page, sel) => page.locator(sel).innerText();

async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, {recursive: true});
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({path: file, fullPage: true});
  console.log(`dashboard screenshot: ${file}`);
  return file;
}

// ------------------------------------------------------------ 1. fixture server

// Human feedback as mock_server.mjs fixtureFeedback / fixtureMetrics give it:
// the preference-accuracy chart, each decision's feedback row, the counters.
async function checkFeedback(page) {
  // Held-out preference accuracy per decision, oldest first (dec-000001 and
  // the rollback dec-000004 have none).
  const acc = await page.evaluate(() => window.streamlmDashboard.charts.feedback.data.datasets.map(
      (ds) => ds.data.map((p) => [p.id, p.y, p.lo, p.hi])));
  assert.deepEqual(acc, [
    [['dec-000001', null, NaN, NaN], ['dec-000002', 0.5, 0.24, 0.76], ['dec-000003', 0.81, 0.70, 0.90],
      ['dec-000004', null, NaN, NaN]],
    [['dec-000001', null, NaN, NaN], ['dec-000002', 0.6, 0.31, 0.83], ['dec-000003', 0.52, 0.40, 0.64],
      ['dec-000004', null, NaN, NaN]],
  ]);
  assert.equal(await page.locator('#feedback-chart-empty').isVisible(), false);

  // A feedback row follows each decision whose metrics.feedback has something
  // to show (dec-000001's is empty), and only those.
  const order = await page.locator('#decisions-body > tr').evaluateAll(
      (trs) => trs.map((tr) => tr.dataset.id || 'feedback:' + tr.dataset.for));
  assert.deepEqual(order, ['dec-000004', 'dec-000003', 'feedback:dec-000003', 'dec-000002',
    'feedback:dec-000002', 'dec-000001']);

  const row = page.locator('#decisions-body tr.fb-row[data-for="dec-000003"]');
  assert.equal(await row.locator('.fb-reference').innerText(), 'snap-000001');
  assert.match(await row.locator('.fb-head').innerText(), /trained on 120 records since the champion \(bob 80, alice 40\)/);
  const sets = await row.locator('table.fb-sets tbody tr').evaluateAll((trs) => trs.map((tr) => {
    const cell = (c) => tr.querySelector('td.' + c).firstChild.textContent;
    return [tr.dataset.set, cell('acc-candidate'), cell('acc-champion'), cell('acc-reference'),
      cell('acc-delta'), cell('margin'), cell('correction'), cell('rating')];
  }));
  assert.deepEqual(sets, [
    ['heldout', '0.81 [0.70, 0.90]', '0.52 [0.40, 0.64]', '0.50', '+0.29 [+0.15, +0.43]',
      '+0.800 [+0.400, +1.200]', '+0.200 [+0.050, +0.350]', '+0.100 [−0.050, +0.250]'],
    ['established', '0.75 [0.58, 0.88]', '0.54 [0.37, 0.71]', '0.50', '+0.21 [+0.02, +0.40]', '—', '—', '—'],
    ['new', '0.88 [0.66, 0.97]', '0.50 [0.28, 0.72]', '0.50', '+0.38 [+0.12, +0.62]', '—', '—', '—'],
    ['trusted', '—', '—', '—', '—', '—', '−0.100 [−0.300, +0.100]', '+0.100 [+0.100, +0.100]'],
  ]);
  // Counts and the candidate / champion values under the deltas.
  const heldout = row.locator('table.fb-sets tr[data-set="heldout"]');
  assert.match(await heldout.locator('td').nth(1).innerText(), /^50\s+40 pairs · 5 ratings · 5 corrections$/);
  assert.match(await heldout.locator('td.correction').innerText(), /cand −1\.200 · champ −1\.400 · ref −1\.450$/);
  const rules = (r) => r.locator('.fbrule').evaluateAll((chips) => chips.map((c) => [c.dataset.rule,
    c.classList.contains('pass'), c.textContent]));
  assert.deepEqual(await rules(row), [
    ['feedback_improvement', true, '✓ feedback_improvement: +0.290 [+0.150, +0.430] vs 0'],
    ['feedback_established', true, '✓ feedback_established: +0.210 vs −0.050'],
    ['feedback_trusted', true, '✓ feedback_trusted: −0.100 [−0.300, +0.100] vs −0.500'],
    ['feedback_contradiction', true, '✓ feedback_contradiction: 3 vs 10'],
  ]);
  const rejected = page.locator('#decisions-body tr.fb-row[data-for="dec-000002"]');
  assert.deepEqual(await rules(rejected), [
    ['feedback_improvement', false, '✗ feedback_improvement: −0.100 [−0.350, +0.150] vs 0']]);
  // The reference snapshot also shows under candidate → champion.
  assert.deepEqual(await page.locator('#decisions-body tr[data-id] .reference').allInnerTexts(),
      ['reference snap-000001', 'reference snap-000001', 'reference snap-000001']);

  // The counters panel (fixtureMetrics).
  for (const [id, value] of [['#fb-consumed', '150'], ['#fb-trained', '120'], ['#fb-heldout', '20'],
    ['#fb-limited', '2'], ['#fb-contradictions', '3']]) {
    assert.equal(await text(page, id), value, id);
  }
  const list = (id) => page.locator(id + ' li').evaluateAll((lis) => lis.map(
      (li) => [li.querySelector('.k').textContent, li.querySelector('.n').textContent]));
  assert.deepEqual(await list('#fb-rejected'), [['missing_field', '6'], ['bad_field', '2']]);
  assert.equal(await text(page, '#fb-rejected-total'), '8 in total');
  assert.deepEqual(await list('#fb-users'), [['bob', '80'], ['alice', '40'], ['carol', '12']]);
}

test('dashboard renders the fixture data', {timeout: 120000}, async (t) => {
  if (!requireDeps(t)) return;
  const mock = await startMockServer();
  const browser = await openBrowser();
  try {
    const errors = [];
    const page = await openPage(browser, errors);
    await page.goto(mock.url + '/ui');
    await waitForUpdates(page, 2);  // two /metrics samples: rates can be computed

    const expectedIds = fixtureDecisions().map((d) => d.id).reverse();  // oldest first
    assert.deepEqual(await chartIds(page), [expectedIds, expectedIds]);
    const points = await page.evaluate(() => window.streamlmDashboard.charts.decisions.data.datasets[0].data
        .map((p) => [p.y, p.lo, p.hi, p.verdict]));
    // Stream-loss deltas and CIs of dec-000001..4 as in mock_server.mjs; the
    // rollback's is its live stream loss, champion − previous.
    assert.deepEqual(points, [[-0.4, -0.9, 0.1, 'held'], [0.03, -0.02, 0.08, 'rejected'],
      [-0.21, -0.3, -0.12, 'promoted'], [0.31, 0.22, 0.4, 'rolled_back']]);
    // The rollback is also marked across the chart; the gate's threshold
    // lines still come from the newest gate decision (dec-000003).
    const plugin = await page.evaluate(() => {
      const o = window.streamlmDashboard.charts.decisions.options.plugins.streamlmCiBars;
      return {markers: o.markers.map((m) => [m.x, m.label]),
        thresholds: o.thresholds.map((t) => t.value)};
    });
    assert.deepEqual(plugin.markers, [[3, 'rollback']]);
    assert.deepEqual(plugin.thresholds, [0, 0.5]);
    assert.equal(await text(page, '#champion-id'), 'snap-000004');

    // e2e buckets {0.1: 0, 0.2: 10, 0.5: 20, +Inf: 20} (times the poll count,
    // cumulative or over the last minute alike): p50 is rank 10, the top
    // of the (0.1, 0.2] bucket = 200 ms; p95 is rank 19, 9/10 of the way
    // through (0.2, 0.5] = 0.2 + 0.3 * 0.9 = 470 ms.
    assert.equal(await text(page, '#kpi-e2e'), '200 ms / 470 ms');
    assert.match(await text(page, '#kpi-e2e-sub'), /last min$/);
    // 20 requests per 2 s poll.
    const rps = Number((await text(page, '#kpi-rps')).split(' ')[0]);
    assert.ok(rps > 4 && rps < 40, `requests/s ${rps}`);
    // No such histograms in the fixture.
    for (const id of ['#kpi-ttft', '#kpi-tpot', '#kpi-queue', '#kpi-fresh', '#kpi-gen-tps']) {
      assert.equal(await text(page, id), '—', id);
    }
    assert.equal(await text(page, '#kpi-running'), '2 running');
    assert.match(await text(page, '#kpi-loss'), /^4\.9\d\d$/);
    // The mock adds 500 trained tokens per /metrics request, one per 2 s poll.
    const tps = Number(await text(page, '#kpi-train-tps'));
    assert.ok(tps > 100 && tps < 1000, `learner tokens/s ${tps}`);

    const rejects = await page.evaluate(() => {
      const c = window.streamlmDashboard.charts.rejects;
      return [c.data.labels, c.data.datasets[0].data];
    });
    assert.deepEqual(rejects, [['too_short', 'bad_json', 'invalid_utf8'], [7, 3, 1]]);

    // Lineage: champion first, then its ancestors; the rejected snap-000003 is not on it.
    const lineage = await page.locator('#lineage .snap').allInnerTexts();
    assert.deepEqual(lineage, ['snap-000004', 'snap-000002', 'snap-000001']);

    const rows = await page.locator('#decisions-body tr[data-id]').evaluateAll(
        (trs) => trs.map((tr) => [tr.dataset.id, tr.querySelector('.badge').textContent,
          tr.querySelectorAll('.rule.fail').length]));
    // dec-000002 fails adaptation and feedback_improvement (the feedback
    // rules fold into one chip here; its feedback row lists them).
    assert.deepEqual(rows, [['dec-000004', 'rolled back', 1], ['dec-000003', 'promoted', 0],
      ['dec-000002', 'rejected', 2], ['dec-000001', 'held', 2]]);
    const feedbackChips = await page.locator('#decisions-body tr[data-id] .rule.feedback').allInnerTexts();
    assert.deepEqual(feedbackChips, ['✓ feedback 4/4', '✗ feedback 0/1']);
    assert.equal(await text(page, '#kpi-swaps'), '1 promoted · 1 rejected · 1 held · 1 rolled back');
    // The rollback row stands out and its failed rule's chip carries the interval.
    assert.equal(await page.locator('#decisions-body tr[data-id="dec-000004"]').getAttribute('class'),
        'rolled-back');
    assert.match(await page.locator('#decisions-body tr[data-id="dec-000004"] .rule.fail')
        .getAttribute('title'), /stream_loss_increase: observed 0\.3100 \[\+0\.2200, \+0\.4000\], threshold 0\.0500/);

    await checkFeedback(page);

    // The test view is read-only.
    const mutated = await page.evaluate(() => {
      try {
        window.streamlmDashboard.decisions.push({});
      } catch (e) {
        // frozen
      }
      try {
        window.streamlmDashboard = null;
      } catch (e) {
        // getter only
      }
      return window.streamlmDashboard.decisions.length;
    });
    assert.equal(mutated, 4);
    assert.deepEqual(errors, []);
    await screenshot(page, 'dashboard_mock.png');
  } finally {
    await browser.close();
    await mock.close();
  }
});

test('dashboard asks for the admin token on 401 and then uses it', {timeout: 120000}, async (t) => {
  if (!requireDeps(t)) return;
  const mock = await startMockServer({token: 's3cret'});
  const browser = await openBrowser();
  try {
    const errors = [];
    const page = await openPage(browser, errors);
    await page.goto(mock.url + '/ui');
    await waitForUpdates(page, 1);
    assert.equal(await page.locator('#token-form').isVisible(), true);
    assert.equal(await page.evaluate(() => window.streamlmDashboard.decisions.length), 0);
    // Public routes still render.
    assert.equal(await text(page, '#champion-id'), 'snap-000004');

    await page.fill('#token-input', 's3cret');
    await page.click('#token-form button');
    await page.waitForFunction(() => window.streamlmDashboard.decisions.length === 4, null, {timeout: 10000});
    assert.equal(await page.locator('#token-form').isVisible(), false);
    assert.equal(await page.evaluate(() => window.localStorage.getItem('streamlm.adminToken')), 's3cret');
    const admin = mock.requests.filter((r) => r.path.startsWith('/v1/admin/'));
    assert.ok(admin.some((r) => r.auth === 'Bearer s3cret'), 'token sent after it was entered');
    // The only console errors allowed are Chromium's reports of the 401s.
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
  } finally {
    await browser.close();
    await mock.close();
  }
});

// ------------------------------------------------------------ 2. real binary

// tests/util/stream_text.h StreamSentence / StreamRecord, in JS.
function streamSentence(i) {
  const subjects = ['the kafka broker', 'the learner', 'the evaluator', 'the serving endpoint',
    'the replay buffer'];
  const verbs = ['reads', 'writes', 'checks', 'promotes', 'stores'];
  const objects = ['a new snapshot', 'the stream offsets', 'every record', 'the champion model',
    'a token block'];
  return `entry ${i}: ${subjects[i % 5]} ${verbs[Math.floor(i / 5) % 5]} ${i % 13} copies of ` +
      `${objects[Math.floor(i / 25) % 5]} after ${(i * 37) % 101} seconds while the stream ` +
      `keeps flowing past mark ${i % 7}.`;
}
const streamRecord = (i) => JSON.stringify({text: streamSentence(i), id: `doc-${i}`});

// Starts `streamlm run`; resolves once its banner named the kafka and http addresses.
function startStreamlm(dataDir, logFile) {
  const log = fs.openSync(logFile, 'w');
  const proc = spawn(BINARY, ['run', '--config', path.join(SOURCE_DIR, 'tests/data/tiny.yaml'),
    '--data-dir', dataDir, '--learner.snapshot-every-steps', '15'], {stdio: ['ignore', 'pipe', log]});
  // Never leave the server behind, even when the runner cancels the test.
  const killOnExit = () => proc.kill('SIGKILL');
  process.once('exit', killOnExit);
  proc.once('exit', () => process.removeListener('exit', killOnExit));
  const ready = new Promise((resolve, reject) => {
    let kafka = '';
    const lines = readline.createInterface({input: proc.stdout});
    const timer = setTimeout(() => reject(new Error('no banner from streamlm run in 300 s')), 300000);
    lines.on('line', (line) => {
      let m = /^\s+kafka\s+(\S+)/.exec(line);
      if (m) kafka = m[1];
      m = /^\s+http\s+(http:\/\/[^\s:]+:\d+)/.exec(line);
      if (m && kafka) {
        clearTimeout(timer);
        resolve({kafka, http: m[1]});
      }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`streamlm run exited early (code ${code}, signal ${signal})`));
    });
  });
  return {proc, ready};
}

async function stopProcess(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
  await exited;
  clearTimeout(timer);
}

async function getJson(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('dashboard shows what streamlm run decides', {timeout: 570000}, async (t) => {
  const extra = [];
  if (!fs.existsSync(BINARY)) extra.push(`the streamlm binary at ${BINARY}`);
  if (spawnSync('kcat', ['-V']).status !== 0) extra.push('kcat');
  if (!requireDeps(t, extra)) return;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamlm-ui-'));
  const logFile = path.join(tmp, 'stderr.log');
  const {proc, ready} = startStreamlm(path.join(tmp, 'store'), logFile);
  const logTail = () => fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
  let browser = null;
  try {
    let ep;
    try {
      ep = await ready;
    } catch (e) {
      assert.fail(`${e.message}\n${logTail()}`);
    }
    // Text the tiny config keeps, plus two records the cleaner rejects.
    const lines = ['{not json', '{"body": "no text"}'];
    for (let i = 0; i < 600; ++i) lines.push(streamRecord(i));
    const kcat = spawnSync('kcat', ['-P', '-b', ep.kafka, '-t', 'streamlm.text'],
        {input: lines.join('\n') + '\n', timeout: 60000});
    assert.equal(kcat.status, 0, `kcat failed: ${kcat.stderr}`);

    const deadline = Date.now() + 240000;
    let decisions = [];
    while (decisions.length < 2 && Date.now() < deadline) {
      await sleep(1000);
      decisions = await getJson(ep.http + '/v1/admin/decisions?limit=200');
    }
    assert.ok(decisions.length >= 2, `only ${decisions.length} decisions after 240 s\n${logTail()}`);
    // A little traffic, so the serving cards and chart have something to show.
    const complete = async (n) => {
      for (let i = 0; i < n; ++i) {
        const res = await fetch(ep.http + '/v1/completions', {method: 'POST',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({prompt: 'the learner', max_tokens: 8})});
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
    };
    await complete(4);

    browser = await openBrowser();
    const errors = [];
    const page = await openPage(browser, errors);
    await page.goto(ep.http + '/ui');
    for (let i = 0; i < 3; ++i) {
      await complete(3);
      await waitForUpdates(page, 1);
    }

    // The learner keeps producing decisions, so compare at a quiet moment:
    // the API answers the same before and after reading the page.
    let last = null;
    let matched = false;
    for (let i = 0; i < 20 && !matched; ++i) {
      await complete(2);
      const before = (await getJson(ep.http + '/v1/admin/decisions?limit=200')).map((d) => d.id);
      const champBefore = (await getJson(ep.http + '/v1/models')).data[0].id;
      await waitForUpdates(page, 1);
      const onChart = await chartIds(page);
      const champOnPage = await text(page, '#champion-id');
      const after = (await getJson(ep.http + '/v1/admin/decisions?limit=200')).map((d) => d.id);
      const champAfter = (await getJson(ep.http + '/v1/models')).data[0].id;
      const expected = before.slice().reverse();  // the chart runs oldest to newest
      last = {before, after, onChart, champBefore, champAfter, champOnPage};
      if (JSON.stringify(before) !== JSON.stringify(after) || champBefore !== champAfter) continue;
      assert.deepEqual(onChart, [expected, expected], 'decision chart holds the API decisions');
      assert.equal(champOnPage, champBefore, 'header shows /v1/models champion');
      matched = true;
    }
    assert.ok(matched, `the API never held still: ${JSON.stringify(last)}`);
    assert.ok(last.before.length >= 2);
    const firstRow = await page.locator('#decisions-body tr').first().getAttribute('data-id');
    assert.equal(firstRow, last.before[0], 'table starts with the newest decision');
    assert.notEqual(await text(page, '#kpi-loss'), '—', 'learner loss is shown');
    const lineage = await page.locator('#lineage .snap').allInnerTexts();
    assert.ok(lineage.includes(last.champBefore), `lineage shows the champion: ${lineage}`);
    assert.deepEqual(errors, [], 'no console or page errors');
    await screenshot(page, 'dashboard.png');
  } finally {
    if (browser) await browser.close();
    await stopProcess(proc);
    fs.rmSync(tmp, {recursive: true, force: true});
  }
});
