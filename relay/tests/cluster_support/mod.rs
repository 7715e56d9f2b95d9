//! Real processes for tests/cluster.rs and tests/convergence.rs: `relay serve` nodes, a durable
//! redis-server that can be stopped and restarted, nginx in front, a three-master Redis Cluster;
//! and (`resilient`) a client that survives its node.

#![allow(dead_code)]

pub mod resilient;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::*;

/// A `relay serve` process.
pub struct NodeProcess {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub child: Child,
}

impl NodeProcess {
    pub async fn start(redis_url: &str, extra: &[&str]) -> NodeProcess {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .args(["--redis-url", redis_url, "--log-format", "json"])
            .args(extra)
            .env("RELAY_JWT_SECRET", SECRET)
            .env(
                "RELAY_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(match std::env::var("NODE_LOG_DIR") {
                Ok(dir) => Stdio::from(
                    std::fs::File::create(format!("{dir}/node-{}.log", addr.port()))
                        .expect("log file"),
                ),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("relay binary runs");
        let node = NodeProcess { addr, admin, child };
        wait_until(Duration::from_secs(20), || async {
            ready(node.admin).await
        })
        .await;
        node
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub async fn connections(&self) -> f64 {
        let (_, body) = http_get(self.admin, "/metrics").await;
        body.lines()
            .filter(|l| l.starts_with("relay_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub async fn ready(admin: SocketAddr) -> bool {
    if tokio::net::TcpStream::connect(admin).await.is_err() {
        return false;
    }
    http_get(admin, "/readyz").await.0 == 200
}

pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A redis-server with AOF `appendfsync always` in its own directory: what the no-loss guarantee
/// across a Redis restart assumes (docs/operations.md).
pub struct DurableRedis {
    pub port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl DurableRedis {
    pub async fn start() -> DurableRedis {
        let dir =
            std::env::temp_dir().join(format!("ar-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = DurableRedis {
            port: free_port(),
            dir,
            child: None,
        };
        r.restart().await;
        r
    }

    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx with one of the deploy/nginx configurations, its upstream list replaced by our nodes.
pub struct Nginx {
    pub addr: SocketAddr,
    pub child: Child,
    pub dir: PathBuf,
}

pub fn nginx_conf(
    template: &str,
    dir: &Path,
    listen: SocketAddr,
    upstreams: &[SocketAddr],
) -> PathBuf {
    let path = format!("{}/../deploy/nginx/{template}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.contains("# BEGIN upstream servers") {
            skipping = true;
            for u in upstreams {
                out.push_str(&format!("    server {u} max_fails=1 fail_timeout=10s;\n"));
            }
            continue;
        }
        if line.contains("# END upstream servers") {
            skipping = false;
            continue;
        }
        if skipping {
            continue;
        }
        if line.trim() == "listen 8080;" {
            out.push_str(&format!("    listen {listen};\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(dir.join("relay.conf"), out).expect("write relay.conf");
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
         include {d}/relay.conf;\n}}\n"
    );
    std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).expect("write nginx.conf");
    conf
}

impl Nginx {
    pub async fn start(template: &str, upstreams: &[SocketAddr]) -> Nginx {
        let dir =
            std::env::temp_dir().join(format!("ar-nginx-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let conf = nginx_conf(template, &dir, addr, upstreams);
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test installs it)");
        wait_until(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        Nginx { addr, child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers first (SIGKILL would orphan them, port and all).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster (no replicas) on free loopback ports.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    pub children: Vec<Child>,
    pub dir: PathBuf,
}

/// A port whose cluster bus port (+10000) is free too.
pub fn cluster_port() -> u16 {
    loop {
        let p = 20_000 + (rand_u16() % 20_000);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            return p;
        }
    }
}

pub fn rand_u16() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        % 65_521) as u16
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "ar-rcluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let p = cluster_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut children = Vec::new();
        for p in &ports {
            children.push(
                Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
                    .arg("--dir")
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server runs"),
            );
        }
        let cluster = RedisCluster {
            ports,
            children,
            dir,
        };
        for p in &cluster.ports {
            let p = *p;
            wait_until(Duration::from_secs(10), || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", p))
                    .await
                    .is_ok()
            })
            .await;
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &cluster.ports {
            let p = *p;
            wait_until(Duration::from_secs(20), || async move {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output();
                out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            })
            .await;
        }
        cluster
    }

    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn dbsize(&self, port: u16) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DBSIZE"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
