//! `capi-sim`: a simulated ISDN network served as remote CAPI over TCP, so
//! separate processes (daemons in tests and demos) can call each other
//! without ISDN hardware.
//!
//! ```text
//! capi-sim --listen 127.0.0.1:0 --controller 4930100,4930101:2 --controller 4940200:2
//! ```
//!
//! Controllers are numbered 1, 2, … in the order given (an optional `N=`
//! prefix must match that order); `:B` sets the number of B channels
//! (default 2). The first line on stdout is `listening ADDRESS`. Commands
//! on stdin, one per line, each answered with one line:
//!
//! * `break N` — break every call on controller N as a failing line would
//!   (both ends: reason 0x3301) → `broken COUNT`
//! * `status` — `controller N channels USED/TOTAL` per controller, then `end`
//!
//! End of stdin does not stop the server; a signal does.

use std::io::Write;
use std::process::ExitCode;

use capi::remote::Server;
use capi::sim::Sim;
use tokio::io::{AsyncBufReadExt, BufReader};

const USAGE: &str =
    "usage: capi-sim --listen HOST:PORT --controller [N=]NUMBER[,NUMBER...][:B_CHANNELS] ...";

struct Controller {
    numbers: Vec<String>,
    b_channels: usize,
}

fn parse_controller(arg: &str, position: usize) -> Result<Controller, String> {
    let (index, rest) = match arg.split_once('=') {
        Some((n, rest)) => (Some(n), rest),
        None => (None, arg),
    };
    if let Some(n) = index {
        if n.trim().parse::<usize>() != Ok(position) {
            return Err(format!(
                "controller '{arg}' is number {position} in the order given, not {n}"
            ));
        }
    }
    let (numbers, b) = match rest.rsplit_once(':') {
        Some((numbers, b)) => (
            numbers,
            b.parse::<usize>()
                .map_err(|_| format!("B channels '{b}' in '{arg}' is not a number"))?,
        ),
        None => (rest, 2),
    };
    let numbers: Vec<String> = numbers
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if numbers.is_empty()
        || numbers
            .iter()
            .any(|n| !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "controller '{arg}': give its ISDN numbers (MSNs/DDIs) as digits"
        ));
    }
    Ok(Controller {
        numbers,
        b_channels: b,
    })
}

fn parse_args() -> Result<(String, Vec<Controller>), String> {
    let mut listen = None;
    let mut controllers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = Some(args.next().ok_or("--listen needs HOST:PORT")?),
            "--controller" => {
                let c = args.next().ok_or("--controller needs NUMBERS")?;
                controllers.push(parse_controller(&c, controllers.len() + 1)?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let listen = listen.ok_or("--listen HOST:PORT is required")?;
    if controllers.is_empty() {
        return Err("at least one --controller is required".into());
    }
    Ok((listen, controllers))
}

async fn commands(sim: Sim) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["break", n] => match n.parse::<u32>() {
                Ok(n) => format!("broken {}", sim.exchange().break_line(n)),
                Err(_) => format!("error: '{n}' is not a controller number"),
            },
            ["status"] => {
                let ex = sim.exchange();
                let mut s = String::new();
                for c in 1..=ex.controller_count() as u32 {
                    s.push_str(&format!(
                        "controller {c} channels {}/{}\n",
                        ex.channels_in_use(c).unwrap_or(0),
                        ex.b_channels(c).unwrap_or(0)
                    ));
                }
                s.push_str("end");
                s
            }
            [] => continue,
            _ => format!("error: unknown command '{line}' (break N | status)"),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

fn main() -> ExitCode {
    let (listen, controllers) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("capi-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capi-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let sim = Sim::new();
        for c in &controllers {
            let numbers: Vec<&str> = c.numbers.iter().map(String::as_str).collect();
            sim.add_controller(&numbers, c.b_channels);
        }
        let server = match Server::bind(&listen, sim.clone()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("capi-sim: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server.local_addr() {
            Ok(a) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening {a}");
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("capi-sim: {e}");
                return ExitCode::FAILURE;
            }
        }
        tokio::spawn(commands(sim));
        match server.serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("capi-sim: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
