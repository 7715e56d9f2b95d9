// Shared by the demo pages: query parameters, the relay URL and demo tokens.

/**
 * The page's settings from its query string: `room` (default "demo"), `relay` (WebSocket URL;
 * default the same host's /ws), `codec` (`msgpack`, else JSON), `sub` (participant id).
 * @param {string} defaultSub
 */
export function settings(defaultSub) {
  const q = new URLSearchParams(location.search);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return {
    room: q.get('room') || 'demo',
    relay: q.get('relay') || `${scheme}://${location.host}/ws`,
    codec: q.get('codec') === 'msgpack' ? 'msgpack' : 'json',
    sub: q.get('sub') || defaultSub,
    query: q,
  };
}

/**
 * A token provider for RelayClient.connect: fetches a demo token from the relay that serves the
 * page (`GET /demo/token`, demo mode only). Called for every connection attempt.
 * @param {string} room
 * @param {'customer' | 'agent'} role
 * @param {string} sub
 */
export function demoToken(room, role, sub) {
  return async () => {
    const url = new URL('token', location.href);
    url.search = new URLSearchParams({ room, role, sub }).toString();
    const res = await fetch(url, { cache: 'no-store' });
    if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
    const body = await res.json();
    return body.token;
  };
}

/**
 * Sets a status element's text and `data-status`.
 * @param {HTMLElement | null} el
 * @param {string} status
 * @param {string} [title]
 */
export function showStatus(el, status, title) {
  if (!el) return;
  el.textContent = status;
  el.dataset.status = status;
  if (title !== undefined) el.title = title;
}

/** @param {number} ts */
export function clock(ts) {
  const d = new Date(ts);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}
