// The regional plans' indicators: public warning coverage of red warnings (per episode and zone,
// with the people to phone) and the enterprise safety index's ranking with its trend.
import {api, debounce, errorText, fmtTime, h, label, on, start, status, svg, t} from '/static/app.js';

start();

const form = document.getElementById('period');
const POLL_MS = 30000;
const pct = (share) => (share == null ? '—' : `${Math.round(share * 1000) / 10}%`);
const num = (v) => (v == null ? '—' : String(v));

function zoneRow(z, target) {
  const cls = z.share == null ? '' : z.met ? 'good' : 'poor';
  const speakers = z.loudspeakers;
  return h('tr', {'data-testid': 'coverage-zone', 'data-zone': z.zone, 'data-met': String(z.met),
    'data-share': z.share == null ? '' : String(z.share)},
  h('th', {scope: 'row'}, z.zone_name, h('small', {class: 'muted block'}, z.zone)),
  h('td', {class: 'num'}, String(z.subscribers)),
  h('td', {class: 'num'}, String(z.delivered)),
  h('td', {class: `rate ${cls}`},
    h('meter', {min: 0, max: 100, low: target * 100, high: target * 100, optimum: 100,
      value: z.share == null ? 0 : z.share * 100, 'aria-label': z.zone_name}),
    ` ${pct(z.share)}`),
  h('td', {class: cls}, z.share == null ? '—' : t(z.met ? 'indicators.met_yes' : 'indicators.met_no')),
  h('td', {'data-testid': 'loudspeakers', 'data-state': speakers.state, class: speakers.sounded ? '' : 'poor'},
    label('cap', speakers.state), speakers.identifier ? h('small', {class: 'muted block'}, speakers.identifier) : ''));
}

function episodeBlock(e, target) {
  return h('article', {class: 'coverage-episode', 'data-testid': 'coverage-episode', 'data-episode': e.episode},
    h('h3', {},
      fmtTime(e.raised_at), ' · ', h('a', {href: `/sites/${encodeURIComponent(e.site)}`}, e.site_name), ' · ',
      h('span', {class: 'muted'}, e.enterprise),
      e.false_alarm ? h('span', {class: 'badge false-alarm'}, t('indicators.false_alarm')) : ''),
    h('table', {class: 'coverage'},
      h('thead', {}, h('tr', {},
        ...['zone', 'subscribers', 'delivered', 'share', 'met', 'loudspeakers'].map(
          (k) => h('th', {scope: 'col'}, t(`indicators.${k}`))))),
      h('tbody', {}, ...e.zones.map((z) => zoneRow(z, target)))));
}

function followUpRows(data) {
  const rows = [];
  for (const e of data.episodes) {
    for (const z of e.zones) {
      for (const p of z.not_reached) {
        rows.push(h('tr', {'data-testid': 'follow-up-row', 'data-phone': p.phone, 'data-outcome': p.outcome,
          'data-episode': e.episode, 'data-zone': z.zone},
        h('td', {}, p.name),
        h('td', {}, p.phone.includes('*') ? p.phone : h('a', {href: `tel:${p.phone}`}, p.phone)),  // masked for officers
        h('td', {}, z.zone_name),
        h('td', {class: p.outcome === 'failed' ? 'poor' : ''}, label('reach', p.outcome)),
        h('td', {}, e.site_name),
        h('td', {}, fmtTime(e.raised_at)),
        h('td', {class: 'error-cell'}, [p.channel && label('channel', p.channel), p.reason].filter(Boolean).join(' · '))));
      }
    }
  }
  return rows;
}

/** A small line chart of the daily index (0-100); days without an index leave a gap. */
function sparkline(trend, dates) {
  const w = 120, hgt = 28, step = trend.length > 1 ? w / (trend.length - 1) : 0;
  const y = (v) => (hgt - 2 - (v / 100) * (hgt - 4)).toFixed(1);
  const points = trend.map((v, i) => (v == null ? null : `${(i * step).toFixed(1)},${y(v)}`)).filter(Boolean);
  const title = trend.map((v, i) => `${dates[i]}: ${num(v)}`).join('\n');
  return svg('svg', {class: 'sparkline', viewBox: `-2 0 ${w + 4} ${hgt}`, width: w + 4, height: hgt, role: 'img',
    'aria-label': title, 'data-testid': 'trend'},
  svg('title', {}, title),
  svg('polyline', {points: points.join(' '), fill: 'none'}),
  ...trend.map((v, i) => (v == null ? null : svg('circle', {cx: (i * step).toFixed(1), cy: y(v), r: 1.8}))));
}

function safetyRow(r, dates) {
  const cls = r.mean == null ? '' : r.mean >= 90 ? 'good' : r.mean >= 75 ? 'fair' : 'poor';
  const parts = Object.entries(r.today).map(([c, v]) => `${label('component', c)} ${
    v.score == null ? '—' : Math.round(v.score * 100)}`);
  const change = r.change == null ? '—' : r.change > 0 ? `+${r.change}` : String(r.change);
  return h('tr', {'data-testid': 'safety-row', 'data-enterprise': r.enterprise, 'data-rank': String(r.rank),
    'data-mean': r.mean == null ? '' : String(r.mean)},
  h('td', {class: 'num'}, String(r.rank)),
  h('th', {scope: 'row'}, r.enterprise, h('small', {class: 'muted block'}, r.sites.join(', '))),
  h('td', {class: `num rate ${cls}`}, num(r.mean)),
  h('td', {class: 'num'}, num(r.index)),
  h('td', {class: `num ${r.change < 0 ? 'poor' : ''}`}, change),
  h('td', {}, sparkline(r.trend, dates)),
  h('td', {class: 'components'}, parts.join(' · ')));
}

let timer = null;
async function load() {
  clearTimeout(timer);
  const days = form.elements.days.value;
  try {
    const [cov, idx] = await Promise.all([api(`/api/indicators/coverage?days=${days}`),
      api(`/api/indicators/safety?days=${days}`)]);
    document.getElementById('coverage-target').textContent = t('indicators.target', {pct: pct(cov.target)});
    document.getElementById('coverage-episodes').replaceChildren(...cov.episodes.map((e) => episodeBlock(e, cov.target)));
    document.getElementById('no-red').hidden = cov.episodes.length > 0;
    const people = followUpRows(cov);
    document.getElementById('follow-up-rows').replaceChildren(...people);
    document.getElementById('all-reached').hidden = people.length > 0 || cov.episodes.length === 0;
    document.getElementById('safety-note').textContent = t('indicators.safety_note', {n: idx.dates.length});
    document.getElementById('safety-rows').replaceChildren(...idx.enterprises.map((r) => safetyRow(r, idx.dates)));
    document.getElementById('safety-weights').textContent = t('indicators.weights', {
      weights: Object.entries(idx.weights).map(([c, w]) => `${label('component', c)} ${w}`).join(', '),
      ack: idx.ack_due_min, repair: idx.repair_due_h});
  } catch (err) {
    status(errorText(err), 'error');
  } finally {
    timer = setTimeout(load, POLL_MS);
  }
}

form.elements.days.value = new URLSearchParams(location.search).get('days') || '7';
form.addEventListener('change', () => {
  history.replaceState(null, '', `?days=${form.elements.days.value}`);
  load();
});
on('episode', debounce(load, 2000));
on('resync', load);
load();
