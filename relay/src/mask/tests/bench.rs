//! Measurements, not tests (`#[ignore]`d): nanoseconds per event of masking the recordings'
//! events the relay masks (those [`may_need_masking`] picks), and a single pass to run under
//! callgrind for instructions per event.
//!
//! ```text
//! cargo test --release -p assist-relay --lib mask::tests::bench::per_event -- --ignored --nocapture
//! MASK_BENCH=loan-apply.json:passwords valgrind --tool=callgrind \
//!   --toggle-collect='*RoomMask*::mask' target/release/deps/assist_relay-HASH \
//!   mask::tests::bench::one_pass --ignored --exact
//! ```
//!
//! With `MASK_BENCH_SKIP_FULL=1` the FullSnapshots are observed, not masked: callgrind then
//! counts the incremental events (Mutations, Input events) alone.

use assist_relay_proto::EventHead;

use super::*;

/// The events of a recording that the relay masks (it skips the rest before masking).
fn maskable(name: &str, policy: MaskPolicy) -> Vec<Box<RawValue>> {
    fixture(name)
        .into_iter()
        .filter(|e| {
            let head = EventHead::scan(e).expect("a recorded event has a head");
            may_need_masking(policy, head.kind.as_u8(), head.source)
        })
        .collect()
}

fn maskable_snapshots(events: &[Box<RawValue>]) -> usize {
    events
        .iter()
        .filter(|e| EventHead::scan(e).is_ok_and(|h| h.kind.as_u8() == 2))
        .count()
}

#[test]
#[ignore = "a measurement, not a test"]
fn per_event() {
    for name in ["loan-apply.json", "demoit.json", "chat-widget.json"] {
        for policy in [MaskPolicy::Passwords, MaskPolicy::Inputs] {
            let events = maskable(name, policy);
            let bytes: usize = events.iter().map(|e| e.get().len()).sum();
            let rounds = 200;
            let mut changed = 0;
            // Nanoseconds in the other events and in FullSnapshots (type 2).
            let mut ns = [0u128; 2];
            for _ in 0..rounds {
                let mut m = RoomMask::new(policy, KEY);
                changed = 0;
                for e in &events {
                    let full = usize::from(EventHead::scan(e).is_ok_and(|h| h.kind.as_u8() == 2));
                    let start = std::time::Instant::now();
                    changed += usize::from(matches!(m.mask(e), Ok(Some(_))));
                    ns[full] += start.elapsed().as_nanos();
                }
            }
            let n = events.len();
            let full = maskable_snapshots(&events);
            let per = |t: u128, k: usize| t as f64 / (rounds * k.max(1)) as f64;
            println!(
                "{name} {policy}: {n} events ({} bytes avg, {changed} rewritten): {:.0} ns/event; \
                 {full} FullSnapshots {:.0} ns each, {} others {:.0} ns each",
                bytes / n.max(1),
                per(ns[0] + ns[1], n),
                per(ns[1], full),
                n - full,
                per(ns[0], n - full),
            );
        }
    }
}

/// One pass over `MASK_BENCH` (`file:policy`), for callgrind.
#[test]
#[ignore = "a measurement, not a test"]
fn one_pass() {
    let spec = std::env::var("MASK_BENCH").unwrap_or_else(|_| "loan-apply.json:passwords".into());
    let (name, policy) = spec.split_once(':').expect("file:policy");
    let policy = MaskPolicy::parse(policy).expect("a policy");
    let events = maskable(name, policy);
    // MASK_BENCH_SKIP_FULL: FullSnapshots go through `observe` (not counted by
    // `--toggle-collect='*RoomMask*::mask'`), to count the incremental events alone.
    let skip_full = std::env::var_os("MASK_BENCH_SKIP_FULL").is_some();
    let mut m = RoomMask::new(policy, KEY);
    let (mut changed, mut masked) = (0, 0);
    for e in &events {
        if skip_full && EventHead::scan(e).is_ok_and(|h| h.kind.as_u8() == 2) {
            m.observe(e);
            continue;
        }
        masked += 1;
        changed += usize::from(matches!(m.mask(e), Ok(Some(_))));
    }
    println!("{name} {policy}: {masked} events masked, {changed} rewritten");
}

/// Writes what masking makes of every event of every recording under every policy (one line
/// each: `-` for unchanged, else the masked event) to `$MASK_DUMP/<file>.<policy>`, to compare
/// two implementations byte for byte.
#[test]
#[ignore = "a diagnostic, not a test"]
fn dump() {
    let Ok(dir) = std::env::var("MASK_DUMP") else {
        return;
    };
    for name in FIXTURES {
        let events = fixture(name);
        for policy in MaskPolicy::ALL {
            let mut m = RoomMask::new(policy, KEY);
            let mut out = String::new();
            for e in &events {
                match m.mask(e) {
                    Ok(None) => out.push('-'),
                    Ok(Some(masked)) => out.push_str(masked.get()),
                    Err(err) => out.push_str(&format!("error {err}")),
                }
                out.push('\n');
            }
            out.push_str(&format!("typed {:?}\n", m.take_new_typed()));
            std::fs::write(format!("{dir}/{name}.{policy}"), out).expect("writes");
        }
    }
}
