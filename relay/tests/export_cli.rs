//! `relay export` from the command line against a real `relay serve` process: a session that has
//! not ended is named as such with the ways to end it; the page is written only with a player
//! (`--rrweb-dir`, or rrweb-player found in `node_modules/`), or on purpose without one
//! (`--no-player`); otherwise the export fails saying what to do.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;

const API_KEY: &str = "export-test-api-key-0123456789";

struct Node {
    addr: SocketAddr,
    admin: SocketAddr,
    archive: PathBuf,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_node(dir: &Path) -> Node {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let archive = dir.join("archive");
    let child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .args(["--archive-dir", &archive.display().to_string()])
        .env("RELAY_JWT_SECRET", SECRET)
        .env("RELAY_API_KEY", API_KEY)
        .env("RELAY_LOG", "warn")
        .env_remove("RELAY_REDIS_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("relay runs");
    let node = Node {
        addr,
        admin,
        archive,
        child,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && http_get(admin, "/readyz").await.0 == 200
        {
            return node;
        }
        assert!(tokio::time::Instant::now() < deadline, "node not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `relay export ROOM --archive-dir … --out OUT ARGS` run in `cwd`.
fn export(node: &Node, room: &str, out: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["export", room, "--out", &out.display().to_string()])
        .args(["--archive-dir", &node.archive.display().to_string()])
        .args(args)
        .current_dir(cwd)
        .env_remove("RELAY_ARCHIVE_DIR")
        .output()
        .expect("relay export runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ar-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_says_the_session_must_end_first_and_needs_a_player() {
    let dir = fresh_dir("export-cli");
    let node = start_node(&dir).await;
    let room = "export-room";
    let req = ws_request(
        node.addr,
        Some(room),
        &token_with(room, Role::Customer, "bob", 600),
        Codec::Json,
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("customer connects");
    let mut customer = Client::new(ws, Codec::Json, Role::Customer, "bob");
    customer.join(None).await;
    customer.publish(&synthetic(4, 1), Some("e1")).await;
    customer.publish(&synthetic(2, 2), Some("e2")).await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Ack { offset: 2, .. }))
        .await;

    // The session is live: no recording yet, and the error says how a session ends.
    let out = dir.join("page");
    let live = export(&node, room, &out, &dir, &["--no-player"]);
    assert_eq!(live.status.code(), Some(66), "{}", stderr(&live));
    for needle in [
        "no recording of room export-room",
        "session has ended",
        "POST /v1/rooms/export-room/close",
        "`end`",
        "--customer-idle-close",
    ] {
        assert!(
            stderr(&live).contains(needle),
            "{needle}: {}",
            stderr(&live)
        );
    }
    assert_eq!(stderr(&live).trim().lines().count(), 1, "{}", stderr(&live));

    // Ended through the API; the embedded compactor writes the recording.
    let (status, body) = raw_http(
        node.admin,
        &format!(
            "POST /v1/rooms/{room}/close HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {API_KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            node.admin
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while export(&node, room, &out, &dir, &["--no-player"])
        .status
        .code()
        != Some(0)
    {
        assert!(tokio::time::Instant::now() < deadline, "no recording");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.join("index.html").is_file() && out.join("recording.js").is_file());
    assert!(
        !out.join("rrweb-player").exists(),
        "--no-player copies none"
    );

    // Neither --rrweb-dir nor node_modules/rrweb-player/dist here: a page that cannot play is not
    // written; the error says what to do.
    let out2 = dir.join("page2");
    let no_player = export(&node, room, &out2, &dir, &[]);
    assert_eq!(no_player.status.code(), Some(64), "{}", stderr(&no_player));
    for needle in ["npm install rrweb-player", "--rrweb-dir", "--no-player"] {
        assert!(
            stderr(&no_player).contains(needle),
            "{needle}: {}",
            stderr(&no_player)
        );
    }
    assert!(!out2.exists(), "nothing written");

    // rrweb-player installed where the command runs: found by itself and copied.
    let dist = dir.join("node_modules/rrweb-player/dist");
    std::fs::create_dir_all(&dist).expect("dist");
    std::fs::write(dist.join("rrweb-player.umd.cjs"), "window.rrwebPlayer = 1;").expect("js");
    std::fs::write(dist.join("style.css"), "body{}").expect("css");
    let found = export(&node, room, &out2, &dir, &[]);
    assert!(found.status.success(), "{}", stderr(&found));
    assert_eq!(
        std::fs::read_to_string(out2.join("rrweb-player/index.js")).expect("copied"),
        "window.rrwebPlayer = 1;"
    );

    // Both is a usage error.
    let both = export(
        &node,
        room,
        &dir.join("page3"),
        &dir,
        &["--no-player", "--rrweb-dir", &dist.display().to_string()],
    );
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));

    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
