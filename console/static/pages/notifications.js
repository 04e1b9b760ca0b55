// Notifications: what was sent, to whom, on which channel, and whether it was delivered.
// A failed or undelivered message is a red row with an icon, and can be shown alone.
import {api, debounce, errorText, fmtTime, h, label, LANG, levelBadge, on, start, status, t} from '/static/app.js';

start();

const form = document.getElementById('filters');
const POLL_MS = 5000; // no event stream for notifications: the page asks again every few seconds

function query() {
  const q = new URLSearchParams();
  if (form.elements.status.value) q.set('status', form.elements.status.value);
  if (form.elements.site.value) q.set('site', form.elements.site.value);
  if (form.elements.failed.checked) q.set('failed', 'true');
  return q;
}

function row(n) {
  const recipient = [n.name, n.recipient].filter(Boolean).join(' · ');
  return h('tr', {'data-testid': 'notification-row', 'data-failed': String(Boolean(n.failed)), 'data-status': n.status,
    class: n.failed ? 'failed' : (n.status === 'suppressed' ? 'muted-row' : '')},
  h('td', {class: 'icon'}, n.failed ? h('span', {class: 'fail-icon', role: 'img', 'aria-label': t('notifications.failed'),
    title: t('notifications.failed'), 'data-testid': 'failed-icon'}, '✖') : ''),
  h('td', {}, fmtTime(n.created_at)),
  h('td', {}, fmtTime(n.sent_at)),
  h('td', {}, h('a', {href: `/sites/${encodeURIComponent(n.site)}`}, n.site)),
  h('td', {}, levelBadge(n.level), h('small', {class: 'muted block'}, label('nkind', n.kind))),
  h('td', {}, label('channel', n.channel)),
  h('td', {}, recipient, h('small', {class: 'muted block'}, label('nrole', n.role))),
  h('td', {}, label('nstatus', n.status)),
  h('td', {}, n.delivery_status || ''),
  h('td', {class: 'error-cell'}, [n.error_code, n.error].filter((x) => x != null && x !== '').join(' · ')));
}

let timer = null;
async function load() {
  clearTimeout(timer);
  try {
    const list = await api(`/api/notifications?${query()}`);
    document.getElementById('rows').replaceChildren(...list.map(row));
    document.getElementById('empty').hidden = list.length > 0;
    document.getElementById('count').textContent = String(list.length);
  } catch (err) {
    status(errorText(err), 'error');
  } finally {
    timer = setTimeout(load, POLL_MS);
  }
}

async function loadSites() {
  try {
    const select = form.elements.site;
    for (const s of await api('/api/sites')) {
      select.append(h('option', {value: s.id}, `${LANG === 'en' && s.name_en ? s.name_en : s.name} (${s.id})`));
    }
    select.value = new URLSearchParams(location.search).get('site') || '';
  } catch (err) {
    status(errorText(err), 'error');
  }
}

function fromUrl() {
  const q = new URLSearchParams(location.search);
  form.elements.status.value = q.get('status') || '';
  form.elements.failed.checked = q.get('failed') === 'true';
}
form.addEventListener('change', () => {
  history.replaceState(null, '', `?${query()}`);
  load();
});
const soon = debounce(load, 1500);
on('episode', soon);
on('resync', load);

fromUrl();
loadSites().then(load);
