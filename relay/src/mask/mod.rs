//! Server-side masking of rrweb events before they enter the room log.
//!
//! A [`RoomMask`] is fed every rrweb event a customer publishes, in order. It rewrites what the
//! room's [`MaskPolicy`] says must not reach the log or the viewers, and returns `Ok(None)` for
//! events that pass unchanged (so they stay byte-identical). An event that cannot be understood
//! is refused (`Err`), never passed through unmasked.
//!
//! # What is masked
//! - Input values (`passwords`: password inputs only; `inputs`, `inputs+text`: every `input`,
//!   `textarea` and `select`): the `value` attribute in FullSnapshots and Mutation adds, the text
//!   children of a `textarea`, `value` attribute changes, and the `text` of Input events. A masked
//!   value is one `*` per char. Input events are masked fail-closed: always under `inputs` /
//!   `inputs+text`; under `passwords` unless the id is known to be a non-password element. The
//!   `value` of `input` buttons (submit, button, reset, image) is their label and stays, and
//!   `option` elements are left alone.
//! - `rr-ignore` elements (`inputs`, `inputs+text`): their `value` whatever the element (a
//!   button's, an option's).
//! - `rr-block` elements (any policy but `none`): kept with their attributes, their children are
//!   dropped, and so is every later change inside them. The value of a blocked input is masked
//!   under every policy.
//! - `rr-mask` subtrees (`inputs+text`): every text becomes `*` (whitespace kept).
//! - Echoes (`inputs`, `inputs+text`): a text node whose trimmed content equals a value typed
//!   into an input earlier in the room (known by a salted hash, see
//!   [`RoomMask::take_new_typed`]) is masked like `rr-mask` text.
//!
//! # State
//! Only the node ids that matter are remembered (inputs, `rr-mask` subtrees, `rr-block`ed and
//! dropped ids), up to [`MAX_TRACKED_IDS`]; past that the state fails closed (unknown ids are
//! treated as masked). A FullSnapshot starts a new page: the ids are forgotten, typed-value hashes
//! are not. [`RoomMask::observe`] rebuilds the state from already-masked events.
//!
//! # Reading as the replayer reads
//! The relay must see what rrweb's replayer will: numbers are read by value (`2.0` is node type
//! 2, `1e1` is id 10), attribute names in any ASCII case (`setAttribute` lowercases them), and
//! a `tagName`, `type` or `class` as JavaScript's string of it. An object with a repeated key is
//! refused (readers disagree on which one counts). The routing fields (`type`, `data.source`)
//! were checked before: [`assist_relay_proto::EventHead::scan`].
//!
//! # Parsing
//! No tree is built: one pass over the event's text (in `json`) records each JSON token in a
//! flat list (kind, byte span, end of its subtree), strings left where they are and unescaped
//! only when read. The walks read the fields masking needs from it and record their changes as
//! edits of single tokens. An event with no edit is not written at all (the relay passes it on
//! byte-identical); one with edits is written (in `emit`) as serde_json writes a value: compact,
//! object keys in sorted order. The pass accepts what serde_json accepts (lone UTF-16
//! surrogates, which `JSON.stringify` writes, read as U+FFFD) and refuses nesting deeper than
//! [`MAX_NESTING`]; parse, walks and writing loop over explicit stacks, so no depth can overflow
//! the thread's stack.
//!
//! # Layout
//! This module is [`RoomMask`]'s public API (`mask`, `observe`, typed values). Below it, each
//! using only the ones listed before it: `policy` (policy, class names, bounds, errors), `json`
//! (the token list), `emit` (edits, and writing an edited event), `dom` (reading nodes as the
//! replayer does), `text` (how strings become stars), `state` (the struct and its per-page ids
//! and typed-value hashes), `walk` (a FullSnapshot or an added subtree), `mutation` (Mutations
//! and Input events).

mod dom;
mod emit;
mod json;
mod mutation;
mod policy;
#[cfg(test)]
mod prop_tests;
mod state;
#[cfg(test)]
mod tests;
mod text;
mod walk;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::value::RawValue;
#[cfg(test)]
use serde_json::Value;

#[cfg(test)]
use json::{parse, write};
use json::{Doc, Kind};
pub use policy::{
    may_need_masking, MaskClasses, MaskError, MaskPolicy, MAX_NESTING, MAX_TRACKED_IDS,
    MAX_TYPED_VALUES,
};
pub use state::RoomMask;
use walk::Ctx;

impl RoomMask {
    /// `key` salts the hashes of typed values (the relay derives it from its secret).
    pub fn new(policy: MaskPolicy, key: [u8; 32]) -> Self {
        RoomMask {
            policy,
            key,
            nodes: HashMap::new(),
            ranges: Vec::new(),
            overflow: false,
            observing: false,
            typed: HashSet::new(),
            typed_order: VecDeque::new(),
            new_typed: Vec::new(),
            id_cap: MAX_TRACKED_IDS,
            classes: Arc::default(),
        }
    }

    /// Also honours the page's own class names (rrweb's `blockClass`, `maskTextClass`,
    /// `ignoreClass`) besides rrweb's defaults.
    pub fn with_classes(mut self, classes: Arc<MaskClasses>) -> Self {
        self.classes = classes;
        self
    }

    /// The room's policy.
    pub fn policy(&self) -> MaskPolicy {
        self.policy
    }

    /// Masks one rrweb event. `Ok(None)`: the event passes byte-identical (nothing to mask, or a
    /// type masking ignores). `Ok(Some(json))`: the masked event. Updates the state either way.
    pub fn mask(&mut self, event: &RawValue) -> Result<Option<Box<RawValue>>, MaskError> {
        if self.policy == MaskPolicy::None {
            return Ok(None);
        }
        match self.process(event.get(), true)? {
            None => Ok(None),
            Some(text) => RawValue::from_string(text)
                .map(Some)
                .map_err(|e| MaskError::Json(e.to_string())),
        }
    }

    /// Updates the state from an event that was already masked (rebuilding state from the stored
    /// log after a reconnect), producing no output. Errors are ignored.
    ///
    /// Typed values cannot be recovered from masked events: add their hashes with
    /// [`RoomMask::add_typed`]. The ids inside `rr-block` elements of a stored FullSnapshot are
    /// gone; they are inferred from rrweb's pre-order id allocation (the ids between a blocked
    /// element and the next node). Ids dropped from Mutation adds before the reconnect are not
    /// recovered.
    pub fn observe(&mut self, event: &RawValue) {
        if self.policy == MaskPolicy::None {
            return;
        }
        self.observing = true;
        let _ = self.process(event.get(), false);
        self.observing = false;
    }

    /// Hashes of typed values recorded since the last call (the relay persists them so any node
    /// can mask echoes).
    pub fn take_new_typed(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.new_typed)
    }

    /// Adds hashes remembered earlier (from the store).
    pub fn add_typed(&mut self, hashes: impl IntoIterator<Item = u64>) {
        for h in hashes {
            self.insert_typed(h, false);
        }
    }

    /// Approximate heap bytes of the state (for a bound/metric).
    pub fn state_bytes(&self) -> usize {
        // A hashbrown slot plus its control byte.
        let slot = std::mem::size_of::<(u64, u8)>() + 1;
        self.nodes.capacity() * slot
            + self.ranges.capacity() * std::mem::size_of::<(u64, u64)>()
            + self.typed.capacity() * (std::mem::size_of::<u64>() + 1)
            + (self.typed_order.capacity() + self.new_typed.capacity()) * std::mem::size_of::<u64>()
    }

    /// Parses, masks and (when `emit` and something changed) writes one event.
    fn process(&mut self, src: &str, emit: bool) -> Result<Option<String>, MaskError> {
        let mut doc = Doc::parse(src)?;
        match self.apply(&mut doc)? {
            true if emit => doc.write().map(Some),
            _ => Ok(None),
        }
    }

    /// Masks a parsed event (recording edits); whether anything changed.
    fn apply(&mut self, doc: &mut Doc<'_>) -> Result<bool, MaskError> {
        if doc.kind(0) != Kind::Obj {
            return Err(MaskError::Shape("the event is not a JSON object".into()));
        }
        let kind = doc
            .int_in(doc.get(0, "type"))
            .ok_or_else(|| MaskError::Shape("the event has no numeric type".into()))?;
        let data = doc.get(0, "data");
        match kind {
            2 => {
                let node = doc
                    .get_in(data, "node")
                    .filter(|&n| doc.kind(n) == Kind::Obj)
                    .ok_or_else(|| MaskError::Shape("FullSnapshot without data.node".into()))?;
                self.new_page();
                let mut changed = false;
                self.walk(doc, node, Ctx::default(), true, &mut changed);
                self.finish_ranges();
                Ok(changed)
            }
            3 => {
                let Some(data) = data.filter(|&d| doc.kind(d) == Kind::Obj) else {
                    return Ok(false);
                };
                match doc.int_in(doc.get(data, "source")) {
                    Some(0) => self.mutation(doc, data),
                    Some(5) => Ok(self.input(doc, data)),
                    _ => Ok(false),
                }
            }
            _ => Ok(false),
        }
    }
}
