//! Entry points of `rampart agent` and `rampart simulate` (the binary only parses arguments).

use std::path::PathBuf;

use crate::{daemon, simulate};

fn runtime(name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name(name)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// `rampart agent --home DIR [--stdin] [-t]`.
pub fn agent_main(home: PathBuf, stdin: bool, check: bool) -> i32 {
    if check {
        return match daemon::check(&home) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "Configuration file {} is valid ({} server(s), {} localfile(s)).",
                    c.path.display(),
                    c.client.servers.len(),
                    c.localfiles.len()
                );
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    let rt = match runtime("agent") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match rt.block_on(daemon::run(daemon::Options { home, stdin })) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rampart agent: {e:#}");
            1
        }
    }
}

/// `rampart simulate …`; prints the summary (and JSON with `json`). Exit 1 when events were
/// lost or not every agent connected.
pub fn simulate_main(opts: simulate::Options, json: bool) -> i32 {
    let rt = match runtime("simulate") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match rt.block_on(simulate::run(opts)) {
        Ok(s) => {
            println!("{s}");
            if json {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
            }
            i32::from(s.lost > 0 || s.peak_connected < s.agents)
        }
        Err(e) => {
            eprintln!("rampart simulate: {e:#}");
            1
        }
    }
}
