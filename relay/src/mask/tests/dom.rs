//! Reading as the replayer reads: repeated keys, numbers, `rr-ignore`, attribute names in
//! any case, tags, types and classes as JavaScript strings.

use super::*;
use crate::mask::dom::js_string;

#[test]
fn repeated_keys_anywhere_are_refused() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    m.mask(&raw(&snapshot(
        r#"{"type":2,"tagName":"input","attributes":{"type":"password"},"childNodes":[],"id":10},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    )))
    .expect("masks");
    for event in [
        r#"{"type":3,"data":{"source":5,"id":10,"text":"secret","id":11}}"#,
        r#"{"type":3,"data":{"source":5,"id":11,"text":"a","text":"secret"}}"#,
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":11,"attributes":{"value":"a","value":"b"}}]}}"#,
        r#"{"type":3,"data":{"source":0,"adds":[{"parentId":1,"node":{"type":2,"type":3,"tagName":"input","attributes":{},"childNodes":[],"id":30}}]}}"#,
    ] {
        assert!(
            matches!(m.mask(&raw(event)), Err(MaskError::Json(_))),
            "{event}"
        );
    }
}

#[test]
fn numbers_are_read_as_javascript_reads_them() {
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    // A node `type` of 2.0 is an element; an id of 1e1 is node 10.
    let page = snapshot(
        r#"{"type":2.0,"tagName":"input","attributes":{"type":"password","value":"in-snapshot"},"childNodes":[],"id":1e1},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    );
    let out = m.mask(&raw(&page)).expect("masks").expect("changed");
    assert!(!out.get().contains("in-snapshot"), "{}", out.get());
    for event in [
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":10.0,"attributes":{"value":"secret"}}]}}"#,
        r#"{"type":3,"data":{"source":0,"attributes":[{"id":100e-1,"attributes":{"value":"secret"}}]}}"#,
        r#"{"type":3,"data":{"source":5,"id":10.000,"text":"secret"}}"#,
    ] {
        let out = mask(&mut m, event).expect("changed");
        assert!(!out.to_string().contains("secret"), "{event}: {out}");
    }
    // Node 11 is a text input: under `passwords` its value passes, whatever the spelling.
    assert!(mask(
        &mut m,
        r#"{"type":3,"data":{"source":5,"id":11.0,"text":"plain"}}"#
    )
    .is_none());
}

#[test]
fn rr_ignore_values_are_masked_under_inputs() {
    let body = r#"{"type":2,"tagName":"input","attributes":{"type":"button","class":"x rr-ignore","value":"label-secret"},"childNodes":[],"id":10},{"type":2,"tagName":"select","attributes":{},"childNodes":[{"type":2,"tagName":"option","attributes":{"class":"rr-ignore","value":"option-secret"},"childNodes":[],"id":12}],"id":11},{"type":2,"tagName":"input","attributes":{"type":"submit","value":"Send"},"childNodes":[],"id":13}"#;
    for policy in [MaskPolicy::Inputs, MaskPolicy::InputsText] {
        let mut m = RoomMask::new(policy, KEY);
        let out = mask(&mut m, &snapshot(body)).expect("changed").to_string();
        assert!(
            !out.contains("label-secret") && !out.contains("option-secret"),
            "{out}"
        );
        assert!(
            out.contains("Send"),
            "a plain button keeps its label: {out}"
        );
        // A class change to rr-ignore masks later value changes.
        let change = r#"{"type":3,"data":{"source":0,"attributes":[{"id":13,"attributes":{"class":"rr-ignore","value":"later-secret"}}]}}"#;
        let out = mask(&mut m, change).expect("changed").to_string();
        assert!(!out.contains("later-secret"), "{out}");
    }
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    assert!(
        mask(&mut m, &snapshot(body)).is_none(),
        "passwords leaves rr-ignore alone"
    );
}

#[test]
fn attribute_names_are_read_in_any_case() {
    // rrweb's replayer sets attributes with `setAttribute`, which lowercases their names.
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let page = snapshot(
        r#"{"type":2,"tagName":"INPUT","attributes":{"TYPE":"Password","Value":"in-snapshot","value":"too"},"childNodes":[],"id":10},{"type":2,"tagName":"input","attributes":{"type":"text"},"childNodes":[],"id":11}"#,
    );
    let out = mask(&mut m, &page).expect("changed").to_string();
    assert!(
        !out.contains("in-snapshot") && !out.contains("too"),
        "{out}"
    );
    let change = r#"{"type":3,"data":{"source":0,"attributes":[{"id":10,"attributes":{"VALUE":"later"}},{"id":11,"attributes":{"Type":"password"}},{"id":11,"attributes":{"vAlue":"on-11"}}]}}"#;
    let out = mask(&mut m, change).expect("changed").to_string();
    assert!(!out.contains("later") && !out.contains("on-11"), "{out}");
}

#[test]
fn tags_types_and_classes_are_read_as_javascript_strings() {
    // `createElement(["input"])` makes an input; `setAttribute("class", ["rr-block"])` blocks.
    assert_eq!(js_string(&value(r#"[["a","b"],"c",null,[]]"#)), "a,b,c,,");
    let mut m = RoomMask::new(MaskPolicy::Passwords, KEY);
    let page = snapshot(
        r#"{"type":2,"tagName":["input"],"attributes":{"type":["password"],"value":"in-snapshot"},"childNodes":[],"id":10},{"type":2,"tagName":"div","attributes":{"class":[["rr-block"]]},"childNodes":[{"type":3,"textContent":"blocked-text","id":12}],"id":11}"#,
    );
    let out = mask(&mut m, &page).expect("changed").to_string();
    assert!(
        !out.contains("in-snapshot") && !out.contains("blocked-text"),
        "{out}"
    );
}
