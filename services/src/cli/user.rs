//! `os4x user add|passwd|role|unlock|list|remove`: users of `os4xclientd`
//! (and the web UI).

use std::process::ExitCode;

use crate::config::Config;
use crate::users::{Role, UserStore};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is prompted (or read from stdin)
    Add {
        name: String,
        #[arg(long, value_enum, default_value_t = Role::Viewer)]
        role: Role,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (also clears a lockout)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role
    Role {
        name: String,
        #[arg(value_enum)]
        role: Role,
    },
    /// Clear failed logins and a lockout
    Unlock { name: String },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user
    Remove { name: String },
}

pub fn run(config: &Config, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let store = UserStore::open(&config.database)?;
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let pw = super::read_password(password_stdin, &format!("Password for {name}: "), true)?;
            store.add(&name, &pw, role)?;
            println!("user {name} added with role {role}");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let pw =
                super::read_password(password_stdin, &format!("New password for {name}: "), true)?;
            store.set_password(&name, &pw)?;
            println!("password of {name} changed");
        }
        UserCommand::Role { name, role } => {
            store.set_role(&name, role)?;
            println!("{name} now has role {role}");
        }
        UserCommand::Unlock { name } => {
            store.unlock(&name)?;
            println!("{name} unlocked");
        }
        UserCommand::List { json } => {
            let users = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<24} {:<9} {:>6}  LOCKED", "USER", "ROLE", "FAILED");
                let now = crate::db::unix_now();
                for u in users {
                    let locked = if u.locked_until > now {
                        format!("{} s", u.locked_until - now)
                    } else {
                        "-".into()
                    };
                    println!(
                        "{:<24} {:<9} {:>6}  {locked}",
                        u.name,
                        u.role.as_str(),
                        u.failed_logins
                    );
                }
            }
        }
        UserCommand::Remove { name } => {
            store.remove(&name)?;
            println!("user {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
