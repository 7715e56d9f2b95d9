// The console's "waiting customers" list: rooms where a customer is present and no agent yet,
// from the relay's demo listing `GET /demo/rooms?state=waiting` (the same JSON as the backend's
// `GET /v1/rooms`; served only with `relay serve --demo`). Polled every
// few seconds while the tab is visible; a click opens that room in this console.

const POLL_MS = 3000;

/**
 * @param {{ list: HTMLElement, note: HTMLElement, count?: HTMLElement | null, room: string,
 *   link: (room: string) => string, clock: (ts: number) => string }} o
 *   `room`: the room this console is in (marked); `link`: the console URL for a room.
 */
export function waitingCustomers(o) {
  let timer = /** @type {any} */ (null);
  let stopped = false;
  /** @type {any[]} */
  let rooms = [];

  async function poll() {
    clearTimeout(timer);
    if (stopped) return;
    if (document.hidden) {
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    try {
      const url = new URL('rooms', location.href);
      url.search = new URLSearchParams({ state: 'waiting', limit: '50' }).toString();
      const res = await fetch(url, { cache: 'no-store' });
      if (res.status === 404) {
        show([], 'This relay has no waiting list (GET /demo/rooms); type a room id in the address instead.');
      } else if (!res.ok) {
        show(rooms, `The waiting list is unavailable (${res.status}); retrying…`);
      } else {
        const body = await res.json();
        show(Array.isArray(body?.rooms) ? body.rooms : [], '');
      }
    } catch (e) {
      show(rooms, 'The waiting list is unavailable; retrying…');
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  /** @param {any[]} next @param {string} problem */
  function show(next, problem) {
    rooms = next;
    const ul = o.list;
    ul.textContent = '';
    // the longest waiting first
    const sorted = [...rooms].sort((a, b) => (a.waiting_since_ms ?? a.opened_ms ?? 0) - (b.waiting_since_ms ?? b.opened_ms ?? 0));
    for (const r of sorted) ul.append(item(r));
    ul.dataset.count = String(sorted.length);
    if (o.count) o.count.textContent = sorted.length ? String(sorted.length) : '';
    o.note.textContent = problem || (sorted.length ? '' : 'Nobody is waiting.');
    o.note.hidden = !o.note.textContent;
  }

  /** @param {any} r a room of the listing */
  function item(r) {
    const li = document.createElement('li');
    li.dataset.room = String(r.room);
    if (r.room === o.room) li.classList.add('here');
    const a = document.createElement('a');
    a.className = 'w-pick';
    a.href = o.link(String(r.room));
    const customers = (r.members ?? []).filter((/** @type {any} */ m) => m.role === 'customer').map((/** @type {any} */ m) => m.sub);
    const who = document.createElement('span');
    who.className = 'w-who';
    who.textContent = customers.join(', ') || 'customer';
    const since = document.createElement('span');
    since.className = 'w-since';
    const t = r.waiting_since_ms ?? r.opened_ms;
    since.textContent = typeof t === 'number' ? `waiting ${ago(t)}` : 'waiting';
    if (typeof t === 'number') since.title = `since ${o.clock(t)}`;
    const room = document.createElement('span');
    room.className = 'w-room';
    room.textContent = `room ${r.room}`;
    const where = document.createElement('span');
    where.className = 'w-page';
    where.textContent = r.page ? (r.page.kind === 'native' ? `native screen ${r.page.url ?? ''}` : shortUrl(r.page.url)) : 'no page yet';
    if (r.page?.url) where.title = r.page.url;
    a.append(who, since, room, where);
    a.title = r.room === o.room ? 'You are in this room' : `Take room ${r.room}`;
    li.append(a);
    return li;
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) poll();
  });
  poll();
  return {
    refresh: poll,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    get rooms() {
      return rooms;
    },
  };
}

/** @param {number} ms epoch ms */
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** @param {string} url */
function shortUrl(url) {
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return url || '';
  }
}
