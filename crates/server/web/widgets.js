// Pieces the views share: the model picker, an answer's figures, and a streamed answer's renderer.

import { h, fmt } from './dom.js';
import { decodeRate } from './api.js';
import { renderMarkdown } from './markdown.js';

// A <select> of the served chat models, `auto` (the router picks the tier per request) and the
// other names clients use for the tiers (`gpt-4o-mini`).
export function modelSelect(served, value, label = 'Model') {
  const sel = h('select', { 'aria-label': label, class: 'model-select' });
  for (const m of served.tiers) {
    sel.append(h('option', { value: m.id, text: m.tier && m.tier !== m.id ? `${m.id} (${m.tier})` : m.id }));
  }
  if (served.tiers.length) sel.append(h('option', { value: 'auto', text: 'auto (router picks the tier)' }));
  const aliases = served.tiers.flatMap((m) => (m.aliases || []).map((a) => [a, m.tier || m.id]));
  if (aliases.length) {
    sel.append(h('optgroup', { label: 'Aliases' }, aliases.map(([a, t]) => h('option', { value: a, text: `${a} → ${t}` }))));
  }
  if (value && [...sel.options].some((o) => o.value === value)) sel.value = value;
  return sel;
}

// The figures of one finished (or stopped) answer, as kept with the message.
export function metaOf(run) {
  const u = run.usage || {};
  return {
    model: run.model,
    route: run.route,
    moderation: run.moderation,
    finish: run.finish,
    ttft: run.ttft,
    rate: decodeRate(run),
    prompt_tokens: u.prompt_tokens,
    tokens: u.completion_tokens != null ? u.completion_tokens : run.deltas,
    cost: u.cost ? u.cost.total : null,
  };
}

// "mini · TTFT 180 ms · 31.2 tok/s · 64 tokens · $0.0000123 · auto: mini (reason=…)"
export function statsLine(meta) {
  if (!meta) return null;
  const parts = [
    ['model', meta.model],
    ['time to first token', fmt.ms(meta.ttft)],
    ['speed', fmt.rate(meta.rate)],
    ['tokens', meta.tokens == null ? null : `${fmt.int(meta.tokens)} tokens`],
    ['cost', meta.cost == null ? null : fmt.usd(meta.cost)],
  ].filter(([, v]) => v);
  const line = h('p', { class: 'stats' }, parts.map(([k, v]) => h('span', { title: k, class: 'stat' }, v)));
  if (meta.finish && meta.finish !== 'stop') line.append(h('span', { class: 'stat badge', text: meta.finish }));
  if (meta.route) line.append(h('span', { class: 'stat route', title: 'x-tandem-route', text: `routed: ${meta.route}` }));
  if (meta.moderation) line.append(h('span', { class: 'stat badge warn', text: `moderation: ${meta.moderation}` }));
  return line;
}

// Re-renders a growing answer at most once per frame, so a fast stream costs one render a frame;
// `after` runs after each render (the chat keeps the newest text in view).
export function liveRenderer(body, after = () => {}) {
  let pending = null;
  let frame = 0;
  const flush = () => {
    frame = 0;
    if (pending != null) body.replaceChildren(renderMarkdown(pending));
    pending = null;
    after();
  };
  return {
    update(text) {
      pending = text;
      if (!frame) frame = requestAnimationFrame(flush);
    },
    // Renders `text` now and drops anything scheduled (after stop, nothing more appears).
    finish(text) {
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
      pending = null;
      body.replaceChildren(renderMarkdown(text));
      after();
    },
  };
}

// Copy buttons inside rendered code blocks, by delegation (the renderer attaches no listeners).
export function copyCodeOnClick(root) {
  root.addEventListener('click', async (ev) => {
    const btn = ev.target.closest('button.copy');
    if (!btn || !root.contains(btn)) return;
    const code = btn.closest('.code-block')?.querySelector('code');
    if (!code) return;
    await copyText(code.textContent, btn);
  });
}

export async function copyText(text, btn) {
  const label = btn.textContent;
  try {
    await navigator.clipboard.writeText(text);
    btn.textContent = 'Copied';
  } catch {
    btn.textContent = 'Copy failed';
  }
  setTimeout(() => { btn.textContent = label; }, 1500);
}

// An error shown in place; `live` (a new error) makes screen readers say it once.
export function errorBox(text, live = true) {
  return h('div', { class: 'error', role: live ? 'alert' : null }, h('strong', { text: 'Something went wrong. ' }), text);
}
