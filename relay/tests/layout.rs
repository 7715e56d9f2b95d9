//! The source layout's rules (docs/architecture.md), checked on every test run:
//! - no source file of the repository is over 700 lines (Rust, JavaScript, TypeScript, shell,
//!   Python, Lua; generated and vendored files aside);
//! - the modules of `relay` and of `proto` import each other without cycles: `relay`'s top-level
//!   modules (`hub`, `store`, `session`, ...) and `proto`'s files form a directed acyclic graph
//!   over their `crate::` paths, so each can be read knowing only what it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 700;
const SOURCE_EXTENSIONS: [&str; 8] = ["rs", "js", "mjs", "ts", "sh", "py", "lua", "html"];
const SKIP_DIRS: [&str; 6] = [
    "target",
    "node_modules",
    "dist",
    ".git",
    "corpus",
    "artifacts",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                walk(&path, out);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let root = root();
    let mut files = Vec::new();
    for dir in [
        "proto", "relay", "loadtest", "sdk", "deploy", "scripts", "fuzz", ".ci",
    ] {
        walk(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut over: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > MAX_LINES).then(|| {
                let rel = f.strip_prefix(&root).unwrap_or(f);
                format!("{} ({lines} lines)", rel.display())
            })
        })
        .collect();
    over.sort();
    assert!(
        over.is_empty(),
        "files over {MAX_LINES} lines: {}",
        over.join(", ")
    );
}

/// `crate::NAME` paths used in `src` (comments aside), including `crate::{a, b::c}` groups.
fn crate_refs(src: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in src.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            // `assist_relay::` or `some_crate::` is not this crate.
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    refs.insert(name);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                refs.insert(name);
            }
        }
    }
    refs
}

/// The module graph of a crate: module -> modules it uses. A module is a top-level file of
/// `src` (its stem) or a top-level directory (everything under it).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let module_of = |f: &Path| -> Option<String> {
        let rel = f.strip_prefix(src).ok()?;
        let first = rel
            .components()
            .next()?
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(module) = module_of(f) else { continue };
        let src = std::fs::read_to_string(f).expect("read source");
        let uses = graph.entry(module.clone()).or_default();
        for r in crate_refs(&src) {
            if r != module && modules.contains(&r) {
                uses.insert(r);
            }
        }
    }
    graph
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_finder_sees_paths_and_groups_but_not_comments_or_other_crates() {
    let refs = crate_refs(
        "use crate::hub::{Entry, RoomMsg};\nuse crate::{store, limits::Quotas};\n\
         // crate::session\n/// [`crate::http`]\nlet x = assist_relay::node::Node;\n\
         f(crate::audit::join());",
    );
    let want: BTreeSet<String> = ["hub", "store", "limits", "audit"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(refs, want);
    let cyclic: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
    ]
    .into();
    assert!(find_cycle(&cyclic).is_some());
    let acyclic: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned(), "c".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
    ]
    .into();
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn relay_modules_import_each_other_without_cycles() {
    let graph = module_graph(&root().join("relay/src"));
    assert!(graph.contains_key("hub") && graph.contains_key("store"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in relay/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn proto_modules_import_each_other_without_cycles() {
    let graph = module_graph(&root().join("proto/src"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in proto/src: {}", cycle.join(" -> "));
    }
}
