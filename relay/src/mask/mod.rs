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
//! Events are parsed once into a [`serde_json::Value`] (in `json`) and written back, when
//! changed, by serde_json (object keys in sorted order), through serde_stacker, which grows the
//! stack on demand: a deep DOM exceeds serde_json's default 128 levels. Nesting deeper than
//! [`MAX_NESTING`] is refused before parsing, and deep values are dropped without recursion.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use json::{drop_deep, parse, write};

/// Most node ids a [`RoomMask`] remembers per page; past this it fails closed.
pub const MAX_TRACKED_IDS: usize = 200_000;
/// Most typed-value hashes a [`RoomMask`] remembers (oldest forgotten first).
pub const MAX_TYPED_VALUES: usize = 4096;
/// Deepest JSON nesting accepted (about half as many DOM levels).
pub const MAX_NESTING: usize = 8192;

/// Masking policy of a room. Wire/flag strings: "none", "passwords", "inputs", "inputs+text"
/// (from strum's derive; `ALL` in declaration order).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum MaskPolicy {
    /// Nothing is masked.
    None,
    /// Password inputs, `rr-block` elements.
    Passwords,
    /// Every input value, echoes of typed values, `rr-block` elements (the default: card and ID
    /// numbers are as secret as passwords).
    #[default]
    Inputs,
    /// As `Inputs`, plus the text of `rr-mask` subtrees.
    #[strum(serialize = "inputs+text")]
    InputsText,
}

impl MaskPolicy {
    /// Every policy, from least to most masking.
    pub const ALL: [MaskPolicy; <MaskPolicy as strum::EnumCount>::COUNT] = {
        let v = <MaskPolicy as strum::VariantArray>::VARIANTS;
        [v[0], v[1], v[2], v[3]]
    };

    /// The wire/flag name.
    pub fn as_str(self) -> &'static str {
        self.into()
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
    /// The class names that mark blocked, masked and ignored elements.
    classes: Arc<MaskClasses>,
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
            .and_then(int)
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
                match data.get("source").and_then(int) {
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
            let id = map.get("id").and_then(int);
            if let (Some(b), Some(next)) = (open_block, id) {
                self.add_range(b, next);
                open_block = None;
            }
            let child_ctx = match map.get("type").and_then(int) {
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
        let tag = map.get("tagName").map(js_string).unwrap_or_default();
        let attrs = map.get("attributes").and_then(Value::as_object);
        let (block, mask, ignore) = attrs
            .and_then(|a| attr(a, "class"))
            .map_or((false, false, false), |c| self.classes.flags(&js_string(c)));
        let mut kind = element_kind(
            &tag,
            attrs.and_then(|a| attr(a, "type")),
            attrs.is_some_and(|a| attr(a, "value").is_some()),
        );
        if ignore && self.policy.all_inputs() && !is_value_input(kind) {
            // `rr-ignore`: the recorder does not track its input; its value counts as typed.
            kind = K_TEXT;
        }
        let child_masked = ctx.masked || (mask && self.policy.text());
        let mut bits = kind;
        if child_masked {
            bits |= F_MASKED;
        }
        if block {
            bits |= F_BLOCKED;
        }
        if is_value_input(kind) && self.value_masked(kind, bits) {
            if let Some(a) = map.get_mut("attributes").and_then(|a| a.as_object_mut()) {
                *changed |= mask_values(a);
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
            let Some(id) = r.get("id").and_then(int) else {
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
            .map(|a| a.get("parentId").and_then(int))
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
            let Some(id) = t.get("id").and_then(int) else {
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
            let Some(id) = a.get("id").and_then(int) else {
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
            if let Some(t) = attr(attrs, "type") {
                let kind = flags & KIND;
                let to = input_type_kind(Some(&js_string(t)));
                let new_kind = match kind {
                    K_TEXT | K_PASSWORD | K_CHECK | K_BUTTON => to,
                    0 if to == K_PASSWORD => K_PASSWORD,
                    _ => kind,
                };
                next = (next & !KIND) | new_kind;
            }
            if let Some(class) = attr(attrs, "class") {
                let (block, mask, ignore) = self.classes.flags(&js_string(class));
                if block {
                    next |= F_BLOCKED;
                }
                if ignore && self.policy.all_inputs() && !is_value_input(next & KIND) {
                    next = (next & !KIND) | K_TEXT;
                }
                if mask && self.policy.text() {
                    next |= F_MASKED;
                }
            }
            if next != flags {
                self.set_node(id, next & !F_VISIBLE, false);
            }
            if attr(attrs, "value").is_some() && self.value_masked(next & KIND, next) {
                *changed |= mask_values(attrs);
            }
            true
        });
    }

    /// An Input event (`data` of an IncrementalSnapshot with source 5).
    fn input(&mut self, data: &mut Map<String, Value>) -> bool {
        let flags = data.get("id").and_then(int).map_or(0, |id| self.flags(id));
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

/// The class names a page marks elements with. rrweb's defaults (`rr-block`, `rr-mask`,
/// `rr-ignore`) always count; a deployment adds its pages' own (`--mask-block-class`,
/// `--mask-text-class`, `--mask-ignore-class`), for recorders configured with other names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskClasses {
    /// Extra classes that block an element like `rr-block`.
    pub block: Vec<String>,
    /// Extra classes that mask an element's text like `rr-mask`.
    pub mask: Vec<String>,
    /// Extra classes that mark an element like `rr-ignore`.
    pub ignore: Vec<String>,
}

impl MaskClasses {
    /// Whether a `class` attribute holds a block, a mask and an ignore class.
    fn flags(&self, class: &str) -> (bool, bool, bool) {
        let mut flags = (false, false, false);
        let has = |extra: &[String], token: &str| extra.iter().any(|c| c == token);
        for token in class.split_ascii_whitespace() {
            flags.0 |= token == "rr-block" || has(&self.block, token);
            flags.1 |= token == "rr-mask" || has(&self.mask, token);
            flags.2 |= token == "rr-ignore" || has(&self.ignore, token);
        }
        flags
    }
}

/// An attribute by its name, any ASCII case: rrweb's replayer sets attributes with
/// `setAttribute`, which lowercases the name in an HTML document (`VALUE` is `value`).
fn attr<'a>(attrs: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    attrs.get(name).or_else(|| {
        attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Masks every `value` attribute, in any ASCII case; whether one changed.
fn mask_values(attrs: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, v) in attrs.iter_mut() {
        if k.eq_ignore_ascii_case("value") {
            changed |= mask_value(v, Style::Input);
        }
    }
    changed
}

/// The string JavaScript makes of a value where it wants one (`createElement`, `setAttribute`):
/// an array becomes its items joined by commas, so `["input"]` is the tag `input` and
/// `["rr-block"]` the class `rr-block`. Numbers and objects can spell no tag, type or class the
/// masker looks for, and read as empty.
fn js_string(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Null => Cow::Borrowed("null"),
        Value::Array(items) => {
            let mut out = String::new();
            // Iterative: depth is bounded by the nesting limit, but not by the stack.
            let mut stack: Vec<(&[Value], usize)> = vec![(items, 0)];
            while let Some((items, i)) = stack.pop() {
                let Some(item) = items.get(i) else { continue };
                stack.push((items, i + 1));
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Array(inner) => stack.push((inner, 0)),
                    Value::Null => {}
                    other => out.push_str(&js_string(other)),
                }
            }
            Cow::Owned(out)
        }
        Value::Number(_) | Value::Object(_) => Cow::Borrowed(""),
    }
}

/// A JSON number as the integer JavaScript reads: there `5`, `5.0`, `5e0` and `0.5e1` are the
/// same number (and `-0` equals `0`), so rrweb's replayer takes each for node id 5 or node
/// type 5. `None` for anything else (strings, fractions, negatives, past 2^53).
fn int(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
}

fn element_kind(tag: &str, input_type: Option<&Value>, has_value: bool) -> u8 {
    if tag.eq_ignore_ascii_case("input") {
        input_type_kind(input_type.map(js_string).as_deref())
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
                if let Some(id) = map.get("id").and_then(int) {
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

mod json;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
