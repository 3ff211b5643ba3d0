// The dashboard: usage and cost over time (`/v1/usage`, admin keys), the tiers' report table
// (`/v1/report`) with bars, live engine state from `/metrics`, and batches (upload, progress,
// results).

import { h, field, fmt, download, errorText } from './dom.js';
import { call, getJSON, postJSON } from './api.js';
import { stackedBars, hbars, sparkline, legend } from './charts.js';
import { errorBox } from './widgets.js';

export function dashboardView(root) {
  const usage = h('section', { class: 'card wide', 'aria-labelledby': 'usage-h' }, h('h2', { id: 'usage-h', text: 'Usage and cost' }));
  const report = h('section', { class: 'card wide', 'aria-labelledby': 'report-h' }, h('h2', { id: 'report-h', text: 'The tiers' }));
  const live = h('section', { class: 'card', 'aria-labelledby': 'live-h' }, h('h2', { id: 'live-h', text: 'Live' }));
  const batches = h('section', { class: 'card', 'aria-labelledby': 'batches-h' }, h('h2', { id: 'batches-h', text: 'Batches' }));
  root.replaceChildren(h('div', { class: 'dashboard' }, usage, live, batches, report));
  const u = usageSection(usage);
  const l = liveSection(live);
  const b = batchSection(batches);
  reportSection(report);
  return {
    focus: () => usage.querySelector('select').focus(),
    show() { u.refresh(); l.start(); b.refresh(); },
    hide() { l.stop(); b.stop(); },
  };
}

const RANGES = [['1', 'Last 24 hours'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['0', 'All time']];
const SPLITS = [['model', 'Model'], ['key', 'Key'], ['project', 'Project']];
const SPLIT_FIELD = { model: 'model', key: 'key_id', project: 'project_id' };
const METRICS = {
  cost: { label: 'Cost', get: (r) => r.cost, format: (v) => fmt.usd(v) },
  requests: { label: 'Requests', get: (r) => r.requests, format: (v) => fmt.int(Math.round(v)) },
  tokens: { label: 'Tokens', get: (r) => r.input_tokens + r.output_tokens, format: (v) => fmt.int(Math.round(v)) },
};

function usageSection(card) {
  const range = h('select', { id: 'usage-range' }, RANGES.map(([v, t]) => h('option', { value: v, text: t })));
  const step = h('select', { id: 'usage-step' }, h('option', { value: 'hour', text: 'Hour' }), h('option', { value: 'day', text: 'Day' }));
  const metric = h('select', { id: 'usage-metric' }, Object.entries(METRICS).map(([k, m]) => h('option', { value: k, text: m.label })));
  const split = h('select', { id: 'usage-split' }, SPLITS.map(([v, t]) => h('option', { value: v, text: t })));
  const refreshBtn = h('button', { type: 'button', text: 'Refresh' });
  const body = h('div', { class: 'usage-body' });
  card.append(h('div', { class: 'row' }, field('Range', range), field('Per', step), field('Show', metric), field('Split by', split), h('span', { class: 'grow' }), refreshBtn), body);
  let seq = 0;
  const refresh = async () => {
    const mine = ++seq;
    const days = Number(range.value);
    const since = days ? Math.floor(Date.now() / 1000) - days * 86400 : 0;
    try {
      const q = (by) => getJSON(`/v1/usage?by=${by}&since=${since}`).then((r) => r.data);
      const [series, byModel, byKey, byProject] = await Promise.all([q(`${step.value},${split.value}`), q('model'), q('key'), q('project')]);
      if (mine !== seq) return;
      body.replaceChildren(usageChart(series, step.value, SPLIT_FIELD[split.value], METRICS[metric.value]),
        usageTable('Per model', 'model', byModel), usageTable('Per key', 'key_id', byKey), usageTable('Per project', 'project_id', byProject));
    } catch (e) {
      if (mine !== seq) return;
      const admin = e.status === 403 ? ' Usage across keys needs an admin key (tandem keys create --admin).' : '';
      body.replaceChildren(errorBox(errorText(e) + admin));
    }
  };
  for (const c of [range, step, metric, split]) c.addEventListener('change', refresh);
  refreshBtn.addEventListener('click', refresh);
  return { refresh };
}

function usageChart(rows, step, by, metric) {
  const labels = [...new Set(rows.map((r) => r[step]))].sort();
  const groups = [...new Set(rows.map((r) => r[by]))].sort();
  if (!labels.length) return h('p', { class: 'hint', text: 'No usage recorded in this range yet.' });
  const series = groups.map((g) => ({
    name: g,
    values: labels.map((l) => rows.filter((r) => r[step] === l && r[by] === g).reduce((a, r) => a + metric.get(r), 0)),
  }));
  const shown = labels.map((l) => (step === 'hour' ? `${l.slice(5, 10)} ${l.slice(11)}h` : l.slice(5)));
  return h('figure', { class: 'chart-box' },
    stackedBars({ labels: shown, series, format: metric.format, title: `${metric.label} per ${step} and ${by.replace('_id', '')}` }),
    h('figcaption', {}, legend(groups)));
}

const COLUMNS = [
  ['requests', 'Requests', fmt.int], ['input_tokens', 'Input tokens', fmt.int], ['cached_tokens', 'Cached', fmt.int],
  ['output_tokens', 'Output tokens', fmt.int], ['cost', 'Cost (USD)', (v) => String(Number(v.toPrecision(6)))],
];

function usageTable(caption, dim, rows) {
  const head = h('tr', {}, h('th', { scope: 'col', text: dim.replace('_id', '') }), COLUMNS.map(([, l]) => h('th', { scope: 'col', text: l })));
  const body = rows.map((r) => h('tr', { dataset: { dim, id: r[dim] } },
    h('th', { scope: 'row', text: r[dim] }),
    COLUMNS.map(([k, , f]) => h('td', { class: 'num', dataset: { col: k, value: r[k] }, text: f(r[k]) }))));
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'usage', dataset: { dim } }, h('caption', { text: caption }), h('thead', {}, head), h('tbody', {}, body)));
}

function reportSection(card) {
  const body = h('div', {}, h('p', { class: 'hint', text: 'Loading…' }));
  card.append(body);
  getJSON('/v1/report').then((r) => body.replaceChildren(reportTable(r), reportBars(r)))
    .catch((e) => body.replaceChildren(errorBox(errorText(e))));
}

function reportTable(r) {
  const tiers = Object.keys(r.tiers);
  const rows = (r.rows || []).map((row) => h('tr', {},
    h('th', { scope: 'row', text: row.label }),
    tiers.map((t) => {
      const c = r.tiers[t][row.key] || {};
      const note = c.text ? [c.source, c.command && `\`${c.command}\``, c.date].filter(Boolean).join(' · ') : `missing: run ${c.command}`;
      return h('td', { title: note, text: c.text || '—' });
    })));
  return h('div', { class: 'table-scroll' }, h('table', { class: 'report' },
    h('caption', { text: `Measured on ${r.hardware}, ${r.date}. Hover a cell for its source.` }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: '' }), tiers.map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows)));
}

// A number to draw for a report cell: plain numbers, pass rates in percent, the output price.
function numeric(v) {
  if (typeof v === 'number') return v;
  if (v && typeof v.pass_at_1 === 'number') return v.pass_at_1 * 100;
  if (v && typeof v.output === 'number') return v.output;
  return null;
}

function reportBars(r) {
  const tiers = Object.keys(r.tiers);
  const cards = (r.rows || []).map((row) => {
    const items = tiers.map((t) => ({ label: t, value: numeric((r.tiers[t][row.key] || {}).value), text: (r.tiers[t][row.key] || {}).text || '' }))
      .filter((i) => i.value != null);
    if (!items.length || row.key === 'model') return null;
    return h('figure', { class: 'bar-card' }, h('figcaption', { text: row.label }), hbars(items, row.label));
  }).filter(Boolean);
  return h('div', { class: 'bar-grid' }, cards);
}

// Prometheus text → {name: summed value} (labels summed away: the page shows totals).
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) out[m[1]] = (out[m[1]] || 0) + v;
  }
  return out;
}

function liveSection(card) {
  const grid = h('dl', { class: 'live-grid' });
  const spark = h('div', { class: 'spark-box' });
  card.append(grid, spark, h('p', { class: 'hint', text: 'From /metrics every 2 seconds while this page is open.' }));
  let timer = 0;
  let prev = null;
  let inFlight = false;
  const rates = [];
  const tick = async () => {
    if (inFlight) return;
    inFlight = true;
    try {
      const m = parseMetrics(await (await call('/metrics')).text());
      const now = performance.now();
      const rate = prev ? ((m.tandem_generated_tokens_total || 0) - prev.gen) / ((now - prev.t) / 1000) : 0;
      prev = { t: now, gen: m.tandem_generated_tokens_total || 0 };
      rates.push(Math.max(rate, 0));
      if (rates.length > 60) rates.shift();
      grid.replaceChildren(...liveItems(m, rate));
      spark.replaceChildren(sparkline(rates, 'Generated tokens per second, last two minutes'));
    } catch (e) {
      grid.replaceChildren(errorBox(errorText(e)));
    } finally {
      inFlight = false;
    }
  };
  return {
    start() { if (!timer) { tick(); timer = setInterval(tick, 2000); } },
    stop() { clearInterval(timer); timer = 0; },
  };
}

function liveItems(m, rate) {
  const used = m.tandem_kv_cache_blocks_in_use || 0;
  const total = m.tandem_kv_cache_blocks || 0;
  const items = [
    ['Queue', fmt.int(m.tandem_queue_depth || 0)],
    ['Active sequences', fmt.int(m.tandem_active_sequences || 0)],
    ['Generated tokens/s', rate.toFixed(1)],
    ['KV blocks in use', `${fmt.int(used)} / ${fmt.int(total)}`],
    ['Tokens generated', fmt.int(m.tandem_generated_tokens_total || 0)],
    ['Prompt tokens', fmt.int(m.tandem_prompt_tokens_total || 0)],
  ];
  const out = items.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]);
  out.push(h('dt', { text: 'KV cache' }), h('dd', {}, h('progress', { max: total || 1, value: used, 'aria-label': 'KV cache blocks in use' })));
  return out;
}

function batchSection(card) {
  const file = h('input', { type: 'file', id: 'batch-file', accept: '.jsonl,application/jsonl,text/plain' });
  const endpoint = h('select', { id: 'batch-endpoint' },
    ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses'].map((e) => h('option', { value: e, text: e })));
  const create = h('button', { type: 'submit', class: 'primary', text: 'Upload and start' });
  const list = h('div', { class: 'batch-list' });
  const note = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'batch-form' }, field('Input file (JSONL)', file), field('Endpoint', endpoint), create, note);
  card.append(form, list);
  let timer = 0;
  let active = false;
  const refresh = async () => {
    active = true;
    try {
      const batches = (await getJSON('/v1/batches?limit=20')).data || [];
      list.replaceChildren(batchTable(batches));
      const running = batches.some((b) => ['validating', 'in_progress', 'finalizing', 'cancelling'].includes(b.status));
      clearTimeout(timer);
      if (running && active) timer = setTimeout(refresh, 2000);
    } catch (e) {
      list.replaceChildren(errorBox(errorText(e)));
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!file.files[0]) { note.replaceChildren(errorBox('Choose a JSONL file first.')); return; }
    try {
      const up = new FormData();
      up.append('purpose', 'batch');
      up.append('file', file.files[0]);
      const f = await (await call('/v1/files', { method: 'POST', body: up })).json();
      const b = await postJSON('/v1/batches', { input_file_id: f.id, endpoint: endpoint.value, completion_window: '24h' });
      note.replaceChildren(h('p', { class: 'hint', text: `Started ${b.id}.` }));
      file.value = '';
      refresh();
    } catch (err) {
      note.replaceChildren(errorBox(errorText(err)));
    }
  });
  return { refresh, stop: () => { active = false; clearTimeout(timer); } };
}

function batchTable(batches) {
  if (!batches.length) return h('p', { class: 'hint', text: 'No batches yet.' });
  const rows = batches.map((b) => {
    const c = b.request_counts || { total: 0, completed: 0, failed: 0 };
    const fileBtn = (id, label) => id && h('button', { type: 'button', class: 'small', text: label,
      onclick: async () => download(`${b.id}-${label.toLowerCase()}.jsonl`, await (await call(`/v1/files/${id}/content`)).blob()) });
    return h('tr', { dataset: { id: b.id } },
      h('th', { scope: 'row', class: 'mono', text: b.id }),
      h('td', { text: b.status }),
      h('td', {}, h('progress', { max: c.total || 1, value: c.completed + c.failed, 'aria-label': `${b.id} progress` }),
        h('span', { class: 'hint', text: ` ${c.completed}/${c.total}${c.failed ? `, ${c.failed} failed` : ''}` })),
      h('td', {}, fileBtn(b.output_file_id, 'Results'), fileBtn(b.error_file_id, 'Errors')));
  });
  return h('div', { class: 'table-scroll' }, h('table', { class: 'batches' },
    h('thead', {}, h('tr', {}, ['Batch', 'Status', 'Progress', 'Files'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows)));
}
