// Live pages: the server announces changes over Server-Sent Events (no data, only that something
// changed); the page then fetches its fragment again and swaps it in. Forms post normally.
(function () {
  const region = document.querySelector('[data-live]');
  if (!region) return;
  const source = region.getAttribute('data-live');
  let pending = false;
  async function refresh() {
    if (pending) return;
    pending = true;
    try {
      const response = await fetch(source, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (response.ok) region.innerHTML = await response.text();
    } finally {
      pending = false;
    }
  }
  const events = new EventSource('/events');
  events.addEventListener('change', refresh);
  events.onopen = refresh;  // after a reconnect, catch up on what was missed
  // The server ends the stream when the session ends; if it cannot be reopened, the session is
  // gone: refresh, which finds out and reloads (to the login page).
  events.onerror = function () { if (events.readyState === EventSource.CLOSED) refresh(); };
  setInterval(refresh, 15000);  // waiting times and escalations, even when nothing is announced
})();
