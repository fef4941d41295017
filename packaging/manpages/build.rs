//! Makes each program's `main` source usable as a module of the generator.
//!
//! The programs (`services/src/bin/*.rs`) keep their clap `Cli` private, as
//! binaries do. This copies each source into `OUT_DIR` with its inner doc
//! comments (`//!`, not allowed inside `include!`) turned into plain
//! comments and a `pub fn command()` appended, so `main.rs` can render the
//! exact `Command` the program parses with, never a hand-kept copy.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let bin_dir = PathBuf::from("../../services/src/bin");
    println!("cargo:rerun-if-changed={}", bin_dir.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut entries: Vec<_> = std::fs::read_dir(&bin_dir)
        .expect("services/src/bin is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    // os4x-web lives in its own crate; its main file is named for the crate.
    entries.push(PathBuf::from("../../web/src/main.rs"));
    entries.sort();
    let mut modules = String::new();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let program = if path.ends_with("web/src/main.rs") {
            "os4x-web".to_owned()
        } else {
            path.file_stem()
                .and_then(|s| s.to_str())
                .expect("UTF-8 file name")
                .to_owned()
        };
        let source = std::fs::read_to_string(&path).expect("readable program source");
        // Only programs whose main file holds its clap `Cli` can be
        // rendered; `mod x;` would look for files next to the copy. Others
        // are skipped with a warning rather than breaking the workspace.
        let has_cli = source.contains("struct Cli") && source.contains("Parser");
        let has_file_modules = source
            .lines()
            .any(|l| l.trim_start().starts_with("mod ") && l.trim_end().ends_with(';'));
        if !has_cli || has_file_modules {
            println!(
                "cargo:warning=os4x-gen-docs: no man page for {program}: its main file does not define a clap `struct Cli` without file modules"
            );
            continue;
        }
        let mut text = String::new();
        for line in source.lines() {
            match line.trim_start().strip_prefix("//!") {
                Some(rest) => writeln!(text, "//{rest}").unwrap(),
                None => writeln!(text, "{line}").unwrap(),
            }
        }
        text.push_str(
            "\npub fn command() -> clap::Command {\n    <Cli as clap::CommandFactory>::command()\n}\n",
        );
        let module = "prog_".to_owned() + &program.replace('-', "_");
        let file = out.join(format!("{module}.rs"));
        std::fs::write(&file, text).expect("OUT_DIR is writable");
        writeln!(
            modules,
            "#[allow(dead_code, unused_imports, clippy::all)]\nmod {module} {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{module}.rs\"));\n}}"
        )
        .unwrap();
        writeln!(modules, "// program: {program}").unwrap();
    }
    let mut table = String::from("/// Every program: (name, section, command).\nfn programs() -> Vec<(&'static str, u8, clap::Command)> {\n    vec![\n");
    for line in modules
        .lines()
        .filter_map(|l| l.strip_prefix("// program: "))
    {
        let module = "prog_".to_owned() + &line.replace('-', "_");
        // Tools admins type are section 1, daemons section 8.
        let section = if line == "os4x" || line == "os4x-pidctl" {
            1
        } else {
            8
        };
        writeln!(table, "        ({line:?}, {section}, {module}::command()),").unwrap();
    }
    table.push_str("    ]\n}\n");
    modules.push_str(&table);
    std::fs::write(out.join("programs.rs"), modules).expect("OUT_DIR is writable");
}
