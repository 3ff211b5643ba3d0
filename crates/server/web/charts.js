// Small SVG charts built node by node (no library): stacked bars over time and horizontal bars
// comparing the tiers. Each chart is an image with a text alternative; the numbers are also in a
// table beside it.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text != null) el.textContent = text;
  return el;
}

// Stacked bars: `labels` along x, one stack per label of `series` [{name, values}].
export function stackedBars({ labels, series, format, title }) {
  const W = 640, H = 220, L = 56, B = 36, T = 10;
  const totals = labels.map((_, i) => series.reduce((a, ser) => a + (ser.values[i] || 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart', 'aria-label': title });
  svg.append(s('title', {}, title));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    svg.append(s('line', { x1: L, x2: W, y1: y(max * f), y2: y(max * f), class: 'grid' }));
    svg.append(s('text', { x: L - 6, y: y(max * f) + 4, 'text-anchor': 'end', class: 'axis' }, format(max * f)));
  }
  const slot = (W - L) / Math.max(labels.length, 1);
  const bw = Math.max(Math.min(slot * 0.7, 48), 2);
  labels.forEach((label, i) => {
    let base = 0;
    const x = L + slot * i + (slot - bw) / 2;
    series.forEach((ser, k) => {
      const v = ser.values[i] || 0;
      if (v <= 0) return;
      const r = s('rect', { x, y: y(base + v), width: bw, height: y(base) - y(base + v), class: `s${k % 6}` });
      r.append(s('title', {}, `${label} · ${ser.name}: ${format(v)}`));
      svg.append(r);
      base += v;
    });
    if (labels.length <= 12 || i % Math.ceil(labels.length / 12) === 0) {
      svg.append(s('text', { x: x + bw / 2, y: H - B + 16, 'text-anchor': 'middle', class: 'axis' }, label));
    }
  });
  return svg;
}

// One horizontal bar per item [{label, value, text}], scaled to the largest.
export function hbars(items, title) {
  const W = 320, row = 22;
  const max = Math.max(...items.map((i) => i.value), 0) || 1;
  const svg = s('svg', { viewBox: `0 0 ${W} ${row * items.length + 4}`, role: 'img', class: 'chart hbars', 'aria-label': title });
  svg.append(s('title', {}, title));
  items.forEach((it, k) => {
    const w = Math.max(((W - 150) * it.value) / max, 1);
    svg.append(s('text', { x: 0, y: row * k + 15, class: 'axis' }, it.label));
    svg.append(s('rect', { x: 70, y: row * k + 4, width: w, height: row - 8, class: `s${k % 6}` }));
    svg.append(s('text', { x: 74 + w, y: row * k + 15, class: 'axis' }, it.text));
  });
  return svg;
}

// A line of recent values (tokens/s), newest on the right.
export function sparkline(values, title) {
  const W = 240, H = 40;
  const max = Math.max(...values, 0) || 1;
  const pts = values.map((v, i) => `${(W * i) / Math.max(values.length - 1, 1)},${H - 2 - ((H - 4) * v) / max}`);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart spark', 'aria-label': title });
  svg.append(s('title', {}, title));
  svg.append(s('polyline', { points: pts.join(' '), class: 'line' }));
  return svg;
}

export function legend(names) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  names.forEach((n, k) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch s${k % 6}`;
    li.append(sw, document.createTextNode(n));
    ul.append(li);
  });
  return ul;
}
