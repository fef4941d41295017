//! `os4x` subcommands implemented here; the `os4x` binary dispatches to
//! them.

pub mod client;
pub mod db;
pub mod debug;
// issue 5: send side.
pub mod queue;
pub mod received;
pub mod route;
pub mod send;
pub mod user;

/// Reads a password: from stdin when `from_stdin` (one line, for scripts),
/// else prompted twice on the terminal (`confirm`) or once.
pub fn read_password(from_stdin: bool, prompt: &str, confirm: bool) -> anyhow::Result<String> {
    use std::io::BufRead;
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let first = rpassword::prompt_password(prompt)?;
    if confirm {
        let second = rpassword::prompt_password("Repeat: ")?;
        if first != second {
            anyhow::bail!("the passwords differ; nothing changed");
        }
    }
    Ok(first)
}
