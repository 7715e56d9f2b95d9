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
//! # Parsing
//! Events are parsed once into a [`serde_json::Value`] and written back, when changed, by
//! serde_json (object keys in sorted order), through serde_stacker, which grows the stack on
//! demand: a deep DOM exceeds serde_json's default 128 levels. Nesting deeper than
//! [`MAX_NESTING`] is refused before parsing, and deep values are dropped without recursion.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most node ids a [`RoomMask`] remembers per page; past this it fails closed.
pub const MAX_TRACKED_IDS: usize = 200_000;
/// Most typed-value hashes a [`RoomMask`] remembers (oldest forgotten first).
pub const MAX_TYPED_VALUES: usize = 4096;
/// Deepest JSON nesting accepted (about half as many DOM levels).
pub const MAX_NESTING: usize = 8192;

/// Masking policy of a room. Wire/flag strings: "none", "passwords", "inputs", "inputs+text".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MaskPolicy {
    /// Nothing is masked.
    None,
    /// Password inputs, `rr-block` elements.
    #[default]
    Passwords,
    /// Every input value, echoes of typed values, `rr-block` elements.
    Inputs,
    /// As `Inputs`, plus the text of `rr-mask` subtrees.
    InputsText,
}

impl MaskPolicy {
    /// Every policy, from least to most masking.
    pub const ALL: [MaskPolicy; 4] = [
        MaskPolicy::None,
        MaskPolicy::Passwords,
        MaskPolicy::Inputs,
        MaskPolicy::InputsText,
    ];

    /// The wire/flag name.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskPolicy::None => "none",
            MaskPolicy::Passwords => "passwords",
            MaskPolicy::Inputs => "inputs",
            MaskPolicy::InputsText => "inputs+text",
        }
    }

    /// Parses a wire/flag name (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether every input value (not only passwords) is masked.
    fn all_inputs(self) -> bool {
        matches!(self, MaskPolicy::Inputs | MaskPolicy::InputsText)
    }

    /// Whether `rr-mask` text is masked.
    fn text(self) -> bool {
        self == MaskPolicy::InputsText
    }
}

impl FromStr for MaskPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            format!("unknown mask policy {s:?} (expected none, passwords, inputs or inputs+text)")
        })
    }
}

impl fmt::Display for MaskPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event could not be masked (it is then refused, never passed through unmasked).
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// Not JSON.
    #[error("event is not valid JSON: {0}")]
    Json(String),
    /// Not an rrweb event this module can mask (or nested deeper than [`MAX_NESTING`]).
    #[error("event is not a maskable rrweb event: {0}")]
    Shape(String),
}

/// Cheap check the relay uses to skip parsing: whether an event of this rrweb type/source can
/// need masking under `policy` (FullSnapshots, Mutations and Input events, unless `none`).
pub fn may_need_masking(policy: MaskPolicy, kind: u8, source: Option<u8>) -> bool {
    policy != MaskPolicy::None && (kind == 2 || (kind == 3 && matches!(source, Some(0 | 5))))
}

// Per-id state: a kind in the low nibble, flags above.
const KIND: u8 = 0x0F;
/// `input` of a text-like type (text, email, tel, number, hidden, search, ...).
const K_TEXT: u8 = 1;
const K_PASSWORD: u8 = 2;
/// `input` type checkbox or radio.
const K_CHECK: u8 = 3;
/// `input` type submit, button, reset or image: its value is a label, not typed data.
const K_BUTTON: u8 = 4;
const K_TEXTAREA: u8 = 5;
const K_SELECT: u8 = 6;
/// Any other element that carries a `value` attribute (`option`, `li`, `progress`, ...).
const K_OTHER: u8 = 7;
/// A text node inside a `textarea` (its value), remembered when all inputs are masked.
const K_AREA_TEXT: u8 = 8;
/// Inside an `rr-mask` subtree (or the `rr-mask` element itself).
const F_MASKED: u8 = 0x10;
/// An `rr-block` element: kept, its children dropped.
const F_BLOCKED: u8 = 0x20;
/// Inside a dropped subtree: unknown to viewers.
const F_DROPPED: u8 = 0x40;
/// Re-added somewhere visible although inside an inferred dropped range.
const F_VISIBLE: u8 = 0x80;

/// Kinds whose `value` is data the user entered.
fn is_value_input(kind: u8) -> bool {
    matches!(kind, K_TEXT | K_PASSWORD | K_CHECK | K_TEXTAREA | K_SELECT)
}

/// How a string is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Every char becomes `*` (input values).
    Input,
    /// Every non-whitespace char becomes `*` (text).
    Text,
}

/// Context of a node being walked, inherited from its parent.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    /// Inside an `rr-mask` subtree (only under `inputs+text`).
    masked: bool,
    /// The parent is a `textarea`.
    textarea: bool,
    /// The state overflowed and the parent is unknown: mask every text.
    force: bool,
}

/// Per-room masking state.
pub struct RoomMask {
    policy: MaskPolicy,
    key: [u8; 32],
    /// Ids that matter on the current page, with their kind and flags.
    nodes: HashMap<u64, u8>,
    /// Inclusive id ranges inferred dropped while observing (sorted, disjoint); see `observe`.
    ranges: Vec<(u64, u64)>,
    /// The state hit [`MAX_TRACKED_IDS`] on this page: unknown ids are treated as masked.
    overflow: bool,
    /// Rebuilding from stored events: record no typed values, infer dropped ranges.
    observing: bool,
    /// Hashes of typed values, and their insertion order (for the cap).
    typed: HashSet<u64>,
    typed_order: VecDeque<u64>,
    /// Hashes recorded since the last `take_new_typed`.
    new_typed: Vec<u64>,
    id_cap: usize,
}

impl fmt::Debug for RoomMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomMask")
            .field("policy", &self.policy)
            .field("ids", &self.nodes.len())
            .field("ranges", &self.ranges.len())
            .field("overflow", &self.overflow)
            .field("typed", &self.typed.len())
            .finish_non_exhaustive()
    }
}

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
        }
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
        let (mut root, depth) = parse(src)?;
        let out = match self.apply(&mut root) {
            Ok(true) if emit => write(&root).map(Some),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        if depth > 64 {
            drop_deep(root);
        }
        out
    }

    /// Masks a parsed event in place; whether anything changed.
    fn apply(&mut self, root: &mut Value) -> Result<bool, MaskError> {
        let Value::Object(event) = root else {
            return Err(MaskError::Shape("the event is not a JSON object".into()));
        };
        let kind = event
            .get("type")
            .and_then(Value::as_u64)
            .ok_or_else(|| MaskError::Shape("the event has no numeric type".into()))?;
        match kind {
            2 => {
                let node = event
                    .get_mut("data")
                    .and_then(|d| d.get_mut("node"))
                    .filter(|n| n.is_object())
                    .ok_or_else(|| MaskError::Shape("FullSnapshot without data.node".into()))?;
                self.new_page();
                let mut changed = false;
                self.walk(node, Ctx::default(), true, &mut changed);
                self.finish_ranges();
                Ok(changed)
            }
            3 => {
                let Some(Value::Object(data)) = event.get_mut("data") else {
                    return Ok(false);
                };
                match data.get("source").and_then(Value::as_u64) {
                    Some(0) => self.mutation(data),
                    Some(5) => Ok(self.input(data)),
                    _ => Ok(false),
                }
            }
            _ => Ok(false),
        }
    }

    /// Forgets the ids of the previous page (not the typed values).
    fn new_page(&mut self) {
        if self.nodes.capacity() > 4096 {
            self.nodes = HashMap::new();
        } else {
            self.nodes.clear();
        }
        self.ranges.clear();
        self.overflow = false;
    }

    /// Walks a serialized node tree (a FullSnapshot's root when `snapshot`, else one Mutation add)
    /// in pre-order, masking in place and recording the ids that matter.
    fn walk(&mut self, root: &mut Value, ctx: Ctx, snapshot: bool, changed: &mut bool) {
        let mut stack: Vec<(&mut Value, Ctx)> = vec![(root, ctx)];
        // A blocked element seen while observing a snapshot, waiting for the next node's id.
        let mut open_block: Option<u64> = None;
        while let Some((node, ctx)) = stack.pop() {
            let Value::Object(map) = node else { continue };
            let id = map.get("id").and_then(Value::as_u64);
            if let (Some(b), Some(next)) = (open_block, id) {
                self.add_range(b, next);
                open_block = None;
            }
            let child_ctx = match map.get("type").and_then(Value::as_u64) {
                Some(2) => self.element(map, id, ctx, snapshot, changed, &mut open_block),
                Some(t @ 3..=5) => {
                    self.leaf(map, t, id, ctx, snapshot, changed);
                    None
                }
                _ => {
                    if let Some(id) = id {
                        self.set_node(id, if ctx.masked { F_MASKED } else { 0 }, snapshot);
                    }
                    Some(ctx)
                }
            };
            if let (Some(cctx), Some(Value::Array(children))) =
                (child_ctx, map.get_mut("childNodes"))
            {
                for c in children.iter_mut().rev() {
                    stack.push((c, cctx));
                }
            }
        }
    }

    /// An element node: masks its `value`, records it, drops the children of `rr-block`.
    /// Returns the context of its children, or `None` if they are gone.
    fn element(
        &mut self,
        map: &mut Map<String, Value>,
        id: Option<u64>,
        ctx: Ctx,
        snapshot: bool,
        changed: &mut bool,
        open_block: &mut Option<u64>,
    ) -> Option<Ctx> {
        let tag = map.get("tagName").and_then(Value::as_str).unwrap_or("");
        let attrs = map.get("attributes").and_then(Value::as_object);
        let (block, mask) = attrs
            .and_then(|a| a.get("class"))
            .and_then(Value::as_str)
            .map_or((false, false), class_flags);
        let kind = element_kind(
            tag,
            attrs.and_then(|a| a.get("type")),
            attrs.is_some_and(|a| a.contains_key("value")),
        );
        let child_masked = ctx.masked || (mask && self.policy.text());
        let mut bits = kind;
        if child_masked {
            bits |= F_MASKED;
        }
        if block {
            bits |= F_BLOCKED;
        }
        if is_value_input(kind) && self.value_masked(kind, bits) {
            if let Some(v) = map
                .get_mut("attributes")
                .and_then(|a| a.as_object_mut())
                .and_then(|a| a.get_mut("value"))
            {
                *changed |= mask_value(v, Style::Input);
            }
        }
        if let Some(id) = id {
            self.set_node(id, bits, snapshot);
        }
        if block {
            if let Some(Value::Array(children)) = map.get_mut("childNodes") {
                if !children.is_empty() {
                    let children = Value::Array(std::mem::take(children));
                    self.drop_subtree(&children, snapshot);
                    drop_deep(children);
                    *changed = true;
                }
            }
            if snapshot && self.observing {
                *open_block = id;
            }
            return None;
        }
        Some(Ctx {
            masked: child_masked,
            textarea: kind == K_TEXTAREA,
            force: ctx.force,
        })
    }

    /// A text, CDATA or comment node.
    fn leaf(
        &mut self,
        map: &mut Map<String, Value>,
        node_type: u64,
        id: Option<u64>,
        ctx: Ctx,
        snapshot: bool,
        changed: &mut bool,
    ) {
        // Style text is CSS: rrweb never masks it, and masking it would break the page.
        if map.get("isStyle").and_then(Value::as_bool) == Some(true) {
            if let Some(id) = id {
                self.set_node(id, 0, snapshot);
            }
            return;
        }
        let masked_bit = if ctx.masked { F_MASKED } else { 0 };
        let (bits, mut style) = if node_type == 3 && ctx.textarea && self.policy.all_inputs() {
            (K_AREA_TEXT | masked_bit, Some(Style::Input))
        } else if ctx.masked {
            (F_MASKED, Some(Style::Text))
        } else if ctx.force {
            (0, Some(Style::Text))
        } else {
            (0, None)
        };
        if style.is_none()
            && node_type == 3
            && map
                .get("textContent")
                .and_then(Value::as_str)
                .is_some_and(|s| self.is_echo(s))
        {
            style = Some(Style::Text);
        }
        if let (Some(style), Some(v)) = (style, map.get_mut("textContent")) {
            *changed |= mask_value(v, style);
        }
        if let Some(id) = id {
            self.set_node(id, bits, snapshot);
        }
    }

    /// Records every id of `tree` (a node or an array of nodes) as dropped.
    fn drop_subtree(&mut self, tree: &Value, snapshot: bool) {
        let mut ids = Vec::new();
        collect_ids(tree, &mut ids);
        for id in ids {
            self.set_node(id, F_DROPPED, snapshot);
        }
    }

    /// One Mutation (`data` of an IncrementalSnapshot with source 0), in the order rrweb's
    /// replayer applies it: removes, adds, texts, attributes.
    fn mutation(&mut self, data: &mut Map<String, Value>) -> Result<bool, MaskError> {
        for key in ["removes", "adds", "texts", "attributes"] {
            match data.get(key) {
                None | Some(Value::Null | Value::Array(_)) => {}
                Some(_) => {
                    return Err(MaskError::Shape(format!("Mutation {key} is not an array")));
                }
            }
        }
        let mut changed = false;
        if let Some(Value::Array(removes)) = data.get_mut("removes") {
            self.removes(removes, &mut changed);
        }
        if let Some(Value::Array(adds)) = data.get_mut("adds") {
            self.adds(adds, &mut changed);
        }
        if let Some(Value::Array(texts)) = data.get_mut("texts") {
            self.texts(texts, &mut changed);
        }
        if let Some(Value::Array(attributes)) = data.get_mut("attributes") {
            self.attributes(attributes, &mut changed);
        }
        Ok(changed)
    }

    /// Forgets removed ids; removes of dropped nodes (unknown to viewers) are left out.
    fn removes(&mut self, removes: &mut Vec<Value>, changed: &mut bool) {
        removes.retain_mut(|r| {
            let Some(id) = r.get("id").and_then(Value::as_u64) else {
                return true;
            };
            if self.flags(id) & F_DROPPED != 0 {
                // Still unknown to viewers: later changes to it stay dropped.
                *changed = true;
                drop_deep(std::mem::take(r));
                false
            } else {
                self.nodes.remove(&id);
                true
            }
        });
    }

    fn adds(&mut self, adds: &mut Vec<Value>, changed: &mut bool) {
        if adds.is_empty() {
            return;
        }
        let parents: Vec<Option<u64>> = adds
            .iter()
            .map(|a| a.get("parentId").and_then(Value::as_u64))
            .collect();
        let order = add_order(adds, &parents);
        let mut keep = vec![true; adds.len()];
        for i in order {
            let Some(parent) = parents[i] else {
                keep[i] = false;
                continue;
            };
            let Some(node) = adds[i].get_mut("node").filter(|n| n.is_object()) else {
                keep[i] = false;
                continue;
            };
            let pf = self.flags(parent);
            if pf & (F_BLOCKED | F_DROPPED) != 0 {
                self.drop_subtree(node, false);
                keep[i] = false;
                continue;
            }
            let ctx = Ctx {
                masked: pf & F_MASKED != 0,
                textarea: pf & KIND == K_TEXTAREA,
                force: self.overflow && pf == 0,
            };
            self.walk(node, ctx, false, changed);
        }
        if keep.contains(&false) {
            *changed = true;
            let mut keep = keep.into_iter();
            adds.retain_mut(|a| {
                let k = keep.next().unwrap_or(true);
                if !k {
                    drop_deep(std::mem::take(a));
                }
                k
            });
        }
    }

    fn texts(&mut self, texts: &mut Vec<Value>, changed: &mut bool) {
        let all_inputs = self.policy.all_inputs();
        texts.retain_mut(|t| {
            let Some(id) = t.get("id").and_then(Value::as_u64) else {
                *changed = true;
                drop_deep(std::mem::take(t));
                return false;
            };
            let flags = self.flags(id);
            if flags & F_DROPPED != 0 {
                *changed = true;
                drop_deep(std::mem::take(t));
                return false;
            }
            let style = if flags & KIND == K_AREA_TEXT && all_inputs {
                Some(Style::Input)
            } else if flags & F_MASKED != 0
                || (self.overflow && flags == 0)
                || t.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|s| self.is_echo(s))
            {
                Some(Style::Text)
            } else {
                None
            };
            if let (Some(style), Some(v)) = (style, t.get_mut("value")) {
                *changed |= mask_value(v, style);
            }
            true
        });
    }

    fn attributes(&mut self, attributes: &mut Vec<Value>, changed: &mut bool) {
        attributes.retain_mut(|a| {
            let Some(id) = a.get("id").and_then(Value::as_u64) else {
                *changed = true;
                drop_deep(std::mem::take(a));
                return false;
            };
            let flags = self.flags(id);
            if flags & F_DROPPED != 0 {
                *changed = true;
                drop_deep(std::mem::take(a));
                return false;
            }
            let Some(Value::Object(attrs)) = a.get_mut("attributes") else {
                return true;
            };
            let mut next = flags;
            if let Some(t) = attrs.get("type") {
                let kind = flags & KIND;
                let to = input_type_kind(t.as_str());
                let new_kind = match kind {
                    K_TEXT | K_PASSWORD | K_CHECK | K_BUTTON => to,
                    0 if to == K_PASSWORD => K_PASSWORD,
                    _ => kind,
                };
                next = (next & !KIND) | new_kind;
            }
            if let Some(class) = attrs.get("class").and_then(Value::as_str) {
                let (block, mask) = class_flags(class);
                if block {
                    next |= F_BLOCKED;
                }
                if mask && self.policy.text() {
                    next |= F_MASKED;
                }
            }
            if next != flags {
                self.set_node(id, next & !F_VISIBLE, false);
            }
            if let Some(v) = attrs.get_mut("value") {
                if self.value_masked(next & KIND, next) {
                    *changed |= mask_value(v, Style::Input);
                }
            }
            true
        });
    }

    /// An Input event (`data` of an IncrementalSnapshot with source 5).
    fn input(&mut self, data: &mut Map<String, Value>) -> bool {
        let flags = data
            .get("id")
            .and_then(Value::as_u64)
            .map_or(0, |id| self.flags(id));
        let kind = flags & KIND;
        let mask = match self.policy {
            MaskPolicy::None => false,
            MaskPolicy::Passwords => {
                kind == 0 || kind == K_PASSWORD || flags & (F_BLOCKED | F_DROPPED) != 0
            }
            MaskPolicy::Inputs | MaskPolicy::InputsText => true,
        };
        let Some(text) = data.get_mut("text") else {
            return false;
        };
        if let Value::String(typed) = text {
            if !self.observing && self.policy.all_inputs() && kind != K_CHECK {
                self.remember_typed(typed);
            }
        }
        mask && mask_value(text, Style::Input)
    }

    /// Whether the `value` of an element of this kind/flags is masked (`kind` 0: unknown).
    fn value_masked(&self, kind: u8, flags: u8) -> bool {
        if flags & F_BLOCKED != 0 && (kind == 0 || is_value_input(kind)) {
            return true;
        }
        match self.policy {
            MaskPolicy::None => false,
            MaskPolicy::Passwords => kind == 0 || kind == K_PASSWORD,
            MaskPolicy::Inputs | MaskPolicy::InputsText => kind == 0 || is_value_input(kind),
        }
    }

    /// Kind and flags of an id (0: unknown).
    fn flags(&self, id: u64) -> u8 {
        let bits = self.nodes.get(&id).copied().unwrap_or(0);
        if bits & F_VISIBLE == 0 && self.in_ranges(id) {
            bits | F_DROPPED
        } else {
            bits
        }
    }

    /// Records an id's kind and flags (`fresh`: during a snapshot walk, nothing to overwrite).
    fn set_node(&mut self, id: u64, bits: u8, fresh: bool) {
        let mut bits = bits;
        if !fresh && bits & F_DROPPED == 0 && self.in_ranges(id) {
            bits |= F_VISIBLE;
        }
        if bits == 0 {
            if !fresh {
                self.nodes.remove(&id);
            }
            return;
        }
        let len = self.nodes.len();
        match self.nodes.entry(id) {
            Entry::Occupied(mut e) => {
                e.insert(bits);
            }
            Entry::Vacant(e) => {
                if len >= self.id_cap {
                    self.overflow = true;
                } else {
                    e.insert(bits);
                }
            }
        }
    }

    /// While observing a snapshot: the ids between a blocked element `b` and the next node were
    /// its dropped descendants.
    fn add_range(&mut self, b: u64, next: u64) {
        if next > b.saturating_add(1) {
            if self.ranges.len() >= self.id_cap {
                self.overflow = true;
            } else {
                self.ranges.push((b + 1, next - 1));
            }
        }
    }

    /// Sorts and merges the ranges after a snapshot.
    fn finish_ranges(&mut self) {
        if self.ranges.len() < 2 {
            return;
        }
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.ranges = merged;
    }

    fn in_ranges(&self, id: u64) -> bool {
        if self.ranges.is_empty() {
            return false;
        }
        let i = self.ranges.partition_point(|r| r.0 <= id);
        i > 0 && self.ranges[i - 1].1 >= id
    }

    /// The salted hash of a typed value.
    fn hash(&self, value: &str) -> u64 {
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(value.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// Remembers the hash of a typed value (trimmed, at least 2 chars, not already masked).
    fn remember_typed(&mut self, value: &str) {
        let v = value.trim();
        if v.chars().nth(1).is_none() || v.chars().all(|c| c == '*') {
            return;
        }
        let h = self.hash(v);
        self.insert_typed(h, true);
    }

    fn insert_typed(&mut self, h: u64, new: bool) {
        if !self.typed.insert(h) {
            return;
        }
        self.typed_order.push_back(h);
        if self.typed_order.len() > MAX_TYPED_VALUES {
            if let Some(old) = self.typed_order.pop_front() {
                self.typed.remove(&old);
            }
        }
        if new {
            self.new_typed.push(h);
            if self.new_typed.len() > MAX_TYPED_VALUES {
                let excess = self.new_typed.len() - MAX_TYPED_VALUES;
                self.new_typed.drain(..excess);
            }
        }
    }

    /// Whether a text echoes a typed value (only under `inputs` / `inputs+text`).
    fn is_echo(&self, text: &str) -> bool {
        if self.typed.is_empty() || !self.policy.all_inputs() {
            return false;
        }
        let t = text.trim();
        t.chars().nth(1).is_some() && self.typed.contains(&self.hash(t))
    }
}

/// Whether a class attribute holds the `rr-block` / `rr-mask` tokens.
fn class_flags(class: &str) -> (bool, bool) {
    let mut flags = (false, false);
    for token in class.split_ascii_whitespace() {
        match token {
            "rr-block" => flags.0 = true,
            "rr-mask" => flags.1 = true,
            _ => {}
        }
    }
    flags
}

fn element_kind(tag: &str, input_type: Option<&Value>, has_value: bool) -> u8 {
    if tag.eq_ignore_ascii_case("input") {
        input_type_kind(input_type.and_then(Value::as_str))
    } else if tag.eq_ignore_ascii_case("textarea") {
        K_TEXTAREA
    } else if tag.eq_ignore_ascii_case("select") {
        K_SELECT
    } else if has_value {
        K_OTHER
    } else {
        0
    }
}

fn input_type_kind(input_type: Option<&str>) -> u8 {
    let t = input_type.unwrap_or("").trim();
    let is = |name: &str| t.eq_ignore_ascii_case(name);
    if is("password") {
        K_PASSWORD
    } else if is("checkbox") || is("radio") {
        K_CHECK
    } else if is("submit") || is("button") || is("reset") || is("image") {
        K_BUTTON
    } else {
        K_TEXT
    }
}

/// The order to process Mutation adds in: parents before children, even when an add's parent is
/// added later in the same array (rrweb emits parents first; this only matters otherwise).
fn add_order(adds: &[Value], parents: &[Option<u64>]) -> Vec<usize> {
    let n = adds.len();
    if n < 2 {
        return (0..n).collect();
    }
    let mut owner: HashMap<u64, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (i, a) in adds.iter().enumerate() {
        if let Some(node) = a.get("node") {
            ids.clear();
            collect_ids(node, &mut ids);
            for &id in &ids {
                owner.entry(id).or_insert(i);
            }
        }
    }
    let dep = |i: usize| parents[i].and_then(|p| owner.get(&p).copied());
    if (0..n).all(|i| dep(i).is_none_or(|j| j <= i)) {
        return (0..n).collect();
    }
    // Depth-first over "parent's add first", with an explicit stack; cycles are cut.
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    let mut visiting = vec![false; n];
    let mut stack = Vec::new();
    for start in 0..n {
        stack.push(start);
        while let Some(&k) = stack.last() {
            if done[k] {
                stack.pop();
                continue;
            }
            if !visiting[k] {
                visiting[k] = true;
                if let Some(j) = dep(k) {
                    if j != k && !done[j] && !visiting[j] {
                        stack.push(j);
                        continue;
                    }
                }
            }
            order.push(k);
            done[k] = true;
            stack.pop();
        }
    }
    order
}

/// Every `id` in a serialized node tree (a node, or an array of nodes).
fn collect_ids(tree: &Value, ids: &mut Vec<u64>) {
    let mut stack = vec![tree];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(map) => {
                if let Some(id) = map.get("id").and_then(Value::as_u64) {
                    ids.push(id);
                }
                if let Some(children) = map.get("childNodes") {
                    stack.push(children);
                }
            }
            _ => {}
        }
    }
}

/// Masks a string (or number) value in place; whether it changed.
fn mask_value(v: &mut Value, style: Style) -> bool {
    match v {
        Value::String(s) => mask_string(s, style),
        Value::Number(n) => {
            *v = Value::String(masked(&n.to_string(), style));
            true
        }
        _ => false,
    }
}

fn mask_string(s: &mut String, style: Style) -> bool {
    let needed = match style {
        Style::Input => s.chars().any(|c| c != '*'),
        Style::Text => s.chars().any(|c| c != '*' && !c.is_whitespace()),
    };
    if needed {
        *s = masked(s, style);
    }
    needed
}

fn masked(s: &str, style: Style) -> String {
    match style {
        Style::Input => "*".repeat(s.chars().count()),
        Style::Text => s
            .chars()
            .map(|c| if c.is_whitespace() { c } else { '*' })
            .collect(),
    }
}

/// Drops a value without recursion (a deep tree would overflow the stack).
fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

// ---- JSON ----

/// Stack a recursive drop of one nesting level of a [`Value`] may take (measured: about 512
/// bytes for objects in debug builds, 190 in release).
const DROP_STACK_PER_LEVEL: usize = 1024;

/// Parses an event into a [`Value`] with serde_json, growing the stack as deep nesting needs
/// (serde_stacker) instead of stopping at serde_json's 128 levels. Returns the deepest nesting.
fn parse(src: &str) -> Result<(Value, usize), MaskError> {
    let depth = nesting(src)
        .ok_or_else(|| MaskError::Shape(format!("nested deeper than {MAX_NESTING} levels")))?;
    match parse_value(src, depth) {
        Ok(v) => Ok((v, depth)),
        Err(e) => match replace_lone_surrogates(src) {
            Some(fixed) => parse_value(&fixed, depth).map(|v| (v, depth)),
            None => Err(e),
        }
        .map_err(|e| MaskError::Json(e.to_string())),
    }
}

fn parse_value(src: &str, depth: usize) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(src);
    de.disable_recursion_limit();
    let mut stacked = serde_stacker::Deserializer::new(&mut de);
    // serde_json drops what it built so far recursively, deep inside the nesting, when a value
    // fails or a key repeats: keep room below every level to drop a subtree of the whole depth.
    stacked.red_zone = stacked.red_zone.max(depth * DROP_STACK_PER_LEVEL);
    stacked.stack_size = stacked.stack_size.max(2 * stacked.red_zone);
    let value = Value::deserialize(stacked)?;
    match de.end() {
        Ok(()) => Ok(value),
        Err(e) => {
            drop_deep(value);
            Err(e)
        }
    }
}

/// The deepest `[`/`{` nesting of JSON text, or `None` past [`MAX_NESTING`] (a limit check run
/// before parsing, so that hostile nesting cannot make the stack grow without bound).
fn nesting(src: &str) -> Option<usize> {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in src.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return None;
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

/// JSON.stringify writes lone UTF-16 surrogates (text cut inside an emoji) as `\udXXX` escapes,
/// which serde_json refuses in a string: the text with each replaced by `\ufffd` (as
/// `String::from_utf16_lossy` would), or `None` if it has none.
fn replace_lone_surrogates(src: &str) -> Option<String> {
    if !src.contains("\\ud") && !src.contains("\\uD") {
        return None;
    }
    let mut b = src.as_bytes().to_vec();
    let hex = |b: &[u8], i: usize| {
        let digits = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let (mut i, mut changed) = (0, false);
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
        } else if b[i + 1] != b'u' {
            i += 2;
        } else {
            match hex(&b, i + 2) {
                Some(0xD800..=0xDBFF)
                    if b.get(i + 6..i + 8) == Some(&b"\\u"[..])
                        && matches!(hex(&b, i + 8), Some(0xDC00..=0xDFFF)) =>
                {
                    i += 12;
                }
                Some(0xD800..=0xDFFF) => {
                    b[i + 2..i + 6].copy_from_slice(b"fffd");
                    changed = true;
                    i += 6;
                }
                _ => i += 2,
            }
        }
    }
    changed.then(|| String::from_utf8(b).ok()).flatten()
}

/// Writes a [`Value`] as compact JSON with serde_json (object keys in sorted order), growing the
/// stack as deep nesting needs.
fn write(value: &Value) -> Result<String, MaskError> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    value
        .serialize(serde_stacker::Serializer::new(&mut ser))
        .map_err(|e| MaskError::Json(e.to_string()))?;
    String::from_utf8(out).map_err(|e| MaskError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    /// Values typed into loan-apply.json's form (the password was masked by the recorder).
    const TYPED: [&str; 6] = [
        "张三丰",
        "13800138000",
        "110101199003077777",
        "6222020200112233445",
        "50000",
        "246810",
    ];
    const FIXTURES: [&str; 4] = [
        "demoit.json",
        "loan-apply.json",
        "chat-widget.json",
        "big-catalog.json",
    ];

    fn fixture(name: &str) -> Vec<Box<RawValue>> {
        let path = format!(
            "{}/../../shared/fixtures/rrweb/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).expect("a fixture is a JSON array of events")
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("test events are JSON")
    }

    fn value(s: &str) -> Value {
        serde_json::from_str(s).expect("test events are JSON")
    }

    fn run(policy: MaskPolicy, events: &[Box<RawValue>]) -> Vec<Option<Box<RawValue>>> {
        let mut m = RoomMask::new(policy, KEY);
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                m.mask(e)
                    .unwrap_or_else(|err| panic!("{policy}: event {i} refused: {err}"))
            })
            .collect()
    }

    /// Masks one event given as text; `None` if it passes unchanged.
    fn mask(m: &mut RoomMask, event: &str) -> Option<Value> {
        m.mask(&raw(event))
            .expect("the event can be masked")
            .map(|r| value(r.get()))
    }

    /// Checks that `masked` equals `orig` except for strings replaced by as many `*` (whitespace
    /// kept or masked too), and says where it does not.
    fn only_masked(orig: &Value, masked: &Value, path: &str) -> Result<(), String> {
        match (orig, masked) {
            (Value::String(a), Value::String(b)) if a != b => {
                let stars = b.chars().all(|c| c == '*' || c.is_whitespace());
                if stars && a.chars().count() == b.chars().count() {
                    Ok(())
                } else {
                    Err(format!("{path}: {a:?} became {b:?}"))
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    return Err(format!("{path}: {} items became {}", a.len(), b.len()));
                }
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    only_masked(x, y, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            (Value::Object(a), Value::Object(b)) => {
                if a.len() != b.len() || a.keys().any(|k| !b.contains_key(k)) {
                    return Err(format!("{path}: keys differ"));
                }
                for (k, x) in a {
                    only_masked(x, &b[k.as_str()], &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            (a, b) if a == b => Ok(()),
            (a, b) => Err(format!("{path}: {a} became {b}")),
        }
    }

    fn snapshot(body: &str) -> String {
        format!(
            r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[{{"type":2,"tagName":"html","attributes":{{}},"childNodes":[{{"type":2,"tagName":"body","attributes":{{}},"childNodes":[{body}],"id":3}}],"id":2}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":1}}"#
        )
    }

    fn mutation(texts: &str, attributes: &str, removes: &str, adds: &str) -> String {
        format!(
            r#"{{"type":3,"data":{{"source":0,"texts":[{texts}],"attributes":[{attributes}],"removes":[{removes}],"adds":[{adds}]}},"timestamp":2}}"#
        )
    }

    fn input(id: u64, text: &str) -> String {
        format!(
            r#"{{"type":3,"data":{{"source":5,"text":{},"isChecked":false,"id":{id}}},"timestamp":3}}"#,
            Value::from(text)
        )
    }

    fn text_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
    }

    #[test]
    fn loan_apply_under_inputs_hides_every_typed_value_and_its_echo() {
        let events = fixture("loan-apply.json");
        let out = run(MaskPolicy::Inputs, &events);
        assert_eq!(out.len(), events.len());
        for (i, (e, o)) in events.iter().zip(&out).enumerate() {
            let text = o.as_deref().unwrap_or(e).get();
            for t in TYPED {
                assert!(!text.contains(t), "event {i} still holds {t}: {text}");
            }
            if let Some(o) = o {
                only_masked(&value(e.get()), &value(o.get()), "")
                    .unwrap_or_else(|p| panic!("event {i}: {p}"));
            }
            let v = value(e.get());
            let kind = v["type"].as_u64();
            let source = v["data"]["source"].as_u64();
            if !may_need_masking(
                MaskPolicy::Inputs,
                kind.unwrap_or(0) as u8,
                source.map(|s| s as u8),
            ) {
                assert!(o.is_none(), "event {i} of type {kind:?} was rewritten");
            }
        }
        // The confirmation page's FullSnapshot echoes the name as text.
        let confirm = value(out[364].as_ref().expect("the echo is masked").get());
        let before = value(events[364].get());
        let mut names = 0;
        let mut stack = vec![(&before["data"]["node"], &confirm["data"]["node"])];
        while let Some((a, b)) = stack.pop() {
            if a["textContent"] == "张三丰" {
                assert_eq!(b["textContent"], "***");
                names += 1;
            }
            if let (Some(x), Some(y)) = (a["childNodes"].as_array(), b["childNodes"].as_array()) {
                stack.extend(x.iter().zip(y));
            }
        }
        assert_eq!(names, 1);
        // Every Input event with a value not yet masked by the recorder was rewritten.
        let inputs = events
            .iter()
            .zip(&out)
            .filter(|(e, _)| value(e.get())["data"]["source"] == 5)
            .filter(|(e, _)| {
                !value(e.get())["data"]["text"]
                    .as_str()
                    .is_some_and(|t| t.chars().all(|c| c == '*'))
            });
        for (e, o) in inputs {
            assert!(o.is_some(), "Input event not masked: {}", e.get());
        }
    }

    #[test]
    fn loan_apply_under_inputs_text_is_the_same_without_rr_mask() {
        let events = fixture("loan-apply.json");
        let a = run(MaskPolicy::Inputs, &events);
        let b = run(MaskPolicy::InputsText, &events);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.as_ref().map(|r| r.get()), y.as_ref().map(|r| r.get()));
        }
    }

    #[test]
    fn loan_apply_under_passwords_masks_only_the_password() {
        let events = fixture("loan-apply.json");
        let out = run(MaskPolicy::Passwords, &events);
        // The recorder already masked the password, so every event passes byte-identical.
        for (i, o) in out.iter().enumerate() {
            assert!(
                o.is_none(),
                "event {i} was rewritten: {:?}",
                o.as_ref().map(|r| r.get())
            );
        }
        let all: String = events.iter().map(|e| e.get()).collect();
        for t in TYPED {
            assert!(all.contains(t), "{t}");
        }
        // The same form with the recorder's masking off: only the password changes.
        let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
        m.mask(&events[80]).expect("the form's snapshot");
        let pw = mask(&mut m, &input(193, "S3cret-pass!")).expect("the password is masked");
        assert_eq!(text_of(&pw, "/data/text"), "************");
        assert!(mask(&mut m, &input(154, "13800138000")).is_none());
        assert!(mask(&mut m, &input(89, "travel")).is_none());
        assert!(
            m.take_new_typed().is_empty(),
            "passwords records no typed values"
        );
    }

    #[test]
    fn none_never_rewrites() {
        for name in FIXTURES {
            let events = fixture(name);
            assert!(run(MaskPolicy::None, &events).iter().all(Option::is_none));
        }
        let mut m = RoomMask::new(MaskPolicy::None, KEY);
        let bad = raw(r#"{"type":2,"data":{}}"#);
        assert!(matches!(m.mask(&bad), Ok(None)), "none does not even parse");
        assert!(mask(&mut m, &input(1, "secret")).is_none());
        assert_eq!(m.state_bytes(), 0);
    }

    #[test]
    fn every_fixture_under_every_policy() {
        for name in FIXTURES {
            let events = fixture(name);
            for policy in MaskPolicy::ALL {
                let out = run(policy, &events);
                for (i, (e, o)) in events.iter().zip(&out).enumerate() {
                    if let Some(o) = o {
                        only_masked(&value(e.get()), &value(o.get()), "")
                            .unwrap_or_else(|p| panic!("{name} {policy} event {i}: {p}"));
                    }
                }
            }
        }
    }

    #[test]
    fn parse_and_write_are_serde_jsons() {
        let cases = [
            r#"{"a":"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r","b":[1,-2,3.5,-0,1e3,1E-7,0.1,12.5e+2]}"#,
            r#"[18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]"#,
            r#" { "x" : { } , "y" : [ ] , "z" : null , "t" : true , "f" : false , "x" : 2 } "#,
            "\"\\u0001\\u001f\u{7f}\u{10ffff}\"",
            "[[[[[]]]],{\"\":{\"\":[\"\"]}}]",
            "[0.30000000000000004,2.2250738585072014e-308,5e-324,1.7976931348623157e308,9007199254740993.0]",
        ];
        for c in cases {
            let (v, _) = parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
            let theirs: Value = serde_json::from_str(c).expect("serde_json parses it");
            assert_eq!(v, theirs, "{c}");
            let text = write(&v).expect("writes");
            assert_eq!(text, serde_json::to_string(&theirs).expect("writes"), "{c}");
            assert_eq!(
                parse(&text).expect("parses").0,
                v,
                "{c}: floats round-trip exactly"
            );
        }
        // Lone surrogates (JSON.stringify emits them) become U+FFFD instead of an error.
        let (v, _) =
            parse(r#"["a\ud800b\udc00c\ud800\u0041\ud83d\ude00","\\ud800",1]"#).expect("lenient");
        assert_eq!(
            v,
            serde_json::json!(["a\u{fffd}b\u{fffd}c\u{fffd}A\u{1f600}", "\\ud800", 1])
        );
        for bad in [
            "",
            "{",
            "[1,2",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\u{1}\"",
            "tru",
            "[1] 2",
            "{\"a\":1}}",
            "1e400",
            "\"\\u12\"",
            "[\"\\ud800\",]",
            "[\"\\ud800\"] x",
        ] {
            assert!(matches!(parse(bad), Err(MaskError::Json(_))), "{bad:?}");
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn parse_and_write_round_trip(v in any_json()) {
            let text = serde_json::to_string(&v).expect("writes");
            let (parsed, _) = parse(&text).expect("parses");
            proptest::prop_assert_eq!(&parsed, &v);
            proptest::prop_assert_eq!(write(&v).expect("writes"), text);
            let pretty = serde_json::to_string_pretty(&v).expect("writes");
            let (parsed, _) = parse(&pretty).expect("parses");
            proptest::prop_assert_eq!(&parsed, &v);
        }
    }

    /// Runs `f` on a thread with a 2 MiB stack (a tokio worker's), where recursion would show.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .expect("spawns a thread")
            .join()
            .expect("no panic");
    }

    /// A FullSnapshot of an input inside `levels` nested divs, keys in the order serde_json
    /// writes them.
    fn deep_snapshot(levels: usize, value: &str) -> String {
        let mut s =
            String::from(r#"{"data":{"initialOffset":{"left":0,"top":0},"node":{"childNodes":["#);
        for _ in 0..levels {
            s.push_str(r#"{"attributes":{},"childNodes":["#);
        }
        s.push_str(&format!(
            r#"{{"attributes":{{"type":"text","value":"{value}"}},"childNodes":[],"id":2,"tagName":"input","type":2}}"#
        ));
        for i in 0..levels {
            s.push_str(&format!(r#"],"id":{},"tagName":"div","type":2}}"#, 10 + i));
        }
        s.push_str(r#"],"id":1,"type":0}},"timestamp":1,"type":2}"#);
        s
    }

    #[test]
    fn deep_documents_are_masked_and_too_deep_ones_refused() {
        on_small_stack(|| {
            let event = deep_snapshot(3000, "deep secret");
            assert!(
                serde_json::from_str::<Value>(&event).is_err(),
                "serde_json alone stops at 128 levels"
            );
            let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
            let out = m.mask(&raw(&event)).expect("masks").expect("changed");
            assert_eq!(out.get(), deep_snapshot(3000, "***********"));

            let too_deep = deep_snapshot(MAX_NESTING / 2, "x");
            assert!(matches!(m.mask(&raw(&too_deep)), Err(MaskError::Shape(_))));
            let too_deep = "[".repeat(MAX_NESTING + 1) + "1" + &"]".repeat(MAX_NESTING + 1);
            assert!(matches!(m.mask(&raw(&too_deep)), Err(MaskError::Shape(_))));
            let unclosed = "[".repeat(1 << 20);
            assert!(matches!(
                m.process(&unclosed, true),
                Err(MaskError::Shape(_))
            ));
            let unclosed = "{\"a\":[".repeat(MAX_NESTING / 2);
            assert!(matches!(
                m.process(&unclosed, true),
                Err(MaskError::Json(_))
            ));
        });
    }

    #[test]
    fn failing_deep_inside_a_deep_document_is_an_error_not_a_crash() {
        // serde_json drops a deep value it built recursively when a later sibling fails, or its
        // key repeats, at whatever nesting level that happens.
        on_small_stack(|| {
            let deep = "{\"a\":".repeat(4000) + "1" + &"}".repeat(4000);
            let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
            for outer in (0..4000).step_by(250) {
                let (open, close) = ("[".repeat(outer), "]".repeat(outer));
                for (tail, json_error) in [
                    (",1e400]", true),
                    (" x]", true),
                    (",\"\\ud800\" x]", true),
                    (",\"\\ud800\"]", false),
                ] {
                    let event = format!("{open}[{deep}{tail}{close}");
                    let r = m.process(&event, true);
                    assert!(
                        matches!(
                            (&r, json_error),
                            (Err(MaskError::Json(_)), true) | (Err(MaskError::Shape(_)), false)
                        ),
                        "{outer} {tail}: {r:?}"
                    );
                }
                let event = format!("{open}{{\"k\":{deep},\"k\":1}}{close}");
                assert!(matches!(m.process(&event, true), Err(MaskError::Shape(_))));
            }
        });
    }

    #[test]
    fn deep_mutation_items_that_are_left_out_are_dropped_safely() {
        on_small_stack(|| {
            let junk = "{\"a\":".repeat(MAX_NESTING - 8) + "1" + &"}".repeat(MAX_NESTING - 8);
            let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
            mask(&mut m, &snapshot(BLOCK_PAGE));
            let ev = mutation(
                &format!(r#"{{"id":5,"value":"x","junk":{junk}}},{{"value":"x","junk":{junk}}}"#),
                &format!(r#"{{"id":6,"attributes":{{}},"junk":{junk}}}"#),
                &format!(r#"{{"parentId":4,"id":5,"junk":{junk}}}"#),
                &format!(
                    r#"{{"parentId":4,"nextId":null,"node":{{"type":3,"textContent":"x","id":30,"junk":{junk}}}}},
                       {{"nextId":null,"node":{{"type":3,"textContent":"x","id":31,"junk":{junk}}}}}"#
                ),
            );
            let out = m.mask(&raw(&ev)).expect("masks").expect("items left out");
            let expected = r#"{"data":{"adds":[],"attributes":[],"removes":[],"source":0,"texts":[]},"timestamp":2,"type":3}"#;
            assert_eq!(out.get(), expected);
        });
    }

    #[test]
    fn malformed_events_are_refused() {
        let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
        assert!(matches!(
            m.process("{\"type\":2", true),
            Err(MaskError::Json(_))
        ));
        assert!(matches!(
            m.process("not json", true),
            Err(MaskError::Json(_))
        ));
        for bad in [
            r#"{"type":2,"data":{"initialOffset":{"left":0,"top":0}}}"#,
            r#"{"type":2}"#,
            r#"{"type":2,"data":{"node":[]}}"#,
            r#"[]"#,
            r#"{"data":{}}"#,
            r#"{"type":"2","data":{}}"#,
            r#"{"type":3,"data":{"source":0,"adds":{"parentId":1}}}"#,
            r#"{"type":3,"data":{"source":0,"texts":"x"}}"#,
        ] {
            assert!(
                matches!(m.mask(&raw(bad)), Err(MaskError::Shape(_))),
                "{bad}"
            );
        }
        // Other types and sources are not looked at.
        assert!(mask(&mut m, r#"{"type":4,"data":{"href":"x"},"timestamp":1}"#).is_none());
        assert!(mask(&mut m, r#"{"type":3,"data":{"source":1,"positions":[]}}"#).is_none());
        assert!(mask(&mut m, r#"{"type":3}"#).is_none());
    }

    const MASK_PAGE: &str = r#"{"type":2,"tagName":"div","attributes":{"class":"x rr-mask"},"childNodes":[{"type":3,"textContent":"Secret Name","id":5},{"type":2,"tagName":"b","attributes":{},"childNodes":[{"type":3,"textContent":" deep 42\n","id":7}],"id":6}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public","id":9}],"id":8}"#;

    #[test]
    fn rr_mask_text_under_inputs_text() {
        let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
        let s = mask(&mut m, &snapshot(MASK_PAGE)).expect("masked");
        let div = "/data/node/childNodes/0/childNodes/0/childNodes/0";
        assert_eq!(
            text_of(&s, &format!("{div}/childNodes/0/textContent")),
            "****** ****"
        );
        assert_eq!(
            text_of(&s, &format!("{div}/childNodes/1/childNodes/0/textContent")),
            " **** **\n"
        );
        assert_eq!(text_of(&s, &format!("{div}/attributes/class")), "x rr-mask");
        assert_eq!(
            text_of(
                &s,
                "/data/node/childNodes/0/childNodes/0/childNodes/1/childNodes/0/textContent"
            ),
            "public"
        );

        let ev = mutation(
            r#"{"id":5,"value":"New Secret"},{"id":9,"value":"still public"}"#,
            "",
            "",
            r#"{"parentId":6,"nextId":null,"node":{"type":3,"textContent":"added secret","id":10}},
               {"parentId":4,"nextId":null,"node":{"type":2,"tagName":"i","attributes":{},"childNodes":[],"id":12}},
               {"parentId":12,"nextId":null,"node":{"type":3,"textContent":"nested","id":13}},
               {"parentId":8,"nextId":null,"node":{"type":3,"textContent":"added public","id":11}}"#,
        );
        let out = mask(&mut m, &ev).expect("masked");
        assert_eq!(text_of(&out, "/data/texts/0/value"), "*** ******");
        assert_eq!(text_of(&out, "/data/texts/1/value"), "still public");
        assert_eq!(
            text_of(&out, "/data/adds/0/node/textContent"),
            "***** ******"
        );
        assert_eq!(text_of(&out, "/data/adds/2/node/textContent"), "******");
        assert_eq!(
            text_of(&out, "/data/adds/3/node/textContent"),
            "added public"
        );
        only_masked(&value(&ev), &out, "").expect("only strings masked");

        // Ids added under the mask stay masked.
        let out = mask(
            &mut m,
            &mutation(r#"{"id":13,"value":"again"}"#, "", "", ""),
        )
        .expect("masked");
        assert_eq!(text_of(&out, "/data/texts/0/value"), "*****");
        assert!(mask(&mut m, &mutation(r#"{"id":11,"value":"free"}"#, "", "", "")).is_none());

        // Under `inputs`, rr-mask is not applied.
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        assert!(mask(&mut m, &snapshot(MASK_PAGE)).is_none());
        assert!(mask(&mut m, &ev).is_none());
    }

    #[test]
    fn rr_mask_children_listed_before_their_parent_are_still_masked() {
        let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
        mask(&mut m, &snapshot(MASK_PAGE));
        let ev = mutation(
            "",
            "",
            "",
            r#"{"parentId":21,"nextId":null,"node":{"type":3,"textContent":"child first","id":22}},
               {"parentId":4,"nextId":null,"node":{"type":2,"tagName":"i","attributes":{},"childNodes":[],"id":21}}"#,
        );
        let out = mask(&mut m, &ev).expect("masked");
        assert_eq!(
            text_of(&out, "/data/adds/0/node/textContent"),
            "***** *****"
        );
    }

    const BLOCK_PAGE: &str = r#"{"type":2,"tagName":"div","attributes":{"class":"rr-block card","style":"height:40px"},"childNodes":[{"type":3,"textContent":"hidden","id":5},{"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"hidden too","id":7}],"id":6}],"id":4},{"type":2,"tagName":"p","attributes":{},"childNodes":[{"type":3,"textContent":"public","id":9}],"id":8}"#;

    fn block_mutations() -> Vec<String> {
        vec![
            mutation(
                r#"{"id":5,"value":"x"},{"id":9,"value":"y"}"#,
                r#"{"id":6,"attributes":{"class":"z"}},{"id":4,"attributes":{"style":"color:red"}}"#,
                r#"{"parentId":4,"id":5}"#,
                r#"{"parentId":4,"nextId":null,"node":{"type":3,"textContent":"new hidden","id":20}},
                   {"parentId":6,"nextId":null,"node":{"type":2,"tagName":"em","attributes":{},"childNodes":[],"id":21}},
                   {"parentId":21,"nextId":null,"node":{"type":3,"textContent":"deeper","id":22}},
                   {"parentId":8,"nextId":null,"node":{"type":3,"textContent":"ok","id":23}}"#,
            ),
            mutation(
                r#"{"id":22,"value":"leak?"},{"id":7,"value":"leak?"}"#,
                "",
                "",
                "",
            ),
            mutation(r#"{"id":23,"value":"fine"}"#, "", "", ""),
        ]
    }

    #[test]
    fn rr_block_children_and_later_changes_inside_are_dropped() {
        for policy in [
            MaskPolicy::Passwords,
            MaskPolicy::Inputs,
            MaskPolicy::InputsText,
        ] {
            let mut m = RoomMask::new(policy, KEY);
            let s = mask(&mut m, &snapshot(BLOCK_PAGE)).expect("children dropped");
            let div = &s["data"]["node"]["childNodes"][0]["childNodes"][0]["childNodes"][0];
            assert_eq!(div["id"], 4);
            assert_eq!(div["childNodes"], serde_json::json!([]));
            assert_eq!(div["attributes"]["style"], "height:40px");
            assert!(!s.to_string().contains("hidden"));

            let muts = block_mutations();
            let out = mask(&mut m, &muts[0]).expect("items dropped");
            let d = &out["data"];
            assert_eq!(d["adds"].as_array().map(Vec::len), Some(1));
            assert_eq!(d["adds"][0]["node"]["id"], 23);
            assert_eq!(d["texts"], serde_json::json!([{"id":9,"value":"y"}]));
            assert_eq!(
                d["attributes"],
                serde_json::json!([{"id":4,"attributes":{"style":"color:red"}}])
            );
            assert_eq!(d["removes"], serde_json::json!([]));

            let out = mask(&mut m, &muts[1]).expect("items dropped");
            assert_eq!(
                out["data"]["texts"],
                serde_json::json!([]),
                "empty but still emitted"
            );
            assert!(mask(&mut m, &muts[2]).is_none());
        }
        let mut m = RoomMask::new(MaskPolicy::None, KEY);
        assert!(mask(&mut m, &snapshot(BLOCK_PAGE)).is_none());
    }

    #[test]
    fn input_values_in_snapshots_and_mutations() {
        let page = r#"{"type":2,"tagName":"INPUT","attributes":{"type":"text","value":"Zhang San"},"childNodes":[],"id":10},
            {"type":2,"tagName":"input","attributes":{"type":"PassWord","value":"hunter2"},"childNodes":[],"id":11},
            {"type":2,"tagName":"textarea","attributes":{"value":"two\nlines"},"childNodes":[{"type":3,"textContent":"two\nlines","id":13}],"id":12},
            {"type":2,"tagName":"select","attributes":{"value":"b"},"childNodes":[{"type":2,"tagName":"option","attributes":{"value":"b","selected":true},"childNodes":[{"type":3,"textContent":"Bee","id":16}],"id":15}],"id":14},
            {"type":2,"tagName":"input","attributes":{"type":"submit","value":"Send"},"childNodes":[],"id":17},
            {"type":2,"tagName":"input","attributes":{"type":"checkbox","value":"yes","checked":true},"childNodes":[],"id":18}"#;
        let body = "/data/node/childNodes/0/childNodes/0/childNodes";

        let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
        let s = mask(&mut m, &snapshot(page)).expect("password masked");
        assert_eq!(
            text_of(&s, &format!("{body}/0/attributes/value")),
            "Zhang San"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/1/attributes/value")),
            "*******"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
            "two\nlines"
        );
        // Value changes: unknown ids fail closed, known non-password elements pass.
        let ev = mutation(
            "",
            r#"{"id":10,"attributes":{"value":"abc"}},{"id":11,"attributes":{"value":"abc"}},{"id":99,"attributes":{"value":"abc"}},{"id":15,"attributes":{"value":"c"}}"#,
            "",
            "",
        );
        let out = mask(&mut m, &ev).expect("masked");
        let values: Vec<&str> = (0..4)
            .map(|i| text_of(&out, &format!("/data/attributes/{i}/attributes/value")))
            .collect();
        assert_eq!(values, ["abc", "***", "***", "c"]);
        // A type change to password is followed.
        mask(
            &mut m,
            &mutation("", r#"{"id":10,"attributes":{"type":"password"}}"#, "", ""),
        );
        assert!(mask(&mut m, &input(10, "now secret")).is_some());
        mask(
            &mut m,
            &mutation("", r#"{"id":11,"attributes":{"type":"text"}}"#, "", ""),
        );
        assert!(mask(&mut m, &input(11, "now visible")).is_none());

        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        let s = mask(&mut m, &snapshot(page)).expect("masked");
        assert_eq!(
            text_of(&s, &format!("{body}/0/attributes/value")),
            "*********"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/1/attributes/value")),
            "*******"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/2/attributes/value")),
            "*********"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
            "*********"
        );
        assert_eq!(text_of(&s, &format!("{body}/3/attributes/value")), "*");
        assert_eq!(
            text_of(&s, &format!("{body}/3/childNodes/0/attributes/value")),
            "b"
        );
        assert_eq!(
            text_of(
                &s,
                &format!("{body}/3/childNodes/0/childNodes/0/textContent")
            ),
            "Bee"
        );
        assert_eq!(text_of(&s, &format!("{body}/4/attributes/value")), "Send");
        assert_eq!(text_of(&s, &format!("{body}/5/attributes/value")), "***");
        // Text added to the textarea, and changed in it, is its value.
        let ev = mutation(
            r#"{"id":13,"value":"changed"}"#,
            "",
            "",
            r#"{"parentId":12,"nextId":null,"node":{"type":3,"textContent":"typed","id":19}}"#,
        );
        let out = mask(&mut m, &ev).expect("masked");
        assert_eq!(text_of(&out, "/data/texts/0/value"), "*******");
        assert_eq!(text_of(&out, "/data/adds/0/node/textContent"), "*****");
        // A checkbox's Input event is masked but its value is no typed value.
        assert!(mask(&mut m, &input(18, "on")).is_some());
        assert!(m.take_new_typed().is_empty());
    }

    #[test]
    fn input_events_fail_closed() {
        let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
        let out = mask(&mut m, &input(42, "张三丰 x")).expect("unknown id masked");
        assert_eq!(text_of(&out, "/data/text"), "*****");
        let page = r#"{"type":2,"tagName":"input","attributes":{},"childNodes":[],"id":10}"#;
        assert!(mask(&mut m, &snapshot(page)).is_none());
        assert!(mask(&mut m, &input(10, "visible")).is_none());
        assert!(mask(&mut m, &input(42, "still unknown")).is_some());
        // Removed: unknown again.
        mask(&mut m, &mutation("", "", r#"{"parentId":3,"id":10}"#, ""));
        assert!(mask(&mut m, &input(10, "late")).is_some());
        // Already masked values pass unchanged.
        assert!(mask(&mut m, &input(42, "****")).is_none());

        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        mask(&mut m, &snapshot(page));
        assert!(mask(&mut m, &input(10, "typed")).is_some());
        assert!(mask(&mut m, &input(77, "typed")).is_some());
    }

    #[test]
    fn echoes_of_typed_values_are_masked_on_any_node() {
        let page = r#"{"type":2,"tagName":"input","attributes":{},"childNodes":[],"id":10},
            {"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":" Zhang San\n","id":21}],"id":20},
            {"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"Zhang Sanfeng","id":23}],"id":22}"#;
        let mut a = RoomMask::new(MaskPolicy::Inputs, KEY);
        assert!(mask(&mut a, &snapshot(page)).is_none(), "nothing typed yet");
        let out = mask(&mut a, &input(10, "Zhang San ")).expect("masked");
        assert_eq!(text_of(&out, "/data/text"), "**********");
        mask(&mut a, &input(10, "Z"));
        let hashes = a.take_new_typed();
        assert_eq!(hashes.len(), 1, "trimmed, at least 2 chars");
        assert!(a.take_new_typed().is_empty());

        // The same node: the next page echoes it.
        let s = mask(&mut a, &snapshot(page)).expect("echo masked");
        let body = "/data/node/childNodes/0/childNodes/0/childNodes";
        assert_eq!(
            text_of(&s, &format!("{body}/1/childNodes/0/textContent")),
            " ***** ***\n"
        );
        assert_eq!(
            text_of(&s, &format!("{body}/2/childNodes/0/textContent")),
            "Zhang Sanfeng"
        );
        let out = mask(
            &mut a,
            &mutation(r#"{"id":23,"value":"Zhang San"}"#, "", "", ""),
        )
        .expect("echo");
        assert_eq!(text_of(&out, "/data/texts/0/value"), "***** ***");

        // Another node, given the stored hashes.
        let mut b = RoomMask::new(MaskPolicy::InputsText, KEY);
        b.add_typed(hashes.iter().copied());
        assert!(mask(&mut b, &snapshot(page)).is_some());
        assert!(b.take_new_typed().is_empty(), "added hashes are not new");
        // Not under passwords, and not with another key.
        let mut c = RoomMask::new(MaskPolicy::Passwords, KEY);
        c.add_typed(hashes.iter().copied());
        assert!(mask(&mut c, &snapshot(page)).is_none());
        let mut d = RoomMask::new(MaskPolicy::Inputs, [8; 32]);
        d.add_typed(hashes);
        assert!(mask(&mut d, &snapshot(page)).is_none());
    }

    #[test]
    fn typed_values_are_capped() {
        let mut m = RoomMask::new(MaskPolicy::Inputs, KEY);
        m.add_typed(0..10_000);
        assert_eq!(m.typed.len(), MAX_TYPED_VALUES);
        assert!(m.typed.contains(&9_999) && !m.typed.contains(&0));
        for i in 0..5000 {
            mask(&mut m, &input(1, &format!("value {i}")));
        }
        assert_eq!(m.take_new_typed().len(), MAX_TYPED_VALUES);
        assert_eq!(m.typed.len(), MAX_TYPED_VALUES);
    }

    #[test]
    fn observed_state_gives_the_same_decisions() {
        let key_events = [snapshot(MASK_PAGE), snapshot(BLOCK_PAGE)];
        for first in key_events {
            let mut later = block_mutations();
            later.push(mutation(
                r#"{"id":5,"value":"New Secret"},{"id":7,"value":"x y"},{"id":9,"value":"z"}"#,
                "",
                "",
                r#"{"parentId":6,"nextId":null,"node":{"type":3,"textContent":"added","id":30}},
                   {"parentId":4,"nextId":null,"node":{"type":3,"textContent":"added","id":31}}"#,
            ));
            later.push(mutation(
                r#"{"id":30,"value":"a b"},{"id":31,"value":"c d"}"#,
                "",
                "",
                "",
            ));
            for policy in MaskPolicy::ALL {
                let mut a = RoomMask::new(policy, KEY);
                let stored = a
                    .mask(&raw(&first))
                    .expect("masks")
                    .unwrap_or_else(|| raw(&first));
                let mut b = RoomMask::new(policy, KEY);
                b.observe(&stored);
                for ev in &later {
                    let x = a.mask(&raw(ev)).expect("masks");
                    let y = b.mask(&raw(ev)).expect("masks");
                    assert_eq!(
                        x.as_ref().map(|r| r.get()),
                        y.as_ref().map(|r| r.get()),
                        "{policy}: {ev}"
                    );
                }
            }
        }
    }

    #[test]
    fn observed_loan_apply_gives_the_same_decisions() {
        let events = fixture("loan-apply.json");
        for policy in MaskPolicy::ALL {
            for cut in [4, 100, 300, 365] {
                let mut a = RoomMask::new(policy, KEY);
                let mut b = RoomMask::new(policy, KEY);
                for e in &events[..cut] {
                    let stored = a.mask(e).expect("masks");
                    b.observe(stored.as_deref().unwrap_or(e));
                }
                b.add_typed(a.take_new_typed());
                for (i, e) in events[cut..].iter().enumerate() {
                    let x = a.mask(e).expect("masks");
                    let y = b.mask(e).expect("masks");
                    assert_eq!(
                        x.as_ref().map(|r| r.get()),
                        y.as_ref().map(|r| r.get()),
                        "{policy}, cut {cut}, event {}",
                        cut + i
                    );
                }
            }
        }
    }

    #[test]
    fn past_the_id_cap_unknown_ids_are_masked() {
        let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
        m.id_cap = 2;
        mask(&mut m, &snapshot(MASK_PAGE));
        assert!(m.overflow);
        let out = mask(
            &mut m,
            &mutation(r#"{"id":1234,"value":"who knows"}"#, "", "", ""),
        )
        .expect("masked");
        assert_eq!(text_of(&out, "/data/texts/0/value"), "*** *****");
        let out = mask(
            &mut m,
            &mutation(
                "",
                "",
                "",
                r#"{"parentId":999,"nextId":null,"node":{"type":3,"textContent":"what","id":50}}"#,
            ),
        )
        .expect("masked");
        assert_eq!(text_of(&out, "/data/adds/0/node/textContent"), "****");
        // A new page starts over.
        mask(&mut m, &snapshot(r#"{"type":3,"textContent":"x","id":4}"#));
        assert!(!m.overflow);
        assert!(mask(
            &mut m,
            &mutation(r#"{"id":1234,"value":"free"}"#, "", "", "")
        )
        .is_none());
    }

    #[test]
    fn state_stays_small_and_is_reset_by_a_snapshot() {
        let events = fixture("big-catalog.json");
        let mut m = RoomMask::new(MaskPolicy::InputsText, KEY);
        for e in &events {
            m.mask(e).expect("masks");
        }
        assert!(
            m.nodes.len() < 100,
            "only ids that matter: {}",
            m.nodes.len()
        );
        assert!(m.state_bytes() < 64 * 1024, "{}", m.state_bytes());
    }

    #[test]
    fn policy_names() {
        for p in MaskPolicy::ALL {
            assert_eq!(MaskPolicy::parse(p.as_str()), Some(p));
            assert_eq!(p.to_string().parse::<MaskPolicy>(), Ok(p));
        }
        assert_eq!(
            MaskPolicy::parse("Inputs+Text"),
            Some(MaskPolicy::InputsText)
        );
        assert_eq!(MaskPolicy::parse("all"), None);
        assert!("text".parse::<MaskPolicy>().is_err());
        assert_eq!(MaskPolicy::default(), MaskPolicy::Passwords);
    }

    #[test]
    fn which_events_may_need_masking() {
        for p in [
            MaskPolicy::Passwords,
            MaskPolicy::Inputs,
            MaskPolicy::InputsText,
        ] {
            assert!(may_need_masking(p, 2, None));
            assert!(may_need_masking(p, 3, Some(0)));
            assert!(may_need_masking(p, 3, Some(5)));
            assert!(!may_need_masking(p, 3, Some(1)));
            assert!(!may_need_masking(p, 3, None));
            assert!(!may_need_masking(p, 4, None));
        }
        assert!(!may_need_masking(MaskPolicy::None, 2, None));
        assert!(!may_need_masking(MaskPolicy::None, 3, Some(5)));
    }

    /// Rough throughput: `cargo test --release -p assist-relay --lib mask::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn throughput() {
        for name in ["big-catalog.json", "loan-apply.json"] {
            let events = fixture(name);
            let bytes: usize = events.iter().map(|e| e.get().len()).sum();
            for policy in [
                MaskPolicy::Passwords,
                MaskPolicy::Inputs,
                MaskPolicy::InputsText,
            ] {
                let rounds = if bytes > 1 << 20 { 5 } else { 200 };
                let start = std::time::Instant::now();
                for _ in 0..rounds {
                    let mut m = RoomMask::new(policy, KEY);
                    for e in &events {
                        let _ = m.mask(e);
                    }
                }
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{name} {policy}: {:.0} MB/s",
                    (bytes * rounds) as f64 / secs / 1e6
                );
            }
        }
    }
}
