// The chat view: conversations kept in this browser, streamed answers rendered as Markdown, stop,
// regenerate, edit, a system prompt and sampling settings, images, the microphone and read-aloud
// when the server serves them.

import { h, field, announce, banner, download, readFile, errorText } from './dom.js';
import { streamChat } from './api.js';
import * as convs from './conversations.js';
import { renderMarkdown } from './markdown.js';
import { record, transcribe, speak, stopSpeaking } from './media.js';
import { modelSelect, metaOf, statsLine, liveRenderer, copyCodeOnClick, copyText, errorBox } from './widgets.js';

const MAX_IMAGE_BYTES = 5 << 20;

export function chatView(root, served) {
  const s = {
    served, root, list: convs.load(defaultModel(served)), current: null, controller: null, images: [], ui: {}, dead: false,
  };
  if (!s.list.length) s.list.push(convs.create(defaultModel(served)));
  s.current = s.list[0];
  build(s);
  renderAll(s);
  return {
    focus: () => s.ui.prompt.focus(),
    // A view replaced (the key changed) stops its stream and never writes again.
    destroy() { s.dead = true; stop(s); },
  };
}

function defaultModel(served) {
  return served.tiers.length ? served.tiers[0].id : 'auto';
}

function build(s) {
  const ui = s.ui;
  ui.convList = h('ul', { class: 'conv-list' });
  const importInput = h('input', { type: 'file', accept: 'application/json,.json', class: 'visually-hidden', id: 'import-file', tabindex: '-1' });
  importInput.addEventListener('change', () => importFile(s, importInput));
  const sidebar = h('aside', { class: 'sidebar', 'aria-label': 'Conversations' },
    h('button', { type: 'button', class: 'primary', text: 'New chat', onclick: () => newChat(s) }),
    h('h2', { class: 'visually-hidden', text: 'Conversations' }),
    ui.convList,
    h('div', { class: 'row' },
      h('button', { type: 'button', text: 'Export', onclick: () => download('tandem-conversations.json', convs.exportBlob(s.list)) }),
      h('label', { for: 'import-file', class: 'button', tabindex: '0', role: 'button', text: 'Import' }), importInput,
      h('button', { type: 'button', text: 'Delete', onclick: () => deleteChat(s) })));
  sidebar.querySelector('label.button').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); importInput.click(); }
  });
  ui.messages = h('div', { class: 'messages', role: 'log', 'aria-label': 'Messages', 'aria-live': 'off' });
  copyCodeOnClick(ui.messages);
  s.root.replaceChildren(sidebar, h('div', { class: 'chat-main' }, settings(s), ui.messages, composer(s)));
}

function settings(s) {
  const ui = s.ui;
  ui.model = modelSelect(s.served, s.current.model);
  ui.model.id = 'chat-model';
  ui.model.addEventListener('change', () => { s.current.model = ui.model.value; persist(s); });
  ui.system = h('textarea', { id: 'chat-system', rows: 2, placeholder: 'You are a helpful assistant.' });
  ui.system.addEventListener('change', () => { s.current.system = ui.system.value; persist(s); });
  const num = (id, min, max, step) => h('input', { id, type: 'number', min, max, step, inputmode: 'decimal' });
  ui.temperature = num('chat-temperature', 0, 2, 0.1);
  ui.top_p = num('chat-top-p', 0, 1, 0.05);
  ui.max_tokens = num('chat-max-tokens', 1, 32768, 1);
  for (const k of ['temperature', 'top_p', 'max_tokens']) {
    ui[k].addEventListener('change', () => { s.current.params[k] = ui[k].value === '' ? null : Number(ui[k].value); persist(s); });
  }
  return h('div', { class: 'chat-settings' },
    field('Model', ui.model),
    h('details', { class: 'settings' }, h('summary', { text: 'System prompt and sampling' }),
      field('System prompt', ui.system),
      h('div', { class: 'row' }, field('Temperature', ui.temperature), field('Top p', ui.top_p),
        field('Max tokens', ui.max_tokens))));
}

function composer(s) {
  const ui = s.ui;
  ui.prompt = h('textarea', { id: 'chat-prompt', rows: 3, placeholder: 'Message (Enter sends, Shift+Enter for a new line)' });
  ui.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.form.requestSubmit(); }
  });
  ui.prompt.addEventListener('paste', (e) => pasteImages(s, e));
  ui.attachments = h('div', { class: 'attachments', role: 'group', 'aria-label': 'Attached images' });
  ui.send = h('button', { type: 'submit', id: 'chat-send', class: 'primary', text: 'Send' });
  ui.stop = h('button', { type: 'button', id: 'chat-stop', text: 'Stop', disabled: true, onclick: () => stop(s) });
  const extra = [];
  if (s.served.images) extra.push(imageButton(s));
  if (s.served.hearingModel) extra.push(micButton(s));
  ui.form = h('form', { class: 'composer', 'aria-label': 'Send a message' },
    ui.attachments, field('Message', ui.prompt), h('div', { class: 'row' }, extra, h('span', { class: 'grow' }), ui.stop, ui.send));
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); submit(s); });
  if (s.served.images) dropImages(s, ui.form);
  return ui.form;
}

function imageButton(s) {
  const input = h('input', { type: 'file', accept: 'image/*', multiple: true, class: 'visually-hidden', id: 'chat-image', tabindex: '-1' });
  input.addEventListener('change', async () => { await attach(s, [...input.files]); input.value = ''; });
  const label = h('label', { for: 'chat-image', class: 'button', tabindex: '0', role: 'button', text: 'Attach image' });
  label.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  return [label, input];
}

function micButton(s) {
  let rec = null;
  const btn = h('button', { type: 'button', 'aria-pressed': 'false', text: 'Speak' });
  btn.addEventListener('click', async () => {
    if (btn.dataset.busy) return;
    btn.dataset.busy = '1';
    try {
      if (!rec) {
        rec = await record();
        btn.setAttribute('aria-pressed', 'true');
        btn.textContent = 'Stop recording';
        announce('Recording');
        return;
      }
      const blob = await rec.stop();
      rec = null;
      btn.setAttribute('aria-pressed', 'false');
      btn.textContent = 'Transcribing…';
      const text = await transcribe(blob, s.served.hearingModel);
      s.ui.prompt.value = (s.ui.prompt.value ? s.ui.prompt.value + ' ' : '') + text;
      s.ui.prompt.focus();
    } catch (e) {
      rec = null;
      banner(errorText(e));
    } finally {
      delete btn.dataset.busy;
      if (!rec) btn.textContent = 'Speak';
    }
  });
  return btn;
}

async function attach(s, files) {
  for (const f of files.filter((f) => f.type.startsWith('image/'))) {
    if (f.size > MAX_IMAGE_BYTES) {
      banner(`${f.name} is ${(f.size / 1048576).toFixed(1)} MiB; images up to 5 MiB can be sent.`);
      continue;
    }
    s.images.push({ name: f.name, url: await readFile(f, 'dataURL') });
  }
  renderAttachments(s);
}

function pasteImages(s, e) {
  const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith('image/'));
  if (!files.length || !s.served.images) return;
  e.preventDefault();
  attach(s, files);
}

function dropImages(s, zone) {
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('drop'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('drop'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('drop'); attach(s, [...e.dataTransfer.files]); });
}

function renderAttachments(s) {
  s.ui.attachments.replaceChildren(...s.images.map((img, i) => h('figure', { class: 'thumb' },
    h('img', { src: img.url, alt: img.name }),
    h('button', { type: 'button', 'aria-label': `Remove ${img.name}`, text: '×',
      onclick: () => { s.images.splice(i, 1); renderAttachments(s); } }))));
}

function renderAll(s) {
  const ui = s.ui;
  ui.convList.replaceChildren(...s.list.map((c) => h('li', {},
    h('button', { type: 'button', class: 'conv', 'aria-current': c === s.current ? 'true' : false, text: c.title || 'New chat',
      onclick: () => select(s, c) }))));
  // A conversation whose model is not served here takes the one the picker shows, so what is
  // sent is what is shown.
  if ([...ui.model.options].some((o) => o.value === s.current.model)) ui.model.value = s.current.model;
  else s.current.model = ui.model.value;
  ui.system.value = s.current.system || '';
  for (const k of ['temperature', 'top_p', 'max_tokens']) ui[k].value = s.current.params[k] ?? '';
  const hadFocus = s.root.contains(document.activeElement);
  ui.messages.replaceChildren(...s.current.messages.map((m, i) => messageEl(s, m, i)));
  toBottom(ui.messages);
  // Rebuilt nodes drop focus to <body>: keep the keyboard user in the conversation.
  if (hadFocus && !s.root.contains(document.activeElement)) {
    (ui.convList.querySelector('[aria-current="true"]') || ui.prompt).focus();
  }
}

function select(s, c) {
  stop(s);
  s.current = c;
  renderAll(s);
}

// Follow a streaming answer only when the reader was already at the end of the conversation.
function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

function toBottom(el) {
  el.scrollTop = el.scrollHeight;
}

function messageEl(s, m, i) {
  const user = m.role === 'user';
  const body = h('div', { class: 'msg-body markdown' }, renderMarkdown(convs.textOf(m.content)));
  const images = Array.isArray(m.content) ? m.content.filter((p) => p.type === 'image_url') : [];
  const el = h('article', { class: `msg msg-${m.role}`, 'aria-label': user ? 'You' : 'Assistant' },
    h('div', { class: 'msg-role', text: user ? 'You' : (m.meta && m.meta.model) || 'Assistant' }),
    images.length ? h('div', { class: 'msg-images' }, images.map((p) => h('img', { src: p.image_url.url, alt: 'attached image' }))) : null,
    body, m.meta && m.meta.error ? errorBox(m.meta.error, false) : null, user ? null : statsLine(m.meta), actions(s, m, i));
  return el;
}

function actions(s, m, i) {
  const last = i === s.current.messages.length - 1;
  const text = convs.textOf(m.content);
  const row = h('div', { class: 'msg-actions' },
    h('button', { type: 'button', class: 'small', text: 'Copy', onclick: (e) => copyText(text, e.currentTarget) }));
  if (m.role === 'user') row.append(h('button', { type: 'button', class: 'small', text: 'Edit', onclick: () => edit(s, i) }));
  if (m.role === 'assistant' && last) row.append(h('button', { type: 'button', class: 'small', text: 'Regenerate', onclick: () => regenerate(s) }));
  if (m.role === 'assistant' && s.served.voiceModel && text) {
    row.append(h('button', { type: 'button', class: 'small', text: 'Read aloud',
      onclick: (e) => readAloud(e.currentTarget, text, s.served.voiceModel) }));
  }
  return row;
}

async function submit(s) {
  if (s.controller) return;
  const text = s.ui.prompt.value.trim();
  if (!text && !s.images.length) return;
  const content = s.images.length
    ? [{ type: 'text', text }, ...s.images.map((img) => ({ type: 'image_url', image_url: { url: img.url } }))]
    : text;
  s.current.messages.push({ role: 'user', content });
  s.ui.prompt.value = '';
  s.images = [];
  renderAttachments(s);
  if (s.current.title === 'New chat') s.current.title = convs.titleOf(s.current);
  renderAll(s);
  await generate(s);
}

async function generate(s) {
  const conv = s.current;
  const reply = { role: 'assistant', content: '', meta: { model: conv.model } };
  const wire = wireMessages(conv);
  conv.messages.push(reply);
  const el = messageEl(s, reply, conv.messages.length - 1);
  el.dataset.state = 'streaming';
  el.setAttribute('aria-busy', 'true');
  const pinned = nearBottom(s.ui.messages);
  s.ui.messages.append(el);
  if (pinned) toBottom(s.ui.messages);
  const body = el.querySelector('.msg-body');
  const live = liveRenderer(body, () => { if (pinned) toBottom(s.ui.messages); });
  const controller = new AbortController();
  setBusy(s, controller);
  let run = null;
  try {
    run = await streamChat(request(conv, wire), { signal: controller.signal, onDelta: (r) => { run = r; live.update(r.text); } });
    reply.content = run.text;
    reply.meta = metaOf(run);
  } catch (e) {
    reply.content = run ? run.text : '';
    const stopped = e.name === 'AbortError' || controller.signal.aborted;
    reply.meta = stopped ? { model: conv.model, finish: 'stopped' } : { model: conv.model, error: errorText(e) };
  }
  if (s.dead) return;
  live.finish(reply.content);
  setBusy(s, null);
  persist(s);
  const done = messageEl(s, reply, conv.messages.length - 1);
  done.dataset.state = reply.meta.error ? 'error' : reply.meta.finish === 'stopped' ? 'stopped' : 'done';
  el.replaceWith(done);
  announce(reply.meta.error ? `The answer failed: ${reply.meta.error}` : 'Answer complete.');
}

function request(conv, messages) {
  const body = { model: conv.model, messages };
  for (const k of ['temperature', 'top_p', 'max_tokens']) {
    const v = conv.params[k];
    if (v != null && v !== '' && !Number.isNaN(v)) body[k] = v;
  }
  return body;
}

// The conversation as the API takes it: the system prompt first, failed answers left out.
function wireMessages(conv) {
  const out = conv.system ? [{ role: 'system', content: conv.system }] : [];
  for (const m of conv.messages) {
    if (m.meta && m.meta.error) continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

function setBusy(s, controller) {
  // A focused button about to be disabled would drop focus to <body>.
  if ([s.ui.stop, s.ui.send].includes(document.activeElement)) s.ui.prompt.focus();
  s.controller = controller;
  s.ui.stop.disabled = !controller;
  s.ui.send.disabled = !!controller;
}

function stop(s) {
  if (s.controller) s.controller.abort();
}

async function regenerate(s) {
  if (s.controller) return;
  const msgs = s.current.messages;
  if (msgs.length && msgs[msgs.length - 1].role === 'assistant') msgs.pop();
  renderAll(s);
  await generate(s);
}

function edit(s, i) {
  if (s.controller) return;
  const m = s.current.messages[i];
  const area = h('textarea', { rows: 3, 'aria-label': 'Edit message' });
  area.value = convs.textOf(m.content);
  const save = async () => {
    if (Array.isArray(m.content)) m.content = m.content.map((p) => (p.type === 'text' ? { ...p, text: area.value } : p));
    else m.content = area.value;
    s.current.messages.length = i + 1;
    renderAll(s);
    await generate(s);
  };
  const box = h('form', { class: 'edit' }, area, h('div', { class: 'row' },
    h('button', { type: 'submit', class: 'primary', text: 'Save and send' }),
    h('button', { type: 'button', text: 'Cancel', onclick: () => renderAll(s) })));
  box.addEventListener('submit', (e) => { e.preventDefault(); save(); });
  s.ui.messages.children[i].querySelector('.msg-body').replaceWith(box);
  area.focus();
}

function newChat(s) {
  stop(s);
  const c = convs.create(s.ui.model.value || defaultModel(s.served));
  s.list.unshift(c);
  s.current = c;
  persist(s);
  renderAll(s);
  s.ui.prompt.focus();
}

function deleteChat(s) {
  stop(s);
  s.list = s.list.filter((c) => c !== s.current);
  if (!s.list.length) s.list.push(convs.create(defaultModel(s.served)));
  s.current = s.list[0];
  persist(s);
  renderAll(s);
}

async function importFile(s, input) {
  const file = input.files[0];
  input.value = '';
  if (!file) return;
  try {
    const list = convs.parseImport(await readFile(file), defaultModel(s.served));
    const known = new Set(s.list.map((c) => c.id));
    stop(s);
    s.list = [...list.filter((c) => !known.has(c.id)), ...s.list];
    s.current = s.list[0];
    renderAll(s);
    persist(s);
    announce(`Imported ${list.length} conversations.`);
  } catch (e) {
    banner(`Import failed: ${e.message}`);
  }
}

function persist(s) {
  s.current.title = convs.titleOf(s.current);
  const problem = convs.save(s.list);
  if (problem) banner(problem);
}

// "Read aloud" plays the answer; pressed again while it plays ("Stop reading"), it stops.
async function readAloud(btn, text, model) {
  if (btn.dataset.playing) {
    stopSpeaking();
    return;
  }
  btn.dataset.playing = '1';
  btn.textContent = 'Stop reading';
  try {
    await speak(text, model);
  } catch (e) {
    banner(errorText(e));
  } finally {
    delete btn.dataset.playing;
    btn.textContent = 'Read aloud';
  }
}
