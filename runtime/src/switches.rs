//! The environment variables mgo documents, read once from the launcher's environment and passed
//! on to the program unchanged.

use mgo_format::{level, Arch};

use crate::cpu::NATIVE;

/// What the user asked of the launcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// `GOAMD64=vN` (x86-64) or `GOARM64=v8.2,lse` (arm64): run this level (or the best packed
    /// one it includes) whatever the CPU says.
    pub forced_level: Option<u32>,
    /// `MGODEBUG=log`: say on stderr which variant starts, and why.
    pub log: bool,
    /// `MGODEBUG=extract`: write the chosen variant to stdout instead of running it.
    pub extract: bool,
    /// `MGODEBUG=memfd`, `MGODEBUG=direct` or `MGODEBUG=cache`: the launch path to take instead
    /// of the one the packer chose (the last word wins).
    pub launch: Option<LaunchPath>,
}

/// How the launcher starts a stored variant (docs/ARCHITECTURE.md, "Launch paths").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchPath {
    /// Copy the variant into a sealed memfd and exec it.
    Memfd,
    /// Map the variant's segments from the bundle file and jump to its entry point; variants the
    /// launcher cannot map that way still go through the memfd.
    Direct,
    /// Write the variant once, hash-checked, as a real file in the user's cache directory and
    /// exec that file, then and at every later start; where the cache cannot be used, the memfd.
    Cache,
}

/// `GOAMD64` (`GOARM64` on arm64) was set to something that is not a level. Refusing beats
/// guessing: the user asked for a specific variant and would otherwise silently get another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadOverride;

impl Switches {
    /// Reads the switches from `NAME=VALUE` environment strings. `MGODEBUG` is a comma-separated
    /// list, like `GODEBUG`; unknown words are ignored so that newer bundles' words do not break
    /// older launchers. An empty `GOAMD64` counts as unset. The override is the variable of the
    /// launcher's own architecture: `GOAMD64` on x86-64, `GOARM64` on arm64.
    pub fn from_env<'a>(env: impl Iterator<Item = &'a [u8]>) -> Result<Switches, BadOverride> {
        Switches::from_env_for(NATIVE, env)
    }

    /// [`Switches::from_env`] for a launcher running on `arch`.
    pub fn from_env_for<'a>(
        arch: Arch,
        env: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Switches, BadOverride> {
        let mut switches = Switches::default();
        let variable = level::variable(arch).as_bytes();
        for entry in env {
            let override_value = entry
                .strip_prefix(variable)
                .and_then(|rest| rest.strip_prefix(b"="));
            if let Some(value) = override_value {
                if value.is_empty() {
                    continue;
                }
                switches.forced_level = Some(level::parse(arch, value).ok_or(BadOverride)?);
            } else if let Some(value) = entry.strip_prefix(b"MGODEBUG=") {
                for word in value.split(|&b| b == b',') {
                    match word {
                        b"log" => switches.log = true,
                        b"extract" => switches.extract = true,
                        b"memfd" => switches.launch = Some(LaunchPath::Memfd),
                        b"direct" => switches.launch = Some(LaunchPath::Direct),
                        b"cache" => switches.launch = Some(LaunchPath::Cache),
                        _ => {}
                    }
                }
            }
        }
        Ok(switches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(env: &[&str]) -> Result<Switches, BadOverride> {
        Switches::from_env(env.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn reads_mgo_switches() {
        let s = parse(&["PATH=/bin", "GOAMD64=v3", "MGODEBUG=log"]).unwrap();
        assert_eq!(
            s,
            Switches {
                forced_level: Some(3),
                log: true,
                extract: false,
                launch: None,
            }
        );
        let s = parse(&["MGODEBUG=extract,log,other"]).unwrap();
        assert!(s.log && s.extract);
        assert_eq!(
            parse(&["MGODEBUG=log,memfd"]).unwrap().launch,
            Some(LaunchPath::Memfd)
        );
        assert_eq!(
            parse(&["MGODEBUG=memfd,direct"]).unwrap().launch,
            Some(LaunchPath::Direct)
        );
        assert_eq!(
            parse(&["MGODEBUG=cache,log"]).unwrap().launch,
            Some(LaunchPath::Cache)
        );
        assert_eq!(
            parse(&["MGODEBUG=cache", "MGODEBUG=log,memfd"])
                .unwrap()
                .launch,
            Some(LaunchPath::Memfd)
        );
        assert_eq!(
            parse(&["MGODEBUG=direct,cache"]).unwrap().launch,
            Some(LaunchPath::Cache)
        );
        assert_eq!(parse(&["MGODEBUG=directly"]).unwrap().launch, None);
        assert_eq!(parse(&["MGODEBUG=cached"]).unwrap().launch, None);
        assert_eq!(
            parse(&["MGODEBUG=logs", "XGOAMD64=v2"]).unwrap(),
            Switches::default()
        );
        assert_eq!(parse(&["GOAMD64="]).unwrap().forced_level, None);
    }

    fn parse_arm64(env: &[&str]) -> Result<Switches, BadOverride> {
        Switches::from_env_for(Arch::Aarch64, env.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn arm64_reads_goarm64_and_ignores_goamd64() {
        let s = parse_arm64(&["GOAMD64=v3", "GOARM64=v8.1", "MGODEBUG=log"]).unwrap();
        assert_eq!(s.forced_level, level::parse_aarch64(b"v8.1,lse"));
        assert!(s.log);
        assert_eq!(
            parse_arm64(&["GOARM64=v8.0,crypto"]).unwrap().forced_level,
            Some(0x0008_0001)
        );
        assert_eq!(parse_arm64(&["GOAMD64=v9"]).unwrap().forced_level, None);
        assert_eq!(parse_arm64(&["GOARM64="]).unwrap().forced_level, None);
        for bad in [
            "GOARM64=v3",
            "GOARM64=v8.10",
            "GOARM64=v8.0,sve",
            "GOARM64=8.0",
        ] {
            assert_eq!(parse_arm64(&[bad]), Err(BadOverride), "{bad}");
        }
        // On x86-64 GOARM64 means nothing.
        assert_eq!(parse(&["GOARM64=v3"]).unwrap().forced_level, None);
    }

    #[test]
    fn arm_reads_goarm_only() {
        let parse_arm =
            |env: &[&str]| Switches::from_env_for(Arch::Arm, env.iter().map(|s| s.as_bytes()));
        let s = parse_arm(&["GOARM64=v8.1", "GOAMD64=v3", "GOARM=6"]).unwrap();
        assert_eq!(s.forced_level, Some(6));
        assert_eq!(parse_arm(&["GOARM64=v8.1"]).unwrap().forced_level, None);
        assert_eq!(parse_arm(&["GOARM="]).unwrap().forced_level, None);
        for bad in ["GOARM=8", "GOARM=7,softfloat", "GOARM=v7"] {
            assert_eq!(parse_arm(&[bad]), Err(BadOverride), "{bad}");
        }
    }

    #[test]
    fn riscv64_reads_goriscv64_only() {
        let parse_rv =
            |env: &[&str]| Switches::from_env_for(Arch::Riscv64, env.iter().map(|s| s.as_bytes()));
        let s = parse_rv(&["GOAMD64=v3", "GOARM64=v8.1", "GORISCV64=rva22u64"]).unwrap();
        assert_eq!(s.forced_level, Some(22));
        assert_eq!(parse_rv(&["GORISCV64="]).unwrap().forced_level, None);
        for bad in [
            "GORISCV64=rva21u64",
            "GORISCV64=rva23u64,zacas",
            "GORISCV64=v1",
        ] {
            assert_eq!(parse_rv(&[bad]), Err(BadOverride), "{bad}");
        }
    }

    #[test]
    fn refuses_unknown_level() {
        assert_eq!(parse(&["GOAMD64=v5"]), Err(BadOverride));
        assert_eq!(parse(&["GOAMD64=3"]), Err(BadOverride));
    }

    #[test]
    fn ppc64le_reads_goppc64_only() {
        let parse_ppc =
            |env: &[&str]| Switches::from_env_for(Arch::Ppc64le, env.iter().map(|s| s.as_bytes()));
        let s = parse_ppc(&["GOAMD64=v3", "GORISCV64=rva22u64", "GOPPC64=power9"]).unwrap();
        assert_eq!(s.forced_level, Some(0x109));
        assert_eq!(parse_ppc(&["GOPPC64="]).unwrap().forced_level, None);
        for bad in [
            "GOPPC64=power7",
            "GOPPC64=POWER9",
            "GOPPC64=ppc970",
            "GOPPC64=v1",
        ] {
            assert_eq!(parse_ppc(&[bad]), Err(BadOverride), "{bad}");
        }
    }
}
