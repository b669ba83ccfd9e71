//! The agent's `etc/client.keys`: one line `ID NAME IP KEY`, as Wazuh writes it, mode 0600.

use std::path::Path;

use crate::session::Identity;

/// Parses the first key line; `Ok(None)` for a missing or empty file.
pub fn read(path: &Path) -> Result<Option<Identity>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let Some((n, line)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
    else {
        return Ok(None);
    };
    parse_line(line)
        .map(Some)
        .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
}

pub fn parse_line(line: &str) -> Result<Identity, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [id, name, _ip, key] = f[..] else {
        return Err("expected `ID NAME IP KEY`".into());
    };
    let id = id
        .parse::<u32>()
        .map_err(|_| format!("agent id '{id}' is not a number"))?;
    if key.len() < 32 {
        return Err("the key is too short".into());
    }
    Ok(Identity {
        id,
        name: name.to_string(),
        key: key.to_string(),
    })
}

pub fn format_line(ident: &Identity, ip: &str) -> String {
    format!("{:03} {} {} {}\n", ident.id, ident.name, ip, ident.key)
}

/// Writes the key file atomically with mode 0600.
pub fn write(path: &Path, ident: &Identity, ip: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    manager::node::keys_file::write_secret(path, format_line(ident, ip).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let k = "a".repeat(64);
        let i = parse_line(&format!("007 web1 any {k}")).unwrap();
        assert_eq!((i.id, i.name.as_str()), (7, "web1"));
        assert_eq!(parse_line(format_line(&i, "any").trim()).unwrap(), i);
        assert!(parse_line("x web1 any k").is_err());
        assert!(parse_line("001 web1 any").is_err());
        assert!(parse_line("001 web1 any short").is_err());
    }

    #[test]
    fn file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/client.keys");
        assert_eq!(read(&p).unwrap(), None);
        let i = Identity {
            id: 1,
            name: "a".into(),
            key: "b".repeat(64),
        };
        write(&p, &i, "any").unwrap();
        assert_eq!(read(&p).unwrap(), Some(i));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
