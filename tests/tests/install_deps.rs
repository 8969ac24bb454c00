//! `scripts/install-deps.sh --list` names the Debian packages the builds and tests need, installs
//! nothing, and every package it names is installed here (the suite installs them first): a
//! package a test needs but the list forgets shows up on a fresh machine, not on one where it was
//! installed by hand.

use std::process::Command;

use mgo_tests::fixtures::workspace_root;

fn listed() -> Vec<String> {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/install-deps.sh"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "--list says more: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_listed_package_is_installed() {
    let packages = listed();
    // The arm64 C library headers come only as a recommendation of the cross compiler, which the
    // script does not install: they must be named.
    for needed in [
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
        "gcc-riscv64-linux-gnu",
        "libc6-dev-riscv64-cross",
        "gcc-arm-linux-gnueabi",
        "libc6-dev-armel-cross",
        "gcc-powerpc64le-linux-gnu",
        "libc6-dev-ppc64el-cross",
        "golang-go",
        "qemu-user",
        "cmake",
    ] {
        assert!(
            packages.iter().any(|p| p == needed),
            "{needed} missing from {packages:?}"
        );
    }
    let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(&packages)
        .output()
    else {
        eprintln!("SKIPPED: every_listed_package_is_installed: no dpkg-query (not Debian)");
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    for package in &packages {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&format!("{package} "))
                    && l.ends_with("install ok installed")),
            "{package} is listed but not installed:\n{report}"
        );
    }
}

#[test]
fn an_unknown_option_is_a_usage_error() {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/install-deps.sh"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
