/**
 * A tiny event emitter (no dependency on Node's `events`, works in browsers). `aliases` maps
 * deprecated event names to the names emitted (wire.js): listening to an alias listens to the
 * new name.
 */
export class Emitter {
  /** @param {Readonly<Record<string, string>>} [aliases] */
  constructor(aliases) {
    /** @type {Map<string, Set<(...args: any[]) => void>>} */
    this._listeners = new Map();
    /** @type {Readonly<Record<string, string>> | null} */
    this._aliases = aliases ?? null;
  }

  /** @param {string} name */
  _eventName(name) {
    return (this._aliases && Object.hasOwn(this._aliases, name) && this._aliases[name]) || name;
  }

  /**
   * Adds a listener; returns a function that removes it.
   * @param {string} name
   * @param {(...args: any[]) => void} fn
   * @returns {() => void}
   */
  on(name, fn) {
    name = this._eventName(name);
    let set = this._listeners.get(name);
    if (!set) this._listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => this.off(name, fn);
  }

  /**
   * @param {string} name
   * @param {(...args: any[]) => void} fn
   * @returns {() => void}
   */
  once(name, fn) {
    const off = this.on(name, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  /**
   * @param {string} name
   * @param {(...args: any[]) => void} fn
   */
  off(name, fn) {
    this._listeners.get(this._eventName(name))?.delete(fn);
  }

  /**
   * Calls the listeners of `name`. A throwing listener does not stop the others; its exception
   * is reported asynchronously (so it surfaces as an uncaught error, not inside the SDK).
   * @param {string} name
   * @param {...any} args
   */
  emit(name, ...args) {
    const set = this._listeners.get(this._eventName(name));
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
