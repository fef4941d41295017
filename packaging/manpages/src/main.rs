//! `os4x-gen-docs OUT_DIR`: writes the man pages (`man1/`, `man8/`) and
//! shell completions (`completions/{bash,zsh,fish}/`) of every os4x program
//! into `OUT_DIR`, rendered from the clap definitions the programs parse
//! their arguments with. Run by `packaging/build-packages.sh`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: os4x-gen-docs OUT_DIR")?;
    for (name, section, command) in programs() {
        let command = command.name(name).bin_name(name);
        write_man(&out, name, section, &command)?;
        write_completions(&out, name, command)?;
    }
    Ok(())
}

/// `man<section>/<name>.<section>`, plus one page per subcommand
/// (`os4x-pidctl-status.1`), as git and systemd do.
fn write_man(out: &Path, name: &str, section: u8, command: &clap::Command) -> anyhow::Result<()> {
    let dir = out.join(format!("man{section}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let section_text = section.to_string();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .section(&section_text)
        .manual("os4x")
        .source(format!("os4x {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let file = dir.join(format!("{name}.{section}"));
    std::fs::write(&file, page).with_context(|| format!("writing {}", file.display()))?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(sub_name.clone())
            .bin_name(format!("{name} {}", sub.get_name()));
        write_man(out, &sub_name, section, &sub)?;
    }
    Ok(())
}

fn write_completions(out: &Path, name: &str, mut command: clap::Command) -> anyhow::Result<()> {
    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.to_owned()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(file);
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        clap_complete::generate(shell, &mut command, name, &mut f);
    }
    Ok(())
}
