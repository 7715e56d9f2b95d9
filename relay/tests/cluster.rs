//! Cluster mode under failure, with real processes: `relay serve` nodes sharing a redis-server,
//! nginx in front, nodes killed with SIGKILL, Redis stopped and restarted.

mod cluster_support;
mod common;

use std::net::SocketAddr;

use std::process::Command;
use std::time::Duration;

use assist_relay_proto::{Role, ServerFrame};
use cluster_support::resilient::*;
use cluster_support::*;
use common::*;

#[test]
fn both_nginx_configurations_pass_nginx_t() {
    for template in ["assist-relay.conf", "assist-relay-room-affinity.conf"] {
        let dir =
            std::env::temp_dir().join(format!("ar-nginx-t-{}-{template}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let nodes: Vec<SocketAddr> = vec![
            "127.0.0.1:8081".parse().expect("addr"),
            "127.0.0.1:8082".parse().expect("addr"),
        ];
        let conf = nginx_conf(
            template,
            &dir,
            "127.0.0.1:18080".parse().expect("addr"),
            &nodes,
        );
        let out = Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nginx -t");
        assert!(
            out.status.success(),
            "{template}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_of_a_customer_and_an_agent_loses_nothing_acknowledged() {
    let redis = RedisServer::start().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(NodeProcess::start(&redis.url(), &[]).await);
    }
    let nginx = Nginx::start(
        "assist-relay.conf",
        &nodes.iter().map(|n| n.addr).collect::<Vec<_>>(),
    )
    .await;
    let url = format!("ws://{}/ws?room=kill", nginx.addr);
    let all = events(400);

    let mut customer = Resilient::new(&url, Role::Customer, "cust");
    let mut agent = Resilient::new(&url, Role::Agent, "agent");
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    customer.publish_all(&all, 200).await;
    customer.chat_until_acked("c-before").await;
    agent.chat_until_acked("a-before").await;
    agent.pump(Duration::from_millis(300)).await;

    // ip_hash sends every loopback client to one node: kill that one, mid-stream.
    let mut victim = None;
    for (i, n) in nodes.iter().enumerate() {
        if n.connections().await >= 2.0 {
            victim = Some(i);
        }
    }
    let victim = victim.expect("a node holds both clients");
    customer.publish_from(&all, 200, 260).await; // some of these are in flight when the node dies
    nodes[victim].kill9();

    customer.publish_all(&all, 400).await;
    customer.chat_until_acked("c-after").await;
    agent.chat_until_acked("a-after").await;
    while agent.events.len() < 400 || agent.chats.len() < 4 {
        let before = (agent.events.len(), agent.chats.len());
        agent.pump(Duration::from_secs(2)).await;
        if (agent.events.len(), agent.chats.len()) == before {
            break; // no progress: the comparison below says what is missing
        }
    }
    customer.pump(Duration::from_millis(500)).await;

    assert_same_events(&agent, &all);
    assert_eq!(
        agent.resyncs, 0,
        "the log still held everything, so the agent resumed"
    );
    let acked = ["c-before", "a-before", "c-after", "a-after"];
    assert_exactly_once(&agent, &acked);
    assert_exactly_once(&customer, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_turns_readiness_off_and_everyone_converges_after_it() {
    let mut redis = DurableRedis::start().await;
    let a = NodeProcess::start(&redis.url(), &[]).await;
    let b = NodeProcess::start(&redis.url(), &[]).await;
    let all = events(300);
    let mut customer = Resilient::new(
        &format!("ws://{}/ws?room=outage", a.addr),
        Role::Customer,
        "cust",
    );
    let mut agent = Resilient::new(
        &format!("ws://{}/ws?room=outage", b.addr),
        Role::Agent,
        "agent",
    );
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    customer.publish_all(&all, 100).await;
    customer.chat_until_acked("c-before").await;
    agent.chat_until_acked("a-before").await;

    redis.kill9();
    wait_until(Duration::from_secs(10), || async {
        !ready(a.admin).await && !ready(b.admin).await
    })
    .await;
    // Sends during the outage are refused as unavailable; the clients keep them to resend.
    customer.publish_from(&all, 100, 150).await;
    customer.pump(Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    redis.restart().await;
    let restarted = tokio::time::Instant::now();
    wait_until(Duration::from_secs(10), || async {
        ready(a.admin).await && ready(b.admin).await
    })
    .await;
    eprintln!(
        "both nodes ready {:?} after redis came back",
        restarted.elapsed()
    );

    customer.publish_all(&all, 300).await;
    customer.chat_until_acked("c-after").await;
    while agent.events.len() < 300 || agent.chats.len() < 3 {
        let before = (agent.events.len(), agent.chats.len());
        agent.pump(Duration::from_secs(2)).await;
        if (agent.events.len(), agent.chats.len()) == before {
            break; // no progress: the comparison below says what is missing
        }
    }
    assert_same_events(&agent, &all);
    assert_exactly_once(&agent, &["c-before", "a-before", "c-after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_killed_node_are_reported_left_within_the_presence_ttl() {
    let redis = RedisServer::start().await;
    let a = NodeProcess::start(&redis.url(), &["--presence-ttl", "3s"]).await;
    let mut b = NodeProcess::start(&redis.url(), &["--presence-ttl", "3s"]).await;
    let mut customer = Resilient::new(
        &format!("ws://{}/ws?room=dead", a.addr),
        Role::Customer,
        "cust",
    );
    let mut agent = Resilient::new(
        &format!("ws://{}/ws?room=dead", b.addr),
        Role::Agent,
        "agent",
    );
    customer.pump(Duration::from_millis(200)).await;
    agent.pump(Duration::from_millis(200)).await;
    let c = customer.client.as_mut().expect("connected");
    c.recv_until(|f| matches!(f, ServerFrame::MemberJoined { member } if member.id == "agent"))
        .await;

    b.kill9();
    let killed = tokio::time::Instant::now();
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next_raw().await {
                Some(ServerFrame::MemberLeft { member }) if member.id == "agent" => return,
                Some(_) => {}
                None => panic!("customer disconnected"),
            }
        }
    })
    .await;
    assert!(
        left.is_ok(),
        "the agent of the dead node was never reported as left"
    );
    eprintln!(
        "member_left {:?} after the kill (presence ttl 3 s)",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_with_rooms_on_all_three_masters_relays_across_nodes() {
    let redis = RedisCluster::start().await;
    let a = NodeProcess::start(&redis.urls(), &["--redis-cluster"]).await;
    let b = NodeProcess::start(&redis.urls(), &["--redis-cluster"]).await;
    let all = events(40);
    let mut rooms = Vec::new();
    for r in 0..9 {
        let room = format!("rc-{r}");
        let mut customer = Resilient::new(
            &format!("ws://{}/ws?room={room}", a.addr),
            Role::Customer,
            "cust",
        );
        let mut agent = Resilient::new(
            &format!("ws://{}/ws?room={room}", b.addr),
            Role::Agent,
            "agent",
        );
        customer.pump(Duration::from_millis(100)).await;
        agent.pump(Duration::from_millis(100)).await;
        rooms.push((customer, agent));
    }
    for (customer, agent) in &mut rooms {
        customer.publish_all(&all, all.len()).await;
        customer.chat_until_acked("hello").await;
        agent.chat_until_acked("hi").await;
    }
    for (customer, agent) in &mut rooms {
        while agent.events.len() < all.len() || agent.chats.len() < 2 {
            let before = (agent.events.len(), agent.chats.len());
            agent.pump(Duration::from_secs(2)).await;
            if (agent.events.len(), agent.chats.len()) == before {
                break;
            }
        }
        customer.pump(Duration::from_millis(200)).await;
        assert_same_events(agent, &all);
        assert_exactly_once(agent, &["hello", "hi"]);
        assert_exactly_once(customer, &["hello", "hi"]);
    }
    for p in &redis.ports {
        assert!(
            redis.dbsize(*p) > 0,
            "master on port {p} holds no room keys"
        );
    }
}
