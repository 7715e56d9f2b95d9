// Comparing the customer's document with the agent's replay of it.
//
// `summarize` runs in the browser (page.evaluate / frame.evaluate): it walks a document's <body>
// and returns its elements (tag#id, document order), its text, its form values and scroll offsets,
// leaving out what a replay legitimately differs in:
//   - <script> (rrweb rebuilds it as <noscript>), <noscript>, <style>, <link>, <meta>, <template>:
//     rrweb's own injected nodes are styles in the replay document;
//   - the subtree and the id of a blocked element (class rr-block): rrweb and the relay keep the
//     blocked element itself (its class, same box) but drop its children and other attributes;
//   - values of ignored inputs (class rr-ignore) and of password inputs (masked by the relay's
//     default `passwords` policy); textarea text nodes (their value is compared instead).

/** Runs in the browser. `target`: 'document' or 'replay' (the agent console's replay iframe). */
export function summarize({ target, block = '.rr-block,[data-rr-block]', ignore = '.rr-ignore,[data-rr-ignore]' }) {
  let doc = document;
  if (target === 'replay') {
    const iframe = document.querySelector('#replay iframe');
    if (!iframe) return { missing: 'no iframe in #replay' };
    doc = iframe.contentDocument;
    if (!doc || !doc.body) return { missing: 'replay iframe has no body yet' };
  }
  const SKIP = new Set(['SCRIPT', 'NOSCRIPT', 'STYLE', 'LINK', 'META', 'TEMPLATE', 'BASE', 'TITLE']);
  const tags = [];
  const texts = [];
  const values = {};
  const scroll = {};
  const matches = (el, sel) => {
    try {
      return el.matches(sel);
    } catch {
      return false;
    }
  };
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === 1) {
        if (SKIP.has(child.tagName)) continue;
        const tag = child.tagName.toLowerCase();
        // rrweb keeps only the class (and its size) of a blocked element: no id to compare.
        if (matches(child, block)) {
          tags.push(tag);
          continue;
        }
        const key = tag + (child.id ? `#${child.id}` : '');
        tags.push(key);
        if (/^(INPUT|TEXTAREA|SELECT)$/.test(child.tagName) && !matches(child, ignore)) {
          const type = (child.getAttribute('type') || '').toLowerCase();
          if (type !== 'password' && !['submit', 'button', 'reset', 'image'].includes(type)) {
            const v = type === 'checkbox' || type === 'radio' ? String(child.checked) : child.value;
            values[child.id || child.name || `${key}@${tags.length}`] = v;
          }
        }
        if (child.id && (child.scrollTop || child.scrollLeft)) scroll[child.id] = [child.scrollLeft, child.scrollTop];
        if (child.tagName === 'TEXTAREA') continue;
        walk(child);
      } else if (child.nodeType === 3) {
        const t = child.textContent.replace(/\s+/g, ' ').trim();
        if (t) texts.push(t);
      }
    }
  };
  walk(doc.body);
  const se = doc.scrollingElement || doc.documentElement;
  return {
    count: tags.length,
    tags,
    text: texts.join(' '),
    values,
    scroll,
    window: [se.scrollLeft, se.scrollTop],
    url: target === 'replay' ? null : location.href,
  };
}

/** Differences between two summaries (customer `a`, replay `b`) as readable lines; [] when equal. */
export function diff(a, b, { values = true, scroll = false, scrollSlack = 2 } = {}) {
  if (!a || a.missing) return [`customer: ${a ? a.missing : 'nothing'}`];
  if (!b || b.missing) return [`replay: ${b ? b.missing : 'nothing'}`];
  const out = [];
  if (a.count !== b.count) out.push(`element count: customer ${a.count}, replay ${b.count}`);
  const n = Math.max(a.tags.length, b.tags.length);
  for (let i = 0; i < n; i++) {
    if (a.tags[i] !== b.tags[i]) {
      out.push(`first differing element #${i}: customer ${a.tags.slice(i, i + 4).join(' ')} | replay ${b.tags.slice(i, i + 4).join(' ')}`);
      break;
    }
  }
  if (a.text !== b.text) {
    let i = 0;
    while (i < a.text.length && a.text[i] === b.text[i]) i++;
    const at = Math.max(0, i - 40);
    out.push(`text differs at ${i}: customer …${JSON.stringify(a.text.slice(at, i + 80))} | replay …${JSON.stringify(b.text.slice(at, i + 80))}`);
  }
  if (values) {
    for (const k of new Set([...Object.keys(a.values), ...Object.keys(b.values)])) {
      if (a.values[k] !== b.values[k]) out.push(`value of ${k}: customer ${JSON.stringify(a.values[k])}, replay ${JSON.stringify(b.values[k])}`);
    }
  }
  if (scroll) {
    const near = (x, y) => Math.abs((x || 0) - (y || 0)) <= scrollSlack;
    if (!near(a.window[1], b.window[1]) || !near(a.window[0], b.window[0])) out.push(`window scroll: customer ${a.window}, replay ${b.window}`);
    for (const k of new Set([...Object.keys(a.scroll), ...Object.keys(b.scroll)])) {
      const [ax, ay] = a.scroll[k] || [0, 0];
      const [bx, by] = b.scroll[k] || [0, 0];
      if (!near(ax, bx) || !near(ay, by)) out.push(`scroll of #${k}: customer ${[ax, ay]}, replay ${[bx, by]}`);
    }
  }
  return out;
}
