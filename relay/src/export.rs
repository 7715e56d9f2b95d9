//! `relay export ROOM --out DIR`: a replay page for a recording.
//!
//! The page plays the session in rrweb's player, with the chat transcript beside it in time
//! order. It is static (open `index.html` from disk or serve the directory): the recording is in
//! `recording.js` (`window.ASSIST_RECORDING = {manifest, chat, events_json}`, the events as one
//! JSON string, so that a browser's script parser never recurses into them and the chat shows
//! even when the replay fails), and the player is
//! loaded from `rrweb-player/index.js` and `rrweb-player/style.css` beside the page. Those come
//! from npm (`npm install rrweb-player`, files in `node_modules/rrweb-player/dist/`; 1.x names
//! the script `index.js`, 2.x `rrweb-player.umd.cjs`): `relay export` copies them from
//! `--rrweb-dir` (default `node_modules/rrweb-player/dist` when present) and refuses to write a
//! page that cannot play unless told `--no-player` ([`PLAYER_HINT`]).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::compactor::{read_recording, FsArchive};

const PAGE: &str = include_str!("../templates/replay.html");

/// Writes the replay page of `room`'s recording (the latest epoch unless given) into `out`;
/// returns the page's path.
pub fn export(
    archive_dir: &Path,
    room: &str,
    epoch: Option<&str>,
    out: &Path,
    rrweb_dir: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    assist_relay_proto::validate_id("room", room).map_err(anyhow::Error::msg)?;
    let archive = FsArchive::new(archive_dir);
    let (manifest, events, chat) = read_recording(&archive, room, epoch)
        .map_err(|e| anyhow::anyhow!("{e}{}", not_ended_hint(&archive, room, epoch)))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let events = std::str::from_utf8(&events).context("recording events are not UTF-8")?;
    // `</script>` or U+2028 inside the string is harmless: the file is loaded by `src`, and
    // serde_json escapes what a JavaScript string literal needs.
    let data = format!(
        "window.ASSIST_RECORDING = {{\"manifest\": {}, \"chat\": {}, \"events_json\": {}}};\n",
        serde_json::to_string(&manifest)?,
        serde_json::to_string(&chat)?,
        serde_json::to_string(events)?
    );
    std::fs::write(out.join("recording.js"), data)?;
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    if let Some(dir) = rrweb_dir {
        let target = out.join("rrweb-player");
        std::fs::create_dir_all(&target)?;
        // rrweb-player 1.x ships `index.js`; 2.x ships the same UMD bundle as
        // `rrweb-player.umd.cjs`.
        let script = ["index.js", "rrweb-player.umd.cjs"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{} holds neither index.js nor rrweb-player.umd.cjs (rrweb-player's dist/)",
                    dir.display()
                )
            })?;
        std::fs::copy(&script, target.join("index.js"))
            .with_context(|| format!("copying {}", script.display()))?;
        std::fs::copy(dir.join("style.css"), target.join("style.css"))
            .with_context(|| format!("copying style.css from {}", dir.display()))?;
    }
    let page = out.join("index.html");
    std::fs::write(&page, PAGE.replace("{{room}}", &html_escape(room)))?;
    crate::audit::export(room, &manifest.epoch, out);
    Ok(page)
}

/// Where rrweb-player's `dist/` is when `--rrweb-dir` is not given: `node_modules/rrweb-player/dist`
/// under the current directory (after `npm install rrweb-player` there).
pub const DEFAULT_RRWEB_DIR: &str = "node_modules/rrweb-player/dist";

/// What to do about a missing player, for the error of `relay export` without `--rrweb-dir`.
pub const PLAYER_HINT: &str = "the replay page needs rrweb-player, which the relay does not ship: \
run `npm install rrweb-player@2.1.6` and pass --rrweb-dir node_modules/rrweb-player/dist \
(run from the directory holding node_modules/ and it is found by itself), \
or pass --no-player to write the page without it and copy the player beside it yourself";

/// Why there may be no recording yet, for the error of a missing one: a room becomes a
/// recording only once its session has ended and the compactor has written it.
fn not_ended_hint(archive: &FsArchive, room: &str, epoch: Option<&str>) -> String {
    use crate::compactor::Archive;
    let in_progress = match epoch {
        Some(_) => false,
        // Parts archived live (long sessions) but no manifest: the session is still going.
        None => archive.list(room).is_ok_and(|epochs| !epochs.is_empty()),
    };
    format!(
        "{}. A room becomes a recording when its session has ended: an agent sends `end`, your \
backend calls `POST /v1/rooms/{room}/close` on the admin listener (with --api-key), or the \
customer has been gone for --customer-idle-close (default 30m); then the compactor writes it \
(embedded mode: the node itself into its --archive-dir; cluster mode: `relay compactor`). \
Check --archive-dir ({}) if the session has ended",
        if in_progress {
            " (parts were archived while the session ran, so it has not ended yet)"
        } else {
            ""
        },
        archive.root().display()
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
