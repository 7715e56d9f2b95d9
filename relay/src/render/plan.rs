//! The frame plan of a video: which replay time each frame shows, where idle stretches are cut
//! and what their captions say, the video size, and the subtitle cues. A pure function of the
//! recording and the settings (no I/O, no clock), so the same recording always gives the same
//! plan, and it is tested on its own.

use serde::Deserialize;

use super::RenderError;

/// Settings of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Frames per second of the video.
    pub fps: u32,
    /// Idle stretches longer than this (ms, no event but FullSnapshot checkouts, no chat) are cut.
    pub idle_skip_ms: u64,
    /// Widest video (pixels); wider recordings are scaled down.
    pub max_width: u32,
    /// Tallest video (pixels).
    pub max_height: u32,
    /// Longest video (ms, after the cuts).
    pub max_duration_ms: u64,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            fps: 10,
            idle_skip_ms: 10_000,
            max_width: 1920,
            max_height: 1080,
            max_duration_ms: 4 * 3600 * 1000,
        }
    }
}

/// How long a cut's caption stays on screen, ms of video.
pub const CAPTION_MS: u64 = 2000;
/// How long a chat subtitle stays on screen at most, ms of video.
pub const CUE_MS: u64 = 5000;
/// Size of a recording without a Meta event.
const DEFAULT_SIZE: (u32, u32) = (1280, 720);

/// One cut idle stretch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Skip {
    /// Where in the video the cut is (ms): the first frame after it shows the caption.
    pub at_video_ms: u64,
    /// The replay time cut from (ms after the first event).
    pub from_ms: u64,
    /// The replay time the video resumes at.
    pub to_ms: u64,
}

/// A subtitle (a chat message) on the video's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    /// Start, ms of video.
    pub start_ms: u64,
    /// End, ms of video.
    pub end_ms: u64,
    /// Text.
    pub text: String,
}

/// The plan of a video.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Video width (even).
    pub width: u32,
    /// Video height (even).
    pub height: u32,
    /// CSS scale of the replay inside the video (1 unless the recording is larger than allowed).
    pub scale: f64,
    /// Frames per second.
    pub fps: u32,
    /// Per frame: the replay time (ms after the first event) and the caption index (-1: none).
    pub frames: Vec<(f64, i32)>,
    /// Caption texts.
    pub captions: Vec<String>,
    /// The cuts.
    pub skips: Vec<Skip>,
    /// The recording's length, ms (last event - first event).
    pub recording_ms: u64,
    /// Chat subtitles.
    pub cues: Vec<Cue>,
}

impl Plan {
    /// The video's duration, ms (frames / fps).
    pub fn duration_ms(&self) -> u64 {
        self.frames.len() as u64 * 1000 / u64::from(self.fps)
    }
    /// Replay time cut out, ms.
    pub fn skipped_ms(&self) -> u64 {
        self.skips.iter().map(|s| s.to_ms - s.from_ms).sum()
    }
}

/// What a plan needs of an rrweb event.
#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: u8,
    timestamp: f64,
    #[serde(default)]
    data: Option<HeadData>,
}

#[derive(Debug, Deserialize)]
struct HeadData {
    #[serde(default)]
    width: Option<f64>,
    #[serde(default)]
    height: Option<f64>,
}

/// A chat message for the plan: when (ms since the Unix epoch, the relay's clock) and the line.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCue {
    /// When the relay accepted it, ms since the Unix epoch.
    pub ts_ms: u64,
    /// The subtitle text (`agent a1: hello`).
    pub text: String,
}

/// "0:42", "12:05", "1:02:03".
pub fn clock(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Plans the video of `events` (the recording's JSON array). Chat times are placed on the
/// replay's timeline relative to `started_ms` (the relay's time of the recording's first entry).
pub fn plan(
    events: &[u8],
    chat: &[ChatCue],
    started_ms: u64,
    s: &PlanSettings,
) -> Result<Plan, RenderError> {
    if s.fps == 0 || s.fps > 60 {
        return Err(RenderError::Settings(format!(
            "fps {} is outside 1..=60",
            s.fps
        )));
    }
    let heads: Vec<Head> = serde_json::from_slice(events)
        .map_err(|e| RenderError::BadRecording(format!("events are not rrweb events: {e}")))?;
    if !heads.iter().any(|h| h.kind == 2) {
        return Err(RenderError::BadRecording(
            "the recording holds no FullSnapshot: nothing to show".into(),
        ));
    }
    let first = heads
        .iter()
        .map(|h| h.timestamp)
        .fold(f64::INFINITY, f64::min);
    let last = heads
        .iter()
        .map(|h| h.timestamp)
        .fold(f64::NEG_INFINITY, f64::max);
    let recording_ms = (last - first).max(0.0).round() as u64;
    // The size: the largest page of the session, scaled down to the limits.
    let (mut w, mut h) = (0f64, 0f64);
    for head in heads.iter().filter(|h| h.kind == 4) {
        if let Some(d) = &head.data {
            w = w.max(d.width.unwrap_or(0.0));
            h = h.max(d.height.unwrap_or(0.0));
        }
    }
    if !(w >= 1.0 && h >= 1.0 && w.is_finite() && h.is_finite()) {
        (w, h) = (f64::from(DEFAULT_SIZE.0), f64::from(DEFAULT_SIZE.1));
    }
    let scale = (f64::from(s.max_width) / w)
        .min(f64::from(s.max_height) / h)
        .min(1.0);
    let even = |x: f64| ((x * scale / 2.0).floor() as u32 * 2).max(2);
    let (width, height) = (even(w), even(h));
    // Activity: every event but FullSnapshots (a checkout changes nothing on screen; a page
    // change comes with its Meta), and chat.
    let mut active: Vec<u64> = heads
        .iter()
        .filter(|h| h.kind != 2)
        .map(|h| (h.timestamp - first).max(0.0).round() as u64)
        .chain(
            chat.iter()
                .map(|c| c.ts_ms.saturating_sub(started_ms).min(recording_ms)),
        )
        .chain([0, recording_ms])
        .collect();
    active.sort_unstable();
    active.dedup();
    // Keep a second of each side of a cut, so the viewer sees the last and next actions.
    let keep = (s.idle_skip_ms / 4).min(1000);
    let mut segments: Vec<(u64, u64)> = Vec::new(); // replay [from, to]
    let mut from = 0;
    for pair in active.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b - a > s.idle_skip_ms {
            segments.push((from, a + keep));
            from = b - keep;
        }
    }
    segments.push((from, recording_ms));
    let total: u64 = segments.iter().map(|(a, b)| b - a).sum();
    if total > s.max_duration_ms {
        return Err(RenderError::TooLong(format!(
            "the video would last {} (idle stretches cut), over the limit of {}",
            clock(total),
            clock(s.max_duration_ms)
        )));
    }
    let fps = u64::from(s.fps);
    // Video start (ms) of each segment.
    let mut starts = Vec::with_capacity(segments.len());
    let mut acc = 0;
    for (a, b) in &segments {
        starts.push(acc);
        acc += b - a;
    }
    let skips: Vec<Skip> = (1..segments.len())
        .map(|j| Skip {
            at_video_ms: starts[j],
            from_ms: segments[j - 1].1,
            to_ms: segments[j].0,
        })
        .collect();
    let captions: Vec<String> = skips
        .iter()
        .map(|k| format!("skipped {} of inactivity", clock(k.to_ms - k.from_ms)))
        .collect();
    let count = total * fps / 1000 + 1;
    let mut frames = Vec::with_capacity(count as usize);
    let mut j = 0;
    for k in 0..count {
        // Exact video time of frame k, in ms * fps (integers, so no drift).
        let vt = k * 1000;
        while j + 1 < segments.len() && vt >= starts[j + 1] * fps {
            j += 1;
        }
        let into = (vt - starts[j] * fps) as f64 / fps as f64;
        let offset = (segments[j].0 as f64 + into).min(segments[j].1 as f64);
        let caption = if j > 0 && vt < (starts[j] + CAPTION_MS) * fps {
            (j - 1) as i32
        } else {
            -1
        };
        frames.push(((offset * 1000.0).round() / 1000.0, caption));
    }
    // Chat: replay time -> video time (a message inside a cut shows where the video resumes).
    let to_video = |t: u64| -> u64 {
        for (i, (a, b)) in segments.iter().enumerate() {
            if t <= *b {
                return starts[i] + t.saturating_sub(*a);
            }
        }
        total
    };
    let mut cues: Vec<Cue> = chat
        .iter()
        .map(|c| {
            let start = to_video(c.ts_ms.saturating_sub(started_ms).min(recording_ms));
            Cue {
                start_ms: start,
                end_ms: start + CUE_MS,
                text: c.text.clone(),
            }
        })
        .collect();
    cues.sort_by_key(|c| c.start_ms);
    for i in 1..cues.len() {
        let next = cues[i].start_ms;
        let prev = &mut cues[i - 1];
        prev.end_ms = prev.end_ms.min(next.max(prev.start_ms + 1));
    }
    Ok(Plan {
        width,
        height,
        scale,
        fps: s.fps,
        frames,
        captions,
        skips,
        recording_ms,
        cues,
    })
}

/// The cues as SubRip text (ffmpeg converts it to the container's subtitle format).
pub fn srt(cues: &[Cue]) -> String {
    let stamp = |ms: u64| {
        format!(
            "{:02}:{:02}:{:02},{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        // A blank line would end the cue early; `<` would start a tag.
        let text: String = c
            .text
            .replace(['\r', '\n'], " ")
            .replace('<', "‹")
            .replace('>', "›");
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            stamp(c.start_ms),
            stamp(c.end_ms),
            text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: u8, t: u64) -> String {
        if kind == 4 {
            format!(
                r#"{{"type":4,"timestamp":{t},"data":{{"href":"x","width":390,"height":844}}}}"#
            )
        } else {
            format!(r#"{{"type":{kind},"timestamp":{t},"data":{{}}}}"#)
        }
    }

    fn events(list: &[(u8, u64)]) -> Vec<u8> {
        let parts: Vec<String> = list.iter().map(|(k, t)| ev(*k, *t)).collect();
        format!("[{}]", parts.join(",")).into_bytes()
    }

    #[test]
    fn frames_follow_the_recordings_own_clock() {
        let e = events(&[(4, 1000), (2, 1000), (3, 3000), (3, 5000)]);
        let p = plan(&e, &[], 0, &PlanSettings::default()).expect("plan");
        assert_eq!((p.width, p.height, p.scale), (390, 844, 1.0));
        assert_eq!(p.frames.len(), 41); // 4 s at 10 fps, both ends
        assert_eq!(p.frames[0], (0.0, -1));
        assert_eq!(p.frames[25], (2500.0, -1));
        assert_eq!(p.frames[40], (4000.0, -1));
        assert!(p.skips.is_empty());
        assert_eq!(
            p,
            plan(&e, &[], 0, &PlanSettings::default()).expect("again")
        );
    }

    #[test]
    fn idle_stretches_are_cut_and_captioned_from_the_first_frame_after_the_cut() {
        // 2 s of activity, 60 s of nothing (a checkout in between), 2 s of activity.
        let e = events(&[
            (4, 0),
            (2, 0),
            (3, 2000),
            (2, 30_000),
            (3, 62_000),
            (3, 64_000),
        ]);
        let p = plan(&e, &[], 0, &PlanSettings::default()).expect("plan");
        assert_eq!(
            p.skips,
            vec![Skip {
                at_video_ms: 3000,
                from_ms: 3000,
                to_ms: 61_000
            }]
        );
        assert_eq!(p.captions, vec!["skipped 0:58 of inactivity".to_owned()]);
        assert_eq!(p.skipped_ms(), 58_000);
        assert_eq!(p.duration_ms(), 6100); // 6 s of video + the last frame
        assert_eq!(p.frames[29], (2900.0, -1));
        assert_eq!(p.frames[30], (61_000.0, 0));
        assert_eq!(p.frames[49], (62_900.0, 0));
        assert_eq!(p.frames[50], (63_000.0, -1));
        assert_eq!(p.frames.last(), Some(&(64_000.0, -1)));
    }

    #[test]
    fn chat_keeps_a_stretch_alive_and_becomes_subtitles() {
        let e = events(&[(4, 0), (2, 0), (3, 30_000)]);
        let chat = [ChatCue {
            ts_ms: 100_000 + 15_000,
            text: "agent a1: <b>hi</b>".into(),
        }];
        let p = plan(&e, &chat, 100_000, &PlanSettings::default()).expect("plan");
        assert_eq!(p.skips.len(), 2);
        assert_eq!(p.cues.len(), 1);
        // 0..1 s, cut, 14..16 s, cut, 29..30 s: the message at 15 s is 2 s into the video.
        assert_eq!(p.cues[0].start_ms, 2000);
        assert!(srt(&p.cues).contains("00:00:02,000 --> 00:00:07,000\nagent a1: ‹b›hi‹/b›"));
    }

    #[test]
    fn limits_refuse_with_a_reason_and_large_pages_are_scaled() {
        let e = events(&[(2, 0), (3, 1000)]);
        let p = plan(&e, &[], 0, &PlanSettings::default()).expect("plan");
        assert_eq!((p.width, p.height), DEFAULT_SIZE);
        let small = PlanSettings {
            max_width: 640,
            max_height: 640,
            ..PlanSettings::default()
        };
        let p = plan(&e, &[], 0, &small).expect("plan");
        assert_eq!((p.width, p.height), (640, 360));
        let short = PlanSettings {
            max_duration_ms: 500,
            ..PlanSettings::default()
        };
        assert!(matches!(
            plan(&e, &[], 0, &short),
            Err(RenderError::TooLong(_))
        ));
        assert!(matches!(
            plan(&events(&[(3, 0)]), &[], 0, &PlanSettings::default()),
            Err(RenderError::BadRecording(_))
        ));
        assert!(matches!(
            plan(b"{}", &[], 0, &PlanSettings::default()),
            Err(RenderError::BadRecording(_))
        ));
    }

    #[test]
    fn clock_reads_like_a_player() {
        assert_eq!(clock(42_000), "0:42");
        assert_eq!(clock(725_400), "12:05");
        assert_eq!(clock(3_723_000), "1:02:03");
    }
}
