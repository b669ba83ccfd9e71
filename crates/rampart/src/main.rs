//! `rampart`: one binary, one subcommand per daemon or tool. Argument parsing and
//! wiring only; each subcommand lives in its own crate.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "A highly available cluster for fleets of agents: load balancer, VRRP, config sync, managers and agents in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// L4 load balancer reading HAProxy configuration (haproxy -f … compatible flags).
    Lb(LbCli),
    /// VRRP reading keepalived.conf: `-t` checks a configuration (the daemon is not yet here).
    Vrrp(VrrpCli),
    /// A manager node (master or worker) configured by DIR/etc/ossec.conf.
    Manager(ManagerCli),
    /// Ask a running manager about the cluster (as Wazuh's cluster_control).
    Cluster(ClusterCli),
    /// List, show, delete and group agents through a running manager (as agent_control).
    Agents(AgentsCli),
    /// An agent configured by DIR/etc/ossec.conf (<client>): enrolls, tails <localfile>s,
    /// spools every event on disk and reports it until acknowledged.
    Agent(AgentCli),
    /// Many simulated agents in one process: enroll, report, and count what arrived.
    Simulate(SimulateCli),
}

#[derive(Args)]
struct VrrpCli {
    /// keepalived.conf to read.
    #[arg(
        short = 'f',
        long = "use-file",
        value_name = "FILE",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    file: PathBuf,
    /// Check the configuration and exit (0 valid, 1 invalid), as `keepalived -t`.
    #[arg(short = 't', long = "config-test")]
    check: bool,
}

#[derive(Args)]
struct AgentCli {
    /// The agent's home, laid out like /var/ossec (etc/ossec.conf, etc/client.keys, queue/).
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    home: PathBuf,
    /// Also read events from stdin; with no <localfile>, exit once stdin ended and every
    /// event was acknowledged.
    #[arg(long)]
    stdin: bool,
    /// Validate DIR/etc/ossec.conf and exit (0 valid, 1 invalid).
    #[arg(long, short = 't')]
    check: bool,
}

#[derive(Args)]
struct SimulateCli {
    /// Enrollment address (authd, TLS): agents without a key enroll there.
    #[arg(long, value_name = "HOST:PORT")]
    enroll: Option<String>,
    /// Reporting address; repeat for a failover list (like several <server> blocks).
    #[arg(long = "server", value_name = "HOST:PORT", required = true)]
    servers: Vec<String>,
    /// Number of agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Events per second per agent.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Generate events for this long (30s, 5m…).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Or generate this many events per agent.
    #[arg(long)]
    events: Option<u64>,
    /// Bytes per event.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Folder for the agents' keys, reused by later runs.
    #[arg(long, value_name = "DIR", default_value = "simulate-keys")]
    keys: PathBuf,
    /// Enrollment password (authd.pass).
    #[arg(long)]
    password: Option<String>,
    /// Agent names are PREFIX-00001…
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Groups to enroll into (comma-separated).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Keep-alive period (<notify_time>).
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    notify_time: std::time::Duration,
    /// Reconnect after this long without an answer (<time-reconnect>).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    time_reconnect: std::time::Duration,
    /// Between connection attempts (<retry_interval>).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    retry_interval: std::time::Duration,
    /// Attempts per server before the next one (<max_retries>).
    #[arg(long, default_value_t = 5)]
    max_retries: u32,
    /// Events held per agent before the oldest are dropped.
    #[arg(long, default_value_t = 100_000)]
    queue_size: u64,
    /// After generating, wait this long at most for the last acknowledgements.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    drain: std::time::Duration,
    /// New agents started per second.
    #[arg(long, default_value_t = 2000)]
    ramp: u32,
    /// No progress lines.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Also print the summary as one JSON line.
    #[arg(long)]
    json: bool,
}

/// `30`, `30s`, `500ms`, `5m`, `1h`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

#[derive(Args)]
struct ManagerCli {
    /// The node's home, laid out like /var/ossec (etc/ossec.conf, queue/, logs/).
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    home: PathBuf,
    /// Validate DIR/etc/ossec.conf and exit (0 valid, 1 invalid).
    #[arg(long, short = 't')]
    check: bool,
    /// More detail in cluster.log (-d DEBUG, -dd DEBUG2).
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    debug: u8,
}

#[derive(Args)]
struct ClusterCli {
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    home: PathBuf,
    #[command(subcommand)]
    action: ClusterCmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Nodes of the cluster: name, type, version, address, last keep-alive.
    Nodes,
    /// This node's state as JSON.
    Status,
    /// Run an integrity sync now (worker) or recompute the metadata (master).
    Sync,
}

#[derive(Args)]
struct AgentsCli {
    #[arg(long, value_name = "DIR", default_value = "/var/ossec")]
    home: PathBuf,
    #[command(subcommand)]
    action: AgentsCmd,
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Every registered agent.
    List,
    /// One agent (without its key).
    Show { id: String },
    /// Delete an agent (on the master; workers forward).
    Delete { id: String },
    /// Assign an agent to GROUP (comma-separated for several).
    Group { id: String, group: String },
    /// Ask connected agents to reconnect through their failover path (Wazuh's force_reconnect).
    Reconnect {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Flags follow HAProxy's: `-f`, `-c`, `-p`, `-D`, `-q`, `-x`, `-sf`, `-st`.
#[derive(Args)]
struct LbCli {
    /// Configuration file (repeat for several, read in order). Default /etc/haproxy/haproxy.cfg.
    #[arg(short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Check the configuration and exit (0 valid, 1 invalid).
    #[arg(short = 'c')]
    check: bool,
    /// Write the process id to FILE.
    #[arg(short = 'p', value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Go to the background.
    #[arg(short = 'D')]
    daemon: bool,
    /// Quiet: do not print warnings at start-up.
    #[arg(short = 'q')]
    quiet: bool,
    /// Take the listening sockets from the old process's runtime socket (seamless upgrade).
    #[arg(short = 'x', value_name = "SOCKET")]
    fd_socket: Option<PathBuf>,
    /// After start-up, ask these processes to finish their sessions and exit.
    #[arg(long = "sf", value_name = "PID", num_args = 1..)]
    soft_stop: Vec<i32>,
    /// After start-up, terminate these processes.
    #[arg(long = "st", value_name = "PID", num_args = 1..)]
    hard_stop: Vec<i32>,
    /// Serve HAProxy's Data Plane API v2 as configured in this dataplaneapi.yml; it edits
    /// the single -f file and applies changes to this process.
    #[arg(long, value_name = "FILE")]
    dataplane: Option<PathBuf>,
}

/// HAProxy spells its two-letter flags with one dash (`-sf`); clap wants two.
fn haproxy_style_args() -> Vec<String> {
    std::env::args()
        .map(|a| match a.as_str() {
            "-sf" => "--sf".to_string(),
            "-st" => "--st".to_string(),
            _ => a,
        })
        .collect()
}

/// Reads dataplaneapi.yml for `rampart lb --dataplane`: the API edits the balancer's own
/// configuration file, so there must be exactly one.
fn dataplane_hook(
    path: &std::path::Path,
    files: &[PathBuf],
    quiet: bool,
) -> Result<lb::daemon::StartHook, String> {
    let mut conf = dataplane::load(path).map_err(|e| e.to_string())?;
    let [file] = files else {
        return Err(format!(
            "--dataplane needs exactly one -f file to edit, {} given",
            files.len()
        ));
    };
    if !quiet {
        for w in &conf.warnings {
            eprintln!("[WARNING] {w}");
        }
        let same = |a: &std::path::Path, b: &std::path::Path| {
            a == b || std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
        };
        let default = std::path::Path::new(dataplane::DEFAULT_CONFIG_FILE);
        if !same(&conf.config_file, file) && conf.config_file != default {
            eprintln!(
                "[WARNING] {}: haproxy.config_file {} ignored: the API edits {}, the file this balancer runs",
                path.display(),
                conf.config_file.display(),
                file.display()
            );
        }
    }
    conf.config_file = file.clone();
    Ok(dataplane::start_hook(conf))
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(haproxy_style_args());
    // Thousands of simulated agents would drown the progress lines in per-session logs.
    init_tracing(if matches!(cli.command, Command::Simulate(_)) {
        "warn"
    } else {
        "info"
    });
    let code = match cli.command {
        Command::Lb(a) => {
            let files = if a.files.is_empty() {
                vec![PathBuf::from("/etc/haproxy/haproxy.cfg")]
            } else {
                a.files
            };
            let on_start = match &a.dataplane {
                Some(path) => match dataplane_hook(path, &files, a.quiet) {
                    Ok(hook) => Some(hook),
                    Err(e) => {
                        eprintln!("[ALERT] {e}");
                        return ExitCode::from(1);
                    }
                },
                None => None,
            };
            if a.check && on_start.is_some() {
                println!("Data Plane API configuration is valid");
            }
            lb::daemon::main(lb::daemon::LbArgs {
                files,
                on_start,
                check_only: a.check,
                fd_socket: a.fd_socket,
                soft_stop: a.soft_stop,
                hard_stop: a.hard_stop,
                pidfile: a.pidfile,
                daemon: a.daemon,
                quiet: a.quiet,
            })
        }
        Command::Vrrp(v) => {
            if !v.check {
                eprintln!(
                    "rampart vrrp: only the configuration check (-t) is available in this build"
                );
                return ExitCode::from(2);
            }
            let (report, code) = vrrp::config::check_report(&vrrp::config::load(&v.file));
            print!("{report}");
            code
        }
        Command::Manager(m) => manager::cli::manager_main(m.home, m.check, m.debug),
        Command::Cluster(c) => manager::cli::cluster_main(
            c.home,
            match c.action {
                ClusterCmd::Nodes => manager::cli::ClusterAction::Nodes,
                ClusterCmd::Status => manager::cli::ClusterAction::Status,
                ClusterCmd::Sync => manager::cli::ClusterAction::Sync,
            },
        ),
        Command::Agents(a) => manager::cli::agents_main(
            a.home,
            match a.action {
                AgentsCmd::List => manager::cli::AgentsAction::List,
                AgentsCmd::Show { id } => manager::cli::AgentsAction::Show(id),
                AgentsCmd::Delete { id } => manager::cli::AgentsAction::Delete(id),
                AgentsCmd::Group { id, group } => manager::cli::AgentsAction::Group(id, group),
                AgentsCmd::Reconnect { ids } => manager::cli::AgentsAction::Reconnect(ids),
            },
        ),
        Command::Agent(a) => agent::cli::agent_main(a.home, a.stdin, a.check),
        Command::Simulate(s) => agent::cli::simulate_main(
            agent::simulate::Options {
                enroll: s.enroll,
                servers: s.servers,
                agents: s.agents,
                rate: s.rate,
                duration: s.duration,
                events: s.events,
                size: s.size,
                keys_dir: s.keys,
                password: s.password,
                prefix: s.prefix,
                groups: s.groups,
                notify_time: s.notify_time,
                time_reconnect: s.time_reconnect,
                retry_interval: s.retry_interval,
                max_retries: s.max_retries,
                queue_size: s.queue_size,
                drain: s.drain,
                ramp: s.ramp,
                progress: !s.quiet,
            },
            s.json,
        ),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
