//! One client connection, from `join` to close: one task per connection. This module owns the
//! task's shape (join with its timeout, then one `select!` over the client's frames, the room's
//! live stream, the held pointer move, the ping timer, token expiry and shutdown) and the leaving;
//! the parts live beside it, in the order data flows:
//! - `socket.rs`: reading frames and writing them in batches ([`Socket`] is the socket type);
//! - `inbound.rs`, `dispatch.rs`, `publish.rs`, `upload.rs`, `relay.rs`: a client frame decoded,
//!   held to the rates (`crate::limits`), checked against the connection's rights (`roles.rs`),
//!   stored or relayed, and its replies;
//! - `catchup.rs`, `live.rs`, `outbound.rs`: `joined`, the catch-up, the room's live stream,
//!   recovery;
//! - `exit.rs`: how a connection ends.
//!
//! Ordering without gaps or duplicates rests on one rule: subscribe to the room *before* reading the
//! catch-up, then drop live entries at or below the last offset already sent. An entry above
//! `last + 1`, a lagged receiver, a backlog over the byte bound, or a new epoch sends the connection
//! through `Outbound::recover`, which resumes from the log when it can and resyncs (clearly marked)
//! when it cannot.
//!
//! Backpressure: the room's live stream is a bounded ring shared by every local member
//! (`--room-buffer` messages); each member also has a byte bound (`--max-queue-bytes`) on how far it
//! may fall behind. A member past either bound skips its backlog and recovers from the log; one that
//! stays behind for `--slow-timeout`, or whose socket accepts nothing for `--write-timeout`, is
//! closed with 4001. The publisher never waits for viewers.

mod catchup;
mod dispatch;
mod exit;
mod inbound;
mod live;
mod outbound;
mod publish;
mod relay;
mod roles;
mod socket;
mod upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use assist_relay_proto::{CloseCode, Member, Position};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::auth::Admission;
use crate::hub::{now_us, Subscription};
use crate::Node;
use dispatch::Work;
use exit::Exit;
use inbound::Inbound;
use outbound::Outbound;
use roles::Rights;
pub(crate) use socket::Socket;
use socket::Wire;

/// Serves one upgraded connection until it ends.
pub(crate) async fn serve(node: Arc<Node>, ws: Socket, adm: Admission, conn_id: u64) {
    let role = adm.claims.role;
    let gauge = node.metrics.connections.with_label_values(&[role.as_str()]);
    gauge.inc();
    let me = Member {
        id: adm.claims.sub.clone(),
        role,
    };
    let replies = Arc::new(socket::Replies::default());
    let inbound = Inbound::new(node.clone(), &adm, me.clone(), replies.clone());
    let mut out = Outbound {
        node: node.clone(),
        wire: Wire::new(node.clone(), ws),
        codec: adm.codec,
        room: Arc::from(adm.claims.room.as_str()),
        me,
        rights: Rights::new(&adm.claims),
        conn_id,
        epoch: Arc::from(""),
        last: 0,
        behind_since: None,
        replies,
    };
    let mut entered = false;
    let exit = session(&mut out, inbound, &mut entered, adm.claims.exp).await;
    let reason = exit.audit_name();
    // The close frame first: the cleanup below waits on the store, which may be what failed.
    out.wire.finish(exit).await;
    if entered {
        let room = &*out.room;
        crate::audit::leave(room, &out.me.id, role, conn_id, reason);
        if let Err(e) = node.broker.exit(room, &out.me, conn_id).await {
            tracing::warn!(error = %e, "presence exit failed");
        }
        if out.rights.stages_uploads() {
            let grace = node.config.upload_orphan_ttl;
            if let Err(e) = node.log.release_uploads(room, &out.me.id, grace).await {
                tracing::warn!(error = %e, "releasing staged uploads failed");
            }
        }
    }
    gauge.dec();
}

async fn session(out: &mut Outbound, mut inbound: Inbound, entered: &mut bool, exp: u64) -> Exit {
    let mut shutdown = out.node.shutdown_signal();
    let join_timeout = out.node.config.join_timeout;
    let join = tokio::select! {
        join = tokio::time::timeout(join_timeout, await_join(out, &mut inbound)) => join,
        () = wait_shutdown(&mut shutdown) => return Exit::Close(CloseCode::Shutdown),
    };
    let resume = match join {
        Err(_) => return Exit::Close(CloseCode::JoinTimeout),
        Ok(Err(exit)) => return exit,
        Ok(Ok(resume)) => resume,
    };
    match out.joined(resume, entered).await {
        Ok(sub) => live(out, inbound, sub, exp).await,
        Err(exit) => exit,
    }
}

/// Reads frames until `join`. Pings are answered; anything else is refused with `not_joined`.
async fn await_join(out: &mut Outbound, inbound: &mut Inbound) -> Result<Option<Position>, Exit> {
    loop {
        let Some(msg) = out.wire.next_inbound().await? else {
            continue;
        };
        let joined = inbound.before_join(&msg).await;
        out.send_replies(None).await?;
        if let Some(resume) = joined? {
            return Ok(resume);
        }
    }
}

/// The live loop: the client's frames, the room's live stream and the timers, until the
/// connection ends.
///
/// A client frame is not handled inside a `select!` arm: reading it starts a job
/// ([`dispatch::run`]) that owns the [`Inbound`] state and is polled as one more arm, beside the
/// room's stream, until it ends (its rate waits, masking and store calls run meanwhile). While a
/// job is in flight no further client frame is read (so TCP backpressure still slows a sender
/// over its rate) and the held pointer move waits; live entries, presence and relayed messages
/// go on being written. The job's replies (`ack`, `error`, ...) reach the same writer through a
/// queue, in the order it produced them, each run of them one batch between live batches; when
/// the job ends, what it queued is written before anything else.
async fn live(out: &mut Outbound, inbound: Inbound, mut sub: Subscription, exp: u64) -> Exit {
    let cfg = out.node.config.clone();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    let mut shutdown = out.node.shutdown_signal();
    // Made once, not per iteration: a fresh `changed()` after every batch would join and
    // leave the node-wide signal's waiter list, under its lock, every time.
    let shutdown = wait_shutdown(&mut shutdown);
    tokio::pin!(shutdown);
    let expiry = token_expiry(exp);
    tokio::pin!(expiry);
    // The inbound state between jobs (`None` while a job owns it), and the job in flight.
    let mut idle = Some(inbound);
    let mut job = JobSlot(None);
    let replies = out.replies.clone();
    let exit = loop {
        let pointer_due = idle.as_ref().and_then(Inbound::pointer_due);
        let step: Result<(), Exit> = tokio::select! {
            biased;
            () = &mut shutdown => Err(Exit::Close(CloseCode::Shutdown)),
            () = &mut expiry => Err(Exit::Close(CloseCode::TokenExpired)),
            (state, result) = job.done(), if job.is_running() => {
                job.clear();
                idle = Some(state);
                out.send_replies(None).await.and(result)
            }
            // Only a job queues replies; what it queued is written when it ends, at the latest.
            first = replies.next(), if job.is_running() => {
                out.send_replies(Some(first)).await
            }
            msg = out.wire.next_inbound(), if idle.is_some() => match msg {
                Ok(Some(msg)) => {
                    if let Some(state) = idle.take() {
                        job.start(dispatch::run(state, Work::Frame(msg)));
                    }
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(exit) => Err(exit),
            },
            msg = sub.rx.recv() => out.on_room_msg(msg, &mut sub).await,
            () = sleep_until_due(pointer_due), if pointer_due.is_some() => {
                if let Some(state) = idle.take() {
                    job.start(dispatch::run(state, Work::DuePointer));
                }
                Ok(())
            }
            _ = ping.tick() => {
                // A client whose frame is still being handled is not idle.
                if idle.is_some() && out.wire.last_inbound.elapsed() > cfg.idle_timeout {
                    Err(Exit::Close(CloseCode::IdleTimeout))
                } else {
                    out.wire.send(Message::Ping(Default::default()), None).await
                }
            }
        };
        if let Err(exit) = step {
            break exit;
        }
    };
    // Ending in order (shutdown, token expiry, room closed), the frame in hand is finished first,
    // as it would have been before reading the next one; a failed or stalled socket drops it
    // (the client resends it, by id, after reconnecting).
    if exit.lets_frame_finish() && job.is_running() {
        let (_, result) = job.done().await;
        let _ = out.send_replies(None).await;
        if let Err(first) = result {
            return first;
        }
    }
    exit
}

/// Where the job in flight runs: one client frame (or the held pointer move) being handled, a
/// future that owns the inbound state and gives it back with the outcome. The slot is allocated
/// with the connection's first frame after join and reused for every later one: a frame costs no
/// allocation (a box per frame showed in B2's profile as malloc work), and an idle connection
/// (most viewers, always) holds a pointer rather than room for the whole future.
struct JobSlot<F>(Option<Pin<Box<Option<F>>>>);

impl<F: Future> JobSlot<F> {
    fn is_running(&self) -> bool {
        self.0.as_ref().is_some_and(|slot| slot.is_some())
    }

    fn start(&mut self, job: F) {
        match &mut self.0 {
            Some(slot) => slot.as_mut().set(Some(job)),
            None => self.0 = Some(Box::pin(Some(job))),
        }
    }

    /// Drops the finished job, keeping the slot.
    fn clear(&mut self) {
        if let Some(slot) = &mut self.0 {
            slot.as_mut().set(None);
        }
    }

    /// Resolves when the job in flight ends (never while there is none).
    fn done(&mut self) -> impl Future<Output = F::Output> + '_ {
        std::future::poll_fn(move |cx| {
            match self.0.as_mut().and_then(|slot| slot.as_mut().as_pin_mut()) {
                Some(job) => job.poll(cx),
                None => Poll::Pending,
            }
        })
    }
}

/// Resolves once the node starts draining.
async fn wait_shutdown(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves at `due` (never without one).
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the token's `exp` passes.
async fn token_expiry(exp: u64) {
    let now = now_us() / 1_000_000;
    tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
}
