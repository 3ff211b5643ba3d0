// Small single-pass syntax highlighter for chat code blocks.
//
// highlight(code, lang) returns a DocumentFragment of text nodes and
// <span class="tok-kw|tok-str|tok-com|tok-num|tok-fn|tok-type"> elements.
// Everything goes through textContent, so code is never parsed as HTML, and
// the fragment's textContent always equals `code` exactly.
//
// Languages: python/py, javascript/js/typescript/ts/json, rust/rs,
// c/cpp/c++/java/go, bash/sh/shell, sql (case-insensitive keywords), and a
// generic fallback (strings, numbers, # and // comments) for anything else.
//
// Why it cannot hang: every token pattern either fails within a few
// characters or, once started, always succeeds (an unterminated string or
// comment simply runs to the end of its line or of the input). Loops are
// written in "unrolled" form (simple char-class runs), so one regex pass over
// the input is linear even for 100 KB of hostile text.

const words = (list) => new Set(list.split(/\s+/).filter(Boolean));
const NONE = new Set();

// Pieces are written as u-flag literals so each is checked as valid
// unicode-mode syntax before being joined into one big alternation.
const P = {
  hash: /#[^\n]*/u.source,
  // In shells `#` starts a comment only at the start of a word ($#, ${#a}).
  shellHash: /(?<![^\s;|&(])#[^\n]*/u.source,
  // Generic text: only after whitespace, so URLs and a#b stay plain.
  looseHash: /(?<!\S)#[^\n]*/u.source,
  slash: /\/\/[^\n]*/u.source,
  looseSlash: /(?<!\S)\/\/[^\n]*/u.source,
  block: /\/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+\/|\**$)/u.source,
  dash: /--[^\n]*/u.source,
  tripleDq: /"""[^"]*(?:"{1,2}[^"]+)*(?:"""|"{0,2}$)/u.source,
  tripleSq: /'''[^']*(?:'{1,2}[^']+)*(?:'''|'{0,2}$)/u.source,
  dq: /"[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*"?/u.source,
  dqMulti: /"[^"\\]*(?:\\[\s\S][^"\\]*)*"?/u.source,
  sq: /'[^'\\\n]*(?:\\[\s\S][^'\\\n]*)*'?/u.source,
  // Generic text: needs a closing quote on the same line, so an apostrophe
  // in prose ("don't") does not colour the rest of the line.
  sqStrict: /'[^'\n]*'/u.source,
  sqShell: /'[^']*'?/u.source,
  sqSql: /'[^']*(?:''[^']*)*'?/u.source,
  // Rust char literal; a lifetime like 'a or 'static does not match.
  rustChar: /'(?:\\[\s\S][^'\n]{0,8}|[^'\\\n])'/u.source,
  bt: /`[^`\\]*(?:\\[\s\S][^`\\]*)*`?/u.source,
  btRaw: /`[^`]*`?/u.source,
};

const NUM = /(?:0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d[\d_]*)?)[\p{L}\p{N}_]*/u.source;
const IDENT = /[\p{L}_$][\p{L}\p{N}_$]*/u.source;
// Shell words may contain '-' (apt-get), and '$' is punctuation there.
const SHELL_IDENT = /[\p{L}_][\p{L}\p{N}_-]*/u.source;

const JS_KW = 'async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static super switch this throw try typeof var void while with yield true false null undefined NaN Infinity';
const C_COM = [P.slash, P.block];

const SPECS = {
  python: {
    kw: words('and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield None True False self'),
    types: words('int float complex str bytes bytearray bool list dict set frozenset tuple object'),
    com: [P.hash],
    str: [P.tripleDq, P.tripleSq, P.dq, P.sq],
  },
  js: { kw: words(JS_KW), com: C_COM, str: [P.dq, P.sq, P.bt] },
  ts: {
    kw: words(`${JS_KW} abstract as asserts declare enum implements infer interface is keyof namespace never override private protected public readonly satisfies type unique`),
    types: words('any bigint boolean number object string symbol unknown'),
    com: C_COM,
    str: [P.dq, P.sq, P.bt],
    caps: true,
  },
  rust: {
    kw: words('as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type union unsafe use where while yield macro_rules'),
    types: words('bool char str i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64'),
    com: C_COM,
    str: [P.dqMulti, P.rustChar],
    caps: true,
    macros: true,
  },
  c: {
    kw: words('auto break case catch class const constexpr continue default delete do else enum explicit extern false final for friend goto if inline mutable namespace new noexcept nullptr NULL operator override private protected public register return sizeof static static_assert struct switch template this throw true try typedef typename union using virtual volatile while include define undef ifdef ifndef elif endif pragma'),
    types: words('bool char double float int long short signed unsigned void size_t ssize_t wchar_t int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t FILE string'),
    com: C_COM,
    str: [P.dq, P.sq],
  },
  java: {
    kw: words('abstract assert break case catch class const continue default do else enum extends final finally for goto if implements import instanceof interface native new null package private protected public record return static strictfp super switch synchronized this throw throws transient try var volatile while yield true false'),
    types: words('boolean byte char double float int long short void'),
    com: C_COM,
    str: [P.tripleDq, P.dq, P.sq],
    caps: true,
  },
  go: {
    kw: words('break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false iota'),
    types: words('any bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr'),
    com: C_COM,
    str: [P.dq, P.sq, P.btRaw],
  },
  bash: {
    kw: words('if then else elif fi for while until do done case esac in function select time return local export readonly declare typeset unset shift exit break continue source alias trap eval exec set'),
    com: [P.shellHash],
    str: [P.dqMulti, P.sqShell],
    ident: SHELL_IDENT,
  },
  sql: {
    kw: words('select from where insert into values update set delete create table drop alter add column index view join inner left right outer full cross on as and or not null is in exists between like ilike limit offset order by group having distinct union all case when then else end primary key foreign references default unique check constraint if begin commit rollback transaction with returning asc desc true false cascade grant revoke trigger function procedure declare return returns replace database schema using over partition window'),
    types: words('int integer bigint smallint tinyint serial bigserial text varchar char character boolean bool date time timestamp timestamptz interval real float double precision numeric decimal blob bytea json jsonb uuid'),
    com: [P.dash, P.block],
    str: [P.sqSql, P.dq],
    ci: true,
  },
  text: { com: [P.looseHash, P.looseSlash], str: [P.dq, P.sqStrict] },
};

// A Map, so names like "constructor" cannot hit Object.prototype.
const ALIASES = new Map(Object.entries({
  python: 'python', py: 'python', python3: 'python', py3: 'python',
  javascript: 'js', js: 'js', jsx: 'js', mjs: 'js', cjs: 'js', node: 'js', json: 'js', jsonc: 'js',
  typescript: 'ts', ts: 'ts', tsx: 'ts',
  rust: 'rust', rs: 'rust',
  c: 'c', h: 'c', cpp: 'c', 'c++': 'c', cc: 'c', cxx: 'c', hpp: 'c',
  java: 'java', go: 'go', golang: 'go',
  bash: 'bash', sh: 'bash', shell: 'bash', zsh: 'bash', console: 'bash', shellscript: 'bash',
  sql: 'sql', postgres: 'sql', postgresql: 'sql', psql: 'sql', mysql: 'sql', sqlite: 'sql',
}));

const compiled = new Map();

// One regex per language: (comment)|(string)|(number)|(identifier).
// The pieces contain no capturing groups, so m[1..4] tell the kinds apart.
function regexFor(name) {
  let re = compiled.get(name);
  if (!re) {
    const spec = SPECS[name];
    const ident = spec.ident || IDENT;
    re = new RegExp(`(${spec.com.join('|')})|(${spec.str.join('|')})|(${NUM})|(${ident})`, 'gu');
    compiled.set(name, re);
  }
  return re;
}

function isTypeName(word) {
  // Capitalised, but not SCREAMING_CASE constants (those stay plain).
  return /^[A-Z]/.test(word) && (word.length === 1 || /[a-z]/.test(word));
}

function classify(m, spec, text, end) {
  if (m[1] !== undefined) return 'tok-com';
  if (m[2] !== undefined) return 'tok-str';
  if (m[3] !== undefined) return 'tok-num';
  const word = spec.ci ? m[4].toLowerCase() : m[4];
  if ((spec.kw || NONE).has(word)) return 'tok-kw';
  if ((spec.types || NONE).has(word) || (spec.caps && isTypeName(word))) return 'tok-type';
  const next = text[end];
  if (next === '(') return 'tok-fn';
  // Rust macro calls: println!(..), vec![..]; but not `a != b`.
  if (spec.macros && next === '!' && text[end + 1] !== '=') return 'tok-fn';
  return '';
}

function span(cls, text) {
  const el = document.createElement('span');
  el.setAttribute('class', cls);
  el.textContent = text;
  return el;
}

export function highlight(code, lang) {
  const text = String(code ?? '');
  const name = ALIASES.get(String(lang ?? '').trim().toLowerCase()) || 'text';
  const spec = SPECS[name];
  const re = regexFor(name);
  const frag = document.createDocumentFragment();
  let last = 0; // end of the text already emitted
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0] === '') { // cannot happen with these patterns; guards the loop anyway
      re.lastIndex += 1;
      continue;
    }
    const cls = classify(m, spec, text, re.lastIndex);
    // Plain identifiers are left in the gap so runs of plain text become one node.
    if (!cls) continue;
    if (m.index > last) frag.append(document.createTextNode(text.slice(last, m.index)));
    frag.append(span(cls, m[0]));
    last = re.lastIndex;
  }
  if (last < text.length) frag.append(document.createTextNode(text.slice(last)));
  return frag;
}
