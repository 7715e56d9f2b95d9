//! `docs/openapi.json` against the node: every `/v1` route the router serves is documented with
//! its method and nothing else is; each documented operation is served (an unauthenticated call
//! reaches its handler: 401) and other methods on its path are not (405); every example in the
//! document, and the node's real answers to a session's worth of calls, validate against the
//! document's schemas.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use assist_relay_proto::{Codec, Role};
use common::*;
use serde_json::Value;

const API_KEY: &str = "test-api-key-0123456789";

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// Checks `v` against `schema` (the subset of JSON Schema the document uses); errors name where.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or("");
        return validate(doc, &doc["components"]["schemas"][name], v, at, errors);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let ok = options.iter().filter(|o| {
            let mut e = Vec::new();
            validate(doc, o, v, at, &mut e);
            e.is_empty()
        });
        if ok.count() != 1 {
            errors.push(format!("{at}: not exactly one of oneOf"));
        }
        return;
    }
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !fits {
        errors.push(format!("{at}: {kind}, expected {types:?}"));
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} not in {options:?}"));
        }
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), v.as_str()) {
        if (s.chars().count() as u64) < min {
            errors.push(format!("{at}: shorter than {min}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), v.as_i64()) {
        if n < min {
            errors.push(format!("{at}: below {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_i64(), v.as_i64()) {
        if n > max {
            errors.push(format!("{at}: above {max}"));
        }
    }
    if let Some(items) = schema.get("items") {
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            validate(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Value::Object(fields) = v {
        let props = schema["properties"].as_object();
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or("");
            if !fields.contains_key(req) {
                errors.push(format!("{at}: missing {req}"));
            }
        }
        for (k, fv) in fields {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, fv, &format!("{at}.{k}"), errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => errors.push(format!("{at}: unexpected {k}")),
                    s @ Value::Object(_) => validate(doc, s, fv, &format!("{at}.{k}"), errors),
                    // Objects the document describes field by field: an answer's field must
                    // be documented.
                    _ if props.is_some() => errors.push(format!("{at}: undocumented {k}")),
                    _ => {}
                },
            }
        }
    }
}

/// The schema of a documented answer.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    let r = &op["responses"][status.to_string()];
    assert!(r.is_object(), "{method} {path} does not document {status}");
    &r["content"]["application/json"]["schema"]
}

fn check(doc: &Value, schema: &Value, v: &Value, what: &str) {
    let mut errors = Vec::new();
    validate(doc, schema, v, "$", &mut errors);
    assert!(errors.is_empty(), "{what}: {errors:?}\n{v}");
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<(String, String)> = assist_relay::http::api::endpoints()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(documented(&doc), served);
}

#[test]
fn every_example_validates_against_its_schema() {
    let doc = document();
    let mut n = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let body = &op["requestBody"]["content"]["application/json"];
            if body.is_object() {
                check(
                    &doc,
                    &body["schema"],
                    &body["example"],
                    &format!("{method} {path} request"),
                );
                n += 1;
            }
            for (status, r) in op["responses"].as_object().expect("responses") {
                let c = &r["content"]["application/json"];
                assert!(
                    c["example"].is_array() || c["example"].is_object(),
                    "{method} {path} {status}: no example"
                );
                check(
                    &doc,
                    &c["schema"],
                    &c["example"],
                    &format!("{method} {path} {status}"),
                );
                n += 1;
            }
        }
    }
    assert!(n > 30, "only {n} examples");
}

/// A request with placeholders in the path; (status, JSON body).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let (status, text) = raw_http(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn concrete(path: &str) -> String {
    path.replace("{room}", "room-1")
        .replace("{id}", "room-1:0123456789abcdef")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_operations_are_served_and_other_methods_are_not() {
    let doc = document();
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let ops = documented(&doc);
    for (method, path) in &ops {
        let (status, body) = call(relay.admin, method, &concrete(path), None, "").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if !ops.contains(&(other.to_owned(), path.clone())) {
                let (status, _) = call(relay.admin, other, &concrete(path), None, "").await;
                assert_eq!(status, 405, "{other} {path}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_answers_as_documented() {
    let doc = document();
    let dir = std::env::temp_dir().join(format!("assist-relay-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("archive");
    let relay = Relay::start_with(|c| {
        c.api_key = Some(API_KEY.into());
        c.archive_dir = Some(dir.clone());
    })
    .await;
    let a = relay.admin;
    let mut cust = relay
        .connect_on(0, "oa-1", Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    cust.publish(&synthetic(4, 1), Some("m")).await;
    cust.publish(&synthetic(2, 2), Some("s")).await;
    let mut agent = relay
        .connect_on(1, "oa-1", Role::Agent, "agent", Codec::Json)
        .await;
    agent.join(None).await;
    let chat = r#"{"from":"ticket-bot","text":"hello","id":"t-1"}"#;
    let native = r#"{"id":"n-1","page_id":"kyc","title":"Identity check"}"#;
    let mut calls: Vec<(&str, &str, String, &str)> = vec![
        ("GET", "/v1/rooms", "/v1/rooms".into(), ""),
        ("GET", "/v1/rooms", "/v1/rooms?state=bogus".into(), ""),
        ("GET", "/v1/rooms/{room}", "/v1/rooms/oa-1".into(), ""),
        ("GET", "/v1/rooms/{room}", "/v1/rooms/bad%20room".into(), ""),
        (
            "POST",
            "/v1/rooms/{room}/chat",
            "/v1/rooms/oa-1/chat".into(),
            chat,
        ),
        (
            "POST",
            "/v1/rooms/{room}/chat",
            "/v1/rooms/oa-1/chat".into(),
            "{",
        ),
        (
            "POST",
            "/v1/rooms/{room}/chat",
            "/v1/rooms/nobody/chat".into(),
            chat,
        ),
        (
            "POST",
            "/v1/rooms/{room}/native-page",
            "/v1/rooms/oa-1/native-page".into(),
            native,
        ),
        (
            "POST",
            "/v1/rooms/{room}/close",
            "/v1/rooms/oa-1/close".into(),
            "",
        ),
        (
            "POST",
            "/v1/rooms/{room}/chat",
            "/v1/rooms/oa-1/chat".into(),
            r#"{"from":"b","text":"x","id":"2"}"#,
        ),
        (
            "GET",
            "/v1/recordings",
            "/v1/recordings?cursor=zz".into(),
            "",
        ),
        (
            "GET",
            "/v1/recordings/{id}",
            "/v1/recordings/nope".into(),
            "",
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (method, path, target, body) in calls.drain(..) {
        let (status, answer) = call(a, method, &target, Some(API_KEY), body).await;
        check(
            &doc,
            response_schema(&doc, method, path, status),
            &answer,
            &format!("{method} {target} {status}"),
        );
        statuses.insert(status);
    }
    assert_eq!(statuses, [200, 201, 400, 404, 409].into_iter().collect());
    // A recording, listed and read.
    let mut listed = Value::Null;
    for _ in 0..200 {
        let (status, answer) = call(a, "GET", "/v1/recordings?room=oa-1", Some(API_KEY), "").await;
        check(
            &doc,
            response_schema(&doc, "GET", "/v1/recordings", status),
            &answer,
            "recordings",
        );
        if answer["recordings"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            listed = answer;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = listed["recordings"][0]["id"]
        .as_str()
        .expect("recorded")
        .to_owned();
    let (status, one) = call(a, "GET", &format!("/v1/recordings/{id}"), Some(API_KEY), "").await;
    check(
        &doc,
        response_schema(&doc, "GET", "/v1/recordings/{id}", status),
        &one,
        "recording",
    );
    assert_eq!(status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
