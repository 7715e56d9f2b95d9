//! Masking in the event walk: `rr-mask` text, `rr-block` subtrees and later changes inside
//! them, input values in snapshots and mutations, Input events, echoes of typed values.

use super::*;

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
