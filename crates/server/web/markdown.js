// Minimal Markdown renderer for streamed chat answers.
//
// Supported (a CommonMark-ish subset): ATX headings, paragraphs (a single
// newline is a soft break; two trailing spaces or a trailing backslash make
// <br>), fenced code with ``` or ~~~ and an optional language (an unclosed
// fence runs to the end, so a half-streamed block still renders as code),
// bullet (- * +) and ordered (1. 1)) lists nested by indentation,
// blockquotes, horizontal rules, GFM tables, and inline `code`, **bold**,
// __bold__, *italic*, _italic_, ~~strike~~, [links](url), <autolinks> and
// bare http(s) URLs. Images never become <img>: ![alt](src) is a link.
// Not supported: setext headings, indented code, raw HTML, entities,
// reference links.
//
// Output is built only with createElement / createTextNode / textContent /
// setAttribute, never from HTML strings, so any HTML in the input is inert
// literal text. Only http:, https: and mailto: URLs become links; any other
// link is shown as its original markdown text.
//
// The renderer runs on every streamed chunk, so every scan is kept linear
// (closer searches are memoised, nesting and URL lengths are capped).

import { highlight } from './highlight.js';

const MAX_DEPTH = 12; // list/quote nesting cap: bounds recursion on hostile input
const MAX_URL = 2048; // longer link destinations are left as text

const FENCE_RE = /^( {0,3})(`{3,}|~{3,})([\s\S]*)$/;
const FENCE_CLOSE_RE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})(?:[ \t]+([\s\S]*))?$/;
const QUOTE_RE = /^ {0,3}>/;
const QUOTE_STRIP_RE = /^ {0,3}> ?/;
const LIST_RE = /^([ \t]*)([-*+]|(\d{1,9})[.)])(?:([ \t]+)([\s\S]*))?$/;
const SEP_CELL_RE = /^:?-+:?$/;
const BLANK_RE = /^[ \t]*$/;
const PUNCT_RE = /[!-/:-@[-`{-~]/;
const URL_ESCAPE_RE = /\\([!-/:-@[-`{-~])/g;
const SAFE_URL_RE = /^(?:https?|mailto):/i;
const SPECIAL_RE = /[\\`*_~![<h\n]/g;
const BARE_URL_RE = /https?:\/\/[^\s<>`]+/y;
const ANGLE_URL_RE = /<((?:https?:\/\/|mailto:)[^\s<>]+)>/iy;
const ALNUM_RE = /[\p{L}\p{N}]/u;
const SPACE_RE = /\s/;
const URL_TRAIL = '.,:;!?*_~\'"';

export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  renderBlocks(lines, frag, false, 0);
  return frag;
}

// ---------------------------------------------------------------- blocks

function renderBlocks(lines, parent, tight, depth) {
  let i = 0;
  while (i < lines.length) i = renderBlock(lines, i, parent, tight, depth);
}

// Renders the block starting at line i; returns the index after it.
function renderBlock(lines, i, parent, tight, depth) {
  const line = lines[i];
  if (isBlank(line)) return i + 1;
  const fence = fenceOpen(line);
  if (fence) return renderFence(lines, i, fence, parent);
  const heading = HEADING_RE.exec(line);
  if (heading) {
    const el = document.createElement(`h${heading[1].length}`);
    renderInline(headingText(heading[2] || ''), el);
    parent.append(el);
    return i + 1;
  }
  if (isHr(line)) {
    parent.append(document.createElement('hr'));
    return i + 1;
  }
  if (depth < MAX_DEPTH && QUOTE_RE.test(line)) return renderQuote(lines, i, parent, depth);
  if (depth < MAX_DEPTH && listMarker(line)) return renderList(lines, i, parent, depth);
  if (isTableStart(lines, i)) return renderTable(lines, i, parent);
  return renderParagraph(lines, i, parent, tight);
}

// Could line j interrupt a paragraph? (CommonMark: an ordered item only if it
// starts at 1, and an empty item never does.)
function startsBlock(lines, j) {
  const line = lines[j];
  if (fenceOpen(line) || HEADING_RE.test(line) || isHr(line) || QUOTE_RE.test(line)) return true;
  const item = listMarker(line);
  if (item && item.rest !== '' && (!item.ordered || item.num === 1)) return true;
  return isTableStart(lines, j);
}

// Tight list items put their text straight into the <li>, without <p>.
function renderParagraph(lines, i, parent, tight) {
  let j = i + 1;
  while (j < lines.length && !isBlank(lines[j]) && !startsBlock(lines, j)) j++;
  const text = lines.slice(i, j).map((l) => l.replace(/^[ \t]+/, '')).join('\n').trimEnd();
  const target = tight ? parent : document.createElement('p');
  renderInline(text, target);
  if (!tight) parent.append(target);
  return j;
}

function headingText(raw) {
  // Drop an optional closing run of #s, but keep "C#" intact.
  const t = raw.trim();
  let j = t.length;
  while (j > 0 && t[j - 1] === '#') j--;
  if (j === 0) return '';
  if (j < t.length && (t[j - 1] === ' ' || t[j - 1] === '\t')) return t.slice(0, j).trimEnd();
  return t;
}

function isBlank(line) {
  return BLANK_RE.test(line);
}

function isHr(line) {
  // Done by hand rather than with a backreference regex: no backtracking.
  if (indentOf(line) > 3) return false;
  const t = line.replace(/[ \t]/g, '');
  return t.length >= 3 && /^(?:-+|\*+|_+)$/.test(t);
}

// Leading indentation in columns (tab = to the next multiple of 4).
function indentOf(line) {
  let col = 0;
  for (const c of line) {
    if (c === ' ') col += 1;
    else if (c === '\t') col += 4 - (col % 4);
    else break;
  }
  return col;
}

// Removes up to `cols` columns of leading indentation.
function stripIndent(line, cols) {
  let i = 0;
  let col = 0;
  while (i < line.length && col < cols) {
    if (line[i] === ' ') col += 1;
    else if (line[i] === '\t') col += 4 - (col % 4);
    else break;
    i += 1;
  }
  return line.slice(i);
}

// ----------------------------------------------------------- code fences

function fenceOpen(line) {
  const m = FENCE_RE.exec(line);
  if (!m) return null;
  const info = m[3].trim();
  // ```foo``` on one line is an inline code span, not a fence.
  if (m[2][0] === '`' && info.includes('`')) return null;
  const word = info.split(/\s+/)[0].replace(/^[{.]+|\}$/g, '');
  const lang = word.replace(/[^\w+#.-]/g, '').slice(0, 40);
  return { ch: m[2][0], len: m[2].length, indent: m[1].length, lang };
}

function fenceCloses(line, fence) {
  const m = FENCE_CLOSE_RE.exec(line);
  return m !== null && m[1][0] === fence.ch && m[1].length >= fence.len;
}

function renderFence(lines, i, fence, parent) {
  const body = [];
  let j = i + 1;
  while (j < lines.length && !fenceCloses(lines[j], fence)) {
    body.push(stripIndent(lines[j], fence.indent));
    j += 1;
  }
  const closed = j < lines.length;
  // Still streaming: a trailing newline would show as an empty last line.
  if (!closed && body.length > 0 && body[body.length - 1] === '') body.pop();
  parent.append(codeBlock(body.join('\n'), fence.lang));
  return closed ? j + 1 : j;
}

// The copy button gets no listener: the app delegates clicks on `.copy`.
function codeBlock(code, lang) {
  const name = lang || 'text';
  const block = element('div', 'code-block');
  const head = element('div', 'code-head');
  const label = element('span', 'code-lang');
  label.textContent = name;
  const copy = element('button', 'copy');
  copy.setAttribute('type', 'button');
  copy.setAttribute('aria-label', 'Copy code');
  copy.textContent = 'Copy';
  head.append(label, copy);
  const pre = document.createElement('pre');
  const codeEl = element('code', `language-${name}`);
  codeEl.append(highlight(code, lang));
  pre.append(codeEl);
  block.append(head, pre);
  return block;
}

function element(tag, cls) {
  const el = document.createElement(tag);
  if (cls) el.setAttribute('class', cls);
  return el;
}

// ------------------------------------------------------ quotes and lists

function renderQuote(lines, i, parent, depth) {
  const inner = [];
  let j = i;
  while (j < lines.length && QUOTE_RE.test(lines[j])) {
    inner.push(lines[j].replace(QUOTE_STRIP_RE, ''));
    j += 1;
  }
  const quote = document.createElement('blockquote');
  renderBlocks(inner, quote, false, depth + 1);
  parent.append(quote);
  return j;
}

function listMarker(line) {
  const m = LIST_RE.exec(line);
  if (!m) return null;
  const indent = indentOf(m[1]);
  const gap = m[4] ? indentOf(m[4]) : 0;
  const rest = m[5] || '';
  // Column where the item's own content starts; continuation lines are
  // un-indented by this much.
  const pad = gap >= 1 && gap <= 4 && rest !== '' ? gap : 1;
  return {
    indent,
    ordered: m[3] !== undefined,
    num: m[3] !== undefined ? Number(m[3]) : 1,
    content: indent + m[2].length + pad,
    rest,
  };
}

function renderList(lines, i, parent, depth) {
  const first = listMarker(lines[i]);
  const list = document.createElement(first.ordered ? 'ol' : 'ul');
  if (first.ordered && first.num !== 1) list.setAttribute('start', String(first.num));
  while (i < lines.length) {
    const item = listMarker(lines[i]);
    if (!item || item.ordered !== first.ordered || isHr(lines[i])) break;
    const [body, next] = collectItem(lines, i, item);
    list.append(listItem(body, depth));
    // Blank lines between items keep the list going if an item follows.
    const k = nextNonBlank(lines, next);
    i = k > next ? k : next;
  }
  parent.append(list);
  return i;
}

// Gathers an item's lines (marker removed, indentation stripped). A line
// belongs to the item if it is indented 2+ columns past the marker, is a
// lazy continuation of its text, or lies inside a fence the item opened.
function collectItem(lines, i, item) {
  const body = [item.rest];
  const nestAt = item.indent + 2;
  let fence = fenceOpen(item.rest);
  let j = i + 1;
  while (j < lines.length) {
    const line = lines[j];
    const inner = stripIndent(line, item.content);
    if (fence) {
      body.push(inner);
      if (fenceCloses(inner, fence)) fence = null;
      j += 1;
      continue;
    }
    if (isBlank(line)) {
      const k = nextNonBlank(lines, j);
      if (k < 0 || indentOf(lines[k]) < nestAt) break;
      for (; j < k; j += 1) body.push('');
      continue;
    }
    const nested = indentOf(line) >= nestAt;
    if (!nested && (listMarker(line) || startsBlock(lines, j))) break;
    body.push(nested ? inner : line.trimStart());
    fence = fenceOpen(body[body.length - 1]);
    j += 1;
  }
  return [body, j];
}

function listItem(body, depth) {
  const li = document.createElement('li');
  let a = 0;
  let b = body.length;
  while (a < b && isBlank(body[a])) a += 1;
  while (b > a && isBlank(body[b - 1])) b -= 1;
  const lines = body.slice(a, b);
  renderBlocks(lines, li, !lines.some(isBlank), depth + 1);
  return li;
}

function nextNonBlank(lines, j) {
  while (j < lines.length && isBlank(lines[j])) j += 1;
  return j < lines.length ? j : -1;
}

// ---------------------------------------------------------------- tables

function isTableStart(lines, i) {
  const head = lines[i];
  const sep = lines[i + 1];
  if (sep === undefined || !head.includes('|') || !isTableSep(sep)) return false;
  return splitRow(head).length === splitRow(sep).length;
}

function isTableSep(line) {
  if (!line.includes('|') || !line.includes('-')) return false;
  return splitRow(line).every((cell) => SEP_CELL_RE.test(cell));
}

// Splits "| a | b |" into trimmed cells; "\|" is a literal pipe.
function splitRow(line) {
  let t = line.trim();
  if (t.startsWith('|')) t = t.slice(1);
  if (t.endsWith('|') && !t.endsWith('\\|')) t = t.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < t.length; i += 1) {
    if (t[i] === '\\' && t[i + 1] === '|') {
      cur += '|';
      i += 1;
    } else if (t[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else {
      cur += t[i];
    }
  }
  cells.push(cur.trim());
  return cells;
}

function alignOf(cell) {
  const left = cell.startsWith(':');
  const right = cell.endsWith(':');
  if (left && right) return 'center';
  if (right) return 'right';
  return left ? 'left' : '';
}

function renderTable(lines, i, parent) {
  const aligns = splitRow(lines[i + 1]).map(alignOf);
  const table = document.createElement('table');
  const thead = document.createElement('thead');
  thead.append(tableRow(splitRow(lines[i]), aligns, 'th'));
  table.append(thead);
  const tbody = document.createElement('tbody');
  let j = i + 2;
  while (j < lines.length && lines[j].includes('|')) {
    tbody.append(tableRow(splitRow(lines[j]), aligns, 'td'));
    j += 1;
  }
  if (tbody.childNodes.length > 0) table.append(tbody);
  // The wrapper lets CSS scroll wide tables sideways.
  const wrap = element('div', 'table-wrap');
  wrap.append(table);
  parent.append(wrap);
  return j;
}

// Rows are padded or cut to the header's column count, as GFM does.
function tableRow(cells, aligns, tag) {
  const tr = document.createElement('tr');
  aligns.forEach((align, k) => {
    const cell = document.createElement(tag);
    // The `align` attribute, not inline style, so a strict CSP still applies it.
    if (align) cell.setAttribute('align', align);
    renderInline(cells[k] ?? '', cell);
    tr.append(cell);
  });
  return tr;
}

// ---------------------------------------------------------------- inline

// `noLinks` is set inside link text: nested links render as plain text.
// `noCloser` / `noTicks` remember searches that found nothing, so later
// openers of the same kind fail at once instead of rescanning (keeps
// pathological input like "*a *a *a ..." linear).
function renderInline(s, parent, noLinks = false) {
  const ctx = { s, parent, noLinks, buf: '', noCloser: new Set(), noTicks: new Set() };
  let i = 0;
  while (i < s.length) {
    SPECIAL_RE.lastIndex = i;
    const m = SPECIAL_RE.exec(s);
    const j = m ? m.index : s.length;
    ctx.buf += s.slice(i, j);
    if (j >= s.length) break;
    const next = inlineAt(ctx, j);
    if (next > j) {
      i = next;
    } else {
      ctx.buf += s[j];
      i = j + 1;
    }
  }
  flush(ctx);
}

// Tries the construct starting at s[i]; returns the index after it, or -1
// to have the character taken literally.
function inlineAt(ctx, i) {
  const s = ctx.s;
  switch (s[i]) {
    case '\\': return escapeAt(ctx, i);
    case '`': return codeSpan(ctx, i);
    case '*': case '_': case '~': return emphasis(ctx, i);
    case '!': return s[i + 1] === '[' ? link(ctx, i, true) : -1;
    case '[': return link(ctx, i, false);
    case '<': return angleLink(ctx, i);
    case 'h': return bareUrl(ctx, i);
    case '\n': return lineBreak(ctx, i);
    default: return -1;
  }
}

function flush(ctx) {
  if (ctx.buf) {
    ctx.parent.append(document.createTextNode(ctx.buf));
    ctx.buf = '';
  }
}

function pushNode(ctx, node) {
  flush(ctx);
  ctx.parent.append(node);
}

function escapeAt(ctx, i) {
  const next = ctx.s[i + 1];
  if (next === '\n') {
    pushNode(ctx, document.createElement('br'));
    return i + 2;
  }
  if (next !== undefined && PUNCT_RE.test(next)) {
    ctx.buf += next;
    return i + 2;
  }
  return -1;
}

// Soft break stays a newline (renders as a space); two or more trailing
// spaces make a hard <br>. Trailing spaces are dropped either way.
function lineBreak(ctx, i) {
  let j = ctx.buf.length;
  while (j > 0 && ctx.buf[j - 1] === ' ') j -= 1;
  const hard = ctx.buf.length - j >= 2;
  ctx.buf = ctx.buf.slice(0, j);
  if (hard) pushNode(ctx, document.createElement('br'));
  else ctx.buf += '\n';
  return i + 1;
}

function runEnd(s, i) {
  const c = s[i];
  let j = i;
  while (s[j] === c) j += 1;
  return j;
}

// Index of the next backtick run of exactly k after `from`, or -1.
function findTicks(ctx, from, k) {
  if (ctx.noTicks.has(k)) return -1;
  const s = ctx.s;
  let j = s.indexOf('`', from);
  while (j >= 0) {
    const end = runEnd(s, j);
    if (end - j === k) return j;
    j = s.indexOf('`', end);
  }
  ctx.noTicks.add(k);
  return -1;
}

function codeSpan(ctx, i) {
  const s = ctx.s;
  const open = runEnd(s, i);
  const k = open - i;
  const close = findTicks(ctx, open, k);
  if (close < 0) { // unclosed (e.g. mid-stream): the backticks are literal
    ctx.buf += s.slice(i, open);
    return open;
  }
  let body = s.slice(open, close).replace(/\n/g, ' ');
  if (body.length >= 2 && body[0] === ' ' && body[body.length - 1] === ' ' && body.trim() !== '') {
    body = body.slice(1, -1);
  }
  const code = document.createElement('code');
  code.textContent = body;
  pushNode(ctx, code);
  return close + k;
}

// ------------------------------------------------------------- emphasis

function isSpace(c) {
  return c === undefined || SPACE_RE.test(c);
}

function isAlnum(c) {
  return c !== undefined && ALNUM_RE.test(c);
}

// A run of 1-3 `*`/`_` (or exactly 2 `~`) opens if followed by non-space;
// `_` must also not sit inside a word (snake_case stays literal).
function emphasis(ctx, i) {
  const s = ctx.s;
  const ch = s[i];
  const end = runEnd(s, i);
  const canOpen = !isSpace(s[end]) && !(ch === '_' && isAlnum(s[i - 1]));
  if (canOpen) {
    for (const n of delimiterSizes(ch, end - i)) {
      const close = findCloser(ctx, i + n, ch, n);
      if (close >= 0) {
        wrapEmphasis(ctx, s.slice(i + n, close), ch, n);
        return close + n;
      }
    }
  }
  ctx.buf += s.slice(i, end);
  return end;
}

// "***" tries bold+italic first, then italic whose text starts with "**".
function delimiterSizes(ch, len) {
  if (ch === '~') return len === 2 ? [2] : [];
  if (len === 3) return [3, 1];
  return len < 3 ? [len] : [];
}

// Finds a closing run of exactly n `ch` after `from`: preceded by non-space
// and (for `_`) not followed by a letter/digit. Code spans are skipped.
function findCloser(ctx, from, ch, n) {
  const key = ch + n;
  if (ctx.noCloser.has(key)) return -1;
  const s = ctx.s;
  let j = from;
  while (j < s.length) {
    const c = s[j];
    if (c === '\\') {
      j += 2;
    } else if (c === '`') {
      const open = runEnd(s, j);
      const close = findTicks(ctx, open, open - j);
      j = close < 0 ? open : close + (open - j);
    } else if (c !== ch) {
      j += 1;
    } else {
      const end = runEnd(s, j);
      const ok = end - j === n && j > from && !isSpace(s[j - 1]);
      if (ok && !(ch === '_' && isAlnum(s[end]))) return j;
      j = end;
    }
  }
  ctx.noCloser.add(key);
  return -1;
}

function wrapEmphasis(ctx, content, ch, n) {
  let outer;
  let inner;
  if (ch === '~') {
    outer = inner = document.createElement('del');
  } else if (n === 3) {
    outer = document.createElement('em');
    inner = document.createElement('strong');
    outer.append(inner);
  } else {
    outer = inner = document.createElement(n === 2 ? 'strong' : 'em');
  }
  renderInline(content, inner, ctx.noLinks);
  pushNode(ctx, outer);
}

// ---------------------------------------------------------------- links

function safeHref(url) {
  const u = url.trim();
  return SAFE_URL_RE.test(u) ? u : null;
}

function anchor(href) {
  const a = document.createElement('a');
  a.setAttribute('href', href);
  a.setAttribute('rel', 'noopener noreferrer');
  a.setAttribute('target', '_blank');
  return a;
}

// [text](url "title") and ![alt](src). An unsafe or relative URL shows the
// whole construct as text; an image becomes a link showing its alt text.
function link(ctx, i, isImage) {
  const s = ctx.s;
  const textStart = i + (isImage ? 2 : 1);
  const textEnd = findBracketEnd(s, textStart);
  if (textEnd < 0 || s[textEnd + 1] !== '(') return -1;
  const dest = parseDest(s, textEnd + 2);
  if (!dest) return -1;
  const href = safeHref(dest.url);
  const label = s.slice(textStart, textEnd);
  if (!href) {
    ctx.buf += s.slice(i, dest.end);
  } else if (ctx.noLinks) { // already inside a link: keep just the text
    if (isImage) ctx.buf += label;
    else { flush(ctx); renderInline(label, ctx.parent, true); }
  } else {
    const a = anchor(href);
    if (isImage || label.trim() === '') a.textContent = label.trim() || href;
    else renderInline(label, a, true);
    pushNode(ctx, a);
  }
  return dest.end;
}

// Index of the `]` closing link text, allowing one nested [..] pair (for
// [![badge](src)](href)); deeper nesting fails fast, keeping scans short.
function findBracketEnd(s, from) {
  let depth = 1;
  for (let j = from; j < s.length; j += 1) {
    const c = s[j];
    if (c === '\\') {
      j += 1;
    } else if (c === '[') {
      depth += 1;
      if (depth > 2) return -1;
    } else if (c === ']') {
      depth -= 1;
      if (depth === 0) return j;
    }
  }
  return -1;
}

// Parses `url "title")` or `<url>)` starting after "(".
function parseDest(s, p) {
  let j = skipSpace(s, p);
  let url;
  if (s[j] === '<') {
    const close = scanTo(s, j + 1, '>', MAX_URL);
    if (close < 0) return null;
    url = s.slice(j + 1, close);
    j = close + 1;
  } else {
    const end = scanUrl(s, j);
    url = s.slice(j, end);
    j = end;
  }
  j = skipSpace(s, j);
  if (s[j] === '"' || s[j] === "'") {
    const close = scanTo(s, j + 1, s[j], 500);
    if (close < 0) return null;
    j = skipSpace(s, close + 1);
  }
  if (s[j] !== ')') return null;
  return { url: url.replace(URL_ESCAPE_RE, '$1'), end: j + 1 };
}

function skipSpace(s, j) {
  while (s[j] === ' ' || s[j] === '\t' || s[j] === '\n') j += 1;
  return j;
}

// Index of `ch` within `max` chars on the same line, or -1.
function scanTo(s, from, ch, max) {
  const limit = Math.min(s.length, from + max);
  for (let k = from; k < limit; k += 1) {
    if (s[k] === ch) return k;
    if (s[k] === '\n') return -1;
    if (s[k] === '\\') k += 1;
  }
  return -1;
}

// End of a bare destination: stops at whitespace or an unbalanced `)`.
function scanUrl(s, j) {
  const limit = Math.min(s.length, j + MAX_URL);
  let depth = 0;
  let k = j;
  for (; k < limit; k += 1) {
    const c = s[k];
    if (c === '\\') k += 1;
    else if (c === '(') depth += 1;
    else if (c === ')' && depth === 0) break;
    else if (c === ')') depth -= 1;
    else if (c === ' ' || c === '\t' || c === '\n' || c === '<') break;
  }
  return Math.min(k, s.length);
}

function angleLink(ctx, i) {
  if (ctx.noLinks) return -1;
  ANGLE_URL_RE.lastIndex = i;
  const m = ANGLE_URL_RE.exec(ctx.s);
  if (!m) return -1;
  const a = anchor(m[1]);
  a.textContent = m[1];
  pushNode(ctx, a);
  return i + m[0].length;
}

// Bare http(s) URL at a word start; trailing punctuation and unbalanced
// closing parens are left out, as GFM does.
function bareUrl(ctx, i) {
  const s = ctx.s;
  if (ctx.noLinks || isAlnum(s[i - 1]) || !s.startsWith('http', i)) return -1;
  BARE_URL_RE.lastIndex = i;
  const m = BARE_URL_RE.exec(s);
  if (!m) return -1;
  const end = trimUrl(s, i, i + m[0].length);
  const scheme = s.startsWith('https', i) ? 8 : 7;
  if (end - i <= scheme) return -1;
  const url = s.slice(i, end);
  const a = anchor(url);
  a.textContent = url;
  pushNode(ctx, a);
  return end;
}

function trimUrl(s, start, end) {
  let open = 0;
  let close = 0;
  for (let k = start; k < end; k += 1) {
    if (s[k] === '(') open += 1;
    else if (s[k] === ')') close += 1;
  }
  while (end > start) {
    const c = s[end - 1];
    if (URL_TRAIL.includes(c)) {
      end -= 1;
    } else if (c === ')' && close > open) {
      end -= 1;
      close -= 1;
    } else {
      break;
    }
  }
  return end;
}
