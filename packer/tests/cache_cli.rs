//! `mgo-pack cache [list|clear]`: the launcher's per-user cache as the command shows it, filled by
//! real bundles packed with `--launch cache` and run, then cleared. Status 0 throughout, also
//! without a cache or a home.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mgo_tests::fixtures::{c_probe_dynamic, c_probe_static};
use mgo_tests::harness::{oracle_level, scratch_dir};

fn mgo_pack(env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mgo-pack"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("running");
    assert!(
        out.status.success(),
        "{cmd:?}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cache_lists_and_clears_what_bundles_cached() {
    let dir = scratch_dir("cli-cache").canonicalize().unwrap();
    let home = dir.join("xdg");
    let env = [("XDG_CACHE_HOME", home.as_path())];
    let cache = home.join("mgo-pack");
    let mut rows = Vec::new();
    for (name, probe) in [("alpha", c_probe_static()), ("beta", c_probe_dynamic())] {
        let bundle = dir.join(name);
        let mut pack = mgo_pack(&[]);
        pack.args(["-q", "--launch", "cache", "-o"]).arg(&bundle);
        ok(pack.args(probe));
        // Its first start caches the variant.
        ok(Command::new(&bundle)
            .env_clear()
            .env("XDG_CACHE_HOME", &home));
        let level = format!("v{}", oracle_level(probe));
        rows.push((name, level, bundle));
    }

    // Both are listed, with their key, level, name and bundle path.
    let listed = ok(mgo_pack(&env).arg("cache"));
    assert_eq!(listed, ok(mgo_pack(&env).args(["cache", "list"])));
    let mut lines = listed.lines();
    assert_eq!(
        lines.next().unwrap().split(", ").next().unwrap(),
        format!("{}: 2 cached programs", cache.display()),
        "{listed}"
    );
    assert!(lines.next().unwrap().contains("last used"), "{listed}");
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), 2, "{listed}");
    for (name, level, bundle) in &rows {
        let line = lines
            .iter()
            .find(|l| l.ends_with(bundle.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{name} is not listed: {listed}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0].len(), 16, "{line}");
        assert_eq!(cells[1], level, "{line}");
        assert_eq!(
            &cells[cells.len() - 2..],
            [*name, bundle.to_str().unwrap()],
            "{line}"
        );
    }
    let entries = mgo_pack::cache::list(&cache).unwrap();
    assert_eq!(entries.len(), 2);

    let cleared = ok(mgo_pack(&env).args(["cache", "clear"]));
    assert!(
        cleared.starts_with(&format!("{}: removed 2 cached programs (", cache.display())),
        "{cleared}"
    );
    assert!(!cache.exists());
    assert_eq!(
        ok(mgo_pack(&env).arg("cache")),
        format!("{}: 0 cached programs, 0 B\n", cache.display())
    );
    assert_eq!(
        ok(mgo_pack(&env).args(["cache", "clear"])),
        format!("{}: removed 0 cached programs (0 B)\n", cache.display())
    );

    // HOME's .cache when XDG_CACHE_HOME is not absolute; nothing to do without either.
    let home_env = [
        ("HOME", dir.as_path()),
        ("XDG_CACHE_HOME", Path::new("rel")),
    ];
    let listed = ok(mgo_pack(&home_env).arg("cache"));
    assert!(
        listed.starts_with(&format!(
            "{}/.cache/mgo-pack: 0 cached programs",
            dir.display()
        )),
        "{listed}"
    );
    assert_eq!(
        ok(mgo_pack(&[]).arg("cache")),
        "no cache: neither XDG_CACHE_HOME nor HOME is an absolute path\n"
    );
    ok(mgo_pack(&[]).args(["cache", "clear"]));
}
