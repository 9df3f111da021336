//! `-o` mount options and the argument form of mount helpers, so that
//! `mount -t fuse.assetfs STORE MNT -o OPTS` and an fstab line work:
//! mount.fuse3 runs `assetfs STORE MNT -o OPTS`, which becomes
//! `assetfs --store STORE mount MNT --flag...`. Every long flag of `mount`
//! (and the global `--cache-dir` and `--store`) is also an `-o` option,
//! with `_` or `-` between words; options that only mean something to
//! mount(8), systemd or the kernel's generic mount code are ignored.

use std::ffi::OsString;

use anyhow::{bail, Result};
use clap::CommandFactory;

use crate::cli::args::Cli;

/// Generic mount(8), fstab and systemd options that assetfs ignores.
const IGNORED: &[&str] = &[
    "rw",
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "nofail",
    "_netdev",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "async",
    "sync",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "lazytime",
    "silent",
    "loud",
    "nosymfollow",
];

fn ignored(opt: &str) -> bool {
    let name = opt.split('=').next().unwrap_or(opt);
    IGNORED.contains(&name)
        || name.starts_with("x-")
        || name == "comment"
        || name == "fsname"
        || name == "subtype"
}

/// `(long flag, takes a value)` of every option a mount accepts.
fn mount_flags() -> Vec<(String, bool)> {
    let cmd = Cli::command();
    let mount = cmd
        .find_subcommand("mount")
        .expect("the mount subcommand exists");
    let takes_value = |a: &clap::Arg| {
        !matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::Count | clap::ArgAction::Help
        )
    };
    let mut out: Vec<(String, bool)> = mount
        .get_arguments()
        .filter(|a| a.get_id() != "options")
        .filter_map(|a| a.get_long().map(|l| (l.to_string(), takes_value(a))))
        .collect();
    for g in ["cache-dir", "store"] {
        out.push((g.to_string(), true));
    }
    out
}

/// Turns one comma-separated `-o` list into flags.
fn expand(list: &str, flags: &[(String, bool)], out: &mut Vec<OsString>) -> Result<()> {
    for opt in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if ignored(opt) {
            continue;
        }
        if opt == "ro" {
            out.push("--read-only".into());
            continue;
        }
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let long = name.replace('_', "-");
        let Some((_, takes_value)) = flags.iter().find(|(l, _)| *l == long) else {
            bail!(
                "unknown mount option {opt:?}: use a flag of `assetfs mount --help` with `_` or `-` between words (e.g. allow_other, cache_size=20G)"
            );
        };
        match (takes_value, value) {
            (true, Some(v)) => {
                out.push(format!("--{long}").into());
                out.push(v.into());
            }
            (true, None) => bail!("mount option {name} needs a value: {name}=VALUE"),
            (false, None) => out.push(format!("--{long}").into()),
            (false, Some(_)) => bail!("mount option {name} takes no value"),
        }
    }
    Ok(())
}

/// Rewrites the process arguments: the mount-helper form becomes
/// `--store STORE mount MNT ...`, and every `-o LIST` (of the helper form or
/// of `assetfs mount`) becomes the flags it names.
pub fn rewrite_args(args: Vec<OsString>) -> Result<Vec<OsString>> {
    let cmd = Cli::command();
    let is_subcommand = |s: &str| {
        cmd.get_subcommands()
            .any(|c| c.get_name() == s || c.get_all_aliases().any(|a| a == s))
            || s == "help"
    };
    let strs: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let helper_form = strs.len() >= 3
        && !strs[1].starts_with('-')
        && !is_subcommand(&strs[1])
        && !strs[2].starts_with('-');
    let mount_pos = strs.iter().position(|a| a == "mount");
    if !helper_form && mount_pos.is_none() {
        return Ok(args);
    }
    let flags = mount_flags();
    let mut out: Vec<OsString> = vec![args[0].clone()];
    let mut rest: &[OsString] = &args[1..];
    if helper_form {
        out.extend([
            "--store".into(),
            args[1].clone(),
            "mount".into(),
            args[2].clone(),
        ]);
        rest = &args[3..];
    }
    let mut i = 0;
    let mut after_mount = helper_form;
    while i < rest.len() {
        let a = rest[i].to_string_lossy();
        if !after_mount {
            after_mount = a == "mount";
            out.push(rest[i].clone());
        } else if a == "-o" || a == "--options" {
            let Some(list) = rest.get(i + 1) else {
                bail!("-o needs a list of options, e.g. -o allow_other,cache_size=20G");
            };
            expand(&list.to_string_lossy(), &flags, &mut out)?;
            i += 1;
        } else if let Some(list) = a.strip_prefix("-o").filter(|l| !l.is_empty()) {
            expand(list, &flags, &mut out)?;
        } else if helper_form && (a == "-n" || a == "-s") {
            // mount(8) conventions (no mtab, sloppy) that mean nothing here.
        } else {
            out.push(rest[i].clone());
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(args: &[&str]) -> Result<Vec<String>> {
        Ok(rewrite_args(args.iter().map(OsString::from).collect())?
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect())
    }

    #[test]
    fn helper_form_and_options() {
        assert_eq!(
            rw(&[
                "assetfs",
                "s3://b/p",
                "/srv/m",
                "-o",
                "rw,nodev,nosuid,allow_other,uid=1000,file_mode=0444,cache_dir=/var/cache/a,_netdev,x-systemd.requires=network-online.target,noauto"
            ])
            .unwrap(),
            [
                "assetfs", "--store", "s3://b/p", "mount", "/srv/m", "--allow-other", "--uid",
                "1000", "--file-mode", "0444", "--cache-dir", "/var/cache/a"
            ]
        );
        assert_eq!(
            rw(&["assetfs", "/data/store", "/mnt", "-oro,cache-size=2G", "-n"]).unwrap(),
            [
                "assetfs",
                "--store",
                "/data/store",
                "mount",
                "/mnt",
                "--read-only",
                "--cache-size",
                "2G"
            ]
        );
        // `assetfs mount MNT -o ...` too; other commands are left alone.
        assert_eq!(
            rw(&["assetfs", "-v", "mount", "/mnt", "-o", "allow_root", "-f"]).unwrap(),
            ["assetfs", "-v", "mount", "/mnt", "--allow-root", "-f"]
        );
        assert_eq!(
            rw(&["assetfs", "ls", "models"]).unwrap(),
            ["assetfs", "ls", "models"]
        );
        assert_eq!(
            rw(&["assetfs", "push", "models/x", "dir"]).unwrap()[1],
            "push"
        );
        for (bad, why) in [
            ("bogus", "unknown mount option"),
            ("uid", "needs a value"),
            ("allow_other=1", "takes no value"),
        ] {
            let e = rw(&["assetfs", "s", "/m", "-o", bad])
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
