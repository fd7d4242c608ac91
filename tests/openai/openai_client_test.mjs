// StreamLM's HTTP API, as the official OpenAI Node client (npm `openai`,
// pinned in scripts/npm_deps.sh) and plain fetch see it.
//
// Starts the real server (`streamlm run` on tests/data/tiny.yaml with an
// embedded broker and a fresh data dir), waits for its banner, and checks the
// OpenAI-compatible surface: models, completions (plain, seeded, streamed,
// echo + logprobs scoring), chat completions (plain and streamed), tokenize /
// detokenize, errors, the raw SSE framing and client disconnects. Expected
// values come from the OpenAI API's contract and from the model itself
// (greedy decoding is deterministic, a causal model's prefix scores do not
// depend on what follows), never from this server's code.
//
// Run: node --test tests/openai/openai_client_test.mjs
// Env: STREAMLM_BINARY (default build/apps/streamlm), NODE_PATH (where
// `openai` is installed; default build/npm/node_modules). When `openai` is
// missing the suite is skipped, or fails when CI=true.
import {after, before, describe, it, test} from 'node:test';
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {createRequire} from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import {fileURLToPath} from 'node:url';

const kRepoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const kBinary = process.env.STREAMLM_BINARY || path.join(kRepoRoot, 'build', 'apps', 'streamlm');
const kConfig = path.join(kRepoRoot, 'tests', 'data', 'tiny.yaml');
const kContextTokens = 32;  // model.context_tokens in tiny.yaml
// Large enough that a streamed completion is still running when the client
// goes away; the server's default cap (256) could finish first.
const kServingMaxTokens = 100000;
const kBootTimeoutMs = 300000;

// ---------------------------------------------------------------------------
// The `openai` package: ES modules ignore NODE_PATH, so resolve it by hand.
function loadOpenAI() {
  const require = createRequire(import.meta.url);
  const paths = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  paths.push(path.join(kRepoRoot, 'build', 'npm', 'node_modules'));
  try {
    const mod = require(require.resolve('openai', {paths}));
    return mod.OpenAI || mod.default || mod;
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
    return null;
  }
}

// ---------------------------------------------------------------------------
// Helpers that depend on nothing in the server.

// JSON.parse reorders integer-like object keys ("7" before "a"), which would
// hide the order of top_logprobs; this parser keeps every object as an
// ordered list of [key, value] pairs (duplicates included).
class OrderedObject {
  constructor(entries) { this.entries = entries; }
}
function parseJsonOrdered(text) {
  let i = 0;
  const literal = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const skipWs = () => { while (i < text.length && ' \t\r\n'.includes(text[i])) i++; };
  const expect = (c) => {
    skipWs();
    if (text[i] !== c) throw new SyntaxError(`expected '${c}' at ${i}`);
    i++;
  };
  const parseString = () => {
    skipWs();
    const start = i;
    if (text[i] !== '"') throw new SyntaxError(`expected a string at ${i}`);
    for (i++; text[i] !== '"'; i++) {
      if (i >= text.length) throw new SyntaxError('unterminated string');
      if (text[i] === '\\') i++;
    }
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const parseValue = () => {
    skipWs();
    if (text[i] === '{') {
      i++;
      const entries = [];
      skipWs();
      if (text[i] === '}') { i++; return new OrderedObject(entries); }
      for (;;) {
        const key = parseString();
        expect(':');
        entries.push([key, parseValue()]);
        skipWs();
        if (text[i] === ',') { i++; continue; }
        expect('}');
        return new OrderedObject(entries);
      }
    }
    if (text[i] === '[') {
      i++;
      const items = [];
      skipWs();
      if (text[i] === ']') { i++; return items; }
      for (;;) {
        items.push(parseValue());
        skipWs();
        if (text[i] === ',') { i++; continue; }
        expect(']');
        return items;
      }
    }
    if (text[i] === '"') return parseString();
    literal.lastIndex = i;
    const m = literal.exec(text);
    if (!m) throw new SyntaxError(`unexpected '${text[i]}' at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const value = parseValue();
  skipWs();
  if (i !== text.length) throw new SyntaxError(`trailing text at ${i}`);
  return value;
}
function orderedGet(obj, key) {
  const e = obj.entries.find(([k]) => k === key);
  return e === undefined ? undefined : e[1];
}

// Sum of a Prometheus metric's samples over all label sets; undefined when
// the metric is absent.
function metricValue(text, name) {
  let total;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) total = (total || 0) + Number(m[3]);
  }
  return total;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Splits an SSE body into events; each event is its list of `data:` payloads.
function sseEvents(body) {
  return body.split(/\r?\n\r?\n/).filter((e) => e.trim() !== '').map((e) =>
    e.split(/\r?\n/).filter((l) => !l.startsWith(':')).map((l) => {
      assert.match(l, /^data: /, `SSE line is not 'data: ...': ${JSON.stringify(l)}`);
      return l.slice('data: '.length);
    }));
}

function assertUsage(usage, what) {
  assert.ok(usage, `${what}: usage missing`);
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) {
    assert.ok(Number.isInteger(usage[k]) && usage[k] >= 0, `${what}: usage.${k} = ${usage[k]}`);
  }
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens,
               `${what}: total_tokens != prompt_tokens + completion_tokens`);
}

// ---------------------------------------------------------------------------
// The server under test.
class StreamlmServer {
  // extraArgs: more `streamlm run` flags (config overrides).
  constructor(extraArgs = []) { this.extraArgs = extraArgs; }

  async start() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'streamlm-openai-'));
    this.stderrPath = path.join(this.tmp, 'stderr.log');
    const stderrFd = fs.openSync(this.stderrPath, 'w');
    this.stdout = [];
    this.proc = spawn(kBinary, ['run', '--config', kConfig, '--data-dir', path.join(this.tmp, 'store'),
                                '--serving.max-tokens', String(kServingMaxTokens), ...this.extraArgs],
                      {stdio: ['ignore', 'pipe', stderrFd]});
    fs.closeSync(stderrFd);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve({code, sig})));
    const banner = new Promise((resolve, reject) => {
      this.proc.on('error', reject);
      // Keep draining stdout after the banner so the server never blocks.
      readline.createInterface({input: this.proc.stdout}).on('line', (line) => {
        this.stdout.push(line);
        const m = /^\s+http\s+http:\/\/([^:\s]+):(\d+)/.exec(line);
        if (m) resolve({host: m[1], port: Number(m[2])});
      });
      this.exited.then(({code, sig}) =>
        reject(new Error(`streamlm exited (code ${code}, signal ${sig}) before its banner\n${this.logTail()}`)));
      setTimeout(() => reject(new Error(`no banner within ${kBootTimeoutMs} ms\n${this.logTail()}`)),
                 kBootTimeoutMs).unref();
    });
    const {host, port} = await banner;
    this.origin = `http://${host}:${port}`;
    // The banner follows Server::Start, but wait for a champion to be sure.
    for (let t = 0; ; t++) {
      const r = await fetch(`${this.origin}/readyz`).catch(() => null);
      if (r && r.status === 200) {
        this.readyModel = (await r.json()).model;
        break;
      }
      if (t > 600) throw new Error(`/readyz never answered 200\n${this.logTail()}`);
      await sleep(100);
    }
  }

  logTail(lines = 40) {
    let err = '';
    try { err = fs.readFileSync(this.stderrPath, 'utf8'); } catch (e) { /* not started */ }
    return `--- streamlm stdout ---\n${(this.stdout || []).slice(-lines).join('\n')}\n` +
           `--- streamlm stderr (tail) ---\n${err.split('\n').slice(-lines).join('\n')}`;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const killed = await Promise.race([this.exited, sleep(15000).then(() => null)]);
      if (killed === null) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    if (this.tmp) fs.rmSync(this.tmp, {recursive: true, force: true});
  }

  async metrics() {
    const r = await fetch(`${this.origin}/metrics`);
    assert.equal(r.status, 200);
    return r.text();
  }

  async postJson(route, body) {
    const r = await fetch(`${this.origin}${route}`, {
      method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)});
    return {status: r.status, headers: r.headers, text: await r.text()};
  }
}

// ---------------------------------------------------------------------------
const OpenAI = loadOpenAI();
if (OpenAI === null) {
  const msg = 'npm package `openai` is not installed (run scripts/npm_deps.sh)';
  if (process.env.CI === 'true') throw new Error(`${msg}; CI=true, so this is a failure`);
  test('openai client suite', {skip: msg}, () => {});
} else {
  describe('StreamLM through the OpenAI Node client', {timeout: 900000}, () => {
    const server = new StreamlmServer();
    let client;
    let modelId;  // the champion snapshot that serves every request here
    const prompt = 'The man said that the';
    const longPrompt = Array.from({length: 40}, (_, k) => `word${k}`).join(' ');

    // For the 429 check: one batch slot and one queue place.
    const queueServer = new StreamlmServer(['--serving.max-batch', '1', '--serving.max-queue', '1']);
    // The servers die with this process, also when it is killed or fails.
    const killAll = () => { for (const s of [server, queueServer]) if (s.proc) s.proc.kill('SIGKILL'); };
    process.on('exit', killAll);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.on(sig, () => { killAll(); process.exit(128 + os.constants.signals[sig]); });
    }

    before(async () => {
      assert.ok(fs.existsSync(kBinary), `no streamlm binary at ${kBinary} (set STREAMLM_BINARY)`);
      await server.start();
      modelId = server.readyModel;
      // No retries: a failure must show as the server answered it.
      client = new OpenAI({baseURL: `${server.origin}/v1`, apiKey: 'unused', maxRetries: 0,
                           timeout: 120000});
    });

    after(async () => {
      await Promise.all([server.stop(), queueServer.stop()]);
    });

    // Runs fn; on failure adds the server's log tail to the message.
    const withLog = (fn, logOf = server) => async (t) => {
      try {
        await fn(t);
      } catch (e) {
        e.message += `\n${logOf.logTail(15)}`;
        throw e;
      }
    };

    const greedy = (p, max_tokens, extra = {}) =>
      client.completions.create({model: modelId, prompt: p, max_tokens, temperature: 0, ...extra});

    it('lists the champion with its context length and lineage', withLog(async () => {
      const page = await client.models.list();
      const models = page.data;
      assert.equal(models.length, 1, `models: ${JSON.stringify(models)}`);
      const m = models[0];
      assert.equal(m.id, modelId, '/v1/models and /readyz disagree on the champion');
      assert.equal(m.object, 'model');
      assert.ok(Number.isInteger(m.created) && m.created > 1.6e9, `created = ${m.created} (seconds)`);
      assert.equal(m.max_model_len, kContextTokens, `max_model_len: ${JSON.stringify(m)}`);
      assert.ok('parent' in m, `no 'parent' in ${JSON.stringify(m)}`);
      assert.ok(m.parent === null || typeof m.parent === 'string', `parent = ${m.parent}`);
      assert.ok(typeof m.root === 'string' && m.root.length > 0, `root = ${JSON.stringify(m.root)}`);
    }));

    it('completes a prompt with consistent usage', withLog(async () => {
      const r = await client.completions.create({model: modelId, prompt, max_tokens: 8});
      assert.match(r.id, /^cmpl-/);
      assert.equal(r.object, 'text_completion');
      assert.equal(r.model, modelId);
      assert.equal(r.choices.length, 1);
      const c = r.choices[0];
      assert.equal(typeof c.text, 'string');
      assert.equal(c.index, 0);
      assert.ok(['stop', 'length'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
      assertUsage(r.usage, 'completion');
      assert.ok(r.usage.prompt_tokens > 0);
      assert.ok(r.usage.completion_tokens <= 8);
      if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 8);
    }));

    it('is deterministic at temperature 0 and with a seed', withLog(async () => {
      const a = await greedy(prompt, 12);
      const b = await greedy(prompt, 12);
      assert.equal(a.choices[0].text, b.choices[0].text, 'temperature 0 twice');
      assert.ok(a.choices[0].text.length > 0, 'greedy completion is empty');
      const seeded = (seed) => client.completions.create(
          {model: modelId, prompt, max_tokens: 12, temperature: 1, seed});
      const s1 = await seeded(1234);
      const s2 = await seeded(1234);
      assert.equal(s1.choices[0].text, s2.choices[0].text, 'same seed, temperature 1, twice');
      // The seed must reach the sampler: 5 seeds on a barely-trained model
      // over a 400-token vocabulary cannot all sample the same 12 tokens.
      const texts = new Set();
      for (const seed of [1, 2, 3, 4, 5]) texts.add((await seeded(seed)).choices[0].text);
      assert.ok(texts.size >= 2, `5 seeds gave one text: ${[...texts]}`);
      // top_p that keeps only the most likely token is greedy decoding.
      const nucleus = await client.completions.create(
          {model: modelId, prompt, max_tokens: 12, temperature: 1, top_p: 1e-6, seed: 7});
      assert.equal(nucleus.choices[0].text, a.choices[0].text, 'top_p=1e-6 differs from greedy');
    }));

    // Seeded sampling, not greedy: the barely-trained tiny model's greedy
    // output is a run of its most frequent piece (whitespace).
    const sampled = (p, max_tokens, extra = {}) => client.completions.create(
        {model: modelId, prompt: p, max_tokens, temperature: 1, seed: 11, ...extra});

    it('stops at a stop string and does not return it', withLog(async () => {
      const full = (await sampled(prompt, 16)).choices[0].text;
      assert.ok(full.length >= 3, `sampled text too short to pick a stop string: ${JSON.stringify(full)}`);
      const k = Math.floor(full.length / 2);
      const stop = full.slice(k, k + 2);
      const expected = full.slice(0, full.indexOf(stop));
      const r = await sampled(prompt, 16, {stop: [stop]});
      assert.equal(r.choices[0].text, expected, `stop ${JSON.stringify(stop)} on ${JSON.stringify(full)}`);
      assert.equal(r.choices[0].finish_reason, 'stop');
      // Streamed, the stop string must not leak either.
      const stream = await sampled(prompt, 16, {stop: [stop], stream: true});
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
      assert.equal(text, expected, 'streamed text with a stop string');
    }));

    it('ignores unknown request fields', withLog(async () => {
      const r = await server.postJson('/v1/completions', {
        model: modelId, prompt, max_tokens: 2, user: 'u-1', no_such_field: {nested: [1, 2]},
        suffix: null, presence_penalty: 0, frequency_penalty: 0});
      assert.equal(r.status, 200, r.text);
      const chat = await server.postJson('/v1/chat/completions', {
        model: modelId, messages: [{role: 'user', content: 'Hi', name: 'ann'}], max_tokens: 2,
        user: 'u-1', no_such_field: 3, store: false});
      assert.equal(chat.status, 200, chat.text);
    }));

    it('rejects what it cannot honour instead of ignoring it', withLog(async () => {
      // n > 1 would silently return fewer choices than asked; logprobs is 0-5.
      for (const [route, body] of [
        ['/v1/completions', {model: modelId, prompt, max_tokens: 1, n: 2}],
        ['/v1/chat/completions', {model: modelId, messages: [{role: 'user', content: 'Hi'}],
                                  max_tokens: 1, n: 2}],
      ]) {
        const r = await server.postJson(route, body);
        if (r.status === 200) {
          assert.equal(JSON.parse(r.text).choices.length, body.n, `${route} ${JSON.stringify(body)}`);
        } else {
          assert.equal(r.status, 400, `${route} ${JSON.stringify(body)}: ${r.text}`);
          assert.equal(typeof JSON.parse(r.text).error.message, 'string', r.text);
        }
      }
      // OpenAI's legacy completions take logprobs 0-5; more is a 400.
      const body = {model: modelId, prompt, max_tokens: 1, logprobs: 6};
      const r = await server.postJson('/v1/completions', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text.slice(0, 300)}`);
    }));

    it('streams a completion identical to the non-streamed greedy one', withLog(async () => {
      const plain = await greedy(prompt, 12);
      const stream = await greedy(prompt, 12, {stream: true, stream_options: {include_usage: true}});
      let text = '';
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 2, `only ${chunks.length} chunks`);
      const ids = new Set(chunks.map((c) => c.id));
      assert.equal(ids.size, 1, `chunk ids differ: ${[...ids]}`);
      assert.match(chunks[0].id, /^cmpl-/);
      for (const c of chunks) {
        assert.equal(c.object, 'text_completion');
        assert.equal(c.model, modelId);
      }
      const usageChunk = chunks[chunks.length - 1];
      assert.deepEqual(usageChunk.choices, [], 'the usage chunk has empty choices');
      assertUsage(usageChunk.usage, 'stream usage chunk');
      assert.deepEqual(usageChunk.usage, plain.usage, 'streamed usage != non-streamed usage');
      const content = chunks.slice(0, -1);
      for (const c of content) {
        assert.equal(c.choices.length, 1);
        assert.ok(c.usage === null || c.usage === undefined, 'usage only in the last chunk');
        text += c.choices[0].text;
      }
      assert.equal(text, plain.choices[0].text, 'streamed text != non-streamed greedy text');
      const last = content[content.length - 1].choices[0];
      assert.equal(last.finish_reason, plain.choices[0].finish_reason);
      for (const c of content.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
      // Seeded sampling streams the same text as it returns in one piece.
      const one = (await sampled(prompt, 12)).choices[0].text;
      let streamed = '';
      for await (const chunk of await sampled(prompt, 12, {stream: true})) {
        streamed += chunk.choices[0]?.text ?? '';
      }
      assert.equal(streamed, one, 'seeded streamed text != seeded non-streamed text');
    }));

    it('streams without include_usage and sends no usage chunk', withLog(async () => {
      const stream = await greedy(prompt, 4, {stream: true});
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 1);
      for (const c of chunks) assert.equal(c.choices.length, 1, 'every chunk carries a choice');
      assert.ok(['stop', 'length'].includes(chunks[chunks.length - 1].choices[0].finish_reason));
    }));

    it('frames the stream as OpenAI server-sent events', withLog(async () => {
      for (const [route, body] of [
        ['/v1/completions', {model: modelId, prompt, max_tokens: 5, temperature: 0, stream: true}],
        ['/v1/chat/completions', {model: modelId, messages: [{role: 'user', content: 'Hi'}],
                                  max_tokens: 5, temperature: 0, stream: true}]]) {
        const r = await fetch(`${server.origin}${route}`, {
          method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)});
        const text = await r.text();
        assert.equal(r.status, 200, `${route}: ${text}`);
        assert.match(r.headers.get('content-type') || '', /^text\/event-stream/, route);
        const events = sseEvents(text);
        assert.ok(events.length >= 2, `${route}: ${events.length} events`);
        for (const e of events) assert.equal(e.length, 1, `${route}: one data line per event`);
        assert.deepEqual(events[events.length - 1], ['[DONE]'], `${route}: does not end with [DONE]`);
        for (const [data] of events.slice(0, -1)) {
          const chunk = JSON.parse(data);
          assert.equal(chunk.model, modelId);
          assert.equal(chunk.object, route === '/v1/completions' ? 'text_completion'
                                                                 : 'chat.completion.chunk');
        }
      }
    }));

    it('chats with system, user and assistant messages', withLog(async () => {
      // The chat template costs ~10 tokens a message, so tiny.yaml's
      // 32-token context holds two messages; the roles are spread over two.
      const messages = [{role: 'system', content: 'Be brief.'}, {role: 'user', content: 'Go on'}];
      const withAssistant = await client.chat.completions.create(
          {model: modelId, messages: [{role: 'assistant', content: 'Hi.'}, {role: 'user', content: 'Go'}],
           max_tokens: 2});
      assert.equal(withAssistant.choices[0].message.role, 'assistant');
      assertUsage(withAssistant.usage, 'chat with an assistant turn');
      const r = await client.chat.completions.create({model: modelId, messages, max_tokens: 8,
                                                      temperature: 0});
      assert.match(r.id, /^chatcmpl-/);
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, modelId);
      assert.equal(r.choices.length, 1);
      const c = r.choices[0];
      assert.equal(c.index, 0);
      assert.equal(c.message.role, 'assistant');
      assert.equal(typeof c.message.content, 'string');
      assert.ok(['stop', 'length'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
      assertUsage(r.usage, 'chat');
      assert.ok(r.usage.completion_tokens <= 8);
      if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 8);
      // The conversation is in the prompt: more turns, more prompt tokens.
      const one = await client.chat.completions.create(
          {model: modelId, messages: [{role: 'user', content: 'Go on'}], max_tokens: 1});
      assert.ok(r.usage.prompt_tokens > one.usage.prompt_tokens,
                `2 messages: ${r.usage.prompt_tokens} prompt tokens, 1 message: ${one.usage.prompt_tokens}`);
      // max_completion_tokens is the newer name of max_tokens.
      const capped = await client.chat.completions.create(
          {model: modelId, messages, max_completion_tokens: 3, temperature: 0});
      assert.ok(capped.usage.completion_tokens <= 3, `max_completion_tokens 3: ${capped.usage.completion_tokens}`);
      assert.ok(c.message.content.startsWith(capped.choices[0].message.content),
                'greedy with a smaller cap is not a prefix');
      // A seed makes sampling at temperature 1 repeatable here too.
      const seeded = (extra = {}) => client.chat.completions.create(
          {model: modelId, messages, max_tokens: 12, temperature: 1, seed: 99, n: 1, ...extra});
      const full = (await seeded()).choices[0].message.content;
      assert.equal((await seeded()).choices[0].message.content, full, 'same seed, temperature 1');
      // Same stop-string contract as completions.
      assert.ok(full.length >= 3, `sampled chat text too short: ${JSON.stringify(full)}`);
      const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
      const stopped = await seeded({stop});
      assert.equal(stopped.choices[0].message.content, full.slice(0, full.indexOf(stop)),
                   `stop ${JSON.stringify(stop)} on ${JSON.stringify(full)}`);
      assert.equal(stopped.choices[0].finish_reason, 'stop');
    }));

    it('streams a chat completion with a usage chunk', withLog(async () => {
      const messages = [{role: 'system', content: 'Be brief.'}, {role: 'user', content: 'Hello there'}];
      const plain = await client.chat.completions.create(
          {model: modelId, messages, max_tokens: 10, temperature: 0});
      const stream = await client.chat.completions.create(
          {model: modelId, messages, max_tokens: 10, temperature: 0, stream: true,
           stream_options: {include_usage: true}});
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 3, `only ${chunks.length} chunks`);
      assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'chunk ids differ');
      assert.match(chunks[0].id, /^chatcmpl-/);
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.model, modelId);
      }
      assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'first delta carries the role');
      const usageChunk = chunks[chunks.length - 1];
      assert.deepEqual(usageChunk.choices, []);
      assertUsage(usageChunk.usage, 'chat stream usage chunk');
      assert.deepEqual(usageChunk.usage, plain.usage);
      const content = chunks.slice(0, -1);
      let text = '';
      for (const c of content) {
        assert.equal(c.choices.length, 1);
        assert.ok(c.usage === null || c.usage === undefined, 'usage only in the last chunk');
        text += c.choices[0].delta.content ?? '';
      }
      assert.equal(text, plain.choices[0].message.content, 'streamed content != non-streamed');
      assert.equal(content[content.length - 1].choices[0].finish_reason, plain.choices[0].finish_reason);
      for (const c of content.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
      // Seeded sampling: streamed deltas join to the one-piece content.
      const seeded = {model: modelId, messages, max_tokens: 10, temperature: 1, seed: 5};
      const one = (await client.chat.completions.create(seeded)).choices[0].message.content;
      let streamed = '';
      for await (const chunk of await client.chat.completions.create({...seeded, stream: true})) {
        streamed += chunk.choices[0]?.delta?.content ?? '';
      }
      assert.equal(streamed, one, 'seeded streamed chat content != non-streamed');
    }));

    it('tokenizes and detokenizes', withLog(async () => {
      const t = await server.postJson('/v1/tokenize', {prompt});
      assert.equal(t.status, 200, t.text);
      const tok = JSON.parse(t.text);
      assert.ok(Array.isArray(tok.tokens) && tok.tokens.every(Number.isInteger), t.text);
      assert.equal(tok.count, tok.tokens.length);
      assert.equal(tok.max_model_len, kContextTokens);
      const usage = (await greedy(prompt, 1)).usage;
      assert.equal(tok.count, usage.prompt_tokens, '/v1/tokenize count != usage.prompt_tokens');
      const d = await server.postJson('/v1/detokenize', {tokens: tok.tokens});
      assert.equal(d.status, 200, d.text);
      assert.equal(JSON.parse(d.text).prompt, prompt);
    }));

    // Scores a prompt as lm-evaluation-harness's local-completions does.
    const score = (p, logprobs = 0) =>
      client.completions.create({model: modelId, prompt: p, max_tokens: 0, echo: true, logprobs,
                                 temperature: 0});

    it('scores a prompt with echo and max_tokens 0', withLog(async () => {
      const r = await score(prompt);
      const c = r.choices[0];
      assert.equal(c.text, prompt, 'echo with max_tokens 0 returns the prompt');
      const lp = c.logprobs;
      assert.ok(lp, 'logprobs missing');
      assert.equal(lp.tokens.join(''), prompt, 'tokens do not join to the prompt');
      assert.equal(lp.tokens.length, r.usage.prompt_tokens);
      assert.equal(r.usage.completion_tokens, 0);
      assert.equal(lp.token_logprobs.length, lp.tokens.length);
      assert.equal(lp.token_logprobs[0], null, 'the first token has no context, so no logprob');
      for (const [k, v] of lp.token_logprobs.slice(1).entries()) {
        assert.ok(Number.isFinite(v) && v < 0, `token_logprobs[${k + 1}] = ${v}`);
      }
      let offset = 0;
      assert.equal(lp.text_offset.length, lp.tokens.length);
      for (const [k, tokText] of lp.tokens.entries()) {
        assert.equal(lp.text_offset[k], offset, `text_offset[${k}]`);
        offset += tokText.length;
      }
    }));

    it('scores a prompt the same with text appended (causal model)', withLog(async () => {
      const lp = (await score(prompt)).choices[0].logprobs;
      // Causal: what follows the prompt cannot change the prompt's scores.
      const extended = await score(`${prompt} house was`);
      const elp = extended.choices[0].logprobs;
      assert.deepEqual(elp.tokens.slice(0, lp.tokens.length), lp.tokens,
                       'prompt tokenizes differently with text appended; pick another prompt');
      assert.ok(elp.tokens.length > lp.tokens.length);
      assert.equal(elp.token_logprobs[0], null);
      for (let k = 1; k < lp.tokens.length; k++) {
        assert.ok(Math.abs(elp.token_logprobs[k] - lp.token_logprobs[k]) <= 1e-4,
                  `token ${k}: alone ${lp.token_logprobs[k]}, extended ${elp.token_logprobs[k]}`);
      }
    }));

    it('returns sorted top_logprobs with logprobs: 3', withLog(async () => {
      // Raw JSON: JSON.parse (and so the client) would reorder numeric keys.
      const r = await server.postJson('/v1/completions', {
        model: modelId, prompt, max_tokens: 0, echo: true, logprobs: 3});
      assert.equal(r.status, 200, r.text);
      const lp = orderedGet(orderedGet(parseJsonOrdered(r.text), 'choices')[0], 'logprobs');
      const tokens = orderedGet(lp, 'tokens');
      const chosen = orderedGet(lp, 'token_logprobs');
      const top = orderedGet(lp, 'top_logprobs');
      assert.equal(top.length, tokens.length);
      assert.equal(top[0], null, 'no alternatives for the first token');
      for (let k = 1; k < tokens.length; k++) {
        const entries = top[k].entries;
        assert.ok(entries.length >= 1 && entries.length <= 3, `top_logprobs[${k}] has ${entries.length}`);
        for (let j = 1; j < entries.length; j++) {
          assert.ok(entries[j - 1][1] >= entries[j][1], `top_logprobs[${k}] unsorted: ${JSON.stringify(entries)}`);
        }
        for (const [, v] of entries) assert.ok(Number.isFinite(v) && v <= 0);
        assert.ok(entries[0][1] >= chosen[k] - 1e-6, `top-1 ${entries[0][1]} < chosen ${chosen[k]}`);
        const mine = entries.find(([t]) => t === tokens[k]);
        if (mine) assert.ok(Math.abs(mine[1] - chosen[k]) <= 1e-4, `token ${k}: ${mine[1]} vs ${chosen[k]}`);
      }
      // The same numbers through the client (logprobs: 0 vs 3 agree).
      const plain = (await score(prompt, 0)).choices[0].logprobs;
      for (let k = 1; k < tokens.length; k++) {
        assert.ok(Math.abs(plain.token_logprobs[k] - chosen[k]) <= 1e-4);
      }
    }));

    it('echoes and scores a greedy completion', withLog(async () => {
      const plain = await greedy(prompt, 4);
      const r = await greedy(prompt, 4, {echo: true, logprobs: 2});
      const c = r.choices[0];
      assert.equal(c.text, prompt + plain.choices[0].text, 'echo text = prompt + completion');
      const lp = c.logprobs;
      assert.equal(lp.tokens.join(''), c.text);
      assert.equal(lp.tokens.length, r.usage.prompt_tokens + r.usage.completion_tokens);
      // Greedy picks the most likely token, so each generated token is top-1.
      for (let k = r.usage.prompt_tokens; k < lp.tokens.length; k++) {
        const best = Math.max(...Object.values(lp.top_logprobs[k]));
        assert.ok(Math.abs(best - lp.token_logprobs[k]) <= 1e-4,
                  `generated token ${k} (${JSON.stringify(lp.tokens[k])}): ${lp.token_logprobs[k]}, top-1 ${best}`);
      }
      // Without echo, logprobs cover only the completion.
      const bare = await greedy(prompt, 4, {logprobs: 1});
      assert.equal(bare.choices[0].logprobs.tokens.join(''), bare.choices[0].text);
      assert.equal(bare.choices[0].logprobs.tokens.length, bare.usage.completion_tokens);
    }));

    it('rejects a prompt longer than the context', withLog(async () => {
      const t = JSON.parse((await server.postJson('/v1/tokenize', {prompt: longPrompt})).text);
      assert.ok(t.count > kContextTokens, `long prompt is only ${t.count} tokens`);
      for (const call of [
        () => client.completions.create({model: modelId, prompt: longPrompt, max_tokens: 1}),
        () => client.completions.create({model: modelId, prompt: longPrompt, max_tokens: 0,
                                         echo: true, logprobs: 0}),
        () => client.chat.completions.create(
            {model: modelId, messages: [{role: 'user', content: longPrompt}], max_tokens: 1}),
      ]) {
        await assert.rejects(call, (e) => {
          assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
          assert.equal(e.status, 400, String(e));
          assert.equal(e.code, 'context_length_exceeded', String(e));
          assert.equal(e.type, 'invalid_request_error', String(e));
          return true;
        });
      }
    }));

    it('answers 404 for an unknown model', withLog(async () => {
      for (const call of [
        () => client.completions.create({model: 'no-such-model', prompt, max_tokens: 1}),
        () => client.chat.completions.create(
            {model: 'no-such-model', messages: [{role: 'user', content: 'Hi'}], max_tokens: 1}),
      ]) {
        await assert.rejects(call, (e) => {
          assert.ok(e instanceof OpenAI.NotFoundError, `not a NotFoundError: ${e}`);
          assert.equal(e.status, 404);
          assert.equal(e.code, 'model_not_found', String(e));
          return true;
        });
      }
    }));

    it('answers 413 with an error object for a 2 MiB body', withLog(async () => {
      const body = JSON.stringify({model: modelId, prompt: 'a'.repeat(2 << 20), max_tokens: 1});
      const r = await fetch(`${server.origin}/v1/completions`, {
        method: 'POST', headers: {'content-type': 'application/json'}, body});
      const text = await r.text();
      assert.equal(r.status, 413, text.slice(0, 300));
      const err = JSON.parse(text).error;
      assert.ok(err && typeof err.message === 'string' && err.message.length > 0, text);
      // And the server keeps serving.
      assert.equal((await greedy(prompt, 1)).choices.length, 1);
    }));

    // Streams a long completion, aborts it after the first chunk, and checks
    // the server stops decoding it: the running gauge drops to 0 and the
    // cancelled counter counts it.
    const checkCancelled = async (sampling) => {
      // A counter first exported at its first increment counts from 0.
      const cancelledBefore =
          metricValue(await server.metrics(), 'streamlm_requests_cancelled_total') ?? 0;
      const ac = new AbortController();
      const stream = await client.completions.create(
          {model: modelId, prompt, max_tokens: kServingMaxTokens, stream: true, ...sampling},
          {signal: ac.signal});
      let got = 0;
      let runningWhileStreaming;
      try {
        // The client's stream ends quietly on abort (openai v5) or throws an
        // abort error (other versions).
        for await (const chunk of stream) {
          got += chunk.choices.length;
          runningWhileStreaming =
              metricValue(await server.metrics(), 'streamlm_num_requests_running');
          ac.abort();
          break;
        }
      } catch (e) {
        if (!(e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError)) throw e;
      }
      assert.equal(got, 1, 'the stream sent no chunk');
      assert.equal(runningWhileStreaming, 1, 'streamlm_num_requests_running while streaming');
      let cancelled; let running;
      const deadline = Date.now() + 5000;
      do {
        await sleep(100);
        const text = await server.metrics();
        cancelled = metricValue(text, 'streamlm_requests_cancelled_total');
        running = metricValue(text, 'streamlm_num_requests_running');
      } while ((!(cancelled >= cancelledBefore + 1) || running !== 0) && Date.now() < deadline);
      assert.equal(running, 0, 'streamlm_num_requests_running did not return to 0 within 5 s');
      assert.notEqual(cancelled, undefined, 'metric streamlm_requests_cancelled_total is absent');
      assert.equal(cancelled, cancelledBefore + 1, 'streamlm_requests_cancelled_total did not count it');
    };

    it('cancels a streamed completion when the client goes away', withLog(async () => {
      // Seeded sampling: every token adds text (and ~100 s of decoding remain).
      await checkCancelled({temperature: 1, seed: 3});
    }));

    it('cancels a stream whose tokens add no text when the client goes away', withLog(async () => {
      // Greedy on the tiny model is a run of whitespace pieces whose text
      // deltas are empty after the first, so no bytes are written for a
      // long time: the server must notice the closed connection anyway, or
      // the request holds its batch slot until max_tokens.
      await checkCancelled({temperature: 0});
    }));

    it('answers 429 with Retry-After when the queue is full', withLog(async () => {
      await queueServer.start();
      const q = new OpenAI({baseURL: `${queueServer.origin}/v1`, apiKey: 'unused', maxRetries: 0});
      // Greedy: the tiny model repeats its most likely piece and does not
      // end by itself (sampling reaches end-of-text after ~2000 tokens).
      const long = {model: queueServer.readyModel, prompt, max_tokens: kServingMaxTokens,
                    temperature: 0, stream: true};
      const aborts = [];
      const post = (body) => {
        const ac = new AbortController();
        aborts.push(ac);
        return fetch(`${queueServer.origin}/v1/completions`, {
          method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body),
          signal: ac.signal});
      };
      try {
        const running = await post(long);  // takes the batch slot
        assert.equal(running.status, 200);
        await running.body.getReader().read();  // its first chunk: it is decoding
        const waiting = post(long);  // takes the queue place
        waiting.catch(() => {});
        let text;
        const deadline = Date.now() + 10000;
        do {
          await sleep(50);
          text = await queueServer.metrics();
        } while (metricValue(text, 'streamlm_num_requests_waiting') !== 1 && Date.now() < deadline);
        assert.equal(metricValue(text, 'streamlm_num_requests_waiting'), 1,
                     'the second request never waited; streamlm_num_requests_running = ' +
                     metricValue(text, 'streamlm_num_requests_running'));
        await assert.rejects(q.completions.create({model: queueServer.readyModel, prompt, max_tokens: 1}),
                             (e) => {
                               assert.ok(e instanceof OpenAI.RateLimitError, `not a 429: ${e}`);
                               const retry = e.headers.get('retry-after');
                               assert.match(retry || '', /^[1-9][0-9]*$/, `Retry-After: ${retry}`);
                               assert.ok(e.error && typeof e.error.message === 'string');
                               return true;
                             });
      } finally {
        for (const ac of aborts) ac.abort();
      }
      // Once the clients are gone the server serves again.
      let ok = false;
      for (const deadline = Date.now() + 10000; !ok && Date.now() < deadline; await sleep(100)) {
        const r = await queueServer.postJson('/v1/completions', {prompt, max_tokens: 1});
        ok = r.status === 200;
      }
      assert.ok(ok, 'no 200 within 10 s after the queue emptied');
    }, queueServer));
  });
}
