//! Input masking in incremental events: Mutations (removes, adds, texts, attributes, in the
//! order rrweb's replayer applies them) and Input events, decided from the ids the state knows.
//!
//! Added subtrees go through the same walk as a FullSnapshot (`walk`).

use super::dom::{
    input_type_kind, is_value_input, F_BLOCKED, F_DROPPED, F_MASKED, F_VISIBLE, KIND, K_AREA_TEXT,
    K_BUTTON, K_CHECK, K_PASSWORD, K_TEXT, K_TEXTAREA,
};
use super::json::{Doc, Edit, Kind};
use super::policy::{MaskError, MaskPolicy};
use super::state::RoomMask;
use super::text::{mask_value, mask_values, Style};
use super::walk::Ctx;

/// The first item and the end of an array token's items (none for other tokens).
fn span(doc: &Doc<'_>, arr: Option<usize>) -> (usize, usize) {
    match arr {
        Some(a) if doc.kind(a) == Kind::Arr => (a + 1, doc.next(a)),
        _ => (0, 0),
    }
}

impl RoomMask {
    /// One Mutation (`data` of an IncrementalSnapshot with source 0), in the order rrweb's
    /// replayer applies it: removes, adds, texts, attributes.
    pub(super) fn mutation(&mut self, doc: &mut Doc<'_>, data: usize) -> Result<bool, MaskError> {
        let mut lists = [None; 4];
        let names = ["removes", "adds", "texts", "attributes"];
        for (k, v) in doc.pairs(data) {
            if let Some(n) = names.iter().position(|name| doc.key_is(k, name)) {
                lists[n] = Some(v);
            }
        }
        for (name, list) in names.iter().zip(lists) {
            if list.is_some_and(|l| !matches!(doc.kind(l), Kind::Null | Kind::Arr)) {
                return Err(MaskError::Shape(format!("Mutation {name} is not an array")));
            }
        }
        let [removes, adds, texts, attributes] = lists;
        let mut changed = false;
        self.removes(doc, span(doc, removes), &mut changed);
        let adds: Vec<usize> = adds.map_or_else(Vec::new, |a| doc.items(a).collect());
        self.adds(doc, &adds, &mut changed);
        self.texts(doc, span(doc, texts), &mut changed);
        self.attributes(doc, span(doc, attributes), &mut changed);
        Ok(changed)
    }

    /// Forgets removed ids; removes of dropped nodes (unknown to viewers) are left out.
    fn removes(&mut self, doc: &mut Doc<'_>, (mut at, end): (usize, usize), changed: &mut bool) {
        while at < end {
            let r = at;
            at = doc.next(r);
            let Some(id) = doc.int_in(doc.get(r, "id")) else {
                continue;
            };
            if self.flags(id) & F_DROPPED != 0 {
                // Still unknown to viewers: later changes to it stay dropped.
                *changed = true;
                doc.edit(r, Edit::Drop);
            } else {
                self.nodes.remove(&id);
            }
        }
    }

    fn adds(&mut self, doc: &mut Doc<'_>, adds: &[usize], changed: &mut bool) {
        if adds.is_empty() {
            return;
        }
        let parents: Vec<Option<u64>> = adds
            .iter()
            .map(|&a| doc.int_in(doc.get(a, "parentId")))
            .collect();
        let order = doc.add_order(adds, &parents);
        let mut keep = vec![true; adds.len()];
        for i in order {
            let Some(parent) = parents[i] else {
                keep[i] = false;
                continue;
            };
            let Some(node) = doc
                .get(adds[i], "node")
                .filter(|&n| doc.kind(n) == Kind::Obj)
            else {
                keep[i] = false;
                continue;
            };
            let pf = self.flags(parent);
            if pf & (F_BLOCKED | F_DROPPED) != 0 {
                self.drop_subtree(doc, node, false);
                keep[i] = false;
                continue;
            }
            let ctx = Ctx {
                masked: pf & F_MASKED != 0,
                textarea: pf & KIND == K_TEXTAREA,
                force: self.overflow && pf == 0,
            };
            self.walk(doc, node, ctx, false, changed);
        }
        for (&a, keep) in adds.iter().zip(keep) {
            if !keep {
                *changed = true;
                doc.edit(a, Edit::Drop);
            }
        }
    }

    fn texts(&mut self, doc: &mut Doc<'_>, (mut at, end): (usize, usize), changed: &mut bool) {
        let all_inputs = self.policy.all_inputs();
        while at < end {
            let t = at;
            at = doc.next(t);
            let Some(id) = doc.int_in(doc.get(t, "id")) else {
                *changed = true;
                doc.edit(t, Edit::Drop);
                continue;
            };
            let flags = self.flags(id);
            if flags & F_DROPPED != 0 {
                *changed = true;
                doc.edit(t, Edit::Drop);
                continue;
            }
            let value = doc.get(t, "value");
            let style = if flags & KIND == K_AREA_TEXT && all_inputs {
                Some(Style::Input)
            } else if flags & F_MASKED != 0
                || (self.overflow && flags == 0)
                || (self.may_echo()
                    && value
                        .filter(|&v| doc.kind(v) == Kind::Str)
                        .is_some_and(|v| self.is_echo(&doc.str(v))))
            {
                Some(Style::Text)
            } else {
                None
            };
            if let (Some(style), Some(v)) = (style, value) {
                *changed |= mask_value(doc, v, style);
            }
        }
    }

    fn attributes(&mut self, doc: &mut Doc<'_>, (mut at, end): (usize, usize), changed: &mut bool) {
        while at < end {
            let a = at;
            at = doc.next(a);
            let Some(id) = doc.int_in(doc.get(a, "id")) else {
                *changed = true;
                doc.edit(a, Edit::Drop);
                continue;
            };
            let flags = self.flags(id);
            if flags & F_DROPPED != 0 {
                *changed = true;
                doc.edit(a, Edit::Drop);
                continue;
            }
            let Some(attrs) = doc
                .get(a, "attributes")
                .filter(|&v| doc.kind(v) == Kind::Obj)
            else {
                continue;
            };
            let mut next = flags;
            if let Some(t) = doc.attr(attrs, "type") {
                let kind = flags & KIND;
                let to = input_type_kind(Some(&doc.js_string(t)));
                let new_kind = match kind {
                    K_TEXT | K_PASSWORD | K_CHECK | K_BUTTON => to,
                    0 if to == K_PASSWORD => K_PASSWORD,
                    _ => kind,
                };
                next = (next & !KIND) | new_kind;
            }
            if let Some(class) = doc.attr(attrs, "class") {
                let (block, mask, ignore) = self.classes.flags(&doc.js_string(class));
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
            if doc.attr(attrs, "value").is_some() && self.value_masked(next & KIND, next) {
                *changed |= mask_values(doc, attrs);
            }
        }
    }

    /// An Input event (`data` of an IncrementalSnapshot with source 5).
    pub(super) fn input(&mut self, doc: &mut Doc<'_>, data: usize) -> bool {
        let flags = doc
            .int_in(doc.get(data, "id"))
            .map_or(0, |id| self.flags(id));
        let kind = flags & KIND;
        let mask = match self.policy {
            MaskPolicy::None => false,
            MaskPolicy::Passwords => {
                kind == 0 || kind == K_PASSWORD || flags & (F_BLOCKED | F_DROPPED) != 0
            }
            MaskPolicy::Inputs | MaskPolicy::InputsText => true,
        };
        let Some(text) = doc.get(data, "text") else {
            return false;
        };
        if doc.kind(text) == Kind::Str
            && !self.observing
            && self.policy.all_inputs()
            && kind != K_CHECK
        {
            self.remember_typed(&doc.str(text));
        }
        mask && mask_value(doc, text, Style::Input)
    }
}
