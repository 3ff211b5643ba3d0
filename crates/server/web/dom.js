// DOM builders and formatting. Every node is made with createElement/textContent, so nothing that
// comes from a model answer or the server is ever parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) {
      // Never an inline handler: only functions become listeners.
      if (typeof v !== 'function') throw new TypeError(`h(): ${k} must be a function`);
      el.addEventListener(k.slice(2), v);
    } else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// A labelled form control: <label for=id>text</label> + the control.
export function field(label, control, hint) {
  const id = control.id || (control.id = 'f-' + Math.random().toString(36).slice(2, 9));
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), control,
    hint ? h('small', { class: 'hint', text: hint }) : null);
}

// Screen-reader announcement through the page's polite status region.
export function announce(text) {
  const s = document.getElementById('status');
  if (s) s.textContent = text;
}

export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function readFile(file, as = 'text') {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    if (as === 'dataURL') r.readAsDataURL(file);
    else r.readAsText(file);
  });
}

export const fmt = {
  ms: (v) => (v == null ? '—' : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`),
  rate: (v) => (v == null || !isFinite(v) ? '—' : `${v.toFixed(1)} tok/s`),
  int: (v) => (v == null ? '—' : Number(v).toLocaleString('en-US')),
  // Costs are fractions of a cent: show enough digits to tell two answers apart.
  usd: (v) => (v == null ? '—' : v === 0 ? '$0' : v < 0.01 ? `$${v.toPrecision(3)}` : `$${v.toFixed(4)}`),
};

export function errorText(e) {
  if (e && typeof e.describe === 'function') return e.describe();
  return String((e && e.message) || e);
}

// A message across the top of the page (role=alert), until dismissed.
export function banner(text) {
  const b = document.getElementById('banner');
  b.replaceChildren(h('span', { text }), h('button', { type: 'button', class: 'small', text: 'Dismiss', onclick: () => { b.hidden = true; } }));
  b.hidden = false;
}
