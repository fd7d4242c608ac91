// StreamLM operator dashboard (served at /ui; see serving/README.md).
// Polls the serving endpoint every POLL_MS and redraws. Every source may be
// missing (an older server, a metric not yet observed): its fields show "—".
// Exposes a read-only view for tests: window.streamlmDashboard =
//   {decisions: [...newest first, as the API returned them],
//    charts: {decisions, feedback, learner, serving, rejects} (Chart.js instances),
//    lastUpdate: ms since epoch of the last completed poll (0 before)}.
(function () {
  'use strict';

  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const HISTORY_MS = 10 * 60 * 1000;  // time-series charts keep 10 minutes
  const RATE_WINDOW_MS = 10 * 1000;   // counters -> rates over about 10 s
  const QUANTILE_WINDOW_MS = 60 * 1000;  // histogram percentiles over the last minute
  const TOKEN_KEY = 'streamlm.adminToken';
  const VERDICT_COLORS = {  // dashboard.css has the same
    promoted: '#16a34a', rejected: '#dc2626', held: '#d97706', rolled_back: '#7c3aed',
  };
  const OTHER_COLOR = '#64748b';

  const state = {
    decisions: [],
    snapshots: null,       // array, or null when unavailable
    championId: null,
    metrics: null,         // parsed /metrics of the last poll, or null
    samples: [],           // [{t, metrics}] for rates and windowed percentiles
    series: {loss: [], trainTps: [], genTps: [], e2eP50: [], e2eP95: [], ttftP95: []},
    lastUpdate: 0,
    needToken: false,
  };
  const charts = {};

  // The x axis of a per-decision chart: one tick per decision, labelled
  // with the decision's label (autoSkip thins them when there are many).
  function decisionAxis(chartName) {
    return {
      type: 'linear', grid: {color: GRID},
      afterBuildTicks: (axis) => {
        axis.ticks = axis.chart.data.labels.map((_, i) => ({value: i}));
      },
      ticks: {color: TICK, autoSkip: true, autoSkipPadding: 8, maxRotation: 0,
        callback: (v) => {
          const d = charts[chartName] && charts[chartName].data.labels[v];
          return Number.isInteger(v) && d ? d : '';
        }},
    };
  }

  Object.defineProperty(window, 'streamlmDashboard', {
    configurable: false,
    enumerable: true,
    get() {
      return Object.freeze({
        decisions: Object.freeze(state.decisions.slice()),
        charts: Object.freeze(Object.assign({}, charts)),
        lastUpdate: state.lastUpdate,
      });
    },
  });

  // ---------------------------------------------------------------- Prometheus

  // Parses Prometheus text format into {name: [{labels, value}]}.
  function parsePrometheus(text) {
    const out = {};
    const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/;
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line[0] === '#') continue;
      const m = lineRe.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[2]) {
        let l;
        labelRe.lastIndex = 0;
        while ((l = labelRe.exec(m[2])) !== null) {
          labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
        }
      }
      const value = parseValue(m[3]);
      (out[m[1]] = out[m[1]] || []).push({labels, value});
    }
    return out;
  }

  function parseValue(s) {
    if (s === '+Inf' || s === 'Inf') return Infinity;
    if (s === '-Inf') return -Infinity;
    return Number(s);
  }

  // Sum of all series of `name` (over every label set), or null when absent.
  function metricSum(metrics, name) {
    const series = metrics && metrics[name];
    if (!series || !series.length) return null;
    let sum = 0;
    for (const s of series) if (Number.isFinite(s.value)) sum += s.value;
    return sum;
  }

  // Cumulative histogram buckets of `name` summed over other labels:
  // [{le, count}] sorted by le, or null when absent.
  function histogramBuckets(metrics, name) {
    const series = metrics && metrics[name + '_bucket'];
    if (!series || !series.length) return null;
    const byLe = new Map();
    for (const s of series) {
      if (s.labels.le === undefined) continue;
      const le = parseValue(s.labels.le);
      byLe.set(le, (byLe.get(le) || 0) + (Number.isFinite(s.value) ? s.value : 0));
    }
    if (!byLe.size) return null;
    return Array.from(byLe, ([le, count]) => ({le, count})).sort((a, b) => a.le - b.le);
  }

  // Prometheus' histogram_quantile: linear interpolation inside the bucket
  // that holds rank q * total; null without observations. An answer in the
  // +Inf bucket is the highest finite bound.
  function histogramQuantile(q, buckets) {
    if (!buckets || !buckets.length) return null;
    const total = buckets[buckets.length - 1].count;
    if (!(total > 0)) return null;
    const rank = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (let i = 0; i < buckets.length; ++i) {
      const b = buckets[i];
      if (b.count >= rank) {
        if (b.le === Infinity) return i > 0 ? buckets[i - 1].le : null;
        const inBucket = b.count - prevCount;
        if (inBucket <= 0) return b.le;
        const lower = i === 0 ? Math.min(0, b.le) : prevLe;
        return lower + (b.le - lower) * (rank - prevCount) / inBucket;
      }
      prevLe = b.le;
      prevCount = b.count;
    }
    return buckets[buckets.length - 1].le;
  }

  // Buckets observed since `older` (same shape); null when there are none.
  function bucketDelta(now, older) {
    if (!now || !older) return null;
    const olderByLe = new Map(older.map((b) => [b.le, b.count]));
    const delta = now.map((b) => ({le: b.le, count: b.count - (olderByLe.get(b.le) || 0)}));
    if (delta.some((b) => b.count < 0)) return null;  // counter reset
    return delta[delta.length - 1].count > 0 ? delta : null;
  }

  // The sample closest to `windowMs` ago (but not the current one).
  function sampleAgo(windowMs) {
    const s = state.samples;
    if (s.length < 2) return null;
    const now = s[s.length - 1].t;
    let pick = s[0];
    for (let i = s.length - 2; i >= 0; --i) {
      pick = s[i];
      if (now - s[i].t >= windowMs) break;
    }
    return pick;
  }

  // Per-second rate of counter `name` over about RATE_WINDOW_MS; null when
  // it cannot be told yet.
  function counterRate(names) {
    const s = state.samples;
    if (s.length < 2) return null;
    const cur = s[s.length - 1];
    const old = sampleAgo(RATE_WINDOW_MS);
    const value = (m) => {
      for (const n of names) {
        const v = metricSum(m, n);
        if (v !== null) return v;
      }
      return null;
    };
    const a = value(old.metrics);
    const b = value(cur.metrics);
    if (a === null || b === null || cur.t <= old.t) return null;
    const diff = b >= a ? b - a : b;  // a restart resets counters
    return diff / ((cur.t - old.t) / 1000);
  }

  // {p50, p95, window: 'last min' | 'since start'} of histogram `name`, or null.
  function histogramSummary(name) {
    const cur = state.metrics && histogramBuckets(state.metrics, name);
    if (!cur) return null;
    const old = sampleAgo(QUANTILE_WINDOW_MS);
    const recent = old ? bucketDelta(cur, histogramBuckets(old.metrics, name)) : null;
    const use = recent || cur;
    const p50 = histogramQuantile(0.5, use);
    const p95 = histogramQuantile(0.95, use);
    if (p50 === null) return {p50: null, p95: null, window: 'no observations'};
    return {p50, p95, window: recent ? 'last min' : 'since start'};
  }

  // ---------------------------------------------------------------- formatting

  const DASH = '—';

  function fmtSeconds(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return DASH;
    if (s === 0) return '0';
    if (s < 0.001) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : s < 0.1 ? 1 : 0) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    if (s < 3600) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  function fmtRate(r, unit) {
    if (r === null || r === undefined || !Number.isFinite(r)) return DASH;
    const digits = r >= 100 ? 0 : r >= 10 ? 1 : 2;
    return r.toFixed(digits) + (unit ? ' ' + unit : '');
  }

  function fmtCount(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
    return Math.round(n).toLocaleString('en-US');
  }

  function fmtDelta(x) {
    if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
    return (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(4);
  }

  function fmtAgo(ms) {
    if (!Number.isFinite(ms)) return DASH;
    const s = Math.max(0, ms / 1000);
    if (s < 60) return Math.round(s) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h ago';
    return (s / 86400).toFixed(1) + ' d ago';
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString('en-GB', {hour12: false});
  }

  function pair(summary) {
    if (!summary || summary.p50 === null) return DASH;
    return fmtSeconds(summary.p50) + ' / ' + fmtSeconds(summary.p95);
  }

  function setText(id, text) {
    const el = document.getElementById(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'title') e.title = v;
      else e.setAttribute(k, v);
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return e;
  }

  function verdictColor(v) {
    return VERDICT_COLORS[v] || OTHER_COLOR;
  }

  // ---------------------------------------------------------------- fetching

  function authHeaders() {
    const token = window.localStorage.getItem(TOKEN_KEY);
    return token ? {Authorization: 'Bearer ' + token} : {};
  }

  // GET `url`; resolves to {status, body} (body parsed as JSON or text), or
  // {status: 0} when the server cannot be reached. Never rejects.
  async function get(url, asJson) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    try {
      const res = await fetch(url, {headers: authHeaders(), signal: ctrl.signal, cache: 'no-store'});
      if (!res.ok) return {status: res.status};
      const body = asJson ? await res.json() : await res.text();
      return {status: res.status, body};
    } catch (e) {
      return {status: 0};
    } finally {
      clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------- charts

  // Draws each point's 95% CI (raw.lo .. raw.hi) as a vertical bar with caps,
  // under the points, plus the gate thresholds as dashed lines.
  const ciPlugin = {
    id: 'streamlmCiBars',
    beforeDatasetsDraw(chart) {
      const ctx = chart.ctx;
      const y = chart.scales.y;
      const area = chart.chartArea;
      ctx.save();
      ctx.beginPath();
      ctx.rect(area.left, area.top, area.right - area.left, area.bottom - area.top);
      ctx.clip();
      // Threshold lines.
      for (const t of chart.options.plugins.streamlmCiBars.thresholds || []) {
        const py = y.getPixelForValue(t.value);
        ctx.strokeStyle = t.color;
        ctx.lineWidth = 1;
        ctx.setLineDash(t.dash || []);
        ctx.beginPath();
        ctx.moveTo(area.left, py);
        ctx.lineTo(area.right, py);
        ctx.stroke();
        if (t.label) {
          ctx.setLineDash([]);
          ctx.fillStyle = t.color;
          ctx.font = '11px system-ui, sans-serif';
          ctx.textAlign = 'right';
          ctx.fillText(t.label, area.right - 4, py - 4);
        }
      }
      // Vertical markers (rollbacks): a dashed line across the plot at x.
      const x = chart.scales.x;
      for (const m of chart.options.plugins.streamlmCiBars.markers || []) {
        const px = x.getPixelForValue(m.x);
        ctx.strokeStyle = m.color;
        ctx.lineWidth = 1.5;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        if (m.label) {
          ctx.setLineDash([]);
          ctx.fillStyle = m.color;
          ctx.font = '11px system-ui, sans-serif';
          // Bottom right of the line: the threshold labels sit at the top right.
          ctx.textAlign = 'right';
          ctx.fillText(m.label, px - 4, area.bottom - 6);
        }
      }
      ctx.setLineDash([]);
      chart.data.datasets.forEach((ds, i) => {
        const meta = chart.getDatasetMeta(i);
        if (meta.hidden) return;
        meta.data.forEach((point, j) => {
          const raw = ds.data[j];
          if (!raw || !Number.isFinite(raw.lo) || !Number.isFinite(raw.hi) || raw.y === null) return;
          const top = y.getPixelForValue(raw.hi);
          const bottom = y.getPixelForValue(raw.lo);
          ctx.strokeStyle = raw.color || verdictColor(raw.verdict);
          ctx.globalAlpha = 0.75;
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(point.x, top);
          ctx.lineTo(point.x, bottom);
          ctx.moveTo(point.x - 4, top);
          ctx.lineTo(point.x + 4, top);
          ctx.moveTo(point.x - 4, bottom);
          ctx.lineTo(point.x + 4, bottom);
          ctx.stroke();
        });
      });
      ctx.restore();
    },
  };

  const GRID = '#eef1f5';
  const TICK = '#667085';

  function timeAxis() {
    return {
      type: 'linear',
      grid: {color: GRID},
      ticks: {color: TICK, maxTicksLimit: 6, maxRotation: 0, callback: (v) => fmtClock(v)},
    };
  }

  function makeCharts() {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 11;
    Chart.defaults.color = TICK;

    const pointStyle = (ctx) => verdictColor(ctx.raw && ctx.raw.verdict);
    charts.decisions = new Chart(document.getElementById('chart-decisions'), {
      type: 'scatter',
      data: {
        labels: [],
        datasets: [
          {label: 'stream loss Δ', data: [], pointStyle: 'circle', pointRadius: 5,
            pointHoverRadius: 7, backgroundColor: pointStyle, borderColor: pointStyle},
          {label: 'base loss Δ', data: [], pointStyle: 'rectRot', pointRadius: 6,
            pointHoverRadius: 8, backgroundColor: '#ffffff', borderColor: pointStyle,
            borderWidth: 2},
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: decisionAxis('decisions'),
          y: {grid: {color: GRID}, title: {display: true, text: 'Δ loss (nats/token)'},
            ticks: {color: TICK,
              callback: (v) => (Math.abs(v) < 1e-9 ? '0' : String(Number(v.toPrecision(6))))}},
        },
        plugins: {
          legend: {display: false},
          streamlmCiBars: {thresholds: [], markers: []},
          tooltip: {
            callbacks: {
              title: (items) => {
                const r = items[0].raw;
                return r.id + ' · ' + r.verdict;
              },
              label: (item) => {
                const r = item.raw;
                const what = r.verdict === 'rolled_back' && item.datasetIndex === 0
                    ? 'live stream loss Δ (champion − previous)' : item.dataset.label;
                return what + ': ' + fmtDelta(r.y) + '  [' + fmtDelta(r.lo) + ', ' +
                    fmtDelta(r.hi) + ']';
              },
              afterBody: (items) => {
                const r = items[0].raw;
                return [r.candidate + ' vs ' + r.champion, r.time];
              },
            },
          },
        },
      },
      plugins: [ciPlugin],
    });

    charts.learner = new Chart(document.getElementById('chart-learner'), {
      type: 'line',
      data: {datasets: [
        {label: 'loss', data: [], yAxisID: 'y', borderColor: '#2563eb', backgroundColor: '#2563eb',
          pointRadius: 0, borderWidth: 2, tension: 0.2},
        {label: 'tokens/s', data: [], yAxisID: 'y1', borderColor: '#94a3b8',
          backgroundColor: '#94a3b8', pointRadius: 0, borderWidth: 1.5, borderDash: [4, 3]},
      ]},
      options: {
        animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
        interaction: {mode: 'index', intersect: false},
        scales: {
          x: timeAxis(),
          y: {position: 'left', grid: {color: GRID}, title: {display: true, text: 'loss'}},
          y1: {position: 'right', grid: {drawOnChartArea: false}, beginAtZero: true,
            title: {display: true, text: 'tokens/s'}},
        },
        plugins: {legend: {position: 'top', align: 'end', labels: {boxWidth: 12}}},
      },
    });

    // Held-out preference accuracy per decision (x as in the decision chart):
    // the candidate's coloured by verdict, the champion's grey; 0.5 = chance.
    const champColor = '#64748b';
    charts.feedback = new Chart(document.getElementById('chart-feedback'), {
      type: 'scatter',
      data: {
        labels: [],
        datasets: [
          {label: 'candidate', data: [], pointStyle: 'circle', pointRadius: 5, pointHoverRadius: 7,
            backgroundColor: pointStyle, borderColor: pointStyle, showLine: true, spanGaps: true,
            borderWidth: 1},
          {label: 'champion', data: [], pointStyle: 'rectRot', pointRadius: 6, pointHoverRadius: 8,
            backgroundColor: '#ffffff', borderColor: champColor, borderWidth: 2, showLine: true,
            spanGaps: true, borderDash: [4, 3]},
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: decisionAxis('feedback'),
          y: {min: 0, max: 1, grid: {color: GRID}, title: {display: true, text: 'preference accuracy'},
            ticks: {color: TICK, stepSize: 0.1}},
        },
        plugins: {
          legend: {display: false},
          streamlmCiBars: {thresholds: [{value: 0.5, color: '#98a2b3', dash: [2, 3], label: 'chance'}]},
          tooltip: {
            callbacks: {
              title: (items) => {
                const r = items[0].raw;
                return r.id + ' · ' + r.verdict;
              },
              label: (item) => {
                const r = item.raw;
                return item.dataset.label + ': ' + fmtNum(r.y, 3) + '  [' + fmtNum(r.lo, 3) + ', ' +
                    fmtNum(r.hi, 3) + ']' + (r.n ? ', ' + r.n + ' pairs' : '');
              },
              afterBody: (items) => {
                const r = items[0].raw;
                return [r.candidate + ' vs ' + r.champion, r.time];
              },
            },
          },
        },
      },
      plugins: [ciPlugin],
    });

    charts.serving = new Chart(document.getElementById('chart-serving'), {
      type: 'line',
      data: {datasets: [
        {label: 'latency p50', data: [], yAxisID: 'y', borderColor: '#0ea5e9',
          backgroundColor: '#0ea5e9', pointRadius: 0, borderWidth: 2},
        {label: 'latency p95', data: [], yAxisID: 'y', borderColor: '#f97316',
          backgroundColor: '#f97316', pointRadius: 0, borderWidth: 2},
        {label: 'generated tokens/s', data: [], yAxisID: 'y1', borderColor: '#94a3b8',
          backgroundColor: '#94a3b8', pointRadius: 0, borderWidth: 1.5, borderDash: [4, 3]},
      ]},
      options: {
        animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
        interaction: {mode: 'index', intersect: false},
        scales: {
          x: timeAxis(),
          y: {position: 'left', beginAtZero: true, grid: {color: GRID},
            title: {display: true, text: 'seconds'},
            ticks: {callback: (v) => fmtSeconds(v)}},
          y1: {position: 'right', beginAtZero: true, grid: {drawOnChartArea: false},
            title: {display: true, text: 'tokens/s'}},
        },
        plugins: {legend: {position: 'top', align: 'end', labels: {boxWidth: 12}}},
      },
    });

    charts.rejects = new Chart(document.getElementById('chart-rejects'), {
      type: 'bar',
      data: {labels: [], datasets: [{label: 'records', data: [], backgroundColor: '#f87171',
        borderRadius: 3, maxBarThickness: 18}]},
      options: {
        animation: false, maintainAspectRatio: false, indexAxis: 'y',
        scales: {
          x: {beginAtZero: true, grid: {color: GRID}, ticks: {precision: 0}},
          y: {grid: {display: false}, ticks: {color: '#344054'}},
        },
        plugins: {legend: {display: false}},
      },
    });
  }

  // ---------------------------------------------------------------- rendering

  // A rolled_back decision's stream loss is the rollback monitor's live one
  // (metrics.rollback.stream_loss: champion − previous, newer minus older as
  // for a promotion's candidate − champion); it has no base loss.
  function deltaOf(d, metric) {
    const metrics = d && d.metrics;
    const source = d && d.verdict === 'rolled_back'
        ? (metrics && metrics.rollback) : metrics;
    const m = source && source[metric] && source[metric].delta;
    if (!m || !Number.isFinite(m.mean)) return null;
    // The interval the verdict used: its rule's, at the look's level
    // (gate.alpha spent over looks), else the 95% one.
    const ruleName = {stream_loss: 'adaptation', base_loss: 'forgetting'}[metric];
    const rule = (Array.isArray(d.rules) ? d.rules : []).find(
        (r) => r && r.name === ruleName && Array.isArray(r.ci));
    const ci = rule ? rule.ci : Array.isArray(m.ci95) ? m.ci95 : [];
    return {mean: m.mean, lo: Number(ci[0]), hi: Number(ci[1]),
      level: rule && Number.isFinite(rule.ci_level) ? rule.ci_level : 0.95};
  }

  function renderDecisionChart() {
    const chart = charts.decisions;
    const oldestFirst = state.decisions.slice().reverse();
    const labels = oldestFirst.map((d) => String(d.id || '').replace(/^dec-0*/, '#') || '?');
    const points = (metric, offset) => oldestFirst.map((d, i) => {
      const delta = deltaOf(d, metric);
      return {
        x: i + offset,
        y: delta ? delta.mean : null,
        lo: delta ? delta.lo : NaN,
        hi: delta ? delta.hi : NaN,
        id: d.id, verdict: d.verdict, candidate: d.candidate, champion: d.champion, time: d.time,
      };
    });
    chart.data.labels = labels;
    chart.data.datasets[0].data = points('stream_loss', -0.12);
    chart.data.datasets[1].data = points('base_loss', 0.12);
    // Rollbacks: a dashed marker across the chart, in the verdict's colour.
    const markers = [];
    oldestFirst.forEach((d, i) => {
      if (d.verdict === 'rolled_back') {
        markers.push({x: i, color: VERDICT_COLORS.rolled_back,
          label: d.trigger === 'manual' || /^manual/.test(String(d.reason || ''))
              ? 'rollback (manual)' : 'rollback'});
      }
    });
    chart.options.plugins.streamlmCiBars.markers = markers;

    // Range: every mean and interval end, the thresholds, and zero.
    const values = [0];
    const thresholds = [{value: 0, color: '#98a2b3'}];
    const latest = state.decisions.find((d) => d.verdict !== 'rolled_back' &&
        Array.isArray(d.rules) && d.rules.length);
    for (const r of (latest && latest.rules) || []) {
      if (!Number.isFinite(r.threshold)) continue;
      if (r.metric === 'base_loss_delta') {
        thresholds.push({value: r.threshold, color: '#dc2626', dash: [5, 4],
          label: 'forgetting limit ' + fmtDelta(r.threshold)});
      } else if (r.metric === 'stream_loss_delta' && r.threshold !== 0) {
        thresholds.push({value: r.threshold, color: '#16a34a', dash: [5, 4],
          label: 'adaptation needs < ' + fmtDelta(r.threshold)});
      }
    }
    for (const ds of chart.data.datasets) {
      for (const p of ds.data) {
        for (const v of [p.y, p.lo, p.hi]) if (Number.isFinite(v)) values.push(v);
      }
    }
    for (const t of thresholds) values.push(t.value);
    // Round the range out to a 1/2/5 step so the ticks fall on round numbers.
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const raw = Math.max((hi - lo) / 8, 0.005);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= raw);
    chart.options.scales.y.min = Math.floor((lo - step * 0.25) / step) * step;
    chart.options.scales.y.max = Math.ceil((hi + step * 0.25) / step) * step;
    chart.options.scales.y.ticks.stepSize = step;
    chart.options.scales.x.min = -0.6;
    chart.options.scales.x.max = Math.max(oldestFirst.length - 0.4, 0.6);
    chart.options.plugins.streamlmCiBars.thresholds = thresholds;
    chart.update('none');
    document.getElementById('decisions-empty').hidden = state.decisions.length > 0;
  }

  // ------------------------------------------------ human feedback (decisions)

  // decision.metrics.feedback.sets, in display order.
  const FEEDBACK_SETS = [['heldout', 'held-out'], ['established', 'established'], ['new', 'new'],
    ['trusted', 'trusted']];

  function feedbackOf(d) {
    const f = d && d.metrics && d.metrics.feedback;
    return f && typeof f === 'object' ? f : null;
  }

  function fmtNum(x, digits) {
    if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
    return (x < 0 ? '−' : '') + Math.abs(x).toFixed(digits);
  }

  function fmtSigned(x, digits) {
    if (x === null || x === undefined || !Number.isFinite(x)) return DASH;
    return (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(digits);
  }

  // An estimate {mean, ci95: [lo, hi], n} as "0.81 [0.70, 0.90]"; DASH when absent.
  function fmtEstimate(e, digits, signed) {
    if (!e || !Number.isFinite(e.mean)) return DASH;
    const f = signed ? fmtSigned : fmtNum;
    const ci = Array.isArray(e.ci95) && e.ci95.length === 2 && e.ci95.every(Number.isFinite)
        ? ' [' + f(e.ci95[0], digits) + ', ' + f(e.ci95[1], digits) + ']' : '';
    return f(e.mean, digits) + ci;
  }

  // The point of one side (candidate | champion) of a set's preference accuracy.
  function accuracyPoint(d, side) {
    const f = feedbackOf(d);
    const set = f && f.sets && f.sets.heldout;
    const e = set && set.preference_accuracy && set.preference_accuracy[side];
    if (!e || !Number.isFinite(e.mean)) return {y: null, lo: NaN, hi: NaN, n: 0};
    const ci = Array.isArray(e.ci95) ? e.ci95 : [];
    return {y: e.mean, lo: Number(ci[0]), hi: Number(ci[1]), n: e.n || set.pairs || 0};
  }

  function renderFeedbackChart() {
    const chart = charts.feedback;
    const oldestFirst = state.decisions.slice().reverse();
    chart.data.labels = oldestFirst.map((d) => String(d.id || '').replace(/^dec-0*/, '#') || '?');
    const points = (side, offset, color) => oldestFirst.map((d, i) => Object.assign(
        accuracyPoint(d, side), {x: i + offset, id: d.id, verdict: d.verdict,
          candidate: d.candidate, champion: d.champion, time: d.time}, color ? {color} : {}));
    chart.data.datasets[0].data = points('candidate', -0.08, null);
    chart.data.datasets[1].data = points('champion', 0.08, '#64748b');
    chart.options.scales.x.min = -0.6;
    chart.options.scales.x.max = Math.max(oldestFirst.length - 0.4, 0.6);
    chart.update('none');
    document.getElementById('feedback-chart-empty').hidden =
        chart.data.datasets[0].data.some((p) => p.y !== null);
  }

  // "Δ +0.29 [+0.15, +0.43]" over "cand 0.81 · champ 0.52 · ref 0.50".
  function comparisonCell(c, digits) {
    if (!c) return el('td', {}, DASH);
    const parts = [['cand', c.candidate], ['champ', c.champion], ['ref', c.reference]]
        .filter(([, e]) => e && Number.isFinite(e.mean))
        .map(([k, e]) => k + ' ' + fmtNum(e.mean, digits));
    return el('td', {}, [fmtEstimate(c.delta, digits, true), el('span', {class: 'sub'}, parts.join(' · '))]);
  }

  function feedbackSetRow(key, label, set) {
    const acc = set.preference_accuracy;
    const counts = [['pairs', set.pairs], ['ratings', set.ratings], ['corrections', set.corrections]]
        .filter(([, n]) => Number.isFinite(n)).map(([k, n]) => n + ' ' + k).join(' · ');
    return el('tr', {'data-set': key}, [
      el('td', {class: 'set'}, label),
      el('td', {class: 'records'}, [fmtCount(set.records), el('span', {class: 'sub'}, counts)]),
      el('td', {class: 'acc-candidate'}, acc ? fmtEstimate(acc.candidate, 2) : DASH),
      el('td', {class: 'acc-champion'}, acc ? fmtEstimate(acc.champion, 2) : DASH),
      el('td', {class: 'acc-reference'}, acc && acc.reference ? fmtNum(acc.reference.mean, 2) : DASH),
      el('td', {class: 'acc-delta'}, acc ? fmtEstimate(acc.delta, 2, true) : DASH),
      Object.assign(comparisonCell(set.reward_margin, 3), {className: 'margin'}),
      Object.assign(comparisonCell(set.correction_logprob, 3), {className: 'correction'}),
      Object.assign(comparisonCell(set.rating_reward, 3), {className: 'rating'}),
    ]);
  }

  function feedbackRuleChip(r) {
    const iv = Array.isArray(r.ci) ? r.ci : r.ci95;
    const ci = Array.isArray(iv) && iv.length === 2
        ? ' [' + fmtSigned(iv[0], 3) + ', ' + fmtSigned(iv[1], 3) + ']' : '';
    // Counts (whole numbers) as counts; deltas and accuracies signed.
    const show = (v) => (Number.isInteger(v) ? String(v) : Number.isFinite(v) ? fmtSigned(v, 3)
        : v === null || v === undefined ? DASH : String(v));
    const observed = show(r.observed);
    const threshold = show(r.threshold);
    return el('span', {class: 'fbrule ' + (r.passed ? 'pass' : 'fail'), 'data-rule': r.name,
      title: r.metric || r.name},
    (r.passed ? '✓ ' : '✗ ') + r.name + ': ' + observed + ci + ' vs ' + threshold);
  }

  // The row under a decision whose metrics.feedback has something to show
  // (a scored set, feedback trained on, or a feedback rule); null otherwise.
  function feedbackDetailRow(d) {
    const f = feedbackOf(d);
    if (!f) return null;
    const reference = referenceOf(d);
    const trained = f.trained || {};
    const sets = f.sets || {};
    const rules = (d.rules || []).filter((r) => String(r.name || '').startsWith('feedback_'));
    const hasSets = FEEDBACK_SETS.some(([k]) => sets[k]);
    if (!hasSets && !rules.length && !(trained.records > 0)) return null;
    const users = Object.entries(trained.users || {}).sort((a, b) => b[1] - a[1]);
    const head = [el('b', {}, 'Feedback'), ' · reference ',
      el('span', {class: 'mono fb-reference'}, reference || DASH)];
    if (Number.isFinite(trained.records)) {
      head.push(' · trained on ' + fmtCount(trained.records) + ' records since the champion' +
          (users.length ? ' (' + users.slice(0, 5).map(([u, n]) => u + ' ' + fmtCount(n)).join(', ') +
              (users.length > 5 ? ', …' : '') + ')' : ''));
    }
    if (trained.contradictions > 0) {
      head.push(' · ' + fmtCount(trained.contradictions) + ' reverse stored pairs');
    }
    const rows = FEEDBACK_SETS.filter(([k]) => sets[k]).map(([k, label]) => feedbackSetRow(k, label, sets[k]));
    return el('tr', {class: 'fb-row', 'data-for': d.id}, el('td', {colspan: '9'}, el('div', {class: 'fb-detail'}, [
      el('div', {class: 'fb-head'}, head),
      rows.length ? el('table', {class: 'fb-sets'}, [
        el('thead', {}, el('tr', {}, ['set', 'records', 'pref. acc. candidate', 'champion', 'reference',
          'Δ [95% CI]', 'reward margin Δ', 'correction log-lik. Δ', 'rating reward Δ']
            .map((h) => el('th', {}, h)))),
        el('tbody', {}, rows),
      ]) : el('div', {class: 'note'}, 'no feedback sets scored'),
      rules.length ? el('div', {class: 'fb-rules'}, rules.map(feedbackRuleChip)) : null,
    ])));
  }

  // The learner's frozen reference model the decision scored against, or ''.
  function referenceOf(d) {
    const f = feedbackOf(d);
    return (d && d.reference) || (f && f.reference) || '';
  }

  function renderFeedbackCounters() {
    const m = state.metrics;
    const count = (name) => fmtCount(metricSum(m, name));
    setText('fb-consumed', count('streamlm_feedback_consumed_total'));
    setText('fb-trained', count('streamlm_feedback_trained_total'));
    setText('fb-heldout', count('streamlm_feedback_heldout_total'));
    setText('fb-limited', count('streamlm_feedback_limited_total'));
    setText('fb-contradictions', count('streamlm_feedback_contradictions_total'));
    // Sums a labelled counter by one label, largest first.
    const byLabel = (name, label) => {
      const totals = new Map();
      for (const s of (m && m[name]) || []) {
        const k = s.labels[label] || 'unlabelled';
        totals.set(k, (totals.get(k) || 0) + (Number.isFinite(s.value) ? s.value : 0));
      }
      return Array.from(totals).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    };
    const list = (id, entries, none) => {
      const items = entries.map(([k, v]) => el('li', {}, [el('span', {class: 'k'}, k),
        el('span', {class: 'n'}, fmtCount(v))]));
      document.getElementById(id).replaceChildren(...(items.length ? items : [el('li', {class: 'none'}, none)]));
    };
    const rejected = byLabel('streamlm_feedback_rejected_total', 'reason');
    list('fb-rejected', rejected, m ? 'none' : DASH);
    setText('fb-rejected-total', rejected.length
        ? fmtCount(rejected.reduce((a, [, v]) => a + v, 0)) + ' in total' : '');
    const users = byLabel('streamlm_feedback_user_total', 'user');
    list('fb-users', users.slice(0, 8), m ? 'none yet' : DASH);
    setText('fb-users-note', users.length > 8 ? 'top 8 of ' + users.length : '');
  }

  // The gate's rules as chips; the feedback_* rules fold into one chip
  // ("✓ feedback 4/4", failing when any fails) and are listed one by one in
  // the decision's feedback row.
  function ruleChips(rules) {
    const feedback = (rules || []).filter((r) => String(r.name || '').startsWith('feedback_'));
    const others = (rules || []).filter((r) => !String(r.name || '').startsWith('feedback_'));
    const chips = others.map((r) => el('span', {
      class: 'rule ' + (r.passed ? 'pass' : 'fail'),
      title: (r.metric || r.name) + ': observed ' + (Number.isFinite(r.observed) ? r.observed.toFixed(4) : r.observed) +
          ((ci) => (Array.isArray(ci) && ci.length === 2
              ? ' [' + fmtDelta(ci[0]) + ', ' + fmtDelta(ci[1]) + ']' : ''))(r.ci95 || r.ci) +
          ', threshold ' + (Number.isFinite(r.threshold) ? r.threshold.toFixed(4) : r.threshold),
    }, (r.passed ? '✓ ' : '✗ ') + r.name));
    if (feedback.length) {
      const passed = feedback.filter((r) => r.passed).length;
      const ok = passed === feedback.length;
      chips.push(el('span', {class: 'rule feedback ' + (ok ? 'pass' : 'fail'),
        title: feedback.map((r) => (r.passed ? '✓ ' : '✗ ') + r.name).join('\n')},
      (ok ? '✓ ' : '✗ ') + 'feedback ' + passed + '/' + feedback.length));
    }
    return chips;
  }

  function deltaCell(d, metric) {
    const delta = deltaOf(d, metric);
    if (!delta) return el('td', {class: 'num'}, DASH);
    const ci = Number.isFinite(delta.lo) && Number.isFinite(delta.hi)
        ? '[' + fmtDelta(delta.lo) + ', ' + fmtDelta(delta.hi) + ']' : '';
    return el('td', {class: 'num', title: (100 * delta.level).toFixed(2) + '% interval'},
      [fmtDelta(delta.mean), el('span', {class: 'ci'}, ci)]);
  }

  function renderDecisionTable() {
    const body = document.getElementById('decisions-body');
    const rows = [];
    for (const d of state.decisions.slice(0, 50)) {
      // "2026-12-01T12:03:00.123Z" -> "12-01 12:03:00" (UTC; the full time is the tooltip).
      const m = /^\d{4}-(\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(String(d.time || ''));
      const time = m ? m[1] + ' ' + m[2] : (d.time || DASH);
      rows.push(el('tr', {'data-id': d.id, class: d.verdict === 'rolled_back' ? 'rolled-back' : ''}, [
        el('td', {class: 'id'}, d.id || DASH),
        el('td', {class: 'time', title: d.time || ''}, time),
        el('td', {class: 'who mono'}, [(d.candidate || '?') + ' → ' + (d.champion || '?'),
          referenceOf(d) ? el('span', {class: 'ci reference'}, 'reference ' + referenceOf(d)) : null]),
        el('td', {}, [el('span', {class: 'badge ' + d.verdict}, String(d.verdict || '?').replace('_', ' ')),
          Number.isInteger(d.look) && d.verdict !== 'rolled_back'
            ? el('span', {class: 'ci look'}, 'look ' + d.look + '/' + (d.max_looks || '?')) : null]),
        deltaCell(d, 'stream_loss'),
        deltaCell(d, 'base_loss'),
        el('td', {class: 'rules'}, ruleChips(d.rules)),
        el('td', {class: 'reason', title: d.reason || ''}, el('div', {class: 'clamp'}, d.reason || '')),
        el('td', {class: 'num'}, fmtSeconds(d.duration_s)),
      ]));
      const detail = feedbackDetailRow(d);
      if (detail) rows.push(detail);
    }
    body.replaceChildren(...rows);
    setText('table-note', state.decisions.length > 50
        ? 'newest 50 of ' + state.decisions.length : state.decisions.length + ' shown');
    const counts = {};
    for (const d of state.decisions) counts[d.verdict] = (counts[d.verdict] || 0) + 1;
    setText('kpi-decisions', state.decisions.length ? String(state.decisions.length) : DASH);
    const parts = ['promoted', 'rejected', 'held', 'rolled_back']
        .filter((v) => counts[v]).map((v) => counts[v] + ' ' + v.replace('_', ' '));
    const swaps = metricSum(state.metrics, 'streamlm_serving_model_swaps_total');
    setText('kpi-swaps', (parts.join(' · ') || 'none yet') +
        (swaps === null ? '' : ' · ' + fmtCount(swaps) + ' swaps'));
  }

  function renderChampion() {
    setText('champion-id', state.championId || DASH);
    const byId = new Map((state.snapshots || []).map((s) => [s.id, s]));
    const champ = state.championId ? byId.get(state.championId) : null;
    const meta = document.getElementById('champion-meta');
    if (champ) {
      const lin = champ.lineage || {};
      meta.replaceChildren(
          el('div', {}, (champ.origin || '?') + ' · step ' + fmtCount(lin.step) + ' · created ' +
              fmtAgo(Date.now() - champ.created_ms)),
          el('div', {}, 'parent ' + (lin.parent || 'none') + ' · ' +
              fmtCount(lin.records_trained) + ' records since parent'));
    } else {
      meta.replaceChildren();
    }
    renderLineage(byId, champ);
  }

  function renderLineage(byId, champ) {
    const list = document.getElementById('lineage');
    if (!state.snapshots) {
      list.replaceChildren(el('li', {class: 'meta'}, 'lineage unavailable (GET /v1/admin/snapshots)'));
      setText('lineage-note', '');
      return;
    }
    const chain = [];
    const seen = new Set();
    for (let s = champ; s && !seen.has(s.id) && chain.length < 200; s = byId.get(s.lineage && s.lineage.parent)) {
      seen.add(s.id);
      chain.push(s);
    }
    // Candidates not yet judged (or rejected) hang off the chain: show the alias holders too.
    const extra = state.snapshots.filter((s) => s.aliases && !seen.has(s.id));
    const items = [];
    for (const s of extra.reverse()) items.push(lineageItem(s, false));
    const shown = chain.slice(0, 8);
    for (const s of shown) items.push(lineageItem(s, s === champ));
    if (chain.length > shown.length) {
      items.push(el('li', {class: 'meta'}, '… ' + (chain.length - shown.length) + ' older ancestors'));
    }
    if (!items.length) items.push(el('li', {class: 'meta'}, 'no snapshots yet'));
    list.replaceChildren(...items);
    setText('lineage-note', state.snapshots.length + ' snapshots stored · chain of ' + chain.length);
  }

  function lineageItem(s, isChampion) {
    const lin = s.lineage || {};
    const badges = String(s.aliases || '').split(',').filter(Boolean)
        .map((a) => el('span', {class: 'badge ' + a}, a));
    return el('li', {class: isChampion ? 'champion' : ''}, [
      el('span', {class: 'snap'}, s.id), ...badges,
      el('div', {class: 'meta'}, (s.origin || '?') + ' · step ' + fmtCount(lin.step) + ' · ' +
          fmtCount(lin.records_trained) + ' records · ' + fmtCount(lin.tokens_trained) +
          ' tokens · ' + fmtAgo(Date.now() - s.created_ms)),
    ]);
  }

  function pushSeries(key, t, y) {
    const s = state.series[key];
    s.push({x: t, y: Number.isFinite(y) ? y : null});
    while (s.length && t - s[0].x > HISTORY_MS) s.shift();
  }

  function renderMetrics(t) {
    const m = state.metrics;
    const loss = metricSum(m, 'streamlm_learner_loss');
    const trainTps = counterRate(['streamlm_learner_tokens_total', 'streamlm_tokens_trained_total']);
    const steps = metricSum(m, 'streamlm_learner_steps_total');
    const trained = metricSum(m, 'streamlm_records_trained_total');
    setText('kpi-loss', loss === null ? DASH : loss.toFixed(3));
    setText('kpi-loss-sub', 'nats/token' + (steps === null ? '' : ' · step ' + fmtCount(steps)));
    setText('kpi-train-tps', fmtRate(trainTps));
    const recRate = counterRate(['streamlm_records_trained_total']);
    setText('kpi-train-sub', trained === null ? DASH
        : fmtCount(trained) + ' records trained' + (recRate === null ? '' : ' · ' + fmtRate(recRate) + '/s'));

    const fresh = histogramSummary('streamlm_freshness_seconds');
    setText('kpi-fresh', pair(fresh));
    setText('kpi-fresh-sub', 'record → served, p50 / p95' + (fresh ? ' · ' + fresh.window : ''));
    const ttft = histogramSummary('streamlm_time_to_first_token_seconds');
    setText('kpi-ttft', pair(ttft));
    setText('kpi-ttft-sub', 'p50 / p95' + (ttft ? ' · ' + ttft.window : ''));
    const tpot = histogramSummary('streamlm_time_per_output_token_seconds');
    setText('kpi-tpot', pair(tpot));
    setText('kpi-tpot-sub', 'p50 / p95' + (tpot ? ' · ' + tpot.window : ''));
    const e2e = histogramSummary('streamlm_e2e_request_latency_seconds');
    setText('kpi-e2e', pair(e2e));
    setText('kpi-e2e-sub', 'end to end, p50 / p95' + (e2e ? ' · ' + e2e.window : ''));
    const queue = histogramSummary('streamlm_request_queue_time_seconds');
    setText('kpi-queue', pair(queue));
    setText('kpi-queue-sub', 'p50 / p95' + (queue ? ' · ' + queue.window : ''));

    const genTps = counterRate(['streamlm_generation_tokens_total']);
    const promptTps = counterRate(['streamlm_prompt_tokens_total']);
    const rps = counterRate(['streamlm_e2e_request_latency_seconds_count',
      'streamlm_http_completions_total']);
    setText('kpi-gen-tps', genTps === null ? DASH : fmtRate(genTps, 'tok/s'));
    setText('kpi-rps', (rps === null ? DASH : fmtRate(rps, 'req/s')) + ' · prompt ' +
        (promptTps === null ? DASH : fmtRate(promptTps, 'tok/s')));
    const running = metricSum(m, 'streamlm_num_requests_running');
    const waiting = metricSum(m, 'streamlm_num_requests_waiting');
    setText('kpi-running', running === null ? DASH : fmtCount(running) + ' running');
    setText('kpi-waiting', waiting === null ? DASH + ' waiting' : fmtCount(waiting) + ' waiting');

    pushSeries('loss', t, loss);
    pushSeries('trainTps', t, trainTps);
    pushSeries('genTps', t, genTps);
    // The charts follow recent latency: the last-minute window when there was traffic.
    pushSeries('e2eP50', t, e2e && e2e.window === 'last min' ? e2e.p50 : null);
    pushSeries('e2eP95', t, e2e && e2e.window === 'last min' ? e2e.p95 : null);

    const lc = charts.learner;
    lc.data.datasets[0].data = state.series.loss.slice();
    lc.data.datasets[1].data = state.series.trainTps.slice();
    lc.update('none');
    const sc = charts.serving;
    sc.data.datasets[0].data = state.series.e2eP50.slice();
    sc.data.datasets[1].data = state.series.e2eP95.slice();
    sc.data.datasets[2].data = state.series.genTps.slice();
    sc.update('none');
    document.getElementById('serving-empty').hidden =
        state.series.e2eP50.some((p) => p.y !== null) || state.series.genTps.some((p) => p.y > 0);

    const rejects = (m && m.streamlm_records_rejected_total) || [];
    const byReason = new Map();
    for (const s of rejects) {
      const reason = s.labels.reason || Object.values(s.labels)[0] || 'unlabelled';
      byReason.set(reason, (byReason.get(reason) || 0) + (Number.isFinite(s.value) ? s.value : 0));
    }
    const sorted = Array.from(byReason).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    const rc = charts.rejects;
    rc.data.labels = sorted.map(([r]) => r);
    rc.data.datasets[0].data = sorted.map(([, v]) => v);
    rc.update('none');
    const total = sorted.reduce((a, [, v]) => a + v, 0);
    setText('rejects-total', m ? fmtCount(total) + ' in total' +
        (trained === null ? '' : ' · ' + fmtCount(trained) + ' trained') : 'metrics unavailable');
    document.getElementById('rejects-empty').hidden = sorted.length > 0;
  }

  function renderLive(ok, partial) {
    const live = document.getElementById('live');
    live.className = 'live ' + (ok ? (partial ? 'stale' : 'ok') : 'down');
    const when = state.lastUpdate ? 'updated ' + fmtClock(state.lastUpdate) : 'no data yet';
    setText('live-text', ok ? (partial ? 'partial data · ' : 'live · ') + when
        : 'server unreachable · ' + when);
    document.getElementById('token-form').hidden = !state.needToken;
  }

  // ---------------------------------------------------------------- polling

  async function poll() {
    const [models, decisions, snapshots, metrics] = await Promise.all([
      get('/v1/models', true),
      get('/v1/admin/decisions?limit=200', true),
      get('/v1/admin/snapshots', true),
      get('/metrics', false),
    ]);
    const t = Date.now();
    state.needToken = decisions.status === 401 || snapshots.status === 401;
    if (models.status === 200 && models.body && Array.isArray(models.body.data)) {
      state.championId = models.body.data.length ? models.body.data[0].id : null;
    }
    if (decisions.status === 200 && Array.isArray(decisions.body)) state.decisions = decisions.body;
    if (snapshots.status === 200 && Array.isArray(snapshots.body)) state.snapshots = snapshots.body;
    else if (snapshots.status === 404 || snapshots.status === 401) state.snapshots = null;
    if (metrics.status === 200 && typeof metrics.body === 'string') {
      state.metrics = parsePrometheus(metrics.body);
      state.samples.push({t, metrics: state.metrics});
      while (state.samples.length > 2 && t - state.samples[1].t > QUANTILE_WINDOW_MS + 5000) {
        state.samples.shift();
      }
    }
    const all = [models, decisions, snapshots, metrics];
    const reached = all.some((r) => r.status !== 0);
    const partial = all.some((r) => r.status !== 200);
    renderChampion();
    renderDecisionChart();
    renderFeedbackChart();
    renderDecisionTable();
    renderMetrics(t);
    renderFeedbackCounters();
    if (reached) state.lastUpdate = t;
    renderLive(reached, partial);
  }

  async function loop() {
    try {
      await poll();
    } catch (e) {
      // A bug in rendering must not stop the page from updating.
      console.warn('streamlm dashboard: update failed', e);
    }
    setTimeout(loop, POLL_MS);
  }

  function start() {
    const form = document.getElementById('token-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = document.getElementById('token-input').value.trim();
      if (v) window.localStorage.setItem(TOKEN_KEY, v);
      else window.localStorage.removeItem(TOKEN_KEY);
      poll();
    });
    makeCharts();
    loop();
  }

  // Pure helpers, for unit tests in node (no DOM).
  window.streamlmDashboardInternals = Object.freeze({parsePrometheus, histogramBuckets,
    histogramQuantile, fmtSeconds});

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
