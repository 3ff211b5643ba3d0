// The page's one way to the server: the API key (kept for the tab's lifetime, or remembered
// when the user opts in), OpenAI-shaped errors, and the SSE reader for streamed answers.

const KEY = 'tandem.key';
let key = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';

export const apiKey = () => key;
export const keyRemembered = () => localStorage.getItem(KEY) != null;

export function setKey(value, remember) {
  key = (value || '').trim();
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

// An error as the server said it: status, type, code, the parameter named.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `The server answered HTTP ${status}.`);
    this.status = status;
    this.type = e.type || null;
    this.code = e.code || null;
    this.param = e.param || null;
  }

  describe() {
    const head = this.status ? `Error ${this.status}` : 'Error';
    const code = this.code ? ` ${this.code}` : '';
    const param = this.param ? ` (parameter '${this.param}')` : '';
    return `${head}${code}${param}: ${this.message}`;
  }
}

export async function call(path, { method = 'GET', json, body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { ...headers }, cache: 'no-store', credentials: 'same-origin' };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (body !== undefined) {
    init.body = body;
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { error: { message: `The server could not be reached (${e.message}).` } });
  }
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
  return resp;
}

export const getJSON = async (path, opts) => (await call(path, opts)).json();
export const postJSON = async (path, json, opts = {}) => (await call(path, { ...opts, method: 'POST', json })).json();

// Each `data:` payload of a server-sent event stream, parsed, until `[DONE]`. A stream that ends
// without `[DONE]` was cut off: that is an error, not a complete answer.
export async function* events(resp) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new ApiError(0, { error: { message: 'The stream ended before the answer was complete.' } });
      buf = (buf + dec.decode(value, { stream: true })).replace(/\r\n/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        const obj = JSON.parse(data);
        if (obj.error) throw new ApiError(0, obj);
        yield obj;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// One streamed chat completion. `onDelta(run)` is called after every chunk; the run holds the
// text so far, tool calls, usage (with cost), the tier that answered and why (`model: "auto"`),
// time to first token and the elapsed time, measured here in the browser.
export async function streamChat(body, { signal, onDelta } = {}) {
  const t0 = performance.now();
  const req = { ...body, stream: true, stream_options: { include_usage: true } };
  const resp = await call('/v1/chat/completions', { method: 'POST', json: req, signal });
  const run = {
    text: '', toolCalls: [], usage: null, model: body.model, finish: null, ttft: null, elapsed: 0, deltas: 0,
    route: resp.headers.get('x-tandem-route'), moderation: resp.headers.get('x-tandem-moderation'),
  };
  try {
    for await (const chunk of events(resp)) {
      absorb(run, chunk, t0);
      if (onDelta) onDelta(run);
    }
  } catch (e) {
    // Stopped by the user: however the stream ended after the abort (a rejected read, or a
    // closed body that looks cut off), it is a stop, not an error.
    if (e.name !== 'AbortError' && !(signal && signal.aborted)) throw e;
    run.finish = 'stopped';
  }
  run.elapsed = performance.now() - t0;
  return run;
}

function absorb(run, chunk, t0) {
  if (chunk.model) run.model = chunk.model;
  if (chunk.usage) run.usage = chunk.usage;
  for (const c of chunk.choices || []) {
    const d = c.delta || {};
    const piece = (d.content || '') + (d.refusal || '');
    if (piece || d.tool_calls) {
      if (run.ttft == null) run.ttft = performance.now() - t0;
      run.deltas += 1;
    }
    run.text += piece;
    for (const tc of d.tool_calls || []) {
      const slot = run.toolCalls[tc.index] || (run.toolCalls[tc.index] = { id: '', name: '', arguments: '' });
      if (tc.id) slot.id = tc.id;
      if (tc.function && tc.function.name) slot.name += tc.function.name;
      if (tc.function && tc.function.arguments) slot.arguments += tc.function.arguments;
    }
    if (c.finish_reason) run.finish = c.finish_reason;
  }
}

// Tokens per second of the generation itself (after the first token), from the server's count.
export function decodeRate(run) {
  const n = run.usage ? run.usage.completion_tokens : run.deltas;
  const secs = (run.elapsed - (run.ttft || 0)) / 1000;
  return n > 1 && secs > 0 ? (n - 1) / secs : null;
}

// What the page can offer, from `/v1/models`: the chat tiers (and `auto` when two are served),
// and whether hearing (Whisper), speaking (the voice) and seeing (images) are served.
export async function served() {
  const list = (await getJSON('/v1/models')).data || [];
  const special = new Set(['speech', 'voice', 'embeddings']);
  const tiers = list.filter((m) => !special.has(m.tier));
  const hearing = list.find((m) => m.tier === 'speech');
  const voice = list.find((m) => m.tier === 'voice');
  return {
    tiers,
    images: tiers.some((m) => (m.input_modalities || []).includes('image')),
    hearingModel: hearing ? hearing.id : null,
    voiceModel: voice ? voice.id : null,
  };
}
