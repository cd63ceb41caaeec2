//! Report files: every benchmark writes a JSON file (raw summary) and a Markdown file (the
//! same as a table) into a report directory, named by benchmark and time.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Write `data` as `<dir>/<name>-<unix seconds>.json` and `markdown` beside it as `.md`.
/// Returns the two paths.
pub fn write<T: Serialize>(
    dir: &Path,
    name: &str,
    data: &T,
    markdown: &str,
) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let json = dir.join(format!("{name}-{stamp}.json"));
    let md = dir.join(format!("{name}-{stamp}.md"));
    std::fs::write(
        &json,
        serde_json::to_vec_pretty(data).map_err(std::io::Error::other)?,
    )?;
    std::fs::write(&md, markdown)?;
    Ok((json, md))
}
