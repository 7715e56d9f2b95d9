// The customer page's dimming around the agent's highlight: the page is dimmed outside the
// highlighted element, and never over the elements in `keep` (the chat panel, so the customer can
// still read and answer the agent). The SDK's GuideOverlay draws the box itself, with its own
// shade off (`dim: 'none'`; its `keep` option does the same as this file for other pages).
//
// The shade is one fixed element over the window with an even-odd clip path that cuts out the
// highlighted element and every `keep` element; it lives in an `rr-block` host, so it is never
// recorded, and takes no clicks.

const PAD = 4; // the SDK's box is drawn 4 px around its element

/**
 * @param {import('@assist-relay/sdk').RelayClient} client
 * @param {import('@assist-relay/sdk').GuideOverlay} overlay
 * @param {{ dim: HTMLElement, keep?: HTMLElement[] }} options
 */
export function dimAroundHighlight(client, overlay, { dim, keep = [] }) {
  let frame = 0;
  let last = '';

  const hide = () => {
    dim.hidden = true;
    last = '';
  };

  const render = () => {
    frame = 0;
    const node = overlay.host ? overlay.highlighted : null;
    const target = node === null || node === undefined ? null : overlay.element(node);
    if (!target) {
      hide();
      // the element may come back (a mutation): keep looking while a highlight is set
      if (node !== null && node !== undefined && overlay.host) schedule();
      return;
    }
    const w = innerWidth;
    const h = innerHeight;
    let d = `M0 0H${w}V${h}H0Z`;
    const holes = [target.getBoundingClientRect()];
    for (const el of keep) if (el?.isConnected) holes.push(el.getBoundingClientRect());
    holes.forEach((r, i) => {
      const p = i === 0 ? PAD : 0;
      const x = Math.round(r.left - p);
      const y = Math.round(r.top - p);
      const rw = Math.round(r.width + 2 * p);
      const rh = Math.round(r.height + 2 * p);
      if (rw > 0 && rh > 0) d += `M${x} ${y}h${rw}v${rh}h${-rw}Z`;
    });
    if (d !== last) {
      dim.style.clipPath = `path(evenodd, '${d}')`;
      last = d;
    }
    dim.hidden = false;
    schedule(); // follow the element (scrolling, layout changes)
  };

  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(render);
  };

  client.on('guide', schedule);
  client.on('joined', schedule);
  client.on('closed', () => {
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    hide();
  });
  addEventListener('resize', schedule);
  return { refresh: schedule };
}
