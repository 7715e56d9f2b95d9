//! The ops kit under `deploy/` against the real thing: promtool accepts the Prometheus
//! configuration and the rules, and the rules' unit tests pass; every alert has a severity, a
//! summary, a description, a runbook link and a firing and a quiet test case; every expression of
//! the Grafana dashboard parses as PromQL; and every metric the kit names (with its label values)
//! is one that a running node exports on `/metrics`.
//!
//! The YAML files are read line by line (the crate has no YAML parser): they keep one key per
//! line, as written in `deploy/prometheus`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use serde_json::Value;

/// Every alert's `runbook_url` is this followed by its name in lower case: the
/// docs/operations.md heading "Alert <AlertName>".
const RUNBOOK: &str =
    "https://github.com/assist-relay/assist-relay/blob/main/docs/operations.md#alert-";

const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// Labels that Prometheus attaches at scrape time (or bucket bounds): not in `/metrics` as
/// matchable values.
const TARGET_LABELS: [&str; 3] = ["job", "instance", "le"];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs promtool in `dir`; fails the test (with promtool's output) unless it succeeds.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool could not run ({e}). It ships with Prometheus: run scripts/test, which \
                 installs Debian's prometheus package when promtool is missing"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

#[test]
fn promtool_accepts_the_config_and_the_rules_and_their_tests_pass() {
    let dir = deploy().join("prometheus");
    // The same commands as deploy/prometheus/check.sh.
    promtool(&dir, &["check", "config", "prometheus.yml"]);
    promtool(
        &dir,
        &["check", "rules", "rules/recording.yml", "rules/alerts.yml"],
    );
    let out = promtool(
        &dir,
        &[
            "test",
            "rules",
            "tests/alerts_test.yml",
            "tests/recording_test.yml",
        ],
    );
    assert_eq!(out.matches("SUCCESS").count(), 2, "{out}");

    let config = read(&dir.join("prometheus.yml"));
    for needle in [
        "job_name: assist-relay\n",
        "job_name: assist-relay-compactor\n",
        "- rules/recording.yml",
        "- rules/alerts.yml",
    ] {
        assert!(config.contains(needle), "prometheus.yml lacks {needle:?}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("check.sh"))
            .expect("deploy/prometheus/check.sh")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "check.sh is not executable");
    }
}

/// One alerting rule of alerts.yml, as written.
#[derive(Debug)]
struct Alert {
    name: String,
    /// `key: value` lines of the rule (labels and annotations included), value as written.
    fields: BTreeMap<String, String>,
}

/// The alerting rules of a rules file: each `- alert:` line starts one and takes the `key:
/// value` lines up to the next rule or group.
fn alerts(text: &str) -> Vec<Alert> {
    let mut out: Vec<Alert> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push(Alert {
                name: name.trim().to_owned(),
                fields: BTreeMap::new(),
            });
        } else if t.starts_with("- record:") || t.starts_with("- name:") {
            // The rule (or group) ended.
            if let Some(last) = out.last_mut() {
                last.fields.insert("__end".into(), String::new());
            }
        } else if let (Some(a), Some((k, v))) = (out.last_mut(), t.split_once(':')) {
            if !a.fields.contains_key("__end") && !k.contains(' ') && !k.starts_with('#') {
                a.fields
                    .entry(k.to_owned())
                    .or_insert_with(|| v.trim().to_owned());
            }
        }
    }
    out
}

#[test]
fn every_alert_has_a_severity_a_runbook_and_firing_and_quiet_tests() {
    let dir = deploy().join("prometheus");
    let rules = read(&dir.join("rules/alerts.yml"));
    let alerts = alerts(&rules);
    assert!(alerts.len() >= 10, "only {} alerts parsed", alerts.len());

    let tests = read(&dir.join("tests/alerts_test.yml"));
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    // alertname -> (has a case expecting it to fire, has a case expecting silence)
    let mut cases: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.strip_prefix("alertname:") {
            let next = lines.get(i + 1).copied().unwrap_or("");
            let c = cases.entry(name.trim()).or_default();
            match next {
                "exp_alerts: []" => c.1 = true,
                "exp_alerts:" => c.0 = true,
                other => panic!("alerts_test.yml: after alertname {name}: {other:?}"),
            }
        }
    }

    let mut names = BTreeSet::new();
    for a in &alerts {
        assert!(names.insert(a.name.clone()), "alert {} twice", a.name);
        let field = |k: &str| -> &str {
            a.fields
                .get(k)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("alert {} has no {k}", a.name))
        };
        assert!(
            SEVERITIES.contains(&field("severity")),
            "alert {}: severity {:?}",
            a.name,
            field("severity")
        );
        for k in ["expr", "summary", "description"] {
            assert!(!field(k).is_empty(), "alert {}: empty {k}", a.name);
        }
        assert_eq!(
            field("runbook_url"),
            format!("{RUNBOOK}{}", a.name.to_lowercase()),
            "alert {}: runbook_url",
            a.name
        );
        let (fires, quiet) = cases.get(a.name.as_str()).copied().unwrap_or_default();
        assert!(
            fires && quiet,
            "alert {}: alerts_test.yml needs a case where it fires ({fires}) and one where it \
             does not ({quiet})",
            a.name
        );
    }
    for name in cases.keys() {
        assert!(
            names.contains(*name),
            "alerts_test.yml tests unknown {name}"
        );
    }
}

/// What a node's `/metrics` holds: metric family and sample names, and each sample's labels.
struct Exposition {
    names: BTreeSet<String>,
    samples: Vec<(String, BTreeMap<String, String>)>,
}

impl Exposition {
    fn parse(body: &str) -> Exposition {
        let mut names = BTreeSet::new();
        let mut samples = Vec::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some(name) = rest.split_whitespace().next() {
                    names.insert(name.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..end];
            let mut labels = BTreeMap::new();
            if line[end..].starts_with('{') {
                let close = line.find('}').expect("closing brace in a sample line");
                for pair in line[end + 1..close].split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').expect("label pair");
                    labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
            names.insert(name.to_owned());
            samples.push((name.to_owned(), labels));
        }
        Exposition { names, samples }
    }

    fn has_label_value(&self, metric: &str, label: &str, value: &str) -> bool {
        self.samples
            .iter()
            .any(|(n, l)| n == metric && l.get(label).is_some_and(|v| v == value))
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The relay metric names in `text` (identifiers starting with `relay_`), and the
/// recording-rule names (identifiers with a colon that name a relay metric).
fn metric_names(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut metrics = BTreeSet::new();
    let mut records = BTreeSet::new();
    for token in text.split(|c: char| !is_ident(c)) {
        if token.contains(':') {
            if token.contains("relay_") {
                records.insert(token.to_owned());
            }
        } else if token.len() > "relay_".len() && token.starts_with("relay_") {
            metrics.insert(token.to_owned());
        }
    }
    (metrics, records)
}

/// The equality and regex matchers on relay metrics in a PromQL text: (metric, label, values),
/// for values that are plain words or alternations of them (`a|b`).
fn matchers(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("relay_") {
        let before = text.len() - rest.len() + i;
        rest = &rest[i..];
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let name = &rest[..end];
        let starts_token = before == 0 || !text[..before].chars().next_back().is_some_and(is_ident);
        rest = &rest[end..];
        if !starts_token || name.contains(':') || !rest.starts_with('{') {
            continue;
        }
        let close = rest.find('}').expect("closing brace of a selector");
        for m in rest[1..close].split(',') {
            let Some(op) = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| m.contains(op))
            else {
                continue;
            };
            let (label, value) = m.split_once(op).expect("matcher");
            let (label, value) = (label.trim(), value.trim().trim_matches('"'));
            let plain = value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|');
            if op.starts_with('!') || TARGET_LABELS.contains(&label) || !plain {
                continue;
            }
            let values = value.split('|').map(str::to_owned).collect();
            out.push((name.to_owned(), label.to_owned(), values));
        }
        rest = &rest[close..];
    }
    out
}

/// Checks that every relay metric and label value named in `text` is in the exposition (or is
/// an allowed compactor metric), and that every recording-rule name is defined.
fn check_names(what: &str, text: &str, scraped: &Exposition, records: &BTreeSet<String>) {
    let (metrics, used_records) = metric_names(text);
    for m in &metrics {
        assert!(
            scraped.names.contains(m),
            "{what} names {m}, which a node's /metrics does not have"
        );
    }
    for r in &used_records {
        assert!(
            records.contains(r),
            "{what} uses the recording rule {r}, which rules/recording.yml does not define"
        );
    }
    for (metric, label, values) in matchers(text) {
        for v in values {
            assert!(
                scraped.has_label_value(&metric, &label, &v),
                "{what} matches {metric}{{{label}=\"{v}\"}}, which a node's /metrics does not have"
            );
        }
    }
}

/// Replaces Grafana variables (`$name`, `${name}`) by the concrete values of `vars`; fails on
/// a variable it does not know.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (name, len) = if let Some(braced) = rest.strip_prefix('{') {
            let close = braced.find('}').expect("closing brace of ${...}");
            (&braced[..close], close + 2)
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], end)
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("{expr}: unknown variable ${name}"));
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

/// Every `expr` in the dashboard (panel targets, annotations), with where it is.
fn exprs(v: &Value, place: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            let here = match (map.get("id"), map.get("refId"), map.get("name")) {
                (_, Some(r), _) => format!("{place}_{}", r.as_str().unwrap_or("x")),
                (Some(id), _, _) if id.is_u64() => format!("panel_{id}"),
                (_, _, Some(Value::String(n))) => format!("{place}_{n}"),
                _ => place.to_owned(),
            };
            if let Some(Value::String(e)) = map.get("expr") {
                out.push((here.clone(), e.clone()));
            }
            for child in map.values() {
                exprs(child, &here, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                exprs(item, place, out);
            }
        }
        _ => {}
    }
}

/// A recording-rule name for a place in the dashboard.
fn record_name(place: &str) -> String {
    let clean: String = place
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("dashboard:{clean}")
}

/// Drives a little traffic through a real node and returns its `/metrics`, plus a compactor's.
async fn scrape_after_traffic() -> Exposition {
    let relay = Relay::start().await;
    // A customer whose token asks for input masking, so that the masking counter exists too.
    let token = token_masked("ops", Role::Customer, "cust", 3600, Some("inputs"));
    let mut customer = relay
        .connect_with_token("ops", &token, Role::Customer, "cust", Codec::Json)
        .await;
    customer.join(None).await;
    let (mut agent, _) = relay.join("ops", Role::Agent, "agent", Codec::Json).await;
    customer.publish(&synthetic(4, 1), Some("meta")).await;
    customer
        .publish(
            r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{},"childNodes":[{"type":2,"tagName":"input","attributes":{"type":"text","value":"4111 1111"},"childNodes":[],"id":4}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":2}"#,
            Some("snapshot"),
        )
        .await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;
    relay
        .await_metric("relay_masked_events_total{policy=\"inputs\"}", 1.0)
        .await;
    let (status, body) = relay.admin_get("/metrics").await;
    assert_eq!(status, 200, "/metrics: {body}");
    // The compactor (`relay compactor`, job assist-relay-compactor) serves its own /metrics; the
    // rules and the dashboard may name its series too.
    let compactor = assist_relay::compactor::worker::CompactorMetrics::new().render();
    Exposition::parse(&format!("{body}\n{compactor}"))
}

/// The recording rules defined in recording.yml.
fn recording_rules(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|r| r.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_parse_and_name_only_metrics_a_node_exports() {
    let scraped = scrape_after_traffic().await;
    assert!(
        scraped.names.contains("relay_frames_out_total")
            && scraped.names.contains("relay_appends_total"),
        "the traffic did not create the first-use series"
    );
    assert!(
        scraped.names.contains("relay_compactor_jobs_total"),
        "the compactor's exposition was not merged"
    );

    let prometheus = deploy().join("prometheus");
    let recording = read(&prometheus.join("rules/recording.yml"));
    let records = recording_rules(&recording);
    check_names("rules/recording.yml", &recording, &scraped, &records);
    let alerting = read(&prometheus.join("rules/alerts.yml"));
    check_names("rules/alerts.yml", &alerting, &scraped, &records);

    // The dashboard: valid JSON, stable uid, modern schema, datasource through its variable.
    let path = deploy().join("grafana/dashboards/assist-relay.json");
    let text = read(&path);
    let dash: Value = serde_json::from_str(&text).expect("assist-relay.json is valid JSON");
    assert_eq!(dash["uid"], "assist-relay-overview");
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 38),
        "schemaVersion {}",
        dash["schemaVersion"]
    );
    let variables = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let var = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("job")["type"], "query");
    assert_eq!(var("instance")["type"], "query");

    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut timeseries = 0;
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["type"], "timeseries", "panel {id} ({})", p["title"]);
        timeseries += 1;
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no target");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {id}");
        }
    }
    assert!(timeseries >= 20, "only {timeseries} panels");

    // Concrete values for the dashboard's variables and Grafana's interval variables.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for v in variables {
        let name = v["name"].as_str().expect("variable name");
        let value = match name {
            "datasource" => "unused",
            "job" => "assist-relay",
            "instance" => "127.0.0.1:9090",
            "compactor_job" => "assist-relay-compactor",
            other => panic!("give the new variable ${other} a concrete value in this test"),
        };
        vars.insert(name.to_owned(), value.to_owned());
    }
    for builtin in ["__rate_interval", "__interval"] {
        vars.insert(builtin.to_owned(), "1m".to_owned());
    }
    vars.insert("__range".to_owned(), "1h".to_owned());

    // Every expression, as a recording rule of a scratch rules file that promtool checks: that
    // parses each as PromQL.
    let mut all = Vec::new();
    exprs(&dash["panels"], "panel", &mut all);
    exprs(&dash["annotations"], "annotation", &mut all);
    for v in variables.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .expect("variable query");
        // label_values(selector, label): the selector is PromQL.
        if let Some(inner) = q.strip_prefix("label_values(") {
            if let Some((selector, _)) = inner.rsplit_once(',') {
                all.push((format!("variable_{}", v["name"]), selector.to_owned()));
            }
        }
    }
    assert!(all.len() > timeseries, "{} expressions", all.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut places = BTreeSet::new();
    for (place, expr) in &all {
        let concrete = substitute(expr, &vars);
        check_names(
            &format!("the dashboard ({place})"),
            &concrete,
            &scraped,
            &records,
        );
        let record = record_name(place);
        assert!(places.insert(record.clone()), "{record} twice");
        rules.push_str(&format!(
            "      - record: {record}\n        expr: {}\n",
            serde_json::to_string(&concrete).expect("json string")
        ));
    }
    // Names in descriptions and variable definitions count too.
    check_names("the dashboard", &text, &scraped, &records);

    let scratch = std::env::temp_dir().join(format!(
        "assist-relay-ops-kit-{}-{}.yml",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::write(&scratch, &rules).expect("write the scratch rules file");
    let dir = scratch.parent().expect("temp dir").to_owned();
    let file = scratch
        .file_name()
        .and_then(|f| f.to_str())
        .expect("file name")
        .to_owned();
    let result = std::panic::catch_unwind(|| promtool(&dir, &["check", "rules", &file]));
    let _ = std::fs::remove_file(&scratch);
    let out = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", all.len())),
        "{out}"
    );
}

#[test]
fn the_name_scanner_finds_metrics_records_and_matchers() {
    let (m, r) = metric_names(
        r#"sum by (job) (rate(relay_errors_total{code="x"}[5m])) / job:relay_frames_in:rate5m # relay/tests"#,
    );
    assert_eq!(m, BTreeSet::from(["relay_errors_total".to_owned()]));
    assert_eq!(r, BTreeSet::from(["job:relay_frames_in:rate5m".to_owned()]));
    let found = matchers(
        r#"rate(relay_closes_total{job=~"$job", reason="slow"}[5m]) + relay_x{reason=~"a|b", code!="c"} + job:relay_y{z="w"}"#,
    );
    assert_eq!(
        found,
        vec![
            (
                "relay_closes_total".into(),
                "reason".into(),
                vec!["slow".into()]
            ),
            (
                "relay_x".into(),
                "reason".into(),
                vec!["a".into(), "b".into()]
            ),
        ]
    );
    let vars = BTreeMap::from([
        ("job".to_owned(), "j".to_owned()),
        ("__rate_interval".to_owned(), "1m".to_owned()),
    ]);
    assert_eq!(
        substitute(r#"rate(a{job=~"${job}"}[$__rate_interval]) $job"#, &vars),
        r#"rate(a{job=~"j"}[1m]) j"#
    );
}
