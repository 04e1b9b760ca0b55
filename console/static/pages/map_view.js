// The map's geometry and view: a projection of lon/lat onto the SVG, and pan and zoom (mouse
// wheel around the pointer, dragging, buttons, keys). Plain SVG, no library, nothing fetched.
//
// Outlines and zones are drawn once in "base" coordinates inside a <g> whose transform is the
// view (translate, then scale; their strokes do not scale). Markers and labels are placed in
// screen coordinates at every view change, so they keep their size at any zoom.

export const W = 1000;
export const H = 640;
const PAD = 32;
export const MIN_ZOOM = 1;
export const MAX_ZOOM = 48;

/** lon/lat -> base x/y: equirectangular, x shrunk by cos(mid latitude), fitted and centred. */
export function projection([minLon, minLat, maxLon, maxLat]) {
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const dx = Math.max((maxLon - minLon) * k, 1e-6);
  const dy = Math.max(maxLat - minLat, 1e-6);
  const scale = Math.min((W - 2 * PAD) / dx, (H - 2 * PAD) / dy);
  const ox = (W - dx * scale) / 2;
  const oy = (H - dy * scale) / 2;
  return ([lon, lat]) => [ox + (lon - minLon) * k * scale, oy + (maxLat - lat) * scale];
}

/** The bounds [minLon, minLat, maxLon, maxLat] of a list of [lon, lat] points (null if none). */
export function boundsOf(points) {
  if (!points.length) return null;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of points) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  return [x0, y0, x1, y1];
}

/** An SVG path ("M...Z" per ring) of a GeoJSON MultiPolygon or Polygon, in base coordinates. */
export function pathOf(geometry, project) {
  const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  let d = '';
  for (const rings of polygons) {
    for (const ring of rings) {
      d += ring.map((p, i) => `${i ? 'L' : 'M'}${project(p).map((c) => c.toFixed(1)).join(',')}`).join('') + 'Z';
    }
  }
  return d;
}

/**
 * Pan and zoom of an <svg viewBox="0 0 W H">: ``onChange(view)`` is called with {k, x, y}
 * (screen = base * k + (x, y)) whenever the view changes.
 */
export class PanZoom {
  constructor(svgEl, onChange) {
    this.svg = svgEl;
    this.onChange = onChange;
    this.view = {k: 1, x: 0, y: 0};
    this.drag = null;
    this.moved = false;
    svgEl.addEventListener('wheel', (e) => {
      e.preventDefault();
      const [sx, sy] = this.point(e);
      this.zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.002)), sx, sy);
    }, {passive: false});
    svgEl.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      this.drag = {id: e.pointerId, at: this.point(e), view: {...this.view}};
      this.moved = false;
    });
    svgEl.addEventListener('pointermove', (e) => {
      if (!this.drag || e.pointerId !== this.drag.id) return;
      const [sx, sy] = this.point(e);
      const [dx, dy] = [sx - this.drag.at[0], sy - this.drag.at[1]];
      if (!this.moved && Math.hypot(dx, dy) < 4) return;
      if (!this.moved) svgEl.setPointerCapture(e.pointerId);
      this.moved = true;
      svgEl.classList.add('dragging');
      this.set({...this.drag.view, x: this.drag.view.x + dx, y: this.drag.view.y + dy});
    });
    const end = (e) => {
      if (!this.drag || e.pointerId !== this.drag.id) return;
      this.drag = null;
      svgEl.classList.remove('dragging');
    };
    svgEl.addEventListener('pointerup', end);
    svgEl.addEventListener('pointercancel', end);
    // a drag that ends on a marker is not a click on it
    svgEl.addEventListener('click', (e) => {
      if (this.moved) {
        e.preventDefault();
        e.stopPropagation();
        this.moved = false;
      }
    }, true);
    svgEl.addEventListener('keydown', (e) => {
      const step = 60;
      const keys = {'+': () => this.zoomBy(1.5), '=': () => this.zoomBy(1.5), '-': () => this.zoomBy(1 / 1.5),
        0: () => this.reset(), ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step)};
      if (keys[e.key] && e.target === svgEl) {
        e.preventDefault();
        keys[e.key]();
      }
    });
  }

  /** The event's position in the SVG's own coordinates (viewBox units). */
  point(e) {
    const m = this.svg.getScreenCTM();
    if (!m) return [W / 2, H / 2];
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(m.inverse());
    return [p.x, p.y];
  }

  set({k, x, y}) {
    k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));
    // keep some of the map in sight: the base frame may not leave the view entirely
    const margin = 80;
    x = Math.min(W - margin, Math.max(margin - W * k, x));
    y = Math.min(H - margin, Math.max(margin - H * k, y));
    this.view = {k, x, y};
    this.svg.dataset.zoom = k.toFixed(3);
    this.onChange(this.view);
  }

  zoomAt(factor, sx, sy) {
    const {k, x, y} = this.view;
    const k2 = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k * factor));
    this.set({k: k2, x: sx - (sx - x) * (k2 / k), y: sy - (sy - y) * (k2 / k)});
  }

  zoomBy(factor) {
    this.zoomAt(factor, W / 2, H / 2);
  }

  panBy(dx, dy) {
    this.set({...this.view, x: this.view.x + dx, y: this.view.y + dy});
  }

  reset() {
    this.set({k: 1, x: 0, y: 0});
  }

  /** Fit base-coordinate box [x0, y0, x1, y1] into the view, with a margin. */
  fit([x0, y0, x1, y1]) {
    const k = Math.min((W - 2 * PAD) / Math.max(x1 - x0, 1), (H - 2 * PAD) / Math.max(y1 - y0, 1));
    const kk = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));
    this.set({k: kk, x: W / 2 - ((x0 + x1) / 2) * kk, y: H / 2 - ((y0 + y1) / 2) * kk});
  }
}
