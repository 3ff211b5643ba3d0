// Tools and JSON: paste a JSON schema (→ response_format json_schema, output held to it by the
// grammar) or tool definitions (→ tools, with tool_choice), and see the constrained output or the
// tool calls the model made.

import { h, field, errorText } from './dom.js';
import { streamChat } from './api.js';
import { modelSelect, metaOf, statsLine, errorBox } from './widgets.js';

const SCHEMA_EXAMPLE = {
  name: 'city',
  schema: {
    type: 'object',
    properties: { name: { type: 'string' }, country: { type: 'string' }, population: { type: 'integer' } },
    required: ['name', 'country', 'population'],
    additionalProperties: false,
  },
};

const TOOLS_EXAMPLE = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];

export function toolsView(root, served) {
  const kind = h('select', { id: 'tools-kind' },
    h('option', { value: 'schema', text: 'JSON schema (structured output)' }),
    h('option', { value: 'tools', text: 'Tool definitions (function calling)' }));
  const spec = h('textarea', { id: 'tools-spec', rows: 12, spellcheck: 'false', class: 'mono' });
  const choice = h('select', { id: 'tools-choice' }, ['auto', 'required', 'none'].map((v) => h('option', { value: v, text: v })));
  const choiceField = field('tool_choice', choice);
  const model = modelSelect(served, served.tiers[0] && served.tiers[0].id);
  model.id = 'tools-model';
  const prompt = h('textarea', { id: 'tools-prompt', rows: 2 });
  const out = h('div', { class: 'tools-out', 'aria-live': 'polite' });
  const example = () => {
    const tools = kind.value === 'tools';
    spec.value = JSON.stringify(tools ? TOOLS_EXAMPLE : SCHEMA_EXAMPLE, null, 2);
    prompt.value = tools ? 'What is the weather in Lyon?' : 'Describe Paris.';
    choiceField.hidden = !tools;
  };
  kind.addEventListener('change', example);
  example();
  const form = h('form', { class: 'tools-form', 'aria-label': 'Tools and JSON' },
    h('div', { class: 'row' }, field('Constrain with', kind), field('Model', model), choiceField),
    field('Schema or tools (JSON)', spec,
      'A json_schema object {name, schema} or a tools array, as the API takes them.'),
    field('Prompt', prompt),
    h('div', { class: 'row' }, h('span', { class: 'grow' }), h('button', { type: 'submit', class: 'primary', text: 'Run' })));
  const run = form.querySelector('button[type=submit]');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (run.disabled) return;
    run.disabled = true;
    out.replaceChildren(h('p', { class: 'stats', text: 'Running…' }));
    try {
      out.replaceChildren(...await runOnce(kind.value, spec.value, choice.value, model.value, prompt.value));
    } finally {
      run.disabled = false;
    }
  });
  root.replaceChildren(form, out);
  return { focus: () => spec.focus() };
}

async function runOnce(kind, specText, choice, model, prompt) {
  let spec;
  try {
    spec = JSON.parse(specText);
  } catch (e) {
    return [errorBox(`The ${kind === 'tools' ? 'tools' : 'schema'} is not valid JSON: ${e.message}`)];
  }
  if (!spec || typeof spec !== 'object') return [errorBox('Expected a JSON object or array.')];
  const body = { model, messages: [{ role: 'user', content: prompt }] };
  if (kind === 'tools') {
    body.tools = Array.isArray(spec) ? spec : [spec];
    body.tool_choice = choice;
  } else {
    body.response_format = { type: 'json_schema', json_schema: spec.schema ? spec : { name: 'output', schema: spec } };
  }
  try {
    const run = await streamChat(body);
    return result(run);
  } catch (e) {
    return [errorBox(errorText(e))];
  }
}

function result(run) {
  const parts = [];
  const calls = run.toolCalls.filter(Boolean);
  if (calls.length) {
    parts.push(h('h3', { text: `Tool calls (${calls.length})` }));
    for (const c of calls) {
      parts.push(h('div', { class: 'tool-call' }, h('strong', { text: c.name }), h('pre', { class: 'mono', text: pretty(c.arguments) })));
    }
  }
  if (run.text) {
    parts.push(h('h3', { text: 'Output' }), h('pre', { class: 'mono output', text: pretty(run.text) }));
  }
  parts.push(statsLine(metaOf(run)));
  return parts;
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
