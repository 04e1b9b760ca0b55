// Users (admins only): list and add. Passwords go to the API once and are never shown.
import {api, errorText, fmtTime, h, start, status, t} from '/static/app.js';

start();

const form = document.getElementById('user-form');

async function load() {
  try {
    const users = await api('/api/users');
    document.getElementById('rows').replaceChildren(...users.map((u) =>
      h('tr', {'data-testid': 'user-row', 'data-username': u.username},
        h('th', {scope: 'row'}, u.username, u.disabled ? h('small', {class: 'muted block'}, t('users.disabled')) : ''),
        h('td', {}, t(`user.role.${u.role}`)), h('td', {}, u.enterprise || ''), h('td', {}, u.language || ''),
        h('td', {}, `${fmtTime(u.created_at)}${u.created_by ? ` · ${u.created_by}` : ''}`))));
    document.getElementById('empty').hidden = users.length > 0;
  } catch (err) {
    status(errorText(err), 'error');
  }
}

async function enterprises() {
  try {
    const names = [...new Set((await api('/api/sites')).map((s) => s.enterprise))].sort();
    document.getElementById('enterprises').replaceChildren(...names.map((e) => h('option', {value: e})));
  } catch { /* suggestions only */ }
}

const role = form.elements.role;
role.addEventListener('change', () => { form.elements.enterprise.required = role.value === 'officer'; });
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = form.elements;
  try {
    const u = await api('/api/users', {method: 'POST', body: {username: f.username.value.trim(), password: f.password.value,
      role: f.role.value, enterprise: f.enterprise.value.trim() || null, language: f.language.value}});
    status(t('users.created', {name: u.username ?? f.username.value}), 'ok');
    form.reset();
    load();
  } catch (err) {
    status(errorText(err), 'error');
  }
});

enterprises();
load();
