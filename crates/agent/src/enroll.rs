//! Enrollment as Wazuh's agent-auth does it: TLS to the manager's port 1515 (or a balancer in
//! front of it), one request line with the optional password, name, groups and address.

use std::net::SocketAddr;
use std::path::Path;

use manager::authd::{self, EnrollRequest};

use crate::session::Identity;

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub name: String,
    pub groups: Vec<String>,
    /// `<agent_address>`: an address, or "src" for the connection's source.
    pub address: Option<String>,
    pub password: Option<String>,
    pub version: String,
}

/// Reads the enrollment password file: its first line, if the file exists.
pub fn read_password(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t
            .lines()
            .next()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Resolves `host:port` (host may be a name).
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// One enrollment attempt; returns the identity and the IP the manager recorded.
pub async fn enroll(
    addr: SocketAddr,
    ask: &Ask,
    server_ca: Option<&Path>,
) -> Result<(Identity, String), String> {
    let req = EnrollRequest {
        password: ask.password.clone(),
        name: ask.name.clone(),
        version: Some(ask.version.clone()),
        groups: ask.groups.clone(),
        ip: ask.address.as_deref().and_then(authd::parse_ip),
        key_hash: None,
    };
    let reply = manager::node::enroll::enroll_client(addr, &req, server_ca).await?;
    Ok((
        Identity {
            id: reply.id,
            name: reply.name,
            key: reply.key,
        },
        reply.ip,
    ))
}
