// Data quality: offline and faulty sensors, and each enterprise's online rate over 24 h.
import {api, debounce, errorText, fmtTime, h, label, on, start, status, ticking} from '/static/app.js';

start();

const POLL_MS = 10000;

function rateRow(r) {
  const pct = r.rate_24h == null ? null : Math.round(r.rate_24h * 1000) / 10;
  const cls = pct == null ? '' : pct >= 95 ? 'good' : pct >= 80 ? 'fair' : 'poor';
  return h('tr', {'data-testid': 'rate-row', 'data-enterprise': r.enterprise},
    h('th', {scope: 'row'}, r.enterprise),
    h('td', {class: `rate ${cls}`},
      h('meter', {min: 0, max: 100, low: 80, high: 95, optimum: 100, value: pct ?? 0, 'aria-label': r.enterprise}),
      ` ${pct == null ? '—' : `${pct}%`}`),
    h('td', {class: 'num'}, String(r.sensors ?? '')));
}

function problemRow(s) {
  return h('tr', {'data-testid': 'problem-row', 'data-sensor': `${s.site}/${s.sensor}`, 'data-status': s.status,
    class: 'row-problem'},
  h('td', {}, h('a', {href: `/sites/${encodeURIComponent(s.site)}`}, s.site)),
  h('td', {}, s.sensor),
  h('td', {}, s.enterprise),
  h('td', {}, label('sensor', s.status)),  // a recent spike leaves the status ok: the fault column says it
  h('td', {}, s.fault ? label('fault', s.fault) : ''),
  h('td', {}, fmtTime(s.since_ms)),
  h('td', {}, s.since_ms ? ticking(s.since_ms) : ''));
}

let timer = null;
async function load() {
  clearTimeout(timer);
  try {
    const q = await api('/api/quality');
    const problems = q.sensors; // the API lists only sensors not plainly ok (offline, fault, spike, unknown)
    document.getElementById('rate-rows').replaceChildren(...q.online_rate.map(rateRow));
    document.getElementById('problem-rows').replaceChildren(...problems.map(problemRow));
    document.getElementById('all-ok').hidden = problems.length > 0;
  } catch (err) {
    status(errorText(err), 'error');
  } finally {
    timer = setTimeout(load, POLL_MS);
  }
}
on('health', debounce(load, 500));
on('resync', load);
load();
