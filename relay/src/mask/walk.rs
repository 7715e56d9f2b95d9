//! The event walk: a serialized node tree (a FullSnapshot's document, or one Mutation add) in
//! pre-order, masking input values and text in place and recording the ids that matter
//! (elements, texts, `rr-block`ed and dropped subtrees).
//!
//! Mutations and Input events are `mutation`; the state it records into is `state`.

use serde_json::{Map, Value};

use super::dom::{
    attr, collect_ids, element_kind, int, is_value_input, js_string, F_BLOCKED, F_DROPPED,
    F_MASKED, K_AREA_TEXT, K_TEXT, K_TEXTAREA,
};
use super::json::drop_deep;
use super::state::RoomMask;
use super::text::{mask_value, mask_values, Style};

/// Context of a node being walked, inherited from its parent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ctx {
    /// Inside an `rr-mask` subtree (only under `inputs+text`).
    pub(super) masked: bool,
    /// The parent is a `textarea`.
    pub(super) textarea: bool,
    /// The state overflowed and the parent is unknown: mask every text.
    pub(super) force: bool,
}

impl RoomMask {
    /// Walks a serialized node tree (a FullSnapshot's root when `snapshot`, else one Mutation add)
    /// in pre-order, masking in place and recording the ids that matter.
    pub(super) fn walk(&mut self, root: &mut Value, ctx: Ctx, snapshot: bool, changed: &mut bool) {
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
    pub(super) fn element(
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
    pub(super) fn leaf(
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
    pub(super) fn drop_subtree(&mut self, tree: &Value, snapshot: bool) {
        let mut ids = Vec::new();
        collect_ids(tree, &mut ids);
        for id in ids {
            self.set_node(id, F_DROPPED, snapshot);
        }
    }
}
