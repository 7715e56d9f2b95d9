//! Unit tests of native-page placeholders: the built-in template, escaping, dropped scripts
//! and handlers, the template language, report validation and template directories.

use super::template::{compile, expand};
use super::*;

fn page(id: &str, title: &str) -> NativePage {
    NativePage {
        page_id: id.into(),
        title: title.into(),
        template: None,
        fields: BTreeMap::new(),
    }
}

fn checkout() -> NativePage {
    let mut p = page("checkout", "Payment");
    p.fields.insert("amount".into(), "¥ 50,000".into());
    p.fields.insert("step".into(), "2 of 3".into());
    p
}

fn parse(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("valid JSON")
}

/// Every node of a serialized tree, in document order.
fn walk<'a>(n: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(n);
    if let Some(kids) = n["childNodes"].as_array() {
        for k in kids {
            walk(k, out);
        }
    }
}

fn nodes(full: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    walk(&full["data"]["node"], &mut out);
    out
}

fn texts(full: &Value) -> Vec<String> {
    nodes(full)
        .into_iter()
        .filter(|n| n["type"] == 3)
        .map(|n| n["textContent"].as_str().expect("text").to_owned())
        .collect()
}

fn tags(full: &Value) -> Vec<String> {
    nodes(full)
        .into_iter()
        .filter(|n| n["type"] == 2)
        .map(|n| n["tagName"].as_str().expect("tag").to_owned())
        .collect()
}

#[test]
fn default_template_renders() {
    let t = Templates::builtin();
    assert_eq!(t.names(), vec!["native-page".to_owned()]);
    let (meta, full) = t
        .render(&checkout(), 412, 915, 1_700_000_000_123)
        .expect("renders");
    let meta = parse(&meta);
    assert_eq!(
        meta,
        json!({"type": 4, "data": {"href": "native://checkout", "width": 412, "height": 915}, "timestamp": 1_700_000_000_123u64})
    );
    let full = parse(&full);
    assert_eq!(full["type"], 2);
    assert_eq!(full["timestamp"], 1_700_000_000_123u64);
    assert_eq!(full["data"]["initialOffset"], json!({"left": 0, "top": 0}));
    let root = &full["data"]["node"];
    assert_eq!(root["type"], 0);
    assert_eq!(root["id"], 1);
    assert_eq!(root["compatMode"], "CSS1Compat");
    assert_eq!(
        root["childNodes"][0],
        json!({"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2})
    );

    // Ids are 1..=n in document order.
    let all = nodes(&full);
    let ids: Vec<u64> = all.iter().map(|n| n["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());

    let texts = texts(&full);
    for want in [
        "Payment",
        "checkout",
        "amount",
        "¥ 50,000",
        "step",
        "2 of 3",
        "App screen",
    ] {
        assert!(texts.iter().any(|t| t == want), "no text node {want:?}");
    }
    assert!(texts.iter().any(|t| t.contains("native screen of the app")));
    let tags = tags(&full);
    assert!(!tags.iter().any(|t| t == "script"));
    for want in [
        "html", "head", "style", "body", "h1", "dl", "dt", "dd", "svg",
    ] {
        assert!(tags.iter().any(|t| t == want), "no <{want}>");
    }
    // Fields are listed in key order.
    let dts: Vec<&str> = all
        .iter()
        .filter(|n| n["tagName"] == "dt")
        .map(|n| n["childNodes"][0]["textContent"].as_str().expect("dt text"))
        .collect();
    assert_eq!(dts, ["amount", "step"]);
    // Style text is flagged; svg elements are flagged.
    let style = all.iter().find(|n| n["tagName"] == "style").expect("style");
    assert_eq!(style["childNodes"][0]["isStyle"], true);
    for n in all
        .iter()
        .filter(|n| n["tagName"] == "svg" || n["tagName"] == "rect")
    {
        assert_eq!(n["isSVG"], true);
    }
    let h1 = all.iter().find(|n| n["tagName"] == "h1").expect("h1");
    assert!(h1.get("isSVG").is_none());
}

#[test]
fn builtin_template_is_small_and_self_contained() {
    assert!(BUILTIN.len() < 3 * 1024, "{} bytes", BUILTIN.len());
    let lower = BUILTIN.to_ascii_lowercase();
    for bad in ["<script", "http:", "https:", "<link", "url(", "@import"] {
        assert!(!lower.contains(bad), "built-in template contains {bad}");
    }
}

#[test]
fn defaults_when_no_title_or_fields() {
    let (_, full) = Templates::builtin()
        .render(&page("home", ""), 390, 844, 1)
        .expect("renders");
    let full = parse(&full);
    let all = nodes(&full);
    let h1 = all.iter().find(|n| n["tagName"] == "h1").expect("h1");
    assert_eq!(h1["childNodes"], json!([]));
    let dl = all.iter().find(|n| n["tagName"] == "dl").expect("dl");
    assert_eq!(dl["childNodes"], json!([]));
}

#[test]
fn values_are_escaped() {
    let evil = "<img src=x onerror=alert(1)>";
    let mut p = page("checkout", evil);
    p.fields
        .insert("x".into(), "</dd><script>alert(1)</script>".into());
    p.fields.insert("y".into(), "\"' & <b>".into());
    let (_, full) = Templates::builtin()
        .render(&p, 390, 844, 1)
        .expect("renders");
    let full = parse(&full);
    let tags = tags(&full);
    assert!(!tags.iter().any(|t| t == "img" || t == "script" || t == "b"));
    let texts = texts(&full);
    assert!(texts.iter().any(|t| t == evil), "title as text: {texts:?}");
    assert!(texts.iter().any(|t| t == "</dd><script>alert(1)</script>"));
    assert!(texts.iter().any(|t| t == "\"' & <b>"));
    // The <title> also shows the raw text, decoded once.
    let all = nodes(&full);
    let title = all.iter().find(|n| n["tagName"] == "title").expect("title");
    assert_eq!(title["childNodes"][0]["textContent"], evil);

    // In attributes too.
    let t = Templates {
        by_name: BTreeMap::from([(
            "native-page".to_owned(),
            compile(r#"<p data-t="{{title}}" data-u='{{title}}'>x</p>"#).expect("compiles"),
        )]),
    };
    let (_, full) = t
        .render(&page("a", "\"' onclick=\"x"), 1, 1, 1)
        .expect("renders");
    let full = parse(&full);
    let p = nodes(&full)
        .into_iter()
        .find(|n| n["tagName"] == "p")
        .expect("p");
    assert_eq!(
        p["attributes"],
        json!({"data-t": "\"' onclick=\"x", "data-u": "\"' onclick=\"x"})
    );
}

#[test]
fn scripts_and_handlers_are_dropped() {
    let t = Templates {
        by_name: BTreeMap::from([(
            "native-page".to_owned(),
            compile(
                "<html><head><script>alert(1)</script></head>\
                 <body onload=\"x()\"><!-- c --><p class=a ONCLICK=y>{{title}}<script src=z></script></p></body></html>",
            )
            .expect("compiles"),
        )]),
    };
    let (_, full) = t.render(&page("a", "T"), 1, 1, 1).expect("renders");
    let full = parse(&full);
    let all = nodes(&full);
    assert!(!tags(&full).iter().any(|t| t == "script"));
    let ids: Vec<u64> = all.iter().map(|n| n["id"].as_u64().expect("id")).collect();
    assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());
    let body = all.iter().find(|n| n["tagName"] == "body").expect("body");
    assert_eq!(body["attributes"], json!({}));
    assert_eq!(body["childNodes"][0]["type"], 5);
    assert_eq!(body["childNodes"][0]["textContent"], " c ");
    let p = all.iter().find(|n| n["tagName"] == "p").expect("p");
    assert_eq!(p["attributes"], json!({"class": "a"}));
    assert_eq!(p["childNodes"].as_array().expect("kids").len(), 1);
    // No doctype: quirks mode.
    assert_eq!(full["data"]["node"]["compatMode"], "BackCompat");
}

#[test]
fn template_language() {
    let segs = compile(
        "a{{ title }}b{{page_id}}{{field.k}}{{field.none}}[{{#fields}}{{name}}={{value}};{{/fields}}] x{{y {{ }} a{{b:c}}",
    );
    assert!(segs.is_err(), "b:c is placeholder-like but unknown");
    let segs =
        compile("a{{ title }}b{{page_id}}{{field.k}}{{field.none}}[{{#fields}}{{name}}={{value}};{{/fields}}] x{{y {{ }} @media x{{a{color:red}}}")
            .expect("compiles");
    let mut p = page("id", "T&");
    p.fields.insert("k".into(), "v".into());
    p.fields.insert("j".into(), "<".into());
    let mut out = String::new();
    expand(&segs, &p, None, &mut out);
    assert_eq!(
        out,
        "aT&amp;bidv[j=&lt;;k=v;] x{{y {{ }} @media x{{a{color:red}}}"
    );

    for bad in [
        "{{titel}}",
        "{{name}}",
        "{{#fields}}",
        "{{/fields}}",
        "{{#fields}}{{#fields}}{{/fields}}{{/fields}}",
        "{{field.}}",
        "{{field.a.b}}",
    ] {
        assert!(compile(bad).is_err(), "{bad} compiles");
    }
}

#[test]
fn validation() {
    assert!(checkout().validate().is_ok());
    let long = "x".repeat(129);
    for id in ["", "a b", "a/b", "é", long.as_str()] {
        assert!(page(id, "").validate().is_err(), "page_id {id:?}");
    }
    assert!(page(&"x".repeat(128), "").validate().is_ok());
    assert!(page("a.b:c_d-e", "").validate().is_ok());
    assert!(page("a", &"t".repeat(256)).validate().is_ok());
    assert!(page("a", &"t".repeat(257)).validate().is_err());

    let mut p = page("a", "");
    p.template = Some("../etc".into());
    assert!(p.validate().is_err());

    for key in ["", "a.b", "a b", &"k".repeat(65)] {
        let mut p = page("a", "");
        p.fields.insert(key.to_owned(), "v".into());
        assert!(p.validate().is_err(), "key {key:?}");
    }
    let mut p = page("a", "");
    p.fields.insert("k".into(), "v".repeat(1025));
    assert!(p.validate().is_err());
    p.fields.insert("k".into(), "v".repeat(1024));
    assert!(p.validate().is_ok());
    let mut p = page("a", "");
    for i in 0..17 {
        p.fields.insert(format!("k{i}"), "v".into());
    }
    assert!(p.validate().is_err());

    // render validates too.
    assert!(matches!(
        Templates::builtin().render(&page("a b", ""), 1, 1, 1),
        Err(NativeError::Invalid(_))
    ));
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "assist-relay-native-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn template_dir() {
    let dir = temp_dir("ok");
    std::fs::write(
        dir.join("custom.html"),
        "<!doctype html><p id=c>{{title}} / {{field.order}}</p>",
    )
    .expect("write");
    std::fs::write(
        dir.join("native-page.html"),
        "<!doctype html><h2>Overridden {{page_id}}</h2>",
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "{{bogus}}").expect("write");
    std::fs::create_dir(dir.join("sub.html")).expect("mkdir");

    let t = Templates::load(Some(&dir)).expect("loads");
    assert_eq!(t.names(), ["custom", "native-page"]);

    let (meta, full) = t
        .render(&page("home", "Home"), 390, 844, 5)
        .expect("renders");
    assert_eq!(parse(&meta)["data"]["href"], "native://home");
    let full = parse(&full);
    assert!(texts(&full).iter().any(|t| t == "Overridden home"));

    let mut p = page("orders", "Orders");
    p.template = Some("custom".into());
    p.fields.insert("order".into(), "A-1".into());
    let (_, full) = t.render(&p, 390, 844, 5).expect("renders");
    let full = parse(&full);
    assert!(texts(&full).iter().any(|t| t == "Orders / A-1"));

    p.template = Some("nope".into());
    assert!(matches!(
        t.render(&p, 390, 844, 5),
        Err(NativeError::UnknownTemplate(n)) if n == "nope"
    ));
    assert!(matches!(
        Templates::builtin().render(&p, 390, 844, 5),
        Err(NativeError::UnknownTemplate(_))
    ));

    // No directory: the built-in only.
    assert_eq!(
        Templates::load(None).expect("loads").names(),
        ["native-page"]
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn template_dir_errors() {
    let missing = temp_dir("missing").join("nope");
    assert!(matches!(
        Templates::load(Some(&missing)),
        Err(NativeError::Io(_))
    ));

    let dir = temp_dir("bad");
    std::fs::write(dir.join("broken.html"), "<p>{{#fields}}</p>").expect("write");
    assert!(matches!(
        Templates::load(Some(&dir)),
        Err(NativeError::Template(m)) if m.contains("broken.html")
    ));
    std::fs::remove_file(dir.join("broken.html")).expect("rm");

    std::fs::write(dir.join("bad name.html"), "<p>x</p>").expect("write");
    assert!(matches!(
        Templates::load(Some(&dir)),
        Err(NativeError::Template(_))
    ));
    std::fs::remove_file(dir.join("bad name.html")).expect("rm");

    let deep = "<div>".repeat(MAX_DEPTH + 5);
    std::fs::write(dir.join("deep.html"), deep).expect("write");
    assert!(matches!(
        Templates::load(Some(&dir)),
        Err(NativeError::Template(m)) if m.contains("deeper")
    ));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn full_snapshot_round_trips() {
    let mut p = checkout();
    p.title = "Zahlung \u{1F4B3} \"quoted\" \\ \u{7} <tag>".into();
    let (meta, full) = Templates::builtin()
        .render(&p, 390, 844, 42)
        .expect("renders");
    for raw in [&meta, &full] {
        let v: Value = serde_json::from_str(raw.get()).expect("parses");
        let again = serde_json::to_string(&v).expect("serializes");
        let back: Value = serde_json::from_str(&again).expect("parses again");
        assert_eq!(v, back);
        let boxed: Box<RawValue> = serde_json::from_str(raw.get()).expect("raw");
        assert_eq!(boxed.get(), raw.get());
    }
    assert!(texts(&parse(&full)).iter().any(|t| t == &p.title));

    // NativePage itself round-trips, with defaults for the optional parts.
    let json = serde_json::to_string(&p).expect("serializes");
    assert!(!json.contains("template"));
    let back: NativePage = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, p);
    let min: NativePage = serde_json::from_str(r#"{"page_id":"x"}"#).expect("parses");
    assert_eq!(min, page("x", ""));
}
