//! The module graph README "Layout" promises, checked on the sources:
//! the daemons (`rd`, `sq`) do not import each other, the layers they
//! share (`serve`, `exchange`, the ISDN transport `isdn`) import neither
//! daemon, user-facing front ends do not import the CLI, and the
//! configuration sections import only `field`. A `use` that breaks one of
//! these rules fails here, naming the file and line.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("services/ has a parent")
        .to_path_buf()
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The first path segment after each `prefix` (`crate::`, `os4x::`) in
/// the code of `text` before its unit tests, with its line number.
/// Grouped imports (`crate::{a, b::c}`) yield every group member.
fn imports(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name = item.trim().split("::").next().unwrap_or("").trim();
                    if !name.is_empty() {
                        out.push((no + 1, name.to_owned()));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push((no + 1, name));
            }
        }
    }
    out
}

/// Every import of `forbidden` modules (through `prefix`) in `path`.
fn violations(path: &str, prefix: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(&root().join(path)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name) in imports(&text, prefix) {
            if forbidden.contains(&name.as_str()) {
                found.push(format!("{}:{line}: {prefix}{name}", file.display()));
            }
        }
    }
    found
}

#[test]
fn the_scanner_sees_plain_grouped_and_qualified_imports() {
    let text = "use crate::rd::Server;\nuse crate::{sq, exchange::Outbox};\n\
                // crate::serve in a comment\nlet x = crate::isdn::call();\n\
                let y = mycrate::rd;\n#[cfg(test)]\nuse crate::cli;\n";
    let names: Vec<String> = imports(text, "crate::")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, ["rd", "sq", "exchange", "isdn"]);
}

#[test]
fn daemons_and_their_shared_layers_do_not_import_each_other() {
    let rules: &[(&str, &[&str])] = &[
        ("services/src/rd", &["sq"]),
        ("services/src/sq", &["rd", "serve"]),
        ("services/src/serve", &["rd", "sq"]),
        ("services/src/exchange.rs", &["rd", "sq", "serve"]),
        ("services/src/isdn", &["rd", "sq", "serve", "exchange"]),
        ("services/src/usecase", &["cli", "rd", "sq"]),
        ("services/src/client", &["cli"]),
    ];
    let mut found = Vec::new();
    for (path, forbidden) in rules {
        found.extend(violations(path, "crate::", forbidden));
    }
    found.extend(violations("web/src", "os4x::", &["cli", "rd", "sq"]));
    assert!(
        found.is_empty(),
        "imports across layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn configuration_sections_import_only_field() {
    let mut found = Vec::new();
    for file in rust_files(&root().join("config/src")) {
        if file.ends_with("lib.rs") || file.ends_with("field.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name) in imports(&text, "crate::") {
            if name != "field" {
                found.push(format!("{}:{line}: crate::{name}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "sections importing more than field:\n{}",
        found.join("\n")
    );
}
