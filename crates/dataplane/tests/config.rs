use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::{check_password, load, parse_str, ConfError, Password, Scheme, Tls, User};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn wazuh_user() -> Vec<User> {
    vec![User {
        name: "wazuh-haproxy".into(),
        password: Password::Plain("s3cret".into()),
    }]
}

fn invalid(text: &str) -> (String, Option<u64>, String) {
    match parse_str(text, Path::new("dataplaneapi.yml")) {
        Err(e @ ConfError::Invalid { .. }) => {
            let shown = e.to_string();
            let line = e.line();
            let ConfError::Invalid { key, .. } = e else {
                unreachable!()
            };
            (key, line, shown)
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

const USER: &str = "   user:\n   - name: admin\n     insecure: true\n     password: pw\n";

#[test]
fn http_fixture_loads_with_one_alignment_warning() {
    let path = fixture("dataplaneapi-http.yml");
    let conf = load(&path).unwrap();
    assert_eq!(conf.path, path);
    assert_eq!(conf.host, "0.0.0.0");
    assert_eq!(conf.port, 5555);
    assert_eq!(conf.schemes, vec![Scheme::Http]);
    assert_eq!(conf.tls, None);
    assert_eq!(conf.users, wazuh_user());
    assert_eq!(conf.transaction_dir, PathBuf::from("/tmp/haproxy"));
    assert_eq!(conf.max_open_transactions, 20);
    assert_eq!(conf.config_file, PathBuf::from("/etc/haproxy/haproxy.cfg"));
    assert_eq!(conf.haproxy_bin, Some(PathBuf::from("/usr/sbin/haproxy")));
    assert_eq!(conf.reload_delay, Duration::from_secs(5));
    assert_eq!(conf.reload_cmd.as_deref(), Some("service haproxy reload"));
    assert_eq!(conf.restart_cmd.as_deref(), Some("service haproxy restart"));
    assert_eq!(conf.warnings.len(), 1, "{:?}", conf.warnings);
    assert!(
        conf.warnings[0].ends_with(
            "dataplaneapi-http.yml:8: `password` is indented 1 column deeper than `insecure` \
             in the same list item; read as aligned"
        ),
        "{}",
        conf.warnings[0]
    );
}

#[test]
fn https_fixture_loads_cleanly() {
    let conf = load(&fixture("dataplaneapi-https.yml")).unwrap();
    assert_eq!(conf.warnings, Vec::<String>::new());
    assert_eq!(conf.schemes, vec![Scheme::Https]);
    assert_eq!(
        conf.tls,
        Some(Tls {
            tls_port: 6443,
            tls_certificate: "/etc/haproxy/ssl/haproxy.crt".into(),
            tls_key: "/etc/haproxy/ssl/haproxy.key".into(),
            tls_ca: Some("/etc/haproxy/ssl/client-ca.crt".into()),
        })
    );
    assert_eq!(conf.users, wazuh_user());
    assert_eq!(conf.port, 5555);
    assert_eq!(conf.transaction_dir, PathBuf::from("/tmp/haproxy"));
    assert_eq!(conf.haproxy_bin, Some(PathBuf::from("/usr/sbin/haproxy")));
    assert_eq!(conf.reload_delay, Duration::from_secs(5));
    assert!(check_password(&conf.users[0], "s3cret"));
    assert!(!check_password(&conf.users[0], "wrong"));
}

#[test]
fn defaults_apply() {
    let text = format!("dataplaneapi:\n{USER}");
    let conf = parse_str(&text, Path::new("d.yml")).unwrap();
    assert_eq!(conf.host, "0.0.0.0");
    assert_eq!(conf.port, 5555);
    assert_eq!(conf.schemes, vec![Scheme::Http]);
    assert_eq!(conf.tls, None);
    assert_eq!(conf.transaction_dir, PathBuf::from("/tmp/haproxy"));
    assert_eq!(conf.max_open_transactions, 20);
    assert_eq!(conf.config_file, PathBuf::from("/etc/haproxy/haproxy.cfg"));
    assert_eq!(conf.haproxy_bin, None);
    assert_eq!(conf.reload_delay, Duration::from_secs(5));
    assert_eq!((conf.reload_cmd, conf.restart_cmd), (None, None));
    assert!(conf.warnings.is_empty());
}

#[test]
fn scheme_may_be_a_single_string_and_hashes_are_accepted() {
    let hash = format!("$6$saltsalt${}", "x".repeat(86));
    let text = format!(
        "dataplaneapi:\n   scheme: http\n   transaction:\n      max_open_transactions: 7\n   \
         user:\n   - name: admin\n     password: \"{hash}\"\n"
    );
    let conf = parse_str(&text, Path::new("d.yml")).unwrap();
    assert_eq!(conf.schemes, vec![Scheme::Http]);
    assert_eq!(conf.max_open_transactions, 7);
    assert_eq!(conf.users[0].password, Password::Hashed(hash));
    assert!(!check_password(&conf.users[0], "anything"));
}

#[test]
fn https_without_tls_is_rejected() {
    let text = format!("dataplaneapi:\n   scheme: [http, https]\n{USER}");
    let (key, line, shown) = invalid(&text);
    assert_eq!(key, "dataplaneapi.tls");
    assert_eq!(line, Some(2));
    assert!(
        shown.starts_with("dataplaneapi.yml:2: dataplaneapi.tls: "),
        "{shown}"
    );
}

#[test]
fn https_with_incomplete_tls_names_the_missing_key() {
    let text = format!(
        "dataplaneapi:\n   scheme: https\n   tls:\n      tls_port: 6443\n      tls_key: /k\n{USER}"
    );
    let (key, _, _) = invalid(&text);
    assert_eq!(key, "dataplaneapi.tls.tls_certificate");
}

#[test]
fn missing_users_are_rejected() {
    let (key, _, shown) = invalid("dataplaneapi:\n   port: 5555\n");
    assert_eq!(key, "dataplaneapi.user");
    assert!(shown.contains("at least one user"), "{shown}");
    let (key, _, _) = invalid("dataplaneapi:\n   user: []\n");
    assert_eq!(key, "dataplaneapi.user");
}

#[test]
fn bad_ports_are_rejected() {
    let (key, line, shown) = invalid(&format!("dataplaneapi:\n   port: 0\n{USER}"));
    assert_eq!((key.as_str(), line), ("dataplaneapi.port", Some(2)));
    assert!(shown.contains("1–65535"), "{shown}");
    let text = format!(
        "dataplaneapi:\n   scheme: https\n   tls:\n      tls_port: 70000\n      \
         tls_certificate: /c\n      tls_key: /k\n{USER}"
    );
    let (key, line, shown) = invalid(&text);
    assert_eq!((key.as_str(), line), ("dataplaneapi.tls.tls_port", Some(4)));
    assert!(
        shown.starts_with("dataplaneapi.yml:4: dataplaneapi.tls.tls_port: "),
        "{shown}"
    );
    let (key, _, _) = invalid(&format!("dataplaneapi:\n   port: http\n{USER}"));
    assert_eq!(key, "dataplaneapi.port");
}

#[test]
fn empty_insecure_password_is_rejected() {
    let text =
        "dataplaneapi:\n   user:\n   - name: admin\n     insecure: true\n     password: \"\"\n";
    let (key, line, _) = invalid(text);
    assert_eq!(
        (key.as_str(), line),
        ("dataplaneapi.user[0].password", Some(5))
    );
}

#[test]
fn non_crypt_hash_is_rejected() {
    let text = "dataplaneapi:\n   user:\n   - name: admin\n     password: letmein\n";
    let (key, line, shown) = invalid(text);
    assert_eq!(
        (key.as_str(), line),
        ("dataplaneapi.user[0].password", Some(4))
    );
    assert!(shown.contains("insecure: true"), "{shown}");
}

#[test]
fn broken_file_reports_its_line() {
    let text = "dataplaneapi:\n   port: 5555\n   host: [0.0.0.0\nhaproxy:\n   config_file: x\n";
    let err = parse_str(text, Path::new("dataplaneapi.yml")).unwrap_err();
    assert!(matches!(err, ConfError::Syntax { .. }), "{err:?}");
    let line = err.line().unwrap();
    assert!((3..=5).contains(&line), "line {line}");
    assert!(
        err.to_string()
            .starts_with(&format!("dataplaneapi.yml:{line}: invalid YAML")),
        "{err}"
    );
}

#[test]
fn failed_repair_reports_the_original_error() {
    // Misaligned item keys plus a second, unrelated error later on.
    let text = "dataplaneapi:\n   user:\n   - insecure: true\n      password: x\n   port: [1\n";
    let err = parse_str(text, Path::new("dataplaneapi.yml")).unwrap_err();
    assert_eq!(err.line(), Some(4), "{err}");
}

#[test]
fn unknown_keys_warn_known_ones_do_not() {
    let text = format!(
        "config_version: 2\nbogus: 1\ncluster:\n   anything: goes\ndataplaneapi:\n   \
         api_base_path: /v2\n   colour: blue\n   tls:\n      tls_listen_limit: 5\n      tls_frob: 1\n\
         {USER}     role: admin\nhaproxy:\n   reload:\n      status_cmd: x\n      reload_dleay: 3\n"
    );
    let conf = parse_str(&text, Path::new("d.yml")).unwrap();
    let w = conf.warnings.join("\n");
    for expected in [
        "d.yml:2: bogus: unknown key",
        "d.yml:7: dataplaneapi.colour: unknown key",
        "d.yml:10: dataplaneapi.tls.tls_frob: unknown key",
        "d.yml:15: dataplaneapi.user[0].role: unknown key",
        "d.yml:19: haproxy.reload.reload_dleay: unknown key",
        "dataplaneapi.tls: incomplete (tls_port missing) and scheme has no https; ignored",
    ] {
        assert!(w.contains(expected), "missing {expected:?} in\n{w}");
    }
    assert_eq!(conf.warnings.len(), 6, "{w}");
    // The unused, incomplete tls section is ignored, not an error.
    assert_eq!(conf.tls, None);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = load(Path::new("/nonexistent/dataplaneapi.yml")).unwrap_err();
    assert!(matches!(err, ConfError::Io { .. }));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/dataplaneapi.yml: cannot read"));
}
