// Zoom of a replay in the console: `fit` scales the customer's page to the viewer's width (never
// above 100 %; the viewer scrolls vertically), or a fixed 50 / 75 / 100 % (the viewer scrolls both
// ways). One Zoom drives several replays (the live one and the paused one).

/** @typedef {'fit' | '0.5' | '0.75' | '1'} ZoomMode */

export class Zoom {
  /**
   * @param {{ select: HTMLSelectElement, level: HTMLElement, storageKey?: string }} options
   *   `select`: the control (values `fit`, `0.5`, `0.75`, `1`); `level`: shows the scale in use.
   */
  constructor({ select, level, storageKey = 'assist-relay-demo.zoom' }) {
    this.select = select;
    this.level = level;
    this.storageKey = storageKey;
    /** @type {ZoomMode} */
    this.mode = /** @type {ZoomMode} */ (readStored(storageKey) ?? 'fit');
    if (![...select.options].some((o) => o.value === this.mode)) this.mode = 'fit';
    select.value = this.mode;
    /** @type {Set<{ root: HTMLElement, replayer: () => any, scale: number }>} */
    this.views = new Set();
    select.addEventListener('change', () => this.set(/** @type {ZoomMode} */ (select.value)));
  }

  /** @param {ZoomMode} mode */
  set(mode) {
    this.mode = mode;
    this.select.value = mode;
    try {
      sessionStorage.setItem(this.storageKey, mode);
    } catch {
      // storage unavailable: the choice lasts for this page only
    }
    this.applyAll();
  }

  /**
   * Scales the replay in `root` (a Replayer's root) and follows its size changes. `replayer`
   * returns the Replayer currently in the root (it changes with every new keyframe).
   * @param {HTMLElement} root
   * @param {() => any} replayer
   */
  attach(root, replayer) {
    const view = { root, replayer, scale: 1 };
    this.views.add(view);
    new ResizeObserver(() => this.apply(view)).observe(root);
    return {
      /** Call when the root got a new Replayer. */
      refresh: () => this.follow(view),
      get scale() {
        return view.scale;
      },
    };
  }

  /** A new Replayer: apply now, on its resize events, and for a few frames until it has a size. */
  follow(view) {
    const r = view.replayer();
    r?.on?.('resize', () => this.apply(view));
    let tries = 0;
    const again = () => {
      if (!this.apply(view) && ++tries < 60) requestAnimationFrame(again);
    };
    again();
  }

  applyAll() {
    for (const v of this.views) this.apply(v);
  }

  /**
   * @param {{ root: HTMLElement, replayer: () => any, scale: number }} view
   * @returns {boolean} whether the replay had a size to scale
   */
  apply(view) {
    const r = view.replayer();
    const wrapper = r?.wrapper;
    const iframe = r?.iframe;
    const w = Number(iframe?.getAttribute?.('width')) || 0;
    const h = Number(iframe?.getAttribute?.('height')) || 0;
    if (!wrapper || !w || !h) return false;
    const avail = view.root.clientWidth || w;
    const scale = this.mode === 'fit' ? Math.min(1, avail / w) : Number(this.mode);
    wrapper.style.transformOrigin = 'top left';
    wrapper.style.transform = `scale(${scale})`;
    wrapper.style.left = `${Math.max(0, Math.floor((avail - w * scale) / 2))}px`;
    wrapper.style.top = '0px';
    // the scroll area: the scaled size (the wrapper's own box is the unscaled one)
    let sizer = /** @type {HTMLElement | null} */ (view.root.querySelector(':scope > .replay-size'));
    if (!sizer) {
      sizer = document.createElement('div');
      sizer.className = 'replay-size';
      view.root.append(sizer);
    }
    sizer.style.width = `${Math.ceil(w * scale)}px`;
    sizer.style.height = `${Math.ceil(h * scale)}px`;
    view.scale = scale;
    view.root.dataset.scale = scale.toFixed(4);
    view.root.dataset.zoom = this.mode;
    if (this.views.values().next().value === view) {
      this.level.textContent = `${Math.round(scale * 100)} %`;
      this.level.title = `${w}×${h} customer window at ${Math.round(scale * 100)} %`;
    }
    return true;
  }
}

/** @param {string} key */
function readStored(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}
