//! File management on the simulated SD card: directories, listing with paging,
//! delete, move, mkdir, G-code file information and the web files under `0:/www/`.
//!
//! The card is the board's file map (normalised names, see [`card`](super::card))
//! plus the set of directories made explicitly (`rr_mkdir`, the standard ones at
//! start); a directory also exists while a file lies below it. Every function takes
//! names already normalised by [`card::normalise`](super::card::normalise).

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

/// The file map.
pub type Files = BTreeMap<String, Vec<u8>>;
/// The explicit directories.
pub type Dirs = BTreeSet<String>;

/// The directories a RepRapFirmware card has (`directories` in the object model).
pub const STANDARD_DIRS: [&str; 6] = [
    "0:/gcodes",
    "0:/macros",
    "0:/sys",
    "0:/www",
    "0:/filaments",
    "0:/firmware",
];

/// The web directory (`GET /` serves from here).
pub const WWW: &str = "0:/www";

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name within the directory.
    pub name: String,
    /// A directory (else a file).
    pub is_dir: bool,
    /// Bytes (0 for a directory).
    pub size: usize,
}

fn prefix(dir: &str) -> String {
    format!("{}/", dir.trim_end_matches('/'))
}

/// Whether `path` is a directory: the root, an explicit one, or one a file lies below.
pub fn is_dir(files: &Files, dirs: &Dirs, path: &str) -> bool {
    if path == "0:" {
        return true;
    }
    let p = prefix(path);
    dirs.contains(path)
        || dirs.range(p.clone()..).next().is_some_and(|d| d.starts_with(&p))
        || files
            .range(p.clone()..)
            .next()
            .is_some_and(|(f, _)| f.starts_with(&p))
}

/// The directory holding `path` (`0:` for a name at the root).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) if i > 2 => &path[..i],
        _ => "0:",
    }
}

/// The entries of `dir`, directories first, each group by name; `None` if `dir` is
/// not a directory.
pub fn list(files: &Files, dirs: &Dirs, dir: &str) -> Option<Vec<Entry>> {
    if !is_dir(files, dirs, dir) {
        return None;
    }
    let p = prefix(dir);
    let mut subdirs = BTreeSet::new();
    let mut out = Vec::new();
    for (path, content) in files.range(p.clone()..) {
        let Some(rest) = path.strip_prefix(&p) else {
            break;
        };
        match rest.split_once('/') {
            Some((sub, _)) => {
                subdirs.insert(sub.to_string());
            }
            None => out.push(Entry {
                name: rest.to_string(),
                is_dir: false,
                size: content.len(),
            }),
        }
    }
    for d in dirs.range(p.clone()..) {
        let Some(rest) = d.strip_prefix(&p) else {
            break;
        };
        subdirs.insert(rest.split('/').next().unwrap_or(rest).to_string());
    }
    let mut entries: Vec<Entry> = subdirs
        .into_iter()
        .map(|name| Entry {
            name,
            is_dir: true,
            size: 0,
        })
        .collect();
    entries.extend(out);
    Some(entries)
}

/// Delete a file, or a directory (empty, or with everything below it when
/// `recursive`). Whether it was deleted.
pub fn delete(files: &mut Files, dirs: &mut Dirs, name: &str, recursive: bool) -> bool {
    if files.remove(name).is_some() {
        return true;
    }
    if !is_dir(files, dirs, name) || name == "0:" {
        return false;
    }
    let p = prefix(name);
    let below = |k: &String| k.starts_with(&p);
    let empty = !files.keys().any(below) && !dirs.iter().any(below);
    if !empty && !recursive {
        return false;
    }
    files.retain(|k, _| !below(k));
    dirs.retain(|k| !below(k) && k != name);
    true
}

/// Why a move or mkdir failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    /// The source does not exist.
    NotFound,
    /// The target exists (and `deleteexisting` was not given, or it is a directory).
    Exists,
    /// The target's directory does not exist.
    NoParent,
    /// A directory moved into itself.
    IntoItself,
}

/// Move (rename) a file or directory; an existing target file is replaced only when
/// `delete_existing`.
pub fn rename(
    files: &mut Files,
    dirs: &mut Dirs,
    old: &str,
    new: &str,
    delete_existing: bool,
) -> Result<(), FileError> {
    if old == new {
        return if files.contains_key(old) || is_dir(files, dirs, old) {
            Ok(())
        } else {
            Err(FileError::NotFound)
        };
    }
    if !is_dir(files, dirs, parent(new)) {
        return Err(FileError::NoParent);
    }
    if is_dir(files, dirs, new) {
        return Err(FileError::Exists);
    }
    if files.contains_key(old) {
        if files.contains_key(new) && !delete_existing {
            return Err(FileError::Exists);
        }
        let content = files.remove(old).unwrap_or_default();
        files.insert(new.to_string(), content);
        return Ok(());
    }
    if !is_dir(files, dirs, old) {
        return Err(FileError::NotFound);
    }
    if files.contains_key(new) {
        return Err(FileError::Exists);
    }
    let (po, pn) = (prefix(old), prefix(new));
    if new.starts_with(&po) {
        return Err(FileError::IntoItself);
    }
    let moved: Vec<String> = files.keys().filter(|k| k.starts_with(&po)).cloned().collect();
    for k in moved {
        if let Some(v) = files.remove(&k) {
            files.insert(format!("{pn}{}", &k[po.len()..]), v);
        }
    }
    let moved: Vec<String> = dirs.iter().filter(|k| k.starts_with(&po)).cloned().collect();
    for k in moved {
        dirs.remove(&k);
        dirs.insert(format!("{pn}{}", &k[po.len()..]));
    }
    dirs.remove(old);
    dirs.insert(new.to_string());
    Ok(())
}

/// Make a directory; its parent must exist and the name must be free.
pub fn mkdir(files: &Files, dirs: &mut Dirs, dir: &str) -> Result<(), FileError> {
    if files.contains_key(dir) || is_dir(files, dirs, dir) {
        return Err(FileError::Exists);
    }
    if !is_dir(files, dirs, parent(dir)) {
        return Err(FileError::NoParent);
    }
    dirs.insert(dir.to_string());
    Ok(())
}

/// What `rr_fileinfo` reports about a G-code file, read from its moves and the
/// slicer's comments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcodeInfo {
    /// Highest Z of a move.
    pub height: f64,
    /// Z of the first layer.
    pub first_layer_height: f64,
    /// Difference between the first two layer heights (else the first).
    pub layer_height: f64,
    /// Distinct Z heights moved to, in rising order.
    pub num_layers: usize,
    /// Filament extruded (mm, absolute `E`, the largest value seen).
    pub filament: f64,
    /// The slicer, from a `; generated by …` comment.
    pub generated_by: Option<String>,
}

/// The value of word `letter` in a G-code line (`G1 X10 Z0.2` → `Z` = 0.2).
fn word(line: &str, letter: char) -> Option<f64> {
    line.split_whitespace()
        .find(|w| w.len() > 1 && w.starts_with(letter))
        .and_then(|w| w[1..].parse().ok())
}

/// Scan `content` (every line once). Comments after `;` are ignored except the
/// slicer's name.
pub fn gcode_info(content: &[u8]) -> GcodeInfo {
    let text = String::from_utf8_lossy(content);
    let mut info = GcodeInfo::default();
    let mut zs: Vec<f64> = Vec::new();
    for raw in text.lines() {
        let (code, comment) = raw.split_once(';').unwrap_or((raw, ""));
        let lower = comment.trim().to_ascii_lowercase();
        if info.generated_by.is_none() {
            if let Some(i) = lower.find("generated by") {
                let by = comment.trim()[i + "generated by".len()..].trim();
                info.generated_by = Some(by.trim_start_matches(':').trim().to_string());
            }
        }
        let code = code.trim().to_ascii_uppercase();
        if !(code.starts_with("G0 ") || code.starts_with("G1 ")) {
            continue;
        }
        if let Some(z) = word(&code, 'Z') {
            if z.is_finite() && !zs.iter().any(|&s| (s - z).abs() < 1e-6) {
                zs.push(z);
            }
        }
        if let Some(e) = word(&code, 'E') {
            if e.is_finite() && e > info.filament {
                info.filament = e;
            }
        }
    }
    zs.sort_by(f64::total_cmp);
    zs.retain(|&z| z > 0.0);
    info.num_layers = zs.len();
    info.height = zs.last().copied().unwrap_or(0.0);
    info.first_layer_height = zs.first().copied().unwrap_or(0.0);
    info.layer_height = match zs.as_slice() {
        [a, b, ..] => b - a,
        [a] => *a,
        [] => 0.0,
    };
    info
}

/// The web file for a request path, as RepRapFirmware picks it: relative to
/// [`WWW`], `/` is `index.html`, the `.gz` variant is preferred (served with
/// `Content-Encoding: gzip`), and a name without a `.` that is not found falls back to
/// the index page (the web app's own routes). Returns the card name and whether it is
/// gzipped; `None` if nothing is found or the path leaves the web directory.
pub fn web_file(files: &Files, path: &str) -> Option<(String, bool)> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let name = super::card::normalise(&format!("{WWW}/{rel}"), false).ok()?;
    if !name.starts_with(&prefix(WWW)) {
        return None;
    }
    let find = |name: &str| {
        if !name.ends_with(".gz") {
            let gz = format!("{name}.gz");
            if files.contains_key(&gz) {
                return Some((gz, true));
            }
        }
        files.contains_key(name).then(|| (name.to_string(), false))
    };
    find(&name).or_else(|| {
        let last = name.rsplit('/').next().unwrap_or("");
        (!last.contains('.'))
            .then(|| find(&format!("{WWW}/index.html")))
            .flatten()
    })
}

/// The `Content-Type` of a web file, by its extension (after any `.gz`).
pub fn content_type(name: &str) -> &'static str {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e).to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "js" => "application/javascript",
        "css" => "text/css",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "svg" => "image/svg+xml",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> (Files, Dirs) {
        let mut f = Files::new();
        f.insert(
            "0:/gcodes/a.g".into(),
            b"G1 Z0.2 E1\nG1 Z0.4 E2.5\n; generated by Sim 1.0\n".to_vec(),
        );
        f.insert("0:/gcodes/sub/b.g".into(), b"x".to_vec());
        f.insert("0:/www/index.html.gz".into(), b"gz".to_vec());
        f.insert("0:/www/app.js".into(), b"js".to_vec());
        (f, STANDARD_DIRS.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn list_mkdir_move_delete() {
        let (mut f, mut d) = card();
        let names: Vec<_> = list(&f, &d, "0:/gcodes")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        assert_eq!(names, [("sub".to_string(), true), ("a.g".to_string(), false)]);
        assert!(list(&f, &d, "0:/nope").is_none());
        assert_eq!(mkdir(&f, &mut d, "0:/gcodes/new"), Ok(()));
        assert_eq!(mkdir(&f, &mut d, "0:/gcodes/new"), Err(FileError::Exists));
        assert_eq!(mkdir(&f, &mut d, "0:/x/y"), Err(FileError::NoParent));
        assert_eq!(
            rename(&mut f, &mut d, "0:/gcodes/a.g", "0:/gcodes/new/a.g", false),
            Ok(())
        );
        assert_eq!(
            rename(&mut f, &mut d, "0:/gcodes/sub", "0:/gcodes/new/sub", false),
            Ok(())
        );
        assert!(f.contains_key("0:/gcodes/new/sub/b.g"));
        assert_eq!(
            rename(&mut f, &mut d, "0:/gcodes/new", "0:/gcodes/new/x", false),
            Err(FileError::IntoItself)
        );
        f.insert("0:/gcodes/c.g".into(), b"c".to_vec());
        assert_eq!(
            rename(&mut f, &mut d, "0:/gcodes/c.g", "0:/gcodes/new/a.g", false),
            Err(FileError::Exists)
        );
        assert_eq!(
            rename(&mut f, &mut d, "0:/gcodes/c.g", "0:/gcodes/new/a.g", true),
            Ok(())
        );
        assert_eq!(f["0:/gcodes/new/a.g"], b"c");
        assert!(!delete(&mut f, &mut d, "0:/gcodes/new", false), "not empty");
        assert!(delete(&mut f, &mut d, "0:/gcodes/new", true));
        assert!(!is_dir(&f, &d, "0:/gcodes/new"));
        assert!(!delete(&mut f, &mut d, "0:/gcodes/none.g", false));
    }

    #[test]
    fn info_and_web_files() {
        let (f, _) = card();
        let i = gcode_info(&f["0:/gcodes/a.g"]);
        assert_eq!((i.num_layers, i.height, i.filament), (2, 0.4, 2.5));
        assert!((i.layer_height - 0.2).abs() < 1e-9);
        assert_eq!(i.generated_by.as_deref(), Some("Sim 1.0"));
        assert_eq!(web_file(&f, "/"), Some(("0:/www/index.html.gz".into(), true)));
        assert_eq!(web_file(&f, "/app.js"), Some(("0:/www/app.js".into(), false)));
        assert_eq!(
            web_file(&f, "/settings"),
            Some(("0:/www/index.html.gz".into(), true))
        );
        assert_eq!(web_file(&f, "/missing.css"), None);
        assert_eq!(web_file(&f, "/../gcodes/a.g"), None);
        assert_eq!(content_type("0:/www/index.html.gz"), "text/html");
    }
}
