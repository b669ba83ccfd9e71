//! `etc/client.keys`, rewritten from the registry after each commit (coalesced), in
//! Wazuh's format `ID NAME IP KEY`, so the reporting service and operators' tools read
//! what they already know. It holds secrets: written 0600, atomically.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::Agent;

use super::Node;

pub fn render(agents: &[Agent]) -> String {
    let mut out = String::with_capacity(agents.len() * 100);
    for a in agents {
        out.push_str(&format!("{:03} {} {} {}\n", a.id, a.name, a.ip, a.key));
    }
    out
}

/// Write `contents` to `path` atomically with mode 0600.
pub fn write_secret(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Rewrite the file when the keys it holds change (agent-info commits leave it alone);
/// a failed write is retried every second.
pub fn spawn_writer(node: Arc<Node>) {
    let mut changes = node.registry.changes();
    tokio::spawn(async move {
        let mut written: Option<String> = None;
        loop {
            let text = render(&node.registry.list());
            if written.as_ref() != Some(&text) {
                let path = node.home.client_keys();
                let bytes = text.clone().into_bytes();
                let res = tokio::task::spawn_blocking(move || write_secret(&path, &bytes)).await;
                match res {
                    Ok(Ok(())) => written = Some(text),
                    Ok(Err(e)) => {
                        node.log.error(
                            &node.tag(),
                            "Keys",
                            format!(
                                "cannot write {}: {e}; retrying",
                                node.home.client_keys().display()
                            ),
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(e) => {
                        node.log.error(
                            &node.tag(),
                            "Keys",
                            format!("client.keys writer failed: {e}"),
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            // Coalesce bursts of registrations into one rewrite.
            if !changes.next(Duration::from_millis(100)).await {
                return;
            }
        }
    });
}
