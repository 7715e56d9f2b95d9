// The hand-written declarations (types/, index.d.ts) checked against the code (src/, JavaScript
// with JSDoc, read by tsc with allowJs): for every entry point, the module exports the same
// names as its declaration, and every exported value of the code is assignable to its declared
// type (a class: its constructor and every declared member). Run by test/package.test.js
// (`tsc -p test/types`); nothing here runs.

import * as rootCode from '../../src/index.js';
import type * as rootDecl from '../../index.js';
import * as recordCode from '../../src/entries/record.js';
import type * as recordDecl from '../../types/entries/record.js';
import * as replayCode from '../../src/entries/replay.js';
import type * as replayDecl from '../../types/entries/replay.js';
import * as chatCode from '../../src/entries/chat.js';
import type * as chatDecl from '../../types/entries/chat.js';

/** `true` when A and B have the same keys; otherwise names the keys on one side only. */
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never]
  ? true
  : { onlyInCode: Exclude<keyof A, keyof B>; onlyDeclared: Exclude<keyof B, keyof A> };

export const rootNames: SameKeys<typeof rootCode, typeof rootDecl> = true;
export const recordNames: SameKeys<typeof recordCode, typeof recordDecl> = true;
export const replayNames: SameKeys<typeof replayCode, typeof replayDecl> = true;
export const chatNames: SameKeys<typeof chatCode, typeof chatDecl> = true;

export const root: typeof rootDecl = rootCode;
export const record: typeof recordDecl = recordCode;
export const replay: typeof replayDecl = replayCode;
export const chat: typeof chatDecl = chatCode;
