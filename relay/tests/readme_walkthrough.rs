//! The README's terminal walk-through, run as written: its commands are read from README.md (the
//! first `relay serve` block, the agent's block and the customer's block of "Try it from a
//! terminal") and run by bash against a node they start, with only the port moved to a free one
//! and `cargo run … --bin relay` / `--example client` mapped to the binaries cargo built. The
//! agent's output must hold every line of the README's sample output, and a chat line typed in the
//! customer's terminal must reach the agent as the README says.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The README's indented code blocks (four spaces), in order, without the indentation.
fn code_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut prev_blank = true;
    for line in readme.lines() {
        if let Some(code) = line.strip_prefix("    ") {
            if !current.is_empty() || prev_blank {
                current.push(code);
                continue;
            }
        } else if !current.is_empty() {
            // A blank or unindented line ends the block.
            blocks.push(current.join("\n"));
            current.clear();
        }
        prev_blank = line.trim().is_empty();
    }
    if !current.is_empty() {
        blocks.push(current.join("\n"));
    }
    blocks
}

fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let rest = &readme[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Where cargo put the example client: beside the `relay` binary of this test, built now if it
/// is missing or stale (cargo decides), so that the walk-through runs the current code.
fn example_client() -> PathBuf {
    let relay = Path::new(env!("CARGO_BIN_EXE_relay"));
    let profile_dir = relay.parent().expect("profile dir");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut build = Command::new(env!("CARGO"));
    // What cargo set for this test binary, not for a build: build scripts that watch these
    // (ring's watches CARGO_PKG_*, CARGO_MANIFEST_DIR) would otherwise rerun, and the next
    // `cargo test` would rebuild everything again.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            build.env_remove(key);
        }
    }
    build
        .args(["build", "-q", "-p", "assist-relay", "--example", "client"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the example client failed");
    profile_dir.join("examples/client")
}

/// bash with `cargo run … --bin relay -- ARGS` and `cargo run … --example client -- ARGS` mapped
/// to the built binaries; anything else `cargo` is refused.
fn shim(relay: &Path, client: &Path) -> String {
    format!(
        r#"set -euo pipefail
cargo() {{
  local target="" args=()
  while (($#)); do
    case "$1" in
      --bin) target="bin:$2"; shift 2 ;;
      --example) target="example:$2"; shift 2 ;;
      --) shift; args=("$@"); break ;;
      *) shift ;;
    esac
  done
  case "$target" in
    bin:relay) "{relay}" "${{args[@]}}" ;;
    example:client) "{client}" "${{args[@]}}" ;;
    *) echo "the walk-through runs an unexpected cargo command ($target)" >&2; return 99 ;;
  esac
}}
"#,
        relay = relay.display(),
        client = client.display()
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // The process group: bash and the binaries it started. `-s KILL -- -PGID`: procps-ng's
        // kill reads `kill -KILL -PGID` as `kill(-1, SIGKILL)`, every process it may signal.
        let pgid = self.0.id();
        assert!(pgid > 1, "a process group of our own");
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_bash(script: &str, dir: &Path, log: &str) -> Killed {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(dir.join(log)).expect("log");
    Killed(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .env_remove("RELAY_JWT_SECRET")
            .env_remove("RELAY_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .process_group(0)
            .spawn()
            .expect("bash runs"),
    )
}

fn wait_for(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    diag: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}:\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn the_readme_terminal_walk_through_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let blocks = code_blocks(&readme);
    let serve = blocks
        .iter()
        .find(|b| b.contains("-- serve") && !b.contains("--demo"))
        .expect("README.md: the `relay serve` command");
    let walk = code_blocks(section(&readme, "## Try it from a terminal"));
    let agent_block = walk
        .iter()
        .find(|b| b.contains("export RELAY_JWT_SECRET"))
        .expect("the agent's commands");
    let customer_block = walk
        .iter()
        .find(|b| b.contains("--publish"))
        .expect("the customer's command");
    let sample = walk
        .iter()
        .find(|b| b.starts_with("joined "))
        .expect("the agent's sample output");

    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("ar-readme-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let shim = shim(Path::new(env!("CARGO_BIN_EXE_relay")), &example_client());
    let moved = |s: &str| s.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();

    // Terminal 1: the relay, as the README's first command starts it (on free ports).
    let _node = spawn_bash(
        &format!(
            "{shim}export RELAY_LISTEN=127.0.0.1:{port} RELAY_ADMIN_LISTEN=127.0.0.1:{admin}\n{serve}\n"
        ),
        &dir,
        "node.log",
    );
    wait_for(
        "the node answers /readyz",
        Duration::from_secs(20),
        || {
            std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok_and(|mut s| {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
            })
        },
        || read("node.log"),
    );

    // Terminal 2 mints the tokens and watches as the agent; terminal 3 (same ROOM and CUSTOMER)
    // publishes the recording and, once it is out, types a chat line.
    let (agent_setup, agent_cmd) = agent_block
        .trim_end()
        .rsplit_once('\n')
        .expect("the agent block: tokens, then the client");
    let fifo = dir.join("customer-stdin");
    let script = format!(
        r#"{shim}{setup}
( {agent} ) > "{dir}/agent.out" 2>&1 < /dev/null &
for _ in $(seq 1 200); do grep -q '^caught_up' "{dir}/agent.out" && break; sleep 0.1; done
mkfifo "{fifo}"
( {customer} ) < "{fifo}" > "{dir}/customer.out" 2>&1 &
exec 3> "{fifo}"
for _ in $(seq 1 300); do grep -q '^published' "{dir}/customer.out" && break; sleep 0.1; done
echo hello >&3
sleep 600
"#,
        setup = moved(agent_setup),
        agent = moved(agent_cmd),
        customer = moved(customer_block),
        dir = dir.display(),
        fifo = fifo.display(),
    );
    let _terminals = spawn_bash(&script, &dir, "terminals.log");
    let diag = || {
        format!(
            "--- agent ---\n{}\n--- customer ---\n{}\n--- terminals ---\n{}\n--- node ---\n{}",
            read("agent.out"),
            read("customer.out"),
            read("terminals.log"),
            read("node.log")
        )
    };
    wait_for(
        "the agent sees the customer's chat line",
        Duration::from_secs(60),
        || read("agent.out").lines().any(|l| l.ends_with("bob: hello")),
        diag,
    );

    let agent = read("agent.out");
    let room = agent
        .lines()
        .find_map(|l| l.strip_prefix("joined room="))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no joined line:\n{}", diag()));
    assert!(room.starts_with("try-"), "a fresh room: {room}");
    for want in sample.lines().filter(|l| l.trim() != "...") {
        let want = want.replace("room=try-1234", &format!("room={room}"));
        assert!(
            agent.lines().any(|l| l == want),
            "the README shows {want:?}, the agent printed:\n{}",
            diag()
        );
    }
    assert!(
        agent.lines().any(|l| l == "chat @152 bob: hello"),
        "the README's chat line:\n{}",
        diag()
    );
    let customer = read("customer.out");
    assert!(
        customer
            .lines()
            .any(|l| l.starts_with("ack ") && l.ends_with(" @152")),
        "the README's ack line:\n{}",
        diag()
    );
    assert!(
        !agent.contains('{') && !agent.contains("Member"),
        "no Debug output:\n{agent}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example client refuses a `--publish` file that is missing or not a recording, with one
/// line and exit code 1, before connecting (nothing listens on the URL it is given).
#[test]
fn the_example_client_refuses_a_missing_or_invalid_recording() {
    let client = example_client();
    let dir =
        std::env::temp_dir().join(format!("ar-client-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let not_array = dir.join("object.json");
    std::fs::write(&not_array, r#"{"type":4}"#).expect("write");
    let not_events = dir.join("numbers.json");
    std::fs::write(&not_events, "[1, 2]").expect("write");
    let url = format!("ws://127.0.0.1:{}/ws?room=r", free_port());
    for (file, needle) in [
        (dir.join("missing.json"), "cannot read the file"),
        (not_array, "not a JSON array of rrweb events"),
        (not_events, "element 0 is not an rrweb event"),
    ] {
        let out = Command::new(&client)
            .args(["--url", &url, "--token", "t", "--publish"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("client runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", file.display());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle) && err.contains("--publish"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
