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
    /// A manager node (master or worker) configured by DIR/etc/ossec.conf.
    Manager(ManagerCli),
    /// Ask a running manager about the cluster (as Wazuh's cluster_control).
    Cluster(ClusterCli),
    /// List, show, delete and group agents through a running manager (as agent_control).
    Agents(AgentsCli),
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

fn main() -> ExitCode {
    let cli = Cli::parse_from(haproxy_style_args());
    init_tracing();
    let code = match cli.command {
        Command::Lb(a) => {
            let files = if a.files.is_empty() {
                vec![PathBuf::from("/etc/haproxy/haproxy.cfg")]
            } else {
                a.files
            };
            lb::daemon::main(lb::daemon::LbArgs {
                files,
                check_only: a.check,
                fd_socket: a.fd_socket,
                soft_stop: a.soft_stop,
                hard_stop: a.hard_stop,
                pidfile: a.pidfile,
                daemon: a.daemon,
                quiet: a.quiet,
            })
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
            },
        ),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
