//! The command line as an operator uses it: the real binary.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_residency-agent"))
}

#[test]
fn demo_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["demo", "--check", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo --check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo check passed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // It left real, loadable configuration behind.
    assert!(dir.path().join("agent.toml").exists());
    assert!(dir.path().join("certs/ca.pem").exists());
}

#[test]
fn keys_gen_writes_a_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["keys", "gen", "--out"])
        .arg(dir.path())
        .args(["--region", "azure:centralindia", "--san", "gw.example.in"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "ca.pem",
        "ca.key",
        "gateway-azure-centralindia.pem",
        "gateway-azure-centralindia.key",
        "agent.pem",
        "agent.key",
        "admin.pem",
        "admin.key",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("agent.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others");
    }
}

#[test]
fn bad_config_exits_64_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "default_region = \"aws:ap-south-1\"\nmax_body_byte = 10\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n",
    )
    .unwrap();
    let out = bin().args(["run", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_body_byte"), "{err}");

    let out = bin()
        .args(["gateway", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
