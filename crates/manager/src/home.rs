//! The Wazuh-like home layout (`/var/ossec` equivalent): every path the manager uses.

use std::fs;
use std::io;
use std::path::PathBuf;

/// Content of a fresh `etc/shared/default/agent.conf`.
const DEFAULT_AGENT_CONF: &str = "<agent_config>\n</agent_config>\n";

/// A manager home directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn etc(&self) -> PathBuf {
        self.at("etc")
    }
    pub fn ossec_conf(&self) -> PathBuf {
        self.at("etc/ossec.conf")
    }
    pub fn rules(&self) -> PathBuf {
        self.at("etc/rules")
    }
    pub fn decoders(&self) -> PathBuf {
        self.at("etc/decoders")
    }
    pub fn lists(&self) -> PathBuf {
        self.at("etc/lists")
    }
    pub fn shared(&self) -> PathBuf {
        self.at("etc/shared")
    }
    pub fn client_keys(&self) -> PathBuf {
        self.at("etc/client.keys")
    }
    pub fn authd_pass(&self) -> PathBuf {
        self.at("etc/authd.pass")
    }
    pub fn ssl_cert(&self) -> PathBuf {
        self.at("etc/sslmanager.cert")
    }
    pub fn ssl_key(&self) -> PathBuf {
        self.at("etc/sslmanager.key")
    }
    pub fn queue(&self) -> PathBuf {
        self.at("queue")
    }
    pub fn cluster_queue(&self) -> PathBuf {
        self.at("queue/cluster")
    }
    pub fn control_socket(&self) -> PathBuf {
        self.at("queue/cluster/c-internal.sock")
    }
    pub fn registry_db(&self) -> PathBuf {
        self.at("queue/db/registry.redb")
    }
    pub fn logs(&self) -> PathBuf {
        self.at("logs")
    }
    pub fn cluster_log(&self) -> PathBuf {
        self.at("logs/cluster.log")
    }
    pub fn archives(&self) -> PathBuf {
        self.at("logs/archives")
    }
    pub fn archives_json(&self) -> PathBuf {
        self.at("logs/archives/archives.json")
    }
    pub fn archives_queue(&self) -> PathBuf {
        self.at("queue/archives")
    }

    /// Creates every directory of the layout and a default group `agent.conf` if missing.
    /// Existing files are never overwritten.
    pub fn ensure_layout(&self) -> io::Result<()> {
        for dir in [
            "etc/rules",
            "etc/decoders",
            "etc/lists",
            "etc/shared/default",
            "queue/cluster",
            "queue/db",
            "queue/archives",
            "logs/archives",
        ] {
            fs::create_dir_all(self.at(dir))?;
        }
        let agent_conf = self.at("etc/shared/default/agent.conf");
        // create_new: no check-then-write race with a concurrent writer.
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&agent_conf)
        {
            Ok(mut f) => io::Write::write_all(&mut f, DEFAULT_AGENT_CONF.as_bytes()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let h = Home::new("/var/ossec");
        assert_eq!(h.ossec_conf(), PathBuf::from("/var/ossec/etc/ossec.conf"));
        assert_eq!(h.client_keys(), PathBuf::from("/var/ossec/etc/client.keys"));
        assert_eq!(h.authd_pass(), PathBuf::from("/var/ossec/etc/authd.pass"));
        assert_eq!(
            h.ssl_cert(),
            PathBuf::from("/var/ossec/etc/sslmanager.cert")
        );
        assert_eq!(h.ssl_key(), PathBuf::from("/var/ossec/etc/sslmanager.key"));
        assert_eq!(h.shared(), PathBuf::from("/var/ossec/etc/shared"));
        assert_eq!(h.cluster_queue(), PathBuf::from("/var/ossec/queue/cluster"));
        assert_eq!(
            h.control_socket(),
            PathBuf::from("/var/ossec/queue/cluster/c-internal.sock")
        );
        assert_eq!(
            h.registry_db(),
            PathBuf::from("/var/ossec/queue/db/registry.redb")
        );
        assert_eq!(
            h.cluster_log(),
            PathBuf::from("/var/ossec/logs/cluster.log")
        );
        assert_eq!(h.archives(), PathBuf::from("/var/ossec/logs/archives"));
    }

    #[test]
    fn ensure_layout_creates_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let h = Home::new(dir.path());
        h.ensure_layout().unwrap();
        for d in [
            h.rules(),
            h.decoders(),
            h.lists(),
            h.shared().join("default"),
            h.cluster_queue(),
            h.root.join("queue/db"),
            h.archives(),
        ] {
            assert!(d.is_dir(), "{}", d.display());
        }
        let agent_conf = h.shared().join("default/agent.conf");
        assert_eq!(
            fs::read_to_string(&agent_conf).unwrap(),
            "<agent_config>\n</agent_config>\n"
        );
        fs::write(&agent_conf, "<agent_config><x/></agent_config>\n").unwrap();
        h.ensure_layout().unwrap();
        assert_eq!(
            fs::read_to_string(&agent_conf).unwrap(),
            "<agent_config><x/></agent_config>\n"
        );
    }
}
