//! The render flags shared by `relay render` and `relay compactor --render video`, and how they
//! become a [`RenderConfig`].

use std::path::PathBuf;
use std::time::Duration;

use super::{PlanSettings, RenderConfig, VideoFormat};

/// How to render (flags and `RELAY_RENDER_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct RenderOptions {
    /// The renderer package (relay/render, after `npm ci` there): render.mjs with rrweb and
    /// playwright-core in its node_modules.
    #[arg(long, env = "RELAY_RENDER_DIR", default_value = "relay/render")]
    pub render_dir: PathBuf,
    /// Video container and codec: mp4 (H.264) or webm (VP9).
    #[arg(long = "format", env = "RELAY_RENDER_FORMAT", value_enum, default_value_t = VideoFormat::Mp4)]
    pub format: VideoFormat,
    /// Frames per second (1..=60), on the recording's own clock.
    #[arg(long, env = "RELAY_RENDER_FPS", default_value_t = 10)]
    pub render_fps: u32,
    /// Idle stretches longer than this are cut (a caption says how much); 0s cuts nothing.
    #[arg(long, env = "RELAY_RENDER_IDLE_SKIP", default_value = "10s", value_parser = humantime::parse_duration)]
    pub render_idle_skip: Duration,
    /// Largest video, WIDTHxHEIGHT; larger pages are scaled down to fit.
    #[arg(long, env = "RELAY_RENDER_MAX_SIZE", default_value = "1920x1080", value_parser = parse_size)]
    pub render_max_size: (u32, u32),
    /// Longest video (after the cuts); a longer one fails with the reason.
    #[arg(long, env = "RELAY_RENDER_MAX_DURATION", default_value = "4h", value_parser = humantime::parse_duration)]
    pub render_max_duration: Duration,
    /// A render running longer is stopped and fails.
    #[arg(long, env = "RELAY_RENDER_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub render_timeout: Duration,
    /// Leave the chat out (by default it is a subtitle track).
    #[arg(long, env = "RELAY_RENDER_NO_SUBTITLES")]
    pub no_subtitles: bool,
    /// The Chromium binary.
    #[arg(long, env = "RELAY_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// The ffmpeg binary.
    #[arg(long, env = "RELAY_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// The Node.js binary.
    #[arg(long, env = "RELAY_NODE", default_value = "node")]
    pub node: PathBuf,
}

/// `1920x1080`.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let px = |v: &str| -> Result<u32, String> {
        match v.trim().parse::<u32>() {
            Ok(n) if (16..=7680).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} is not a size in 16..=7680 pixels")),
        }
    };
    Ok((px(w)?, px(h)?))
}

impl RenderOptions {
    /// The configuration, or why the flags are out of range.
    pub fn config(&self) -> Result<RenderConfig, String> {
        if !(1..=60).contains(&self.render_fps) {
            return Err(format!(
                "--render-fps {} is outside 1..=60",
                self.render_fps
            ));
        }
        if self.render_timeout.is_zero() || self.render_max_duration.is_zero() {
            return Err("--render-timeout and --render-max-duration must be above 0".into());
        }
        let idle = self.render_idle_skip.as_millis() as u64;
        Ok(RenderConfig {
            script_dir: self.render_dir.clone(),
            node: self.node.clone(),
            chromium: self.chromium.clone(),
            ffmpeg: self.ffmpeg.clone(),
            format: self.format,
            plan: PlanSettings {
                fps: self.render_fps,
                idle_skip_ms: if idle == 0 { u64::MAX } else { idle.max(2000) },
                max_width: self.render_max_size.0,
                max_height: self.render_max_size.1,
                max_duration_ms: self.render_max_duration.as_millis() as u64,
            },
            timeout: self.render_timeout,
            subtitles: !self.no_subtitles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_within_bounds() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("0x720").is_err());
        assert!(parse_size("99999x720").is_err());
    }
}
