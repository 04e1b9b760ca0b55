// 一张图: zone outlines and sites on an equirectangular projection fitted to the bounds of
// GET /api/map, sites coloured by level (grey when offline), kept live from the event stream.
import {api, debounce, errorText, h, label, LANG, levelBadge, levelRank, on, start, status, svg, t} from '/static/app.js';

start();

const W = 1000;
const H = 640;
const PAD = 48;
const map = document.getElementById('map');
const sites = new Map(); // id -> SiteSummary
const markers = new Map(); // id -> <g>

const siteName = (s) => (LANG === 'en' && s.name_en ? s.name_en : s.name);

/** lon/lat -> SVG x/y: equirectangular, x shrunk by cos(mid latitude), fitted and centred. */
function projection([minLon, minLat, maxLon, maxLat]) {
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const dx = Math.max((maxLon - minLon) * k, 1e-6);
  const dy = Math.max(maxLat - minLat, 1e-6);
  const scale = Math.min((W - 2 * PAD) / dx, (H - 2 * PAD) / dy);
  const ox = (W - dx * scale) / 2;
  const oy = (H - dy * scale) / 2;
  return ([lon, lat]) => [ox + (lon - minLon) * k * scale, oy + (maxLat - lat) * scale];
}

/** Grid lines every round number of degrees, about 4 to 10 across the view, labelled at the edges. */
function graticule([minLon, minLat, maxLon, maxLat], project) {
  const span = Math.max(maxLon - minLon, maxLat - minLat);
  const step = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10].find((d) => span / d <= 8) ?? 10;
  const g = svg('g', {class: 'graticule', 'aria-hidden': 'true'});
  const digits = step < 0.01 ? 3 : step < 0.1 ? 2 : step < 1 ? 1 : 0;
  const [x0, y0] = project([minLon - span, maxLat + span]);
  const [x1, y1] = project([maxLon + span, minLat - span]);
  for (let lon = Math.ceil((minLon - span) / step) * step; lon <= maxLon + span; lon += step) {
    const [x] = project([lon, minLat]);
    if (x < 0 || x > W) continue;
    g.append(svg('line', {x1: x, x2: x, y1: y0, y2: y1}), svg('text', {x: x + 3, y: H - 6}, `${lon.toFixed(digits)}°E`));
  }
  for (let lat = Math.ceil((minLat - span) / step) * step; lat <= maxLat + span; lat += step) {
    const [, y] = project([minLon, lat]);
    if (y < 0 || y > H) continue;
    g.append(svg('line', {x1: x0, x2: x1, y1: y, y2: y}), svg('text', {x: 4, y: y - 3}, `${lat.toFixed(digits)}°N`));
  }
  return g;
}

/** The view around one site: the site and the zones near it (within about 30 km). */
function areaBounds(data, siteId) {
  const s = data.sites.find((x) => x.id === siteId);
  if (!s) return data.bounds;
  const near = (p) => Math.abs(p[0] - s.lon) < 0.3 && Math.abs(p[1] - s.lat) < 0.3;
  const points = [[s.lon, s.lat], ...data.zones.filter((z) => z.polygon.some(near)).flatMap((z) => z.polygon),
    ...data.sites.filter((x) => near([x.lon, x.lat])).map((x) => [x.lon, x.lat])];
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  const pad = Math.max(Math.max(...lons) - Math.min(...lons), Math.max(...lats) - Math.min(...lats), 0.01) * 0.15;
  return [Math.min(...lons) - pad, Math.min(...lats) - pad, Math.max(...lons) + pad, Math.max(...lats) + pad];
}

let mapData = null;
const areaSelect = document.getElementById('area');

function draw(data) {
  const bounds = areaSelect.value ? areaBounds(data, areaSelect.value) : data.bounds;
  const project = projection(bounds);
  const zones = svg('g', {class: 'zones'});
  for (const z of data.zones) {
    const points = z.polygon.map((p) => project(p).map((c) => c.toFixed(1)).join(',')).join(' ');
    zones.append(svg('polygon', {class: 'zone', points, 'data-testid': `zone-${z.id}`},
      svg('title', {}, `${t('map.zone')} ${z.name} (${z.id})`)));
  }
  const layer = svg('g', {class: 'sites'});
  for (const s of data.sites) {
    const [x, y] = project([s.lon, s.lat]);
    const g = svg('a', {href: `/sites/${encodeURIComponent(s.id)}`, class: 'marker',
      'data-testid': `site-${s.id}`, 'data-level': s.level, 'data-offline': String(s.offline)},
    svg('title', {}, ''),
    svg('circle', {cx: x.toFixed(1), cy: y.toFixed(1), r: 11, class: 'halo'}),
    svg('circle', {cx: x.toFixed(1), cy: y.toFixed(1), r: 8, class: 'dot'}),
    svg('text', {x: (x + 14).toFixed(1), y: (y + 4).toFixed(1), class: 'label'}, `${siteName(s)}`));
    markers.set(s.id, g);
    layer.append(g);
  }
  map.replaceChildren(graticule(bounds, project), zones, layer);
}

function paint() {
  const counts = {normal: 0, blue: 0, yellow: 0, orange: 0, red: 0, offline: 0};
  let warnings = 0;
  const rows = [];
  const ordered = [...sites.values()].sort((a, b) => levelRank(b.level) - levelRank(a.level) || a.id.localeCompare(b.id));
  for (const s of ordered) {
    counts[s.offline ? 'offline' : s.level] += 1;
    warnings += s.active_warnings || 0;
    const g = markers.get(s.id);
    if (g) {
      g.setAttribute('data-level', s.level);
      g.setAttribute('data-offline', String(s.offline));
      g.querySelector('title').textContent = `${siteName(s)} (${s.id}) · ${s.enterprise} · ${
        label('level', s.level)}${s.offline ? ` · ${t('level.offline')}` : ''}`;
    }
    rows.push(h('tr', {'data-testid': `site-row-${s.id}`, 'data-level': s.level, class: `row-${s.level}`},
      h('th', {scope: 'row'}, h('a', {href: `/sites/${encodeURIComponent(s.id)}`}, siteName(s)),
        h('small', {class: 'muted'}, ` ${s.id} · ${label('kind', s.kind)}`)),
      h('td', {}, levelBadge(s.level), s.offline ? h('span', {class: 'badge lv-offline'}, t('level.offline')) : null),
      h('td', {class: 'num'}, String(s.active_warnings ?? 0))));
  }
  document.getElementById('site-rows').replaceChildren(...rows);
  for (const [level, n] of Object.entries(counts)) {
    document.querySelector(`[data-testid="count-${level}"]`).textContent = String(n);
  }
  document.querySelector('[data-testid="count-total"]').textContent = String(sites.size);
  document.querySelector('[data-testid="count-warnings"]').textContent = String(warnings);
}

async function load() {
  try {
    const data = await api('/api/map');
    mapData = data;
    sites.clear();
    for (const s of data.sites) sites.set(s.id, s);
    const area = new URLSearchParams(location.hash.slice(1)).get('area') || '';
    areaSelect.replaceChildren(h('option', {value: ''}, t('map.area_all')),
      ...data.sites.map((s) => h('option', {value: s.id}, `${siteName(s)} (${s.id})`)));
    areaSelect.value = data.sites.some((s) => s.id === area) ? area : '';
    draw(data);
    paint();
  } catch (err) {
    status(errorText(err), 'error');
  }
}

// The API's summaries are the truth; a warning event only raises a marker at once (the level
// is the highest of the site's warnings), and the summaries are fetched again shortly after.
const refetch = debounce(async () => {
  try {
    for (const s of await api('/api/sites')) sites.set(s.id, s);
    paint();
  } catch (err) {
    status(errorText(err), 'error');
  }
}, 1000);

areaSelect.addEventListener('change', () => {
  history.replaceState(null, '', areaSelect.value ? `#area=${encodeURIComponent(areaSelect.value)}` : location.pathname);
  if (mapData) {
    draw(mapData);
    paint();
  }
});

on('site', (s) => {
  if (!markers.has(s.id)) return;
  sites.set(s.id, {...sites.get(s.id), ...s});
  paint();
});
on('warning', (w) => {
  const s = sites.get(w.site);
  if (!s) return;
  if (w.kind !== 'cleared' && levelRank(w.level) > levelRank(s.level)) {
    sites.set(w.site, {...s, level: w.level});
    paint();
  }
  refetch();
});
on('episode', refetch);
on('resync', load);

load();
