//! How long clients take to converge after a fault, with real processes (the setup of
//! tests/cluster.rs): `relay serve` nodes on a durable redis-server, nginx in front. A benchmark,
//! not a test: every test here is `#[ignore]`d and run by `loadtest/bench/convergence.sh`
//! (RUNS runs each, default 20), which prints the distribution.
//!
//! Convergence is the time from the fault (a node killed; Redis back after a restart or an
//! outage) until the agent holds every event the customer published, the customer publishing
//! the rest of its events at once, both reconnecting on their own (as `Resilient` does: at once,
//! then every 200 ms), the customer waiting at most 20 ms for acks before it resends.

mod cluster_support;
mod common;

use std::time::Duration;

use assist_relay_proto::Role;
use cluster_support::resilient::*;
use cluster_support::*;
use tokio::time::Instant;

fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
}

/// Pumps the agent until it holds `n` events; how long that took from `since`.
async fn agent_until(agent: &mut Resilient, n: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.events.len() < n {
        assert!(Instant::now() < deadline, "the agent never got {n} events");
        agent.pump(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

/// The customer publishes events `from..to` until acknowledged, the agent pumps until it has
/// `to` events, at the same time; the time from `since` until the agent has them all.
async fn converge(
    customer: &mut Resilient,
    agent: &mut Resilient,
    all: &[String],
    to: usize,
    since: Instant,
) -> Duration {
    let (_, took) = tokio::join!(customer.publish_all(all, to), agent_until(agent, to, since));
    assert_same_events(agent, &all[..to]);
    took
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    eprintln!(
        "CONVERGENCE {what}: runs {} min {:.0} p50 {:.0} p90 {:.0} p99 {:.0} max {:.0} ms; all: {}",
        ms.len(),
        ms[0],
        pct(0.5),
        pct(0.9),
        pct(0.99),
        ms[ms.len() - 1],
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// A customer and an agent on one node (nginx `ip_hash`), that node killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: loadtest/bench/convergence.sh"]
async fn after_a_node_is_killed() {
    let mut took = Vec::new();
    for run in 0..runs() {
        let redis = DurableRedis::start().await;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(NodeProcess::start(&redis.url(), &[]).await);
        }
        let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
        let nginx = Nginx::start("assist-relay.conf", &addrs).await;
        let url = format!("ws://{}/ws?room=kill-{run}", nginx.addr);
        let all = events(200);
        let mut customer = Resilient::new(&url, Role::Customer, "cust");
        customer.quiet = Duration::from_millis(20);
        let mut agent = Resilient::new(&url, Role::Agent, "agent");
        customer.pump(Duration::from_millis(100)).await;
        agent.pump(Duration::from_millis(100)).await;
        customer.publish_all(&all, 100).await;
        agent_until(&mut agent, 100, Instant::now()).await;
        let mut victim = None;
        for (i, n) in nodes.iter().enumerate() {
            if n.connections().await >= 2.0 {
                victim = Some(i);
            }
        }
        nodes[victim.expect("a node holds both clients")].kill9();
        let killed = Instant::now();
        took.push(converge(&mut customer, &mut agent, &all, 200, killed).await);
        drop(nginx);
    }
    report(
        "node kill -9",
        took.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
    );
}

/// A customer on one node and an agent on another; Redis killed and started again after
/// `outage` (its data kept: AOF), the customer trying to publish meanwhile.
async fn after_redis_returns(outage: Duration, what: &str) {
    let mut took = Vec::new();
    for run in 0..runs() {
        let mut redis = DurableRedis::start().await;
        let a = NodeProcess::start(&redis.url(), &[]).await;
        let b = NodeProcess::start(&redis.url(), &[]).await;
        let all = events(200);
        let room = format!("outage-{run}");
        let mut customer = Resilient::new(
            &format!("ws://{}/ws?room={room}", a.addr),
            Role::Customer,
            "cust",
        );
        customer.quiet = Duration::from_millis(20);
        let mut agent = Resilient::new(
            &format!("ws://{}/ws?room={room}", b.addr),
            Role::Agent,
            "agent",
        );
        customer.pump(Duration::from_millis(100)).await;
        agent.pump(Duration::from_millis(100)).await;
        customer.publish_all(&all, 100).await;
        agent_until(&mut agent, 100, Instant::now()).await;

        redis.kill9();
        // The customer sends on (refused as unavailable; it keeps them to resend), then both
        // wait out the outage without reading, as clients whose reconnects keep failing would.
        customer.publish_from(&all, 100, 120).await;
        tokio::time::sleep(outage).await;
        redis.restart().await;
        let back = Instant::now();
        took.push(converge(&mut customer, &mut agent, &all, 200, back).await);
    }
    report(what, took.iter().map(|d| d.as_secs_f64() * 1e3).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: loadtest/bench/convergence.sh"]
async fn after_redis_restarts() {
    after_redis_returns(Duration::ZERO, "redis restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: loadtest/bench/convergence.sh"]
async fn after_a_15_s_redis_outage() {
    after_redis_returns(Duration::from_secs(15), "redis outage 15 s").await;
}
