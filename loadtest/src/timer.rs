//! A sub-millisecond timer for publisher schedules.
//!
//! tokio's timer rounds deadlines up to its 1 ms tick, so a publisher woken by it sends on average
//! about 1 ms after the scheduled time; since latency is measured from the scheduled time, that
//! slack would be charged to the server. This timer keeps one OS thread with a deadline heap and
//! wakes waiters with a oneshot channel, which lands within tens of microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc as std_mpsc;
use std::sync::OnceLock;
use std::time::Instant;

use tokio::sync::oneshot;

struct Waiter {
    due: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiter {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Requests queued to the timer thread at most (beyond that, waiters fall back to tokio's timer).
const QUEUE: usize = 4096;

/// A wake-up request: the deadline and whom to wake.
type Request = (Instant, oneshot::Sender<()>);

fn timer() -> Option<&'static std_mpsc::SyncSender<Request>> {
    static TIMER: OnceLock<Option<std_mpsc::SyncSender<Request>>> = OnceLock::new();
    TIMER
        .get_or_init(|| {
            let (tx, rx) = std_mpsc::sync_channel::<Request>(QUEUE);
            std::thread::Builder::new()
                .name("loadtest-timer".to_owned())
                .spawn(move || run(rx))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

fn run(rx: std_mpsc::Receiver<Request>) {
    let mut heap: BinaryHeap<Reverse<Waiter>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|w| w.0.due <= now) {
            if let Some(Reverse(w)) = heap.pop() {
                let _ = w.wake.send(());
            }
        }
        let next = match heap.peek() {
            Some(w) => rx.recv_timeout(w.0.due.saturating_duration_since(now)),
            None => rx
                .recv()
                .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((due, wake)) => {
                seq += 1;
                heap.push(Reverse(Waiter { due, seq, wake }));
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Sleeps until `due`, precisely (falls back to tokio's timer if the thread cannot start).
pub async fn sleep_until(due: Instant) {
    if due <= Instant::now() {
        return;
    }
    let Some(tx) = timer() else {
        tokio::time::sleep_until(due.into()).await;
        return;
    };
    let (wake, woken) = oneshot::channel();
    // Never block a runtime thread: if the timer is swamped, use tokio's timer for this one.
    let sent = tx.try_send((due, wake)).is_ok();
    if !sent || woken.await.is_err() {
        tokio::time::sleep_until(due.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_close_to_the_deadline() {
        let mut worst = Duration::ZERO;
        for i in 0..20u64 {
            let due = Instant::now() + Duration::from_micros(500 + i * 100);
            sleep_until(due).await;
            let late = Instant::now().saturating_duration_since(due);
            worst = worst.max(late);
            assert!(Instant::now() >= due);
        }
        // Generous: a shared CI machine may preempt us; tokio's timer alone is ~1 ms late.
        assert!(worst < Duration::from_millis(50), "worst {worst:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_all_wake_in_deadline_order() {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in (0..50u64).rev() {
            let due = start + Duration::from_millis(5 + i);
            tasks.push(tokio::spawn(async move {
                sleep_until(due).await;
                Instant::now() >= due
            }));
        }
        for t in tasks {
            assert!(t.await.expect("task"));
        }
    }
}
