// Shared by every console page: strings, the JSON API with CSRF, the live event stream, the red
// banner with its sound, and small DOM helpers. Plain ES2020 module, no build step.

const STRINGS = JSON.parse(document.getElementById('hw-strings')?.textContent || '{}');
export const LANG = document.documentElement.lang || 'zh-CN';
export const LEVELS = ['normal', 'blue', 'yellow', 'orange', 'red'];
export const levelRank = (level) => Math.max(0, LEVELS.indexOf(level));

/** The string `key` in the page's language, with `{name}` placeholders filled in. */
export function t(key, values = {}) {
  let text = STRINGS[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** A label for a domain word (`quantity.tank_level`), falling back to the word itself. */
export const label = (prefix, word) => (word == null ? '' : (STRINGS[`${prefix}.${word}`] ?? String(word)));
/** A rule's name: most rules are named after their quantity (combustible_gas); others have their own. */
export const ruleLabel = (rule) => STRINGS[`quantity.${rule}`] ?? STRINGS[`rule.${rule}`] ?? rule ?? '';

// ------------------------------------------------------------------------------------ DOM
/** h('td', {class: 'x', dataset: {episode: id}}, 'text', child) -- text is never parsed as HTML. */
export const h = (tag, attrs = {}, ...children) => build(document.createElement(tag), attrs, children);
/** The same for SVG elements. */
export const svg = (tag, attrs = {}, ...children) =>
  build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children);

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function levelBadge(level) {
  return h('span', {class: `badge lv-${level}`, 'data-level': level}, label('level', level));
}

// ------------------------------------------------------------------------------------ time
const pad = (n) => String(n).padStart(2, '0');
/** Local wall-clock time of epoch ms or an ISO string: 2026-11-23 22:56:01. */
export function fmtTime(when) {
  if (when == null || when === '') return '';
  const d = new Date(typeof when === 'number' ? when : Date.parse(when));
  if (Number.isNaN(d.getTime())) return String(when);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
/** A duration in seconds, e.g. "3分12秒" / "3 min 12 s". */
export function fmtAge(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t('time.s', {s});
  if (s < 3600) return t('time.ms', {m: Math.floor(s / 60), s: s % 60});
  if (s < 86400) return t('time.hm', {h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60)});
  return t('time.dh', {d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600)});
}
export function fmtValue(v, unit) {
  if (v == null || Number.isNaN(v)) return '—';
  const n = Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 10 ? v.toFixed(2) : v.toFixed(3);
  return unit ? `${Number(n)} ${unit}` : String(Number(n));
}

// Elements with data-since-ms show the time elapsed since then, ticking every second. The
// origin is the page's clock (computed from the API's age_s), so a skewed server clock does not show.
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-since-ms]')) {
    el.textContent = fmtAge((now - Number(el.dataset.sinceMs)) / 1000);
  }
}
setInterval(tick, 1000);
export const ticking = (sinceMs) => h('span', {class: 'age', 'data-testid': 'age', dataset: {sinceMs}},
  fmtAge((Date.now() - sinceMs) / 1000));

// ------------------------------------------------------------------------------------ API
let me = null;
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

/** fetch a JSON API path; POSTs carry the session's CSRF token; 401 goes to the log-in page. */
export async function api(path, {method = 'GET', body, csrf} = {}) {
  const headers = {Accept: 'application/json'};
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrf ?? (await whoami())?.csrf ?? '';
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, {method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body)});
  if (res.status === 401 && !path.startsWith('/api/login')) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, 'not logged in');
  }
  const data = (res.headers.get('content-type') || '').includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    const detail = data && typeof data === 'object' && 'detail' in data ? data.detail : data;
    const err = new ApiError(res.status, detail);
    err.retryAfter = res.headers.get('Retry-After');
    throw err;
  }
  return data;
}

export async function whoami() {
  if (me) return me;
  me = await api('/api/me');
  return me;
}

/** Shows a message in the page's status region (aria-live). */
export function status(text, kind = 'ok') {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = text;
  el.className = `status status-${kind}`;
  el.hidden = !text;
}
export const errorText = (err) => t('common.error', {msg: err instanceof ApiError ? `${err.status} ${
  typeof err.detail === 'string' ? err.detail : JSON.stringify(err.detail)}` : err.message});

/** Run fn at most once per `ms` (trailing): coalesces bursts of events into one refetch. */
export function debounce(fn, ms = 300) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ------------------------------------------------------------------------------------ live events
const handlers = new Map();
/** on('warning', fn): called with the parsed JSON of every such server-sent event. 'resync' is
 * called after the stream reconnected, when a page should refetch what it may have missed. */
export function on(name, fn) {
  if (!handlers.has(name)) handlers.set(name, []);
  handlers.get(name).push(fn);
}
function emit(name, data) {
  for (const fn of handlers.get(name) || []) {
    try { fn(data); } catch (err) { console.error(`handler of ${name}`, err); }
  }
}

let source = null;
let lost = false;
/** The event stream. EventSource retries by itself after a dropped connection, but gives up for
 * good on an error answer (a console restarting, a 502 from a proxy): then we start over, and a
 * 401 on /api/me sends the user to the log-in page. */
function connect() {
  const indicator = document.getElementById('live');
  const show = (state) => {
    indicator?.setAttribute('data-state', state);
    if (indicator) indicator.textContent = t(`live.${state}`);
  };
  source = new EventSource('/api/events');
  source.addEventListener('open', () => {
    show('connected');
    if (lost) emit('resync', {});
    lost = false;
  });
  source.addEventListener('error', () => {
    lost = true;
    show('disconnected');
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      setTimeout(async () => {
        try { await api('/api/me'); } catch { /* 401 redirects; anything else: try again */ }
        if (!source) connect();
      }, 3000);
    }
  });
  for (const name of ['warning', 'episode', 'reading', 'readings', 'health', 'site']) {
    source.addEventListener(name, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      if (name === 'readings' || name === 'reading') {
        const list = Array.isArray(data) ? data : (data.readings || [data]);
        emit('readings', list);
      } else emit(name, data);
    });
  }
}

// ------------------------------------------------------------------------------------ red banner
const DISMISSED = 'hw_dismissed';
const dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED) || '[]'));

export function soundOn() { return localStorage.getItem('hw_sound') === 'on'; }
let audio = null;
function audioContext() {
  audio ??= new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}
/** Three short two-tone pulses (about 1 s), generated: no sound file is fetched. */
export function beep() {
  if (!soundOn()) return;
  try {
    const ctx = audioContext();
    const t0 = ctx.currentTime + 0.02;
    for (let i = 0; i < 3; i++) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'square';
      osc.frequency.setValueAtTime(880, t0 + i * 0.32);
      osc.frequency.setValueAtTime(660, t0 + i * 0.32 + 0.12);
      gain.gain.setValueAtTime(0.0001, t0 + i * 0.32);
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + i * 0.32 + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.32 + 0.24);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + i * 0.32);
      osc.stop(t0 + i * 0.32 + 0.25);
    }
  } catch (err) {
    console.warn('no sound', err);
  }
}

/** Show (or refresh) the banner of a red warning: fixed on top of every page until dismissed. */
export function showBanner(w) {
  const id = w.episode || w.id;
  if (!id || dismissed.has(id)) return;
  const host = document.getElementById('banners');
  const existing = host.querySelector(`[data-episode="${CSS.escape(id)}"]`);
  const name = (LANG === 'en' && englishNames.get(w.site)) || w.site_name;
  const site = name ? `${name} (${w.site})` : w.site;
  const value = w.value ?? w.last_value;
  const what = `${ruleLabel(w.rule)} ${fmtValue(value, w.unit)}`
    + (w.threshold != null ? ` (${t('banner.threshold', {v: fmtValue(w.threshold, w.unit)})})` : '');
  const item = h('div', {class: 'banner', role: 'alert', 'data-testid': 'red-banner', dataset: {episode: id, site: w.site}},
    h('strong', {class: 'banner-level'}, `⚠ ${t('banner.red')}`),
    h('span', {class: 'banner-site', 'data-testid': 'banner-site'}, site),
    h('span', {class: 'banner-text'}, `${w.subject || ''} · ${what} · ${fmtTime(w.ts ?? w.raised_at)}`),
    h('a', {class: 'banner-open', href: `/warnings?site=${encodeURIComponent(w.site)}`}, t('banner.open')),
    h('button', {type: 'button', class: 'banner-dismiss', 'data-testid': 'banner-dismiss',
      onclick: () => dismissBanner(id)}, t('banner.dismiss')));
  if (existing) existing.replaceWith(item);
  else {
    host.prepend(item);
    beep();
  }
  fitBanners();
}
/** The banners are fixed on top; the page moves down by their height so nothing hides under them.
 * The newest MAX_BANNERS show in full; older ones fold into one line with their count, so a storm
 * of red warnings never pushes the page off the screen. */
const MAX_BANNERS = 2;
function fitBanners() {
  const host = document.getElementById('banners');
  const all = [...host.querySelectorAll('.banner:not(.banner-more):not(.banner-channel)')];
  all.forEach((el, i) => el.classList.toggle('banner-folded', i >= MAX_BANNERS));
  host.querySelector('.banner-more')?.remove();
  if (all.length > MAX_BANNERS) {
    const folded = all.slice(MAX_BANNERS);
    host.append(h('div', {class: 'banner banner-more', role: 'status', 'data-testid': 'red-banner-more'},
      h('span', {}, t('banner.more', {n: folded.length})),
      h('a', {class: 'banner-open', href: '/warnings?level=red'}, t('banner.open')),
      h('button', {type: 'button', class: 'banner-dismiss',
        onclick: () => { for (const el of all) dismissBanner(el.dataset.episode); }}, t('banner.dismiss_all'))));
  }
  const any = host.querySelector('.banner') !== null;
  document.body.classList.toggle('has-banner', any);
  document.body.style.paddingTop = any ? `${host.offsetHeight}px` : '';
}
function dismissBanner(id) {
  dismissed.add(id);
  sessionStorage.setItem(DISMISSED, JSON.stringify([...dismissed].slice(-200)));
  removeBanner(id);
}
function removeBanner(id) {
  document.querySelector(`#banners [data-episode="${CSS.escape(id)}"]`)?.remove();
  fitBanners();
}

function onWarning(w) {
  if (w.level === 'red' && w.kind !== 'cleared') showBanner(w);
  else if (w.kind === 'cleared' || levelRank(w.level) < levelRank('red')) removeBanner(w.episode);
}

// Red episodes nobody has acknowledged yet show their banner on every page that opens.
const englishNames = new Map();
async function redOnLoad() {
  try {
    if (LANG === 'en' && !englishNames.size) {
      for (const s of await api('/api/sites')) if (s.name_en) englishNames.set(s.id, s.name_en);
    }
    const reds = await api('/api/warnings?level=red&state=active');
    for (const w of reds.slice().reverse()) showBanner(w); // newest last, so on top
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.warn(err);
  }
}

// ------------------------------------------------------------------------------------ header
export function setupHeader() {
  const sound = document.getElementById('sound-toggle');
  const paint = () => {
    sound.setAttribute('aria-pressed', String(soundOn()));
    sound.textContent = soundOn() ? t('sound.on') : t('sound.off');
  };
  if (sound) {
    paint();
    window.addEventListener('storage', (ev) => { if (ev.key === 'hw_sound') paint(); }); // other tabs
    sound.addEventListener('click', () => {
      localStorage.setItem('hw_sound', soundOn() ? 'off' : 'on');
      paint();
      if (soundOn()) { audioContext(); beep(); } // the click is the user gesture that unlocks audio
    });
  }
  for (const btn of document.querySelectorAll('[data-lang]')) {
    btn.addEventListener('click', () => {
      document.cookie = `hw_lang=${btn.dataset.lang}; path=/; max-age=31536000; SameSite=Strict`;
      const url = new URL(location.href);
      url.searchParams.delete('lang');
      location.assign(url);
    });
  }
  document.getElementById('logout')?.addEventListener('click', async () => {
    try { await api('/api/logout', {method: 'POST'}); } finally { location.assign('/login'); }
  });
}

// ------------------------------------------------------------------------------ channel alarms
/** A failing notification channel (operators and admins; officers get none): its banner stays
 * on top of every page until the channel works again, and cannot be dismissed. */
const CHANNEL_POLL_MS = 15000;
async function channelAlarms() {
  let alarms;
  try {
    alarms = await api('/api/channels/alarms');
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.warn(err);
    return;
  }
  const host = document.getElementById('banners');
  const up = new Set(alarms.map((a) => a.channel));
  for (const el of host.querySelectorAll('.banner-channel')) if (!up.has(el.dataset.channel)) el.remove();
  for (const a of alarms) {
    const existing = host.querySelector(`.banner-channel[data-channel="${CSS.escape(a.channel)}"]`);
    const item = h('div', {class: 'banner banner-channel', role: 'alert', 'data-testid': 'channel-banner',
      dataset: {channel: a.channel}},
      h('strong', {class: 'banner-level'}, `⚠ ${t('channel.failing', {channel: label('channel', a.channel)})}`),
      h('span', {class: 'banner-text'}, t('channel.detail', {since: fmtTime(a.failing_since ?? a.raised_at),
        n: a.failures, waiting: a.waiting, error: a.last_error || '—'})));
    if (existing) existing.replaceWith(item);
    else {
      host.prepend(item);
      beep();
    }
  }
  fitBanners();
}

/** Called by every page but /login. */
export function start() {
  setupHeader();
  on('warning', onWarning);
  on('episode', (w) => { if (w.state !== 'active') removeBanner(w.id); });
  connect();
  redOnLoad();
  on('resync', redOnLoad);
  channelAlarms();
  setInterval(channelAlarms, CHANNEL_POLL_MS);
}
