//! ARCHITECTURE.md stays true: every source file of the crates, the binary, the admin assets
//! and the end-to-end tests is in one of its tables, and every file a table names exists. A
//! table's files are relative to the folder its header names (`file (`shared/src/`)`), else to
//! the folder of its section's heading (`## tests (`tests/`)`); in one cell, a bare name
//! (`recovery.rs`) is in the folder of the name before it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The folders whose every file must be in a table, and the endings that count.
const LISTED: [(&str, &[&str]); 7] = [
    ("shared/src", &["rs"]),
    ("dispatcher/src", &["rs"]),
    ("scheduler/src", &["rs"]),
    ("query-api/src", &["rs"]),
    ("query-api/assets", &["html", "js", "css", "svg"]),
    ("src", &["rs"]),
    ("tests", &["rs"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text between the first pair of backticks of `s`.
fn backticked(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let len = s[start..].find('`')?;
    Some(&s[start..start + len])
}

/// Every file the tables of `markdown` name, as paths from the repository's root.
fn named(markdown: &str) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut section = String::new();
    let mut table: Option<String> = None;
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = backticked(heading).unwrap_or_default().to_owned();
            table = None;
            continue;
        }
        let Some(row) = line.strip_prefix('|') else {
            table = None;
            continue;
        };
        let first = row.split('|').next().unwrap_or_default().trim();
        if first.starts_with("---") {
            continue;
        }
        let Some(prefix) = &table else {
            // The header row: its folder, or the section's.
            table = Some(backticked(first).unwrap_or(&section).to_owned());
            continue;
        };
        let mut dir = String::new();
        for name in first.split('`').skip(1).step_by(2) {
            let path = if name.contains('/') {
                name.to_owned()
            } else {
                format!("{dir}{name}")
            };
            dir = path.rfind('/').map(|i| path[..=i].to_owned()).unwrap_or_default();
            files.insert(format!("{prefix}{path}"));
        }
    }
    files
}

fn walk(dir: &Path, endings: &[&str], out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                walk(&path, endings, out);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| endings.contains(&e))
            && let Ok(rel) = path.strip_prefix(root())
        {
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn architecture_md_lists_every_source_file_and_only_files_that_exist() {
    let markdown = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let named = named(&markdown);
    let mut present = BTreeSet::new();
    for (dir, endings) in LISTED {
        walk(&root().join(dir), endings, &mut present);
    }
    let missing: Vec<_> = present.difference(&named).collect();
    let gone: Vec<_> = named.iter().filter(|f| !root().join(f).exists()).collect();
    assert!(
        missing.is_empty(),
        "files in no table of ARCHITECTURE.md (add a row saying what each does): {missing:#?}"
    );
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {gone:#?}"
    );
}

#[test]
fn a_tables_names_are_read_relative_to_its_folder() {
    let md = "## tests (`tests/`)\n\n| file | what |\n| --- | --- |\n| `it/a/b.rs`, `c.rs` | x |\n\n\
              | file (`shared/src/`) | what |\n| --- | --- |\n| `lib.rs` | y |\n";
    let got: Vec<_> = named(md).into_iter().collect();
    assert_eq!(got, ["shared/src/lib.rs", "tests/it/a/b.rs", "tests/it/a/c.rs"]);
}
