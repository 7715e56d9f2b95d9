//! The event walk: a serialized node tree (a FullSnapshot's document, or one Mutation add) in
//! pre-order, masking input values and text (as edits of the parsed event) and recording the
//! ids that matter (elements, texts, `rr-block`ed and dropped subtrees).
//!
//! Mutations and Input events are `mutation`; the state it records into is `state`.

use super::dom::{
    is_value_input, NodeFields, F_BLOCKED, F_DROPPED, F_MASKED, K_AREA_TEXT, K_TEXT, K_TEXTAREA,
};
use super::json::{Doc, Edit, Kind};
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
    /// in pre-order, masking and recording the ids that matter.
    pub(super) fn walk(
        &mut self,
        doc: &mut Doc<'_>,
        root: usize,
        ctx: Ctx,
        snapshot: bool,
        changed: &mut bool,
    ) {
        // The root, then a stack (allocated only for a root with children).
        let mut first = Some((root, ctx));
        let mut stack: Vec<(usize, Ctx)> = Vec::new();
        // A blocked element seen while observing a snapshot, waiting for the next node's id.
        let mut open_block: Option<u64> = None;
        while let Some((node, ctx)) = first.take().or_else(|| stack.pop()) {
            if doc.kind(node) != Kind::Obj {
                continue;
            }
            let f = doc.node_fields(node);
            let id = doc.int_in(f.id);
            if let (Some(b), Some(next)) = (open_block, id) {
                self.add_range(b, next);
                open_block = None;
            }
            let child_ctx = match doc.int_in(f.node_type) {
                Some(2) => self.element(doc, &f, id, ctx, snapshot, changed, &mut open_block),
                Some(t @ 3..=5) => {
                    self.leaf(doc, &f, t, id, ctx, snapshot, changed);
                    None
                }
                _ => {
                    if let Some(id) = id {
                        self.set_node(id, if ctx.masked { F_MASKED } else { 0 }, snapshot);
                    }
                    Some(ctx)
                }
            };
            if let (Some(cctx), Some(children)) = (child_ctx, f.child_nodes) {
                let base = stack.len();
                stack.extend(doc.items(children).map(|c| (c, cctx)));
                stack[base..].reverse();
            }
        }
    }

    /// An element node: masks its `value`, records it, drops the children of `rr-block`.
    /// Returns the context of its children, or `None` if they are gone.
    #[allow(clippy::too_many_arguments)]
    fn element(
        &mut self,
        doc: &mut Doc<'_>,
        f: &NodeFields,
        id: Option<u64>,
        ctx: Ctx,
        snapshot: bool,
        changed: &mut bool,
        open_block: &mut Option<u64>,
    ) -> Option<Ctx> {
        let attrs = f.attributes.filter(|&a| doc.kind(a) == Kind::Obj);
        let (block, mask, ignore) = attrs
            .and_then(|a| doc.attr(a, "class"))
            .map_or((false, false, false), |c| {
                self.classes.flags(&doc.js_string(c))
            });
        let mut kind = {
            let tag = f.tag_name.map(|t| doc.js_string(t)).unwrap_or_default();
            doc.element_kind(
                &tag,
                attrs.and_then(|a| doc.attr(a, "type")),
                attrs.is_some_and(|a| doc.attr(a, "value").is_some()),
            )
        };
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
            if let Some(a) = attrs {
                *changed |= mask_values(doc, a);
            }
        }
        if let Some(id) = id {
            self.set_node(id, bits, snapshot);
        }
        if block {
            if let Some(children) = f.child_nodes.filter(|&c| doc.kind(c) == Kind::Arr) {
                if doc.items(children).next().is_some() {
                    self.drop_subtree(doc, children, snapshot);
                    doc.edit(children, Edit::Empty);
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
    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &mut self,
        doc: &mut Doc<'_>,
        f: &NodeFields,
        node_type: u64,
        id: Option<u64>,
        ctx: Ctx,
        snapshot: bool,
        changed: &mut bool,
    ) {
        // Style text is CSS: rrweb never masks it, and masking it would break the page.
        if f.is_style.is_some_and(|s| doc.kind(s) == Kind::True) {
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
            && self.may_echo()
            && f.text_content
                .filter(|&t| doc.kind(t) == Kind::Str)
                .is_some_and(|t| self.is_echo(&doc.str(t)))
        {
            style = Some(Style::Text);
        }
        if let (Some(style), Some(v)) = (style, f.text_content) {
            *changed |= mask_value(doc, v, style);
        }
        if let Some(id) = id {
            self.set_node(id, bits, snapshot);
        }
    }

    /// Records every id of `tree` (a node or an array of nodes) as dropped.
    pub(super) fn drop_subtree(&mut self, doc: &Doc<'_>, tree: usize, snapshot: bool) {
        let mut ids = Vec::new();
        doc.collect_ids(tree, &mut ids);
        for id in ids {
            self.set_node(id, F_DROPPED, snapshot);
        }
    }
}
