// Two models side by side: one prompt sent to both, each answer streamed into its pane with its
// time to first token, speed, tokens and cost. Run together, the two share the CPU (each is slower
// than alone); run one after the other, each figure is the model's own — the panes say which.

import { h, field, errorText } from './dom.js';
import { streamChat } from './api.js';
import { modelSelect, metaOf, statsLine, liveRenderer, copyCodeOnClick, errorBox } from './widgets.js';

export function compareView(root, served) {
  const ids = served.tiers.map((m) => m.id);
  const panes = [pane('A', served, ids[0]), pane('B', served, ids[1] || 'auto')];
  const mode = h('select', { id: 'compare-mode' },
    h('option', { value: 'together', text: 'At the same time (both share the CPU)' }),
    h('option', { value: 'sequential', text: 'One after the other (each alone)' }));
  const prompt = h('textarea', { id: 'compare-prompt', rows: 3, placeholder: 'One prompt for both models' });
  const run = h('button', { type: 'submit', class: 'primary', text: 'Compare' });
  const stop = h('button', { type: 'button', text: 'Stop', disabled: true });
  const form = h('form', { class: 'compare-form', 'aria-label': 'Compare two models' },
    field('Prompt', prompt), h('div', { class: 'row' }, field('How to run', mode), h('span', { class: 'grow' }), stop, run));
  let controller = null;
  stop.addEventListener('click', () => controller && controller.abort());
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (controller || !prompt.value.trim()) return;
    controller = new AbortController();
    if (document.activeElement === run) prompt.focus();
    run.disabled = true;
    stop.disabled = false;
    const how = mode.value;
    const go = (p) => p.run(prompt.value.trim(), controller.signal, how);
    if (how === 'together') await Promise.all(panes.map(go));
    else for (const p of panes) await go(p);
    controller = null;
    if (document.activeElement === stop) prompt.focus();
    run.disabled = false;
    stop.disabled = true;
  });
  root.replaceChildren(form, h('div', { class: 'panes' }, panes.map((p) => p.el)));
  return { focus: () => prompt.focus() };
}

function pane(name, served, model) {
  const select = modelSelect(served, model, `Model ${name}`);
  select.id = `compare-model-${name.toLowerCase()}`;
  const body = h('div', { class: 'msg-body markdown' });
  const foot = h('div', { class: 'pane-foot' });
  const el = h('section', { class: 'pane', 'aria-label': `Model ${name}`, dataset: { pane: name } },
    field(`Model ${name}`, select), body, foot);
  copyCodeOnClick(body);
  return {
    el,
    async run(text, signal, how) {
      const live = liveRenderer(body);
      el.dataset.state = 'streaming';
      foot.replaceChildren(h('p', { class: 'stats', text: 'Waiting for the first token…' }));
      let last = null;
      try {
        const r = await streamChat({ model: select.value, messages: [{ role: 'user', content: text }] },
          { signal, onDelta: (x) => { last = x; live.update(x.text); } });
        live.finish(r.text);
        foot.replaceChildren(statsLine(metaOf(r)), h('p', { class: 'hint', text: measuredAs(how) }));
        el.dataset.state = r.finish === 'stopped' ? 'stopped' : 'done';
      } catch (e) {
        const stopped = e.name === 'AbortError' || signal.aborted;
        live.finish(last ? last.text : '');
        foot.replaceChildren(stopped ? h('p', { class: 'stats', text: 'Stopped.' }) : errorBox(errorText(e)));
        el.dataset.state = stopped ? 'stopped' : 'error';
      }
    },
  };
}

function measuredAs(how) {
  return how === 'together'
    ? 'Measured while both models ran at the same time, sharing the CPU.'
    : 'Measured alone: the models ran one after the other.';
}
