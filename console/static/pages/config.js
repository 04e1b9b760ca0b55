// Configuration (admins only): the configuration in force, from /api/config (secrets redacted,
// phone numbers masked), whether the files on disk load now (and check-config's warnings), and
// the reload: POST /api/config/reload, then each service's answer from /api/config/reloads.
import {LANG, api, errorText, fmtAge, fmtTime, h, label, levelBadge, ruleLabel, start, status, t} from '/static/app.js';

start();

const PER = {1: 's', 60: 'min', 3600: 'h', 86400: 'd'};
const num = (v) => (v == null ? '—' : String(Number(v)));
const withUnit = (v, unit) => (unit ? `${num(v)} ${unit}` : num(v));

/** A duration in seconds in its largest whole unit (6 h, 10 min), else as the ages are shown. */
function dur(seconds) {
  const s = Number(seconds);
  if (!s) return '—';
  if (s % 86400 === 0) return t('dur.d', {n: s / 86400});
  if (s % 3600 === 0) return t('dur.h', {n: s / 3600});
  if (s % 60 === 0) return t('dur.min', {n: s / 60});
  if (s < 60) return t('dur.s', {n: s});
  return fmtAge(s);
}

/** The rungs of a ladder as level-coloured badges: "≥ 10 %LEL" (high) or "≤ 4.8 m" (low). */
function rungs(ladder, direction, unit) {
  const op = direction === 'low' ? '≤' : '≥';
  return h('ul', {class: 'rungs'}, ladder.map((r) => h('li', {'data-level': r.level},
    levelBadge(r.level), ` ${op} ${withUnit(r.value, unit)}`, r.tag ? h('small', {class: 'muted'}, ` (${r.tag})`) : '')));
}

const cell = (...children) => h('td', {}, ...children);
/** Non-empty items one per line, or a dash when there are none. */
function lines(...items) {
  const kept = items.filter(Boolean);
  return kept.length ? kept.map((x) => h('span', {class: 'block'}, x)) : ['—'];
}

function ruleRows(x) {
  const rows = [];
  const row = (kind, rule, ...cells) => h('tr', {'data-testid': 'ladder-row', 'data-rule': rule, 'data-kind': kind},
    h('th', {scope: 'row'}, ruleLabel(rule), h('small', {class: 'muted block'}, rule)), cell(label('config.kind', kind)), ...cells);
  for (const r of x.thresholds || []) {
    rows.push(row('threshold', r.rule, cell(label('config.dir', r.direction)), cell(rungs(r.ladder, r.direction, x.unit)),
      cell(r.deadband ? withUnit(r.deadband, x.unit) : '—'),
      cell(...lines(r.min_duration_s ? t('config.hold', {d: dur(r.min_duration_s)}) : '',
        r.min_samples > 1 ? t('config.samples', {n: r.min_samples}) : '')),
      cell(r.source || '—')));
  }
  for (const r of x.rate || []) {
    const unit = `${x.unit}/${PER[r.per_s] ?? `${num(r.per_s)} s`}`;
    rows.push(row('rate', r.rule, cell(label('config.dir', r.direction)), cell(rungs(r.ladder, r.direction, unit)),
      cell(r.deadband ? withUnit(r.deadband, unit) : '—'),
      cell(...lines(t('config.window', {d: dur(r.window_s)}),
        r.min_duration_s ? t('config.hold', {d: dur(r.min_duration_s)}) : '',
        r.min_span_s ? t('config.min_span', {d: dur(r.min_span_s)}) : '')),
      cell(r.source || '—')));
  }
  if (x.rain) {
    const r = x.rain;
    for (const [i, w] of r.windows.entries()) {
      rows.push(row('rain', r.rule, cell(label('config.dir', 'high')), cell(rungs(w.ladder, 'high', x.unit)),
        cell(r.deadband ? withUnit(r.deadband, x.unit) : '—'),
        cell(t('config.window', {d: dur(w.hours * 3600)}), i === 0 ? h('small', {class: 'muted block'}, label('config.input', r.input)) : ''),
        cell(i === 0 ? (r.source || '—') : '')));
    }
  }
  if (x.trend) {
    const r = x.trend;
    rows.push(row('trend', r.rule, cell(t('config.next_rung')), cell(h('ul', {class: 'rungs'}, h('li', {'data-level': r.level},
      levelBadge(r.level), ` ${t('config.horizon', {d: dur(r.horizon_s)})}`))),
    cell('—'),
    cell(...lines(t('config.window', {d: dur(r.window_s)}), t('config.min_points', {n: r.min_points}),
      t('config.clear', {f: num(r.clear_factor)}))),
    cell(r.source || '—')));
  }
  return rows;
}

function sensorBlock(site, x) {
  const q = x.quality || {};
  const facts = [label('quantity', x.quantity), x.unit, t('config.period', {d: dur(x.period_s)}),
    x.range ? t('config.range', {min: num(x.range[0]), max: num(x.range[1]), unit: x.unit}) : '',
    x.allowed_lateness_s ? t('config.lateness', {d: dur(x.allowed_lateness_s)}) : ''].filter(Boolean);
  const quality = [t('config.offline_after', {n: num(q.offline_after_periods)}),
    q.stuck_samples ? t('config.stuck', {n: q.stuck_samples}) : '',
    q.spike_mad ? t('config.spike', {k: num(q.spike_mad), n: q.spike_window}) : ''].filter(Boolean);
  const rows = ruleRows(x);
  return h('div', {class: 'sensor-config', 'data-testid': 'config-sensor', 'data-sensor': x.id},
    h('h3', {}, x.id, h('span', {class: 'muted'}, ` · ${facts.join(' · ')}`)),
    rows.length
      ? h('table', {class: 'ladder rules', 'data-testid': 'ladder', 'data-sensor': `${site.id}/${x.id}`},
        h('thead', {}, h('tr', {}, ...['config.rule', 'config.rule_kind', 'config.direction', 'config.ladder',
          'config.deadband', 'config.durations', 'config.source'].map((k) => h('th', {scope: 'col'}, t(k))))),
        h('tbody', {}, rows))
      : h('p', {class: 'muted'}, t('config.no_rules')),
    h('p', {class: 'muted small'}, `${t('config.quality')}: ${quality.join('; ')}`));
}

function memberText(m) {
  const who = m.sensor ? `${m.sensor}/${m.rule}` : m.rule;
  return m.min_level ? `${who} ≥ ${label('level', m.min_level)}` : who;
}

function siteRules(site) {
  if (!site.site_rules?.length) return null;
  return h('div', {},
    h('h3', {}, t('config.site_rules')),
    h('table', {class: 'ladder', 'data-testid': 'site-rules'},
      h('thead', {}, h('tr', {}, ...['config.rule', 'config.rule_kind', 'config.members', 'config.result', 'config.source']
        .map((k) => h('th', {scope: 'col'}, t(k))))),
      h('tbody', {}, site.site_rules.map((r) => {
        let members;
        let result;
        if (r.kind === 'composite') {
          members = lines(r.all_of.length ? `${t('config.all_of')}: ${r.all_of.map(memberText).join(', ')}` : '',
            r.any_of.length ? `${t('config.any_of')}: ${r.any_of.map(memberText).join(', ')}` : '');
          result = r.level ? levelBadge(r.level) : t('config.escalate', {rule: memberText(r.escalate), by: r.by});
        } else {
          members = r.members.map(memberText).join(', ');
          result = r.kind === 'vote' ? t('config.vote', {k: r.k, n: r.members.length}) : t('config.aggregate');
        }
        const name = (LANG === 'en' && r.name_en) || r.name;
        return h('tr', {'data-testid': 'site-rule-row', 'data-rule': r.rule},
          h('th', {scope: 'row'}, name || r.rule, name ? h('small', {class: 'muted block'}, r.rule) : ''),
          cell(label('config.kind', r.kind)), cell(members), cell(result), cell(r.source || '—'));
      }))));
}

function maintenance(site) {
  if (!site.maintenance?.length) return null;
  return h('div', {},
    h('h3', {}, t('config.maintenance')),
    h('ul', {'data-testid': 'maintenance'}, site.maintenance.map((w) => h('li', {},
      `${label('config.mkind', w.kind)} · ${w.sensors.length ? w.sensors.join(', ') : t('config.whole_site')} · `
      + `${fmtTime(w.start)} – ${fmtTime(w.end)} · ${w.reason}`))));
}

function siteBlock(site) {
  const name = (LANG === 'en' && site.name_en) || site.name;
  return h('details', {class: 'site-config', 'data-testid': 'config-site', 'data-site': site.id},
    h('summary', {}, h('strong', {}, `${name} (${site.id})`),
      h('span', {class: 'muted'}, ` · ${label('kind', site.kind)} · ${site.enterprise} · ${site.region} · `
        + `${t('config.site_sensors', {n: site.sensors.length})}`)),
    h('p', {class: 'muted'}, t('config.site_zones', {zones: [site.zone, ...(site.extra_zones || [])].join(', ')}),
      site.hazard_radius_km ? ` · ${t('config.hazard_radius', {r: num(site.hazard_radius_km)})}` : ''),
    site.sensors.map((x) => sensorBlock(site, x)),
    siteRules(site), maintenance(site));
}

function summary(cfg) {
  const c = cfg.counts;
  const item = (key, value, testid) => [h('dt', {}, t(key)), h('dd', {'data-testid': testid}, value)];
  document.getElementById('summary').replaceChildren(
    ...item('config.sites_n', String(c.sites), 'count-sites'),
    ...item('config.sensors', String(c.sensors), 'count-sensors'),
    ...item('config.rules', t('config.rules_detail', c.rules), 'count-rules'),
    ...item('config.maintenance_n', String(c.maintenance), 'count-maintenance'),
    ...item('config.zones', t('config.zones_detail', {n: c.zones, s: c.subscribers}), 'count-zones'),
    ...item('config.recipients', String(c.recipients), 'count-recipients'),
    ...item('config.fingerprint', h('code', {}, cfg.fingerprint), 'fingerprint'),
    ...item('config.directory', cfg.directory ? h('code', {}, cfg.directory) : '—', 'directory'));
  const check = document.getElementById('check');
  const v = cfg.check;
  if (!v) {
    check.replaceChildren(h('p', {class: 'muted', 'data-valid': 'unknown'}, t('config.unknown')));
  } else if (v.valid) {
    check.replaceChildren(h('p', {class: 'check-ok', 'data-valid': 'true'}, `✓ ${t('config.valid')}`),
      ...(v.warnings?.length ? [h('p', {class: 'warn'}, t('config.warnings', {n: v.warnings.length})),
        issueList(v.warnings, 'config-warnings')] : []));
  } else {
    check.replaceChildren(h('p', {class: 'error', 'data-valid': 'false'}, `✗ ${t('config.invalid', {n: v.issues.length})}`),
      issueList(v.issues, 'config-issues'));
  }
}

/** One line of config/diff.py ("sensor CH-001/GT-101 changed: thresholds", "site TD-009 added",
 * "settings changed: notify", "; "-joined in a summary) in the page's language; unknown text as is. */
function changeText(text) {
  return text.split('; ').map((line) => {
    let m = line.match(/^(site|sensor|zone|recipient) (.+) (added|removed)$/);
    if (m) return t(`config.change.${m[3]}`, {what: label('config.change', m[1]), id: m[2]});
    m = line.match(/^(site|sensor|zone|recipient) (.+) changed: (.+)$/);
    if (m) return t('config.change.changed', {what: label('config.change', m[1]), id: m[2], fields: m[3]});
    m = line.match(/^settings changed: (.+)$/);
    if (m) return t('config.change.settings', {fields: m[1]});
    m = line.match(/^(.*) \(rule state kept for the (\d+) loaded sites that remain\)$/);
    if (m) return `${changeText(m[1])} ${t('config.change.kept', {n: m[2]})}`;
    if (line === 'no change') return t('config.no_change');
    m = line.match(/^and (\d+) more$/);
    return m ? t('config.change.more', {n: m[1]}) : line;
  }).join('；');
}

/** Problems as "file: path: reason", one per line. */
function issueList(issues, testid) {
  return h('ul', {class: 'issues', 'data-testid': testid}, issues.map((i) => h('li', {},
    i.file ? h('code', {}, i.file) : '', `${i.file ? ': ' : ''}${i.path || '<root>'}: ${i.reason}`)));
}

async function outcomes() {
  const rows = await api('/api/config/reloads');
  document.getElementById('outcome-rows').replaceChildren(...(rows.length ? rows.map((o) => h('tr', {
    'data-testid': 'reload-outcome', 'data-service': o.service, 'data-result': o.result},
  cell(fmtTime(o.at)), cell(o.service), cell(h('code', {}, o.instance)), cell(label('config.result', o.result)),
  cell(o.result === 'applied' ? changeText(o.detail) : o.detail))) : [h('tr', {}, h('td', {colspan: 5, class: 'muted'}, t('config.no_outcomes')))]));
}

async function reload() {
  const button = document.getElementById('reload');
  const result = document.getElementById('reload-result');
  button.disabled = true;
  result.replaceChildren(h('p', {class: 'muted'}, t('config.reloading')));
  try {
    const r = await api('/api/config/reload', {method: 'POST'});
    result.replaceChildren(h('p', {class: 'check-ok', 'data-applied': 'true'}, `✓ ${t('config.reloaded', {n: r.changes.length})}`),
      h('ul', {'data-testid': 'reload-changes'}, (r.changes.length ? r.changes : ['no change']).map((c) => h('li', {'data-change': c}, changeText(c)))));
    await load();
  } catch (err) {
    const body = err.status === 409 && err.detail && typeof err.detail === 'object' ? err.detail : null;
    result.replaceChildren(body
      ? h('div', {'data-applied': 'false'}, h('p', {class: 'error'}, `✗ ${t('config.reload_refused', {n: body.issues.length})}`),
        issueList(body.issues, 'reload-issues'))
      : h('p', {class: 'error', 'data-applied': 'false'}, errorText(err)));
  } finally {
    button.disabled = false;
  }
}

document.getElementById('reload').addEventListener('click', reload);
setInterval(() => outcomes().catch(() => {}), 2000);

function zones(cfg) {
  document.getElementById('zone-rows').replaceChildren(...cfg.zones.map((z) => h('tr', {'data-zone': z.id},
    h('th', {scope: 'row'}, (LANG === 'en' && z.name_en) || z.name, h('small', {class: 'muted block'}, z.id)),
    cell(z.region),
    cell(z.area === 'circle' ? t('config.circle', {r: num(z.circle.radius_km)}) : t('config.polygon', {n: z.polygon_vertices})),
    h('td', {class: 'num'}, String(z.subscribers)))));
}

function recipients(cfg) {
  document.getElementById('recipient-rows').replaceChildren(...cfg.recipients.map((r) => h('tr', {},
    h('th', {scope: 'row'}, r.name), cell(label('nrole', r.role)),
    cell(r.enterprise || (r.tier ? `${label('config.tier', r.tier)} ${r.region}` : '—')),
    cell(h('code', {}, r.phone)), cell(r.language))));
}

async function load() {
  try {
    const cfg = await api('/api/config');
    summary(cfg);
    document.getElementById('sites').replaceChildren(...cfg.sites.map(siteBlock));
    zones(cfg);
    recipients(cfg);
    document.getElementById('settings').textContent = JSON.stringify(cfg.settings, null, 2);
    await outcomes();
  } catch (err) {
    status(errorText(err), 'error');
  }
}

load();
