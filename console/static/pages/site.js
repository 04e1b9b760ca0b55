// Site detail: sensors with live values and units, one trend chart per sensor (uPlot, vendored)
// with its threshold lines, and the site's warning history.
import {api, ApiError, debounce, errorText, fmtTime, fmtValue, h, label, LANG, levelBadge, on, ruleLabel, start,
  status, t} from '/static/app.js';

start();

export const LEVEL_COLOURS = {normal: '#2e9d4f', blue: '#1f6fd1', yellow: '#d4a800', orange: '#ee7700', red: '#d6202a'};
const SITE = document.getElementById('site').dataset.site;
const hoursSelect = document.getElementById('hours');
const charts = new Map(); // sensor id -> {plot, xs, ys, thresholds, unit}
let site = null;
const history = new Map(); // episode id -> Warning

// ------------------------------------------------------------------------------------ header, sensors
function renderHeader() {
  const name = LANG === 'en' && site.name_en ? site.name_en : site.name;
  document.getElementById('site-name').textContent = `${name} (${site.id})`;
  document.title = `${name} · ${document.title.split(' · ').slice(-1)[0]}`;
  document.getElementById('site-level').replaceChildren(levelBadge(site.level),
    site.offline ? h('span', {class: 'badge lv-offline'}, t('site.offline')) : '');
  document.getElementById('site-level').dataset.level = site.level;
  document.getElementById('site-meta').textContent = [label('kind', site.kind), site.enterprise,
    `${t('site.region')} ${site.region}`, `${site.lat}, ${site.lon}`].join(' · ');
}

function sensorRow(s) {
  const thresholds = (s.thresholds || []).map((th) => h('span', {class: `badge lv-${th.level}`, title: ruleLabel(th.rule)},
    `${th.direction === 'low' ? '≤' : '≥'} ${fmtValue(th.value, s.unit)}`));
  const stateText = label('sensor', s.status) + (s.fault ? ` · ${label('fault', s.fault)}` : '');
  return h('tr', {'data-testid': `sensor-${s.id}`, 'data-status': s.status, class: s.status !== 'ok' ? 'row-problem' : ''},
    h('th', {scope: 'row'}, s.id, h('small', {class: 'muted block'}, label('quantity', s.quantity))),
    h('td', {class: 'num value', 'data-testid': `sensor-value-${s.id}`}, fmtValue(s.value, s.unit)),
    h('td', {class: 'when'}, fmtTime(s.ts_ms)),
    h('td', {}, h('span', {class: `sensor-status ss-${s.status}`}, stateText)),
    h('td', {}, ...thresholds));
}

function renderSensors() {
  document.getElementById('sensor-rows').replaceChildren(...site.sensors.map(sensorRow));
}

function renderHistory() {
  const list = [...history.values()].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
  document.getElementById('history-rows').replaceChildren(...list.map((w) =>
    h('tr', {'data-testid': 'history-row', 'data-episode': w.id, 'data-state': w.state, class: `row-${w.level}`},
      h('td', {}, levelBadge(w.peak || w.level)),
      h('td', {}, ruleLabel(w.rule), h('small', {class: 'muted block'}, w.subject)),
      h('td', {}, fmtTime(w.raised_at)),
      h('td', {}, h('a', {href: `/warnings?site=${encodeURIComponent(w.site)}`}, label('state', w.state))),
      h('td', {class: 'num'}, fmtValue(w.last_value, w.unit)))));
}

// ------------------------------------------------------------------------------------ charts
const chartWidth = (holder) => Math.max(300, holder.clientWidth);
const pad2 = (n) => String(n).padStart(2, '0');
/** 24-hour axis labels; the date only where it changes. */
function timeLabels(u, splits) {
  let lastDay = '';
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const day = `${d.getMonth() + 1}-${d.getDate()}`;
    const text = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    const out = day !== lastDay ? `${text}\n${day}` : text;
    lastDay = day;
    return out;
  });
}

async function drawChart(sensor) {
  const hours = Number(hoursSelect.value);
  const data = await api(`/api/sites/${encodeURIComponent(SITE)}/series?sensor=${encodeURIComponent(sensor.id)}&hours=${hours}`);
  const thresholds = data.thresholds || sensor.thresholds || [];
  const xs = data.points.map((p) => p[0] / 1000);
  const ys = data.points.map((p) => p[1]);
  // data-thresholds: the threshold lines the chart draws (the browser tests read them)
  const holder = h('figure', {class: 'chart', 'data-testid': `chart-${sensor.id}`,
    'data-thresholds': JSON.stringify(thresholds.map((th) => ({level: th.level, value: th.value})))},
    h('figcaption', {}, `${sensor.id} · ${label('quantity', sensor.quantity)} (${data.unit || sensor.unit})`));
  if (!xs.length) holder.append(h('p', {class: 'muted no-points', 'data-testid': 'no-points'}, t('site.no_points')));
  const old = charts.get(sensor.id);
  old?.plot.destroy();
  old?.holder.remove();
  document.getElementById('charts').append(holder);
  const series = [{}, {label: sensor.id, stroke: '#24405f', width: 1.5, points: {show: xs.length < 60}}];
  for (const th of thresholds) {
    series.push({label: `${label('level', th.level)} ${th.value}`, stroke: LEVEL_COLOURS[th.level] || '#888',
      dash: [6, 4], width: 1.2, points: {show: false}});
  }
  const plot = new uPlot({
    width: chartWidth(holder), height: 200, series,
    scales: {x: {time: true}},
    axes: [{values: timeLabels}, {label: data.unit || sensor.unit, size: 60}],
    legend: {live: false},
  }, build(xs, ys, thresholds), holder);
  charts.set(sensor.id, {plot, holder, xs, ys, thresholds, hours});
}

const build = (xs, ys, thresholds) => [xs, ys, ...thresholds.map((th) => xs.map(() => th.value))];

function appendPoint(sensorId, tsMs, value) {
  const c = charts.get(sensorId);
  if (!c) return;
  const x = tsMs / 1000;
  if (c.xs.length && x <= c.xs[c.xs.length - 1]) return;
  c.xs.push(x);
  c.ys.push(value);
  const oldest = x - c.hours * 3600;
  while (c.xs.length && c.xs[0] < oldest) { c.xs.shift(); c.ys.shift(); }
  c.plot.setData(build(c.xs, c.ys, c.thresholds));
  c.holder.querySelector('.no-points')?.remove(); // it has data now
}

async function drawCharts() {
  for (const sensor of site.sensors) {
    try {
      await drawChart(sensor);
    } catch (err) {
      status(errorText(err), 'error');
    }
  }
}

// ------------------------------------------------------------------------------------ data
async function load({withCharts = false} = {}) {
  try {
    site = await api(`/api/sites/${encodeURIComponent(SITE)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      document.getElementById('not-found').hidden = false;
      return;
    }
    status(errorText(err), 'error');
    return;
  }
  for (const id of ['sensors-section', 'trends-section', 'history-section']) document.getElementById(id).hidden = false;
  history.clear();
  for (const w of site.history || []) history.set(w.id, w);
  renderHeader();
  renderSensors();
  renderHistory();
  if (withCharts) await drawCharts();
}
const reload = debounce(() => load(), 800);

on('readings', (list) => {
  if (!site) return;
  let changed = false;
  for (const r of list) {
    if (r.site !== SITE) continue;
    const s = site.sensors.find((x) => x.id === r.sensor);
    if (!s || (s.ts_ms && r.ts_ms < s.ts_ms)) continue;
    Object.assign(s, {value: r.value, ts_ms: r.ts_ms});
    if (s.status === 'unknown') s.status = 'ok'; // heard now (faults come as health events, which reload)
    appendPoint(r.sensor, r.ts_ms, r.value);
    changed = true;
  }
  if (changed) renderSensors();
});
on('site', (s) => {
  if (!site || s.id !== SITE) return;
  Object.assign(site, s);
  renderHeader();
});
on('episode', (w) => {
  if (!site || w.site !== SITE) return;
  history.set(w.id, w);
  renderHistory();
});
on('warning', (e) => { if (e.site === SITE) reload(); });
on('health', (e) => { if (!e.site || e.site === SITE) reload(); });
on('resync', () => load({withCharts: true}));

hoursSelect.addEventListener('change', drawCharts);
window.addEventListener('resize', debounce(() => {
  for (const c of charts.values()) c.plot.setSize({width: chartWidth(c.holder), height: 200});
}, 200));

load({withCharts: true});
