// Log-in: the form's hidden csrf is the value of the hw_csrf cookie that GET /login set
// (double submit); it goes in X-CSRF-Token with the credentials.
import {api, ApiError, setupHeader, t} from '/static/app.js';

setupHeader();

// Where to go after logging in: the page's ?next when it stays on this origin, else the map
// (the server checks too; this also catches what a browser would resolve elsewhere).
function sameOrigin(next) {
  try {
    const url = new URL(next || '/', location.origin);
    if (url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch (err) { /* not a URL at all */ }
  return '/';
}
const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('/api/login', {method: 'POST', csrf: form.csrf.value,
      body: {username: form.username.value.trim(), password: form.password.value}});
    location.assign(sameOrigin(form.dataset.next));
  } catch (err) {
    let text = err.message;
    if (err instanceof ApiError) {
      if (err.status === 401) text = t('login.bad');
      else if (err.status === 429) text = t('login.limited', {s: err.retryAfter ?? 300});
      else text = t('login.failed', {code: err.status});
    }
    error.textContent = text;
    error.hidden = false;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
