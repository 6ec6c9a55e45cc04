//! The rules for arrows in `docs/architecture.md`, checked on the source text so that a
//! change which breaks one fails here instead of waiting for a review: the domain and the
//! stores speak no HTTP, SQL and Redis live in `store/`, `store/` and `config/` import
//! nothing from above them, and no source file outgrows one sitting.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every `.rs` file below `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
    out
}

/// `(file, word)` for each word of `words` found in a file below `src/<dir>`.
fn found(dir: &str, words: &[&str]) -> Vec<(String, String)> {
    let root = Path::new(SRC).join(dir);
    sources(&root)
        .into_iter()
        .flat_map(|(path, text)| {
            words
                .iter()
                .filter(|w| text.contains(*w))
                .map(|w| (path.display().to_string(), w.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_domain_and_the_stores_speak_no_http() {
    let http = [
        "axum",
        "StatusCode",
        "ApiError",
        "Set-Cookie",
        "crate::http",
    ];
    for dir in ["session", "store"] {
        assert_eq!(found(dir, &http), [], "{dir}/ speaks HTTP");
    }
}

#[test]
fn store_and_config_import_nothing_from_above() {
    let above = ["crate::session", "crate::http", "crate::app"];
    for dir in ["store", "config"] {
        assert_eq!(found(dir, &above), [], "{dir}/ imports from above");
    }
    assert_eq!(found("config", &["crate::store"]), []);
}

#[test]
fn sql_and_redis_live_in_store() {
    let outside: Vec<_> = sources(Path::new(SRC))
        .into_iter()
        .filter(|(p, _)| !p.starts_with(Path::new(SRC).join("store")))
        .filter(|(_, t)| t.contains("redis::") || t.contains("sqlx::"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(outside, Vec::<String>::new());
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<_> = sources(Path::new(SRC))
        .into_iter()
        .filter(|(_, t)| t.lines().count() > 600)
        .map(|(p, t)| format!("{} ({} lines)", p.display(), t.lines().count()))
        .collect();
    assert_eq!(long, Vec::<String>::new());
}
