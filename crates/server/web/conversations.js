// Conversations kept in this browser (localStorage), exported and imported as JSON. A conversation:
// {id, title, model, system, params: {temperature, top_p, max_tokens}, messages: [{role, content,
// meta?}]}, where content is a string or OpenAI content parts (text and image_url).

const STORE = 'tandem.conversations';
export const FORMAT = 'tandem.conversations.v1';

export function load(model) {
  try {
    const list = JSON.parse(localStorage.getItem(STORE) || '[]');
    return Array.isArray(list) ? list.filter(valid).map((c) => normalise(c, model)) : [];
  } catch {
    return [];
  }
}

// Saves the list; a full storage quota (large pasted images) is reported, never thrown at the chat.
export function save(list) {
  try {
    localStorage.setItem(STORE, JSON.stringify(list));
    return null;
  } catch (e) {
    return `Conversations could not be saved in this browser (${e.name}). Export them, or delete some.`;
  }
}

export function create(model) {
  return {
    id: 'c' + Date.now().toString(36) + Math.random().toString(36).slice(2, 6),
    title: 'New chat',
    model,
    system: '',
    params: { temperature: 0.7, top_p: 1, max_tokens: 512 },
    messages: [],
  };
}

export function titleOf(conv) {
  const first = conv.messages.find((m) => m.role === 'user');
  const text = first ? textOf(first.content) : '';
  return text ? text.slice(0, 48) : 'New chat';
}

export function textOf(content) {
  if (typeof content === 'string') return content;
  return (content || []).filter((p) => p.type === 'text').map((p) => p.text).join('\n');
}

export function exportBlob(list) {
  const doc = { format: FORMAT, exported_at: new Date().toISOString(), conversations: list };
  return new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' });
}

// Parses an exported file; throws an Error saying what is wrong with it.
export function parseImport(text, model) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`The file is not JSON (${e.message}).`);
  }
  const list = Array.isArray(doc) ? doc : doc && doc.conversations;
  if (!Array.isArray(list)) throw new Error(`Expected {"format": "${FORMAT}", "conversations": [...]}.`);
  const bad = list.findIndex((c) => !valid(c));
  if (bad >= 0) throw new Error(`Conversation ${bad} lacks an id or a messages list of {role, content}.`);
  return list.map((c) => normalise(c, model));
}

// Fills what an older or hand-written file may lack, and keeps only the content parts the page
// can show (text with a string, image_url with a string url).
function normalise(c, model) {
  const params = { temperature: 0.7, top_p: 1, max_tokens: 512, ...(c.params && typeof c.params === 'object' ? c.params : {}) };
  const messages = c.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.filter((p) => p && (
      (p.type === 'text' && typeof p.text === 'string')
      || (p.type === 'image_url' && p.image_url && typeof p.image_url.url === 'string'))),
    ...(m.meta && typeof m.meta === 'object' ? { meta: m.meta } : {}),
  }));
  return {
    id: c.id,
    title: typeof c.title === 'string' ? c.title : titleOf({ messages }),
    model: typeof c.model === 'string' ? c.model : model,
    system: typeof c.system === 'string' ? c.system : '',
    params,
    messages,
  };
}

function valid(c) {
  return c && typeof c.id === 'string' && Array.isArray(c.messages)
    && c.messages.every((m) => m && typeof m.role === 'string' && (typeof m.content === 'string' || Array.isArray(m.content)));
}
