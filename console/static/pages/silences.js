// Silences and maintenance windows: create (matcher on site / subject / rule, kind, start, end,
// reason), list, end early.
import {api, errorText, fmtTime, h, label, LANG, on, start, status, t, whoami} from '/static/app.js';

start();

const form = document.getElementById('silence-form'); // absent for officers
const includeEnded = document.getElementById('include-ended');
const pad = (n) => String(n).padStart(2, '0');
/** A Date as the value of an <input type="datetime-local"> (local time, minutes). */
const localInput = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

function matcherText(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

function row(s, canEnd) {
  const state = s.ended_at ? 'ended' : s.active ? 'active' : 'pending';
  return h('tr', {'data-testid': 'silence-row', 'data-silence': s.id, 'data-state': state, class: `sl-${state}`},
    h('td', {class: 'num'}, String(s.id)),
    h('td', {}, t(`silences.kind.${s.kind}`)),
    h('td', {}, h('code', {}, matcherText(s.matcher))),
    h('td', {}, fmtTime(s.starts_at)),
    h('td', {}, fmtTime(s.ended_at || s.ends_at)),
    h('td', {}, s.created_by),
    h('td', {}, s.reason),
    h('td', {}, t(`silences.${state}`)),
    h('td', {}, canEnd && state !== 'ended' ? h('button', {type: 'button', 'data-testid': 'silence-end',
      onclick: () => end(s.id)}, t('silences.end')) : ''));
}

async function load() {
  try {
    const [list, me] = await Promise.all([api(`/api/silences?include_ended=${includeEnded.checked}`), whoami()]);
    const canEnd = me.role !== 'officer';
    document.getElementById('rows').replaceChildren(...list.map((s) => row(s, canEnd)));
    document.getElementById('empty').hidden = list.length > 0;
  } catch (err) {
    status(errorText(err), 'error');
  }
}

async function end(id) {
  try {
    await api(`/api/silences/${id}/end`, {method: 'POST'});
    status(t('silences.ended_msg', {id}), 'ok');
    load();
  } catch (err) {
    status(errorText(err), 'error');
  }
}

async function setupForm() {
  const now = new Date();
  form.elements.starts_at.value = localInput(now);
  form.elements.ends_at.value = localInput(new Date(now.getTime() + 2 * 3600 * 1000));
  // the handler first: a submit while the suggestions still load must not fall back to a native GET
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const matcher = {};
    for (const key of ['site', 'subject', 'rule', 'max_level']) if (f[key].value.trim()) matcher[key] = f[key].value.trim();
    if (!matcher.site && !matcher.subject && !matcher.rule) {
      status(t('silences.need_matcher'), 'error');
      return;
    }
    try {
      const s = await api('/api/silences', {method: 'POST', body: {kind: f.kind.value, matcher,
        starts_at: new Date(f.starts_at.value).toISOString(), ends_at: new Date(f.ends_at.value).toISOString(),
        reason: f.reason.value}});
      status(t('silences.created', {id: s.id}), 'ok');
      f.reason.value = '';
      load();
    } catch (err) {
      status(errorText(err), 'error');
    }
  });
  try {
    const sites = await api('/api/sites');
    const subjects = document.getElementById('subjects');
    const rules = new Set();
    for (const s of sites) {
      form.elements.site.append(h('option', {value: s.id}, `${LANG === 'en' && s.name_en ? s.name_en : s.name} (${s.id})`));
      subjects.append(h('option', {value: `${s.id}/*`}));
    }
    for (const s of sites) {
      try {
        const detail = await api(`/api/sites/${encodeURIComponent(s.id)}`);
        for (const sensor of detail.sensors) {
          subjects.append(h('option', {value: `${s.id}/${sensor.id}`}, label('quantity', sensor.quantity)));
          for (const th of sensor.thresholds || []) rules.add(th.rule);
        }
      } catch { /* suggestions only */ }
    }
    document.getElementById('rules').replaceChildren(...[...rules].sort().map((r) => h('option', {value: r})));
  } catch (err) {
    status(errorText(err), 'error');
  }
}

includeEnded.addEventListener('change', load);
on('resync', load);
if (form) setupForm();
load();
setInterval(load, 30000); // a window starts or ends with the clock, not with an event
