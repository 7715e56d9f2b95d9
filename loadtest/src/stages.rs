//! Ramping (`--stages`): a target (events/s, cycles/s or rooms) that moves over time, like k6's
//! `stages`, so one run can walk the load up past the knee.
//!
//! `30s:10,1m:50,30s:0` starts at 0 and moves linearly to 10 over the first 30 s, to 50 over the
//! next minute, then back to 0 over 30 s. A stage of `0s` jumps at once, so `0s:10,20s:10,0s:20,
//! 20s:20` is a staircase. The run lasts as long as the stages together (it replaces
//! `--duration`).
//!
//! Rates are integrated: the i-th message is due when the area under the target curve reaches i
//! ([`Stages::time_of`]), so the schedule stays open-loop. Rooms are levels: room r (from 0) is
//! active while the target is at least r + 1 ([`Stages::window`]).

use std::time::Duration;

/// One stage: reach `target` at the end of `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: Duration,
    /// The target at its end.
    pub target: f64,
}

/// The stages of a run, starting from a target of 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    stages: Vec<Stage>,
}

/// A linear piece of the curve: from `a` at `t0` to `b` after `d` seconds.
#[derive(Debug, Clone, Copy)]
struct Piece {
    t0: f64,
    d: f64,
    a: f64,
    b: f64,
}

impl Stages {
    /// Parses `DURATION:TARGET[,DURATION:TARGET...]` (durations as humantime: `30s`, `1m`,
    /// `1m30s`, `500ms`; targets non-negative numbers).
    pub fn parse(s: &str) -> Result<Stages, String> {
        let mut stages = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (d, t) = part
                .split_once(':')
                .ok_or_else(|| format!("stage {part:?} is not DURATION:TARGET (e.g. 30s:10)"))?;
            let duration = humantime::parse_duration(d.trim())
                .map_err(|e| format!("stage {part:?}: bad duration {d:?}: {e}"))?;
            let target: f64 = t
                .trim()
                .parse()
                .map_err(|_| format!("stage {part:?}: bad target {t:?} (a number)"))?;
            if !target.is_finite() || target < 0.0 {
                return Err(format!(
                    "stage {part:?}: the target must be a non-negative number"
                ));
            }
            stages.push(Stage { duration, target });
        }
        if stages.is_empty() {
            return Err("no stages (e.g. 30s:10,1m:50,30s:0)".to_owned());
        }
        let s = Stages { stages };
        if s.total().is_zero() {
            return Err("the stages last no time at all".to_owned());
        }
        if s.peak() <= 0.0 {
            return Err("every stage's target is 0: nothing would run".to_owned());
        }
        Ok(s)
    }

    /// The stages.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// How long they last together.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest target.
    pub fn peak(&self) -> f64 {
        self.stages.iter().map(|s| s.target).fold(0.0, f64::max)
    }

    fn pieces(&self) -> impl Iterator<Item = Piece> + '_ {
        let mut t0 = 0.0;
        let mut a = 0.0;
        self.stages.iter().map(move |s| {
            let p = Piece {
                t0,
                d: s.duration.as_secs_f64(),
                a,
                b: s.target,
            };
            t0 += p.d;
            a = s.target;
            p
        })
    }

    /// The target at `t` after the start (the last target after the end).
    pub fn target_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let mut last = 0.0;
        for p in self.pieces() {
            if p.d > 0.0 && t < p.t0 + p.d {
                return p.a + (p.b - p.a) * ((t - p.t0).max(0.0) / p.d);
            }
            last = p.b;
        }
        last
    }

    /// When the area under the curve reaches `n` (the n-th message of a rate is due then, from
    /// 0); `None` if it never does before the end.
    pub fn time_of(&self, n: f64) -> Option<Duration> {
        let mut left = n.max(0.0);
        for p in self.pieces() {
            if p.d <= 0.0 {
                continue;
            }
            let area = (p.a + p.b) / 2.0 * p.d;
            if left <= area && area > 0.0 {
                // Solve a·s + k·s² = left with k = (b - a) / (2d), in the form that stays exact
                // when k is 0 and never divides by a vanishing k.
                let k = (p.b - p.a) / (2.0 * p.d);
                let disc = (p.a * p.a + 4.0 * k * left).max(0.0);
                let denom = p.a + disc.sqrt();
                let s = if denom > 0.0 { 2.0 * left / denom } else { 0.0 };
                return Some(Duration::from_secs_f64(p.t0 + s.clamp(0.0, p.d)));
            }
            left -= area;
        }
        None
    }

    /// When the target first reaches `level`, and when it next drops below it (or the end):
    /// room `level - 1`'s active window. `None` if it never reaches `level`.
    pub fn window(&self, level: f64) -> Option<(Duration, Duration)> {
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let mut from: Option<f64> = None;
        for p in self.pieces() {
            match from {
                None => {
                    if p.a >= level && p.d > 0.0 {
                        from = Some(p.t0);
                    } else if p.b >= level {
                        let s = if p.d > 0.0 {
                            p.d * (level - p.a) / (p.b - p.a)
                        } else {
                            0.0
                        };
                        from = Some(p.t0 + s);
                    }
                    // It may also fall back within this same piece only if it started above;
                    // a piece that rises to `level` ends at or above it.
                    if let Some(f) = from {
                        if p.a >= level && p.b < level {
                            let s = if p.d > 0.0 {
                                p.d * (p.a - level) / (p.a - p.b)
                            } else {
                                0.0
                            };
                            return Some((secs(f), secs(p.t0 + s)));
                        }
                    }
                }
                Some(f) => {
                    if p.b < level {
                        let s = if p.d > 0.0 {
                            p.d * (p.a - level) / (p.a - p.b)
                        } else {
                            0.0
                        };
                        return Some((secs(f), secs(p.t0 + s)));
                    }
                }
            }
        }
        from.map(|f| (secs(f), self.total()))
    }
}

impl std::str::FromStr for Stages {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stages::parse(s)
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{}:{}", humantime::format_duration(s.duration), s.target))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn parses_k6_style_stages() {
        let s = Stages::parse("30s:10, 1m:50,30s:0").expect("valid");
        assert_eq!(s.stages().len(), 3);
        assert_eq!(s.total(), Duration::from_secs(120));
        assert_eq!(s.peak(), 50.0);
        assert_eq!(s.stages()[1].duration, Duration::from_secs(60));
        assert_eq!(s.to_string(), "30s:10,1m:50,30s:0");
    }

    #[test]
    fn bad_stages_say_what_is_wrong() {
        for (bad, says) in [
            ("", "no stages"),
            ("30s", "DURATION:TARGET"),
            ("30:10", "bad duration"),
            ("30s:x", "bad target"),
            ("30s:-1", "non-negative"),
            ("0s:10", "no time"),
            ("10s:0,5s:0", "nothing would run"),
        ] {
            let e = Stages::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn target_moves_linearly_and_jumps_on_zero_length_stages() {
        let s = Stages::parse("10s:10,10s:30,0s:50,10s:50").expect("valid");
        assert_eq!(s.target_at(Duration::ZERO), 0.0);
        assert!((s.target_at(Duration::from_secs(5)) - 5.0).abs() < 1e-9);
        assert!((s.target_at(Duration::from_secs(15)) - 20.0).abs() < 1e-9);
        assert!((s.target_at(Duration::from_secs(20)) - 50.0).abs() < 1e-9);
        assert!((s.target_at(Duration::from_secs(25)) - 50.0).abs() < 1e-9);
        assert_eq!(s.target_at(Duration::from_secs(99)), 50.0);
    }

    #[test]
    fn a_rate_schedule_integrates_the_curve() {
        // 0 -> 10/s over 10 s: 50 messages; then 10/s flat for 10 s: 100 more.
        let s = Stages::parse("10s:10,10s:10").expect("valid");
        assert_eq!(s.time_of(0.0), Some(Duration::ZERO));
        // Area s²/2 = 8 at s = 4.
        assert!((secs(s.time_of(8.0).expect("due")) - 4.0).abs() < 1e-9);
        assert!((secs(s.time_of(50.0).expect("due")) - 10.0).abs() < 1e-9);
        assert!((secs(s.time_of(100.0).expect("due")) - 15.0).abs() < 1e-9);
        assert!((secs(s.time_of(150.0).expect("due")) - 20.0).abs() < 1e-9);
        assert_eq!(s.time_of(151.0), None);
        // Falling: 10 -> 0 over 10 s holds 50; half of it (37.5 after 5 s) is 37.5.
        let down = Stages::parse("0s:10,10s:0").expect("valid");
        assert!((secs(down.time_of(37.5).expect("due")) - 5.0).abs() < 1e-9);
        // Times never go backwards.
        let ramp = Stages::parse("30s:10,1m:50,30s:0").expect("valid");
        let mut last = Duration::ZERO;
        for i in 0..3000 {
            let Some(t) = ramp.time_of(i as f64) else {
                break;
            };
            assert!(t >= last, "message {i}");
            last = t;
        }
    }

    #[test]
    fn room_windows_follow_the_level() {
        // 0 -> 4 rooms over 4 s, hold 4 s, 4 -> 0 over 4 s.
        let s = Stages::parse("4s:4,4s:4,4s:0").expect("valid");
        let w = |level: f64| s.window(level).map(|(a, b)| (secs(a), secs(b)));
        let (from, to) = w(1.0).expect("room 0");
        assert!(
            (from - 1.0).abs() < 1e-9 && (to - 11.0).abs() < 1e-9,
            "{from} {to}"
        );
        let (from, to) = w(4.0).expect("room 3");
        assert!(
            (from - 4.0).abs() < 1e-9 && (to - 8.0).abs() < 1e-9,
            "{from} {to}"
        );
        assert_eq!(w(5.0), None);
        // A level held to the end stays until the end.
        let up = Stages::parse("0s:2,5s:2").expect("valid");
        assert_eq!(
            up.window(2.0),
            Some((Duration::ZERO, Duration::from_secs(5)))
        );
    }
}
