// 一张图: the city and county outlines of GET /api/boundaries, zone outlines and sites of
// GET /api/map on an equirectangular projection, with pan and zoom (map_view.js); sites coloured
// by level (grey when offline), kept live from the event stream.
import {api, debounce, errorText, h, label, LANG, levelBadge, levelRank, on, start, status, svg, t} from '/static/app.js';
import {boundsOf, pathOf, PanZoom, projection} from '/static/pages/map_view.js';

start();

const map = document.getElementById('map');
const sites = new Map(); // id -> SiteSummary
const markers = new Map(); // id -> <a> (placed in screen coordinates)

const siteName = (s) => (LANG === 'en' && s.name_en ? s.name_en : s.name);

/** The view around one site: the site and the zones it affects. */
function areaBounds(data, siteId) {
  const s = data.sites.find((x) => x.id === siteId);
  if (!s) return null;
  // the site and the zones it affects (its own, extra ones, those within its hazard radius)
  const points = [[s.lon, s.lat], ...data.zones.filter((z) => (z.sites || []).includes(siteId)).flatMap((z) => z.polygon)];
  const [x0, y0, x1, y1] = boundsOf(points);
  const pad = Math.max(x1 - x0, y1 - y0, 0.01) * 0.15;
  return [x0 - pad, y0 - pad, x1 + pad, y1 + pad];
}

/** Grid lines every round number of degrees, for a map without outlines (no boundaries file). */
function graticule([minLon, minLat, maxLon, maxLat], project) {
  const span = Math.max(maxLon - minLon, maxLat - minLat);
  const step = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10].find((d) => span / d <= 8) ?? 10;
  const g = svg('g', {class: 'graticule', 'aria-hidden': 'true'});
  const [x0, y0] = project([minLon - span, maxLat + span]);
  const [x1, y1] = project([maxLon + span, minLat - span]);
  for (let lon = Math.ceil((minLon - span) / step) * step; lon <= maxLon + span; lon += step) {
    const [x] = project([lon, minLat]);
    g.append(svg('line', {x1: x, x2: x, y1: y0, y2: y1}));
  }
  for (let lat = Math.ceil((minLat - span) / step) * step; lat <= maxLat + span; lat += step) {
    const [, y] = project([minLon, lat]);
    g.append(svg('line', {x1: x0, x2: x1, y1: y, y2: y}));
  }
  return g;
}

let mapData = null;
let drawn = false;
let outlines = [];
let project = null;
const placed = []; // [element, [baseX, baseY]] of markers and labels
const areaSelect = document.getElementById('area');
const viewport = svg('g', {class: 'viewport'});
const overlay = svg('g', {class: 'overlay'});
const zoom = new PanZoom(map, ({k, x, y}) => {
  viewport.setAttribute('transform', `translate(${x.toFixed(2)},${y.toFixed(2)}) scale(${k.toFixed(4)})`);
  for (const [el, [bx, by]] of placed) {
    el.setAttribute('transform', `translate(${(bx * k + x).toFixed(1)},${(by * k + y).toFixed(1)})`);
  }
  map.classList.toggle('zoomed-in', k >= 3);
  declutter();
});

/** Site names that would overlap are hidden, the higher level's kept (its marker's title still
 * names it): sites a few hundred metres apart, as in a chemical park, stay readable. */
function declutter() {
  const kept = [];
  const overlaps = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  for (const g of [...map.querySelectorAll('a.marker')].reverse()) { // drawn lowest level first
    const text = g.querySelector('.label');
    text.style.visibility = '';
    const box = text.getBoundingClientRect();
    if (kept.some((other) => overlaps(box, other))) text.style.visibility = 'hidden';
    else kept.push(box);
  }
}

function draw(data) {
  const home = boundsOf([...outlines.flatMap((f) => boundsCorners(f.geometry)),
    [data.bounds[0], data.bounds[1]], [data.bounds[2], data.bounds[3]]]);
  project = projection(home);
  placed.length = 0;
  markers.clear();
  const layers = [];
  if (outlines.length) {
    const counties = svg('g', {class: 'counties'});
    const cities = svg('g', {class: 'cities'});
    for (const f of outlines) {
      const {code, name, level} = f.properties;
      const el = svg('path', {d: pathOf(f.geometry, project), class: `outline ${level}`,
        'data-testid': `outline-${code}`, 'data-level': level}, svg('title', {}, `${name} (${code})`));
      (level === 'city' ? cities : counties).append(el);
    }
    layers.push(counties, cities);
  } else {
    layers.push(graticule(home, project));
  }
  const zones = svg('g', {class: 'zones'});
  for (const z of data.zones) {
    const points = z.polygon.map((p) => project(p).map((c) => c.toFixed(1)).join(',')).join(' ');
    zones.append(svg('polygon', {class: 'zone', points, 'data-testid': `zone-${z.id}`},
      svg('title', {}, `${t('map.zone')} ${z.name} (${z.id})`)));
  }
  viewport.replaceChildren(...layers, zones);
  const labels = svg('g', {class: 'outline-labels', 'aria-hidden': 'true'});
  for (const f of outlines) {
    const {name, level, label: at} = f.properties;
    if (level !== 'county' || !at) continue;
    const el = svg('text', {class: 'outline-label'}, name);
    placed.push([el, project(at)]);
    labels.append(el);
  }
  const layer = svg('g', {class: 'sites'});
  for (const s of data.sites) {
    const g = svg('a', {href: `/sites/${encodeURIComponent(s.id)}`, class: 'marker',
      'data-testid': `site-${s.id}`, 'data-level': s.level, 'data-offline': String(s.offline)},
    svg('title', {}, ''),
    svg('circle', {cx: 0, cy: 0, r: 11, class: 'halo'}),
    svg('circle', {cx: 0, cy: 0, r: 8, class: 'dot'}),
    svg('text', {x: 14, y: 4, class: 'label'}, `${siteName(s)}`));
    markers.set(s.id, g);
    placed.push([g, project([s.lon, s.lat])]);
    layer.append(g);
  }
  overlay.replaceChildren(labels, layer);
  map.replaceChildren(viewport, overlay);
  map.dataset.outlines = String(outlines.length);
  // the first drawing shows the area asked for; a redraw (the stream reconnected) keeps the view
  if (drawn) zoom.set(zoom.view);
  else showArea();
  drawn = true;
}

/** The corners of a geometry's bounds, as [lon, lat] points. */
function boundsCorners(geometry) {
  const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  const b = boundsOf(polygons.flatMap((rings) => rings[0]));
  return b ? [[b[0], b[1]], [b[2], b[3]]] : [];
}

/** The view the area select asks for: the whole map, or around one site. */
function showArea() {
  const b = areaSelect.value && mapData ? areaBounds(mapData, areaSelect.value) : null;
  if (!b) {
    zoom.reset();
    return;
  }
  const [x0, y1] = project([b[0], b[1]]);
  const [x1, y0] = project([b[2], b[3]]);
  zoom.fit([x0, y0, x1, y1]);
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
  // markers drawn lowest level first, so that a warning is never hidden under a quiet neighbour
  for (const s of [...ordered].reverse()) {
    const g = markers.get(s.id);
    if (g && g.parentNode) g.parentNode.append(g);
  }
  declutter();
  document.getElementById('site-rows').replaceChildren(...rows);
  for (const [level, n] of Object.entries(counts)) {
    document.querySelector(`[data-testid="count-${level}"]`).textContent = String(n);
  }
  document.querySelector('[data-testid="count-total"]').textContent = String(sites.size);
  document.querySelector('[data-testid="count-warnings"]').textContent = String(warnings);
}

async function load() {
  try {
    const [data, shapes] = await Promise.all([api('/api/map'), api('/api/boundaries').catch((err) => {
      status(errorText(err), 'error');
      return {features: []};
    })]);
    mapData = data;
    outlines = shapes.features;
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
  if (mapData) showArea();
});
document.getElementById('zoom-in').addEventListener('click', () => zoom.zoomBy(1.5));
document.getElementById('zoom-out').addEventListener('click', () => zoom.zoomBy(1 / 1.5));
document.getElementById('zoom-reset').addEventListener('click', () => zoom.reset());

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
