//! Input masking in incremental events: Mutations (removes, adds, texts, attributes, in the
//! order rrweb's replayer applies them) and Input events, decided from the ids the state knows.
//!
//! Added subtrees go through the same walk as a FullSnapshot (`walk`).

use serde_json::{Map, Value};

use super::dom::{
    add_order, attr, input_type_kind, int, is_value_input, js_string, F_BLOCKED, F_DROPPED,
    F_MASKED, F_VISIBLE, KIND, K_AREA_TEXT, K_BUTTON, K_CHECK, K_PASSWORD, K_TEXT, K_TEXTAREA,
};
use super::json::drop_deep;
use super::policy::{MaskError, MaskPolicy};
use super::state::RoomMask;
use super::text::{mask_value, mask_values, Style};
use super::walk::Ctx;

impl RoomMask {
    /// One Mutation (`data` of an IncrementalSnapshot with source 0), in the order rrweb's
    /// replayer applies it: removes, adds, texts, attributes.
    pub(super) fn mutation(&mut self, data: &mut Map<String, Value>) -> Result<bool, MaskError> {
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
    pub(super) fn removes(&mut self, removes: &mut Vec<Value>, changed: &mut bool) {
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

    pub(super) fn adds(&mut self, adds: &mut Vec<Value>, changed: &mut bool) {
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

    pub(super) fn texts(&mut self, texts: &mut Vec<Value>, changed: &mut bool) {
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

    pub(super) fn attributes(&mut self, attributes: &mut Vec<Value>, changed: &mut bool) {
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
    pub(super) fn input(&mut self, data: &mut Map<String, Value>) -> bool {
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
}
