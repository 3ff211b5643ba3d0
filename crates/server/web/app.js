// The playground's entry: the API key dialog, light/dark theme, what the server serves, and the
// four views (chat, compare, tools and JSON, dashboard) switched by the URL's fragment.

import { $, banner, errorText } from './dom.js';
import { served as loadServed, setKey, apiKey, keyRemembered } from './api.js';
import { chatView } from './chat.js';
import { compareView } from './compare.js';
import { toolsView } from './tools.js';
import { dashboardView } from './dashboard.js';

const VIEWS = {
  chat: { title: 'Chat', make: chatView },
  compare: { title: 'Compare', make: compareView },
  tools: { title: 'Tools and JSON', make: toolsView },
  dashboard: { title: 'Dashboard', make: dashboardView },
};

let served = null;
let shown = null;
let starts = 0;
const made = {};

theme();
keyDialog();
start();

async function start() {
  const mine = ++starts;
  let got;
  try {
    got = await loadServed();
  } catch (e) {
    if (mine !== starts) return;
    if (e.status === 401) openKey('This server needs an API key: paste one to start.');
    else banner(errorText(e));
    return;
  }
  if (mine !== starts) return;
  served = got;
  $('#banner').hidden = true;
  // Views built with the previous key stop their streams and timers before new ones are made.
  for (const k of Object.keys(made)) {
    const v = made[k];
    if (v.hide) v.hide();
    if (v.destroy) v.destroy();
    delete made[k];
  }
  shown = null;
  route();
}

function route() {
  const name = VIEWS[location.hash.slice(1)] ? location.hash.slice(1) : 'chat';
  if (!served) return;
  if (shown && shown !== name && made[shown] && made[shown].hide) made[shown].hide();
  for (const [k] of Object.entries(VIEWS)) {
    $(`#view-${k}`).hidden = k !== name;
    const link = $(`nav a[href="#${k}"]`);
    if (k === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!made[name]) made[name] = VIEWS[name].make($(`#view-${name}`), served);
  if (made[name].show) made[name].show();
  document.title = `${VIEWS[name].title} · tandem`;
  shown = name;
}

window.addEventListener('hashchange', () => {
  // Other fragments (the skip link's #main) are not views.
  if (!VIEWS[location.hash.slice(1)]) return;
  route();
  if (served && made[shown] && made[shown].focus) made[shown].focus();
});

function theme() {
  const root = document.documentElement;
  const saved = localStorage.getItem('tandem.theme');
  if (saved) root.dataset.theme = saved;
  $('#theme-toggle').addEventListener('click', () => {
    const dark = root.dataset.theme ? root.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    root.dataset.theme = dark ? 'light' : 'dark';
    localStorage.setItem('tandem.theme', root.dataset.theme);
  });
}

function keyDialog() {
  const dialog = $('#key-dialog');
  const input = $('#key-input');
  const remember = $('#key-remember');
  $('#key-button').addEventListener('click', () => openKey(''));
  $('#key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    // An empty field keeps the key in use (the checkbox may still move it between storages).
    setKey(input.value.trim() || apiKey(), remember.checked);
    input.value = '';
    dialog.close();
    start();
  });
  $('#key-forget').addEventListener('click', () => {
    setKey('', false);
    input.value = '';
    dialog.close();
    start();
  });
  $('#key-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    if (!served) banner('This server needs an API key: press "API key" to enter one.');
  });
}

function openKey(why) {
  $('#key-why').textContent = why || (apiKey() ? 'A key is set for this tab.' : 'No key is set.');
  $('#key-remember').checked = keyRemembered();
  $('#key-dialog').showModal();
  $('#key-input').focus();
}

