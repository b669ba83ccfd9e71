//! `rampart vrrp -t`: keepalived's configuration check, on the seed's files and a broken one.

mod common;

use std::path::Path;
use std::process::Command;

fn check(file: &Path) -> (i32, String) {
    let out = Command::new(common::BIN)
        .args(["vrrp", "-t", "-f"])
        .arg(file)
        .output()
        .expect("run rampart vrrp");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn seed_configurations_pass_and_errors_name_file_and_line() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vrrp/tests/fixtures");
    for name in ["seed-master.conf", "seed-backup.conf"] {
        let (code, text) = check(&fixtures.join(name));
        assert_eq!(code, 0, "{name}: {text}");
        assert!(text.contains("configuration valid"), "{text}");
    }
    let dir = common::Dir::new("vrrp-check");
    let bad = dir.0.join("keepalived.conf");
    std::fs::write(
        &bad,
        "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 300\n    prority 100\n}\n",
    )
    .expect("write");
    let (code, text) = check(&bad);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("keepalived.conf:3"), "{text}");
    assert!(text.contains("prority"), "{text}");
}
