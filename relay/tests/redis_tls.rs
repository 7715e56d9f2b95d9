//! TLS to Redis (`rediss://`): real `relay serve` processes against a redis-server that speaks
//! only TLS, with certificates made by the `openssl` command for this test.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs (scripts/test checks for it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `NAME.pem` / `NAME.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate `NAME.pem` / `NAME.key` for 127.0.0.1, signed by `ca`.
fn make_cert(dir: &Path, ca: &str, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// A directory with `ca`, a `server` and a `client` certificate signed by it, and an unrelated
/// `other` CA.
fn pki() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ar-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("pki dir");
    make_ca(&dir, "ca");
    make_ca(&dir, "other");
    make_cert(&dir, "ca", "server");
    make_cert(&dir, "ca", "client");
    dir
}

/// A redis-server listening only with TLS, requiring client certificates signed by `ca`.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    async fn start(pki: &Path) -> TlsRedis {
        let port = free_port();
        let file = |n: &str| pki.join(n).display().to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &port.to_string(),
            ])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args([
                "--tls-auth-clients",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let server = TlsRedis { port, child };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server with TLS did not start on {port}");
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `relay serve` process whose standard output is collected.
struct NodeProcess {
    addr: SocketAddr,
    admin: SocketAddr,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl NodeProcess {
    fn spawn(args: &[&str]) -> NodeProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["serve", "--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string(), "--log-format", "json"])
            .args(args)
            .env("RELAY_JWT_SECRET", SECRET)
            .env("RELAY_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay runs");
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = output.lock().expect("output");
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        NodeProcess {
            addr,
            admin,
            child,
            output,
        }
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    async fn ready(&self) -> bool {
        tokio::net::TcpStream::connect(self.admin).await.is_ok()
            && http_get(self.admin, "/readyz").await.0 == 200
    }

    async fn connect(&self, room: &str, role: Role, sub: &str) -> Client {
        let mut req = format!("ws://{}/ws?room={room}", self.addr)
            .into_client_request()
            .expect("request");
        let token = token_with(room, role, sub, 3600);
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        Client::new(ws, Codec::Json, role, sub)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_relays_through_a_redis_that_speaks_only_tls() {
    let pki = pki();
    let redis = TlsRedis::start(&pki).await;
    let file = |n: &str| pki.join(n).display().to_string();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let tls = [
        "--redis-url",
        &url,
        "--redis-tls-ca",
        &ca,
        "--redis-tls-cert",
        &cert,
        "--redis-tls-key",
        &key,
    ];
    // Two nodes: the customer's events reach the agent through Redis (streams and pub/sub).
    let a = NodeProcess::spawn(&tls);
    let b = NodeProcess::spawn(&tls);
    for n in [&a, &b] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !n.ready().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node not ready over TLS:\n{}",
                n.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut customer = a.connect("tls-room", Role::Customer, "cust").await;
    customer.join(None).await;
    let mut agent = b.connect("tls-room", Role::Agent, "agent").await;
    agent.join(None).await;
    customer.publish(&synthetic(4, 1), Some("e1")).await;
    customer.publish(&synthetic(2, 2), Some("e2")).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let Some((_, json)) = event_json(&agent.recv().await) {
            seen.push(json);
        }
    }
    assert_eq!(seen, vec![synthetic(4, 1), synthetic(2, 2)]);
    agent.chat("c1", "over tls").await;
    let chat = customer
        .recv_until(|f| matches!(f, ServerFrame::Chat { .. }))
        .await;
    assert!(format!("{chat:?}").contains("over tls"), "{chat:?}");
    let _ = std::fs::remove_dir_all(&pki);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let pki = pki();
    let redis = TlsRedis::start(&pki).await;
    let file = |n: &str| pki.join(n).display().to_string();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let (other, cert, key) = (file("other.pem"), file("client.pem"), file("client.key"));
    let node = NodeProcess::spawn(&[
        "--redis-url",
        &url,
        "--redis-tls-ca",
        &other,
        "--redis-tls-cert",
        &cert,
        "--redis-tls-key",
        &key,
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = node.output();
        if out.contains("UnknownIssuer") {
            assert!(out.contains("redis not reachable yet"), "{out}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate error in the log:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!node.ready().await, "a node must not serve without Redis");
    let _ = std::fs::remove_dir_all(&pki);
}

#[test]
fn tls_files_need_a_rediss_url() {
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["serve", "--redis-url", "redis://127.0.0.1:1"])
        .args(["--redis-tls-ca", "/nonexistent/ca.pem"])
        .env("RELAY_JWT_SECRET", SECRET)
        .output()
        .expect("relay runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rediss://"), "{err}");
}

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// Three redis-servers forming a Redis Cluster over TLS only (clients and the cluster bus).
struct TlsCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TlsCluster {
    async fn start(pki: &Path) -> TlsCluster {
        let dir = pki.join("cluster");
        std::fs::create_dir_all(&dir).expect("dir");
        let file = |n: &str| pki.join(n).display().to_string();
        let mut cluster = TlsCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        while cluster.ports.len() < 3 {
            let p = cluster_port();
            if cluster.ports.contains(&p) {
                continue;
            }
            cluster.ports.push(p);
            let child = Command::new("redis-server")
                .args(["--port", "0", "--bind", "127.0.0.1"])
                .args(["--tls-port", &p.to_string(), "--tls-cluster", "yes"])
                .args(["--tls-cert-file", &file("server.pem")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args([
                    "--tls-auth-clients",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs");
            cluster.children.push(child);
        }
        let cli = |args: &[&str]| {
            Command::new("redis-cli")
                .args(["--tls", "--cacert", &file("ca.pem")])
                .args(args)
                .output()
                .expect("redis-cli runs")
        };
        for p in &cluster.ports {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(("127.0.0.1", *p))
                .await
                .is_err()
            {
                assert!(tokio::time::Instant::now() < deadline, "redis {p} not up");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cli(&create);
        assert!(
            out.status.success(),
            "cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for p in &cluster.ports {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let out = cli(&["-p", &p.to_string(), "cluster", "info"]);
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "cluster not ok");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_relay_through_a_redis_cluster_over_tls() {
    let pki = pki();
    let cluster = TlsCluster::start(&pki).await;
    let urls = cluster
        .ports
        .iter()
        .map(|p| format!("rediss://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ca = pki.join("ca.pem").display().to_string();
    let args = [
        "--redis-cluster",
        "--redis-url",
        &urls,
        "--redis-tls-ca",
        &ca,
    ];
    let a = NodeProcess::spawn(&args);
    let b = NodeProcess::spawn(&args);
    for n in [&a, &b] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !n.ready().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node not ready over TLS:\n{}",
                n.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Rooms land on different masters (their hash tags differ).
    for r in 0..6 {
        let room = format!("tls-cluster-{r}");
        let mut customer = a.connect(&room, Role::Customer, "cust").await;
        customer.join(None).await;
        let mut agent = b.connect(&room, Role::Agent, "agent").await;
        agent.join(None).await;
        customer.publish(&synthetic(4, 1), Some("e1")).await;
        let got = loop {
            if let Some((_, json)) = event_json(&agent.recv().await) {
                break json;
            }
        };
        assert_eq!(got, synthetic(4, 1));
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&pki);
}
