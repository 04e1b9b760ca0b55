// Warnings: filters (level, kind, enterprise, state, site), most severe then newest first,
// acknowledge / dispose / close, time since raised (ticking), whether 叫应 escalation started.
// Live: a `warning` event shows its row at once (provisional until the store has the episode);
// `episode` events replace rows with the store's version.
import {api, debounce, errorText, fmtTime, fmtValue, h, label, LANG, levelBadge, levelRank, on, ruleLabel,
  start, status, t, ticking} from '/static/app.js';

start();

const form = document.getElementById('filters');
const tbody = document.getElementById('warning-rows');
const FILTERS = ['level', 'kind', 'enterprise', 'state', 'site'];
const DISPOSE = ['on_site_check', 'repair', 'evacuation', 'false_alarm', 'other'];
const warnings = new Map(); // id -> Warning (+ sinceMs: local clock time it was raised)
const rows = new Map(); // id -> {tr, formTr}
const siteInfo = new Map(); // id -> SiteSummary, to fill provisional rows

function filters() {
  const out = {};
  for (const name of FILTERS) if (form.elements[name].value) out[name] = form.elements[name].value;
  return out;
}
/** The API's filters, applied to what arrives live (docs/CONSOLE.md; no state = not closed). */
function matches(w) {
  const f = filters();
  const state = f.state || 'not_closed';
  const stateOk = state === 'all' || (state === 'not_closed' ? w.state !== 'closed'
    : state === 'open' ? ['active', 'acknowledged'].includes(w.state) : w.state === state);
  return stateOk && FILTERS.every((name) => name === 'state' || !f[name] || String(w[name]) === f[name]);
}
const siteName = (w) => {
  const s = siteInfo.get(w.site);
  return LANG === 'en' && s?.name_en ? s.name_en : (w.site_name || s?.name || w.site);
};

function remember(w) {
  const old = warnings.get(w.id);
  const sinceMs = w.age_s != null ? Date.now() - w.age_s * 1000 : (old?.sinceMs ?? Date.now());
  warnings.set(w.id, {...w, sinceMs});
}

// ------------------------------------------------------------------------------------ rendering
function actionButtons(w) {
  const closed = w.state === 'closed';
  const busy = w.provisional === true;
  return h('div', {class: 'actions'},
    h('button', {type: 'button', class: 'primary', 'data-testid': 'ack',
      disabled: closed || Boolean(w.acknowledged_by) || w.state === 'acknowledged' || busy,
      onclick: () => act(w.id, 'ack')}, t('warnings.ack')),
    h('button', {type: 'button', 'data-testid': 'dispose', disabled: closed || busy,
      onclick: () => toggleForm(w.id, 'dispose')}, t('warnings.dispose')),
    h('button', {type: 'button', 'data-testid': 'close', disabled: closed || busy,
      onclick: () => toggleForm(w.id, 'close')}, t('warnings.close')),
    h('button', {type: 'button', 'data-testid': 'details', disabled: busy, 'aria-label': t('warnings.details'),
      title: t('warnings.details'), onclick: () => toggleDetails(w.id)}, '⋯'));
}

function stateCell(w) {
  const notes = [];
  if (w.acknowledged_by) notes.push(t('warnings.ack_by', {who: w.acknowledged_by, at: fmtTime(w.acknowledged_at)}));
  if (w.closed_by) notes.push(t('warnings.closed_by', {who: w.closed_by, at: fmtTime(w.closed_at)}));
  return [h('span', {class: `state st-${w.state}`, 'data-testid': 'state'}, label('state', w.state)),
    ...notes.map((n) => h('small', {class: 'muted block'}, n))];
}

function cells(w) {
  const peak = w.peak && w.peak !== w.level ? h('small', {class: 'muted block'}, t('warnings.peak', {level: label('level', w.peak)})) : null;
  return [
    h('td', {}, levelBadge(w.level), peak),
    h('td', {}, h('a', {href: `/sites/${encodeURIComponent(w.site)}`, 'data-testid': 'warning-site'}, siteName(w)),
      h('small', {class: 'muted block'}, `${w.site} · ${w.enterprise || ''}`)),
    h('td', {}, ruleLabel(w.rule), h('small', {class: 'muted block'}, w.subject)),
    h('td', {class: 'num'}, fmtValue(w.last_value, w.unit)),
    h('td', {}, fmtTime(w.raised_at)),
    h('td', {}, ticking(w.sinceMs)),
    h('td', {}, h('span', {class: `esc ${w.escalation_started ? 'esc-on' : 'esc-off'}`, 'data-testid': 'escalation',
      'data-started': String(Boolean(w.escalation_started))},
    w.escalation_started ? `▲ ${t('warnings.escalation_started')}` : t('warnings.escalation_none'))),
    h('td', {}, ...stateCell(w)),
    h('td', {}, actionButtons(w)),
  ];
}

/** As the API sorts: most severe (current level) first, then newest first. */
const order = (a, b) => levelRank(b.level) - levelRank(a.level) || Date.parse(b.raised_at) - Date.parse(a.raised_at);

function render() {
  for (const [id, w] of warnings) if (!matches(w)) warnings.delete(id);
  for (const [id, r] of rows) {
    if (!warnings.has(id)) {
      r.tr.remove();
      r.formTr?.remove();
      rows.delete(id);
    }
  }
  const sorted = [...warnings.values()].sort(order);
  for (const w of sorted) {
    let r = rows.get(w.id);
    if (!r) {
      r = {tr: h('tr', {'data-testid': 'warning-row'}), formTr: null, key: ''};
      rows.set(w.id, r);
    }
    const key = JSON.stringify(w, (k, v) => (k === 'age_s' || k === 'sinceMs' ? undefined : v));
    Object.assign(r.tr.dataset, {episode: w.id, state: w.state, level: w.level, site: w.site,
      provisional: String(Boolean(w.provisional))});
    r.tr.className = `row-${w.level} st-${w.state}`;
    if (r.key !== key) {
      r.tr.replaceChildren(...cells(w));
      r.key = key;
    }
  }
  // Reorder only when the order changed, so that a form being typed in keeps its focus.
  const want = sorted.flatMap((w) => [rows.get(w.id).tr, rows.get(w.id).formTr].filter(Boolean));
  const have = [...tbody.children];
  if (want.length !== have.length || want.some((el, i) => el !== have[i])) tbody.append(...want);
  document.getElementById('empty').hidden = sorted.length > 0;
  document.getElementById('count').textContent = t('warnings.count', {n: sorted.length});
}

// ------------------------------------------------------------------------------------ actions
function toggleForm(id, action) {
  const r = rows.get(id);
  if (!r) return; // the row went away (closed, or no longer matching the filters)
  if (r.formTr?.dataset.action === action) {
    r.formTr.remove();
    r.formTr = null;
    return;
  }
  r.formTr?.remove();
  const w = warnings.get(id);
  const uid = `${action}-${id}`.replace(/[^\w-]/g, '_');
  let fields;
  if (action === 'dispose') {
    fields = [
      h('label', {for: `${uid}-category`}, t('warnings.category')),
      h('select', {id: `${uid}-category`, name: 'category', required: true, 'data-testid': 'dispose-category'},
        ...DISPOSE.map((c) => h('option', {value: c}, t(`dispose.${c}`)))),
      h('label', {for: `${uid}-text`}, t('warnings.text')),
      h('textarea', {id: `${uid}-text`, name: 'text', rows: 2, required: true, 'data-testid': 'dispose-text'}),
    ];
  } else {
    fields = [
      h('label', {for: `${uid}-reason`}, t('warnings.close_reason')),
      h('input', {id: `${uid}-reason`, name: 'reason', required: w.state !== 'cleared', 'data-testid': 'close-reason'}),
    ];
  }
  const formEl = h('form', {class: 'inline-form', 'data-testid': `${action}-form`, onsubmit: async (ev) => {
    ev.preventDefault();
    const body = action === 'dispose'
      ? {category: formEl.elements.category.value, text: formEl.elements.text.value}
      : {reason: formEl.elements.reason.value || null};
    if (await act(id, action, body) && rows.get(id)?.formTr) toggleForm(id, action);
  }}, ...fields,
  h('button', {type: 'submit', class: 'primary', 'data-testid': `${action}-submit`},
    action === 'dispose' ? t('warnings.dispose') : t('warnings.close')),
  h('button', {type: 'button', onclick: () => toggleForm(id, action)}, t('common.cancel')));
  r.formTr = h('tr', {class: 'form-row', dataset: {action, episode: id}}, h('td', {colspan: 9}, formEl));
  r.tr.after(r.formTr);
  formEl.querySelector('select, textarea, input')?.focus();
}

/** The episode's level changes and the actions taken on it (GET /api/warnings/{id}). */
async function toggleDetails(id) {
  const r = rows.get(id);
  if (!r) return;
  if (r.formTr?.dataset.action === 'details') {
    r.formTr.remove();
    r.formTr = null;
    return;
  }
  let d;
  try {
    d = await api(`/api/warnings/${encodeURIComponent(id)}`);
  } catch (err) {
    status(errorText(err), 'error');
    return;
  }
  r.formTr?.remove();
  const changes = (d.changes || []).map((c) => h('li', {}, `${fmtTime(c.ts_ms)} `, levelBadge(c.level),
    ` ${label('nkind', c.kind)} ${fmtValue(c.value, d.unit)}`,
    c.threshold != null ? ` (${t('banner.threshold', {v: fmtValue(c.threshold, d.unit)})})` : ''));
  const actions = (d.actions || []).map((a) => h('li', {}, `${fmtTime(a.at)} ${a.actor}: ${label('action', a.action)}`,
    a.category ? ` · ${label('dispose', a.category)}` : '', a.text ? ` · ${a.text}` : ''));
  r.formTr = h('tr', {class: 'form-row', dataset: {action: 'details', episode: id}}, h('td', {colspan: 9},
    h('div', {class: 'details', 'data-testid': 'warning-details'},
      h('section', {}, h('h3', {}, t('warnings.changes')), h('ul', {}, ...changes)),
      h('section', {}, h('h3', {}, t('warnings.history')),
        actions.length ? h('ul', {}, ...actions) : h('p', {class: 'muted'}, t('common.none'))))));
  r.tr.after(r.formTr);
}

async function act(id, action, body) {
  const w = warnings.get(id);
  try {
    const updated = await api(`/api/warnings/${encodeURIComponent(id)}/${action}`, {method: 'POST', body});
    remember(updated);
    render();
    status(t(`warnings.done.${action}`, {subject: `${siteName(w)} ${w.subject}`}), 'ok');
    return true;
  } catch (err) {
    status(errorText(err), 'error');
    return false;
  }
}

// ------------------------------------------------------------------------------------ data
async function load() {
  const query = new URLSearchParams(filters());
  try {
    const list = await api(`/api/warnings?${query}`);
    const fresh = new Set(list.map((w) => w.id));
    for (const [id, w] of warnings) {
      // a provisional row waits a little for the store; the alerts service may be behind
      if (!fresh.has(id) && (!w.provisional || Date.now() - w.sinceMs > 15000)) warnings.delete(id);
    }
    for (const w of list) remember(w);
    render();
  } catch (err) {
    status(errorText(err), 'error');
  }
}
const reload = debounce(load, 1500);

async function loadSites() {
  try {
    const list = await api('/api/sites');
    for (const s of list) siteInfo.set(s.id, s);
    const select = form.elements.enterprise;
    const current = select.value || new URLSearchParams(location.search).get('enterprise') || '';
    for (const e of [...new Set(list.map((s) => s.enterprise))].sort()) {
      select.append(h('option', {value: e}, e));
    }
    select.value = current;
    for (const r of rows.values()) r.key = ''; // site names in the page's language
    render();
  } catch (err) {
    status(errorText(err), 'error');
  }
}

function fromUrl() {
  const q = new URLSearchParams(location.search);
  for (const name of FILTERS) if (q.has(name)) form.elements[name].value = q.get(name);
}
function toUrl() {
  const url = new URL(location.href);
  url.search = new URLSearchParams(filters()).toString();
  history.replaceState(null, '', url);
}

form.addEventListener('change', () => { toUrl(); warnings.clear(); render(); load(); });
form.addEventListener('reset', () => setTimeout(() => { form.elements.site.value = ''; toUrl(); load(); }));

on('episode', (w) => {
  if (matches(w)) remember(w);
  else warnings.delete(w.id);
  render();
});
on('warning', (e) => {
  const known = warnings.get(e.episode);
  const s = siteInfo.get(e.site);
  if (known) {
    if (known.provisional) {
      warnings.set(e.episode, {...known, level: e.level, peak: levelRank(e.level) > levelRank(known.peak) ? e.level : known.peak,
        last_value: e.value, state: e.kind === 'cleared' ? 'cleared' : known.state});
    }
  } else if (e.kind !== 'cleared') {
    const w = {id: e.episode, site: e.site, site_name: e.site_name, enterprise: s?.enterprise, subject: e.subject,
      rule: e.rule, kind: s?.kind, level: e.level, peak: e.level, state: 'active', raised_at: new Date().toISOString(),
      age_s: 0, last_value: e.value, unit: e.unit, escalation_started: false, provisional: true};
    if (matches(w)) remember(w);
  }
  render();
  reload(); // the store's version replaces the provisional row
});
on('resync', load);

fromUrl();
loadSites();
load();
