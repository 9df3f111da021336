//! Command-line conventions and errors for shared nodes (issue 10), run as
//! real processes: completions, the man page, store and URL checks.

mod common;

use common::*;

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let env = Env::new();
    let bash = env.ok(&["completions", "bash"]).stdout;
    for word in [
        "mount",
        "unmount",
        "mounts",
        "commit",
        "--foreground",
        "--cache-dir",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    // The script is valid bash.
    let dir = env.path("work");
    std::fs::write(dir.join("assetfs.bash"), &bash).unwrap();
    let st = std::process::Command::new("bash")
        .args(["-n", s(&dir.join("assetfs.bash"))])
        .status()
        .expect("bash");
    assert!(st.success(), "bash -n rejects the completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(env.ok(&["completions", shell]).stdout.contains("mounts"));
    }
    let r = env.run(&["completions", "tcsh"]);
    assert!(
        !r.success() && r.stderr.contains("invalid value 'tcsh'"),
        "{r}"
    );

    let man = env.ok(&["man"]).stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH assetfs"),
        "not roff:\n{man}"
    );
    assert!(man.contains(".TH assetfs 1"), "{man}");
    for word in ["mounts", "unmount", "completions", "\\-\\-store"] {
        assert!(man.contains(word), "man page lacks {word}");
    }
    // `-f` is `--foreground`.
    let help = env.ok(&["mount", "--help"]).stdout;
    assert!(help.contains("-f, --foreground"), "{help}");
}

/// Every command that reads or writes the catalog, with a reference that
/// would exist in a real store.
fn store_commands(env: &Env) -> Vec<Vec<String>> {
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"a", 0o644);
    let out = env.path("out");
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    [
        vec!["ls"],
        vec!["ls", "models"],
        vec!["ls", "models/x"],
        vec!["show", "models/x"],
        vec!["log", "models/x"],
        vec!["get", "models/x", s(&out)],
        vec!["verify"],
        vec!["diff", "models/x@1", "models/x@2"],
        vec!["alias", "models/x@1", "prod"],
        vec!["lineage", "models/x"],
        vec!["test", "models/x"],
        vec!["push", "models/x", s(&src)],
        vec!["commit", "models/x"],
        vec!["status", "models/x"],
        vec!["cache", "prefetch", "models/x"],
        vec!["mount", s(&mnt)],
        vec!["mount", s(&mnt), "--foreground"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect()
}

#[test]
fn missing_or_unmarked_stores_are_refused_by_every_command() {
    let env = Env::uninit();
    let cmds = store_commands(&env);
    // The store directory does not exist.
    for c in &cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        let line = env.fail(&args, &["no store at", "assetfs init", "--store"]);
        assert!(line.contains(&env.store), "{line}");
    }
    assert!(!env.store_dir().exists(), "a command created the store");
    assert!(!env.path("out").exists());

    // It exists but is not a store (a typo that hits some other directory).
    std::fs::create_dir_all(env.store_dir()).unwrap();
    std::fs::write(env.store_dir().join("unrelated.txt"), b"x").unwrap();
    for c in &cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        env.fail(&args, &["no assetfs store", "assetfs.json", "assetfs init"]);
    }
    let left: Vec<_> = std::fs::read_dir(env.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["unrelated.txt"], "commands wrote into a non-store");

    // A marker that is not ours, or of a newer format.
    std::fs::write(env.store_dir().join("assetfs.json"), b"{\"hello\": 1}").unwrap();
    env.fail(&["ls"], &["not an assetfs store marker"]);
    std::fs::write(
        env.store_dir().join("assetfs.json"),
        b"{\"assetfs_store_format\": 99}",
    )
    .unwrap();
    env.fail(&["ls"], &["format 99", "upgrade assetfs"]);
    std::fs::remove_file(env.store_dir().join("assetfs.json")).unwrap();

    // `init` makes it a store; then the same commands get as far as the catalog.
    env.ok(&["init"]);
    env.fail(&["show", "models/x"], &["models/x"]);
    assert!(env.ok(&["ls"]).stdout.trim().is_empty());
}

#[test]
fn malformed_store_urls_are_never_taken_for_directories() {
    let env = Env::uninit();
    let cases: &[(&str, &str)] = &[
        ("s3:/bucket", "s3://bucket"),
        ("s3:bucket/prefix", "s3://bucket/prefix"),
        ("gs:/b", "gs://b"),
        ("az:/container/p", "az://container/p"),
        ("file:/tmp/store", "file:///tmp/store"),
        ("S3:/bucket", "S3://bucket"),
    ];
    for (url, meant) in cases {
        for cmd in [&["init"][..], &["ls"], &["mount", "mnt"]] {
            let mut args = vec!["--store", url];
            args.extend_from_slice(cmd);
            env.fail(&args, &["invalid store url", "did you mean", meant]);
        }
    }
    assert!(
        snapshot(&env.work()).is_empty(),
        "a malformed URL created something in the cwd"
    );
}

#[test]
fn an_s3_prefix_without_a_store_is_refused() {
    let base = std::env::var("ASSETFS_TEST_S3_URL")
        .expect("ASSETFS_TEST_S3_URL is not set: run scripts/test.sh (starts moto)");
    let env = Env::with_store(&format!("{base}/{}", unique_id()));
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"a", 0o644);
    env.ok(&["push", "models/x", s(&src)]);
    // The same bucket, a mistyped prefix: refused, not an empty listing.
    let typo = format!("{base}/{}", unique_id());
    env.fail(
        &["--store", &typo, "ls"],
        &["no assetfs store", &typo, "assetfs init"],
    );
    env.fail(
        &["--store", &typo, "show", "models/x"],
        &["no assetfs store"],
    );
}

// ---------------------------------------------------------------------------
// S3 / Azure errors that say what to check

/// The shared moto's endpoint and a fresh prefix on its bucket.
fn moto() -> (String, String) {
    let base = std::env::var("ASSETFS_TEST_S3_URL")
        .expect("ASSETFS_TEST_S3_URL is not set: run scripts/test.sh (starts moto)");
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL from scripts/test.sh");
    (endpoint, format!("{base}/{}", unique_id()))
}

#[test]
fn s3_errors_name_the_cause_and_what_to_check() {
    let (endpoint, url) = moto();
    let env = Env::with_store(&url);
    // Network: nothing listens at the endpoint.
    let line = env.fail(
        &["--endpoint-url", "http://127.0.0.1:9", "ls"],
        &["network", "cannot reach", "--endpoint-url"],
    );
    assert!(line.contains("AWS_ENDPOINT_URL"), "{line}");
    // Bucket: it does not exist on this server.
    env.fail(
        &[
            "--store",
            &format!("s3://no-such-bucket-{}/p", unique_id()),
            "ls",
        ],
        &["bucket", "does not exist", "--store"],
    );
    // Plain http to an endpoint from the environment, without AWS_ALLOW_HTTP.
    let mut c = env.cmd(&["ls"]);
    c.env_remove("AWS_ALLOW_HTTP");
    Run::from_output(&["ls"], c.output().unwrap()).one_error_line(&["AWS_ALLOW_HTTP"]);

    // Credentials, region and endpoint from ~/.aws when the environment has none.
    let home = env.path("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ml]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        format!("[profile ml]\nregion = us-east-1\nendpoint_url = {endpoint}\n"),
    )
    .unwrap();
    let bare = |args: &[&str]| {
        let mut c = env.cmd(args);
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT",
            "AWS_ENDPOINT_URL",
            "AWS_ALLOW_HTTP",
        ] {
            c.env_remove(v);
        }
        c.env("AWS_PROFILE", "ml");
        Run::from_output(args, c.output().unwrap())
    };
    let src = env.path("src");
    write_file(&src.join("a.bin"), b"from the profile", 0o644);
    let r = bare(&["push", "models/p", s(&src)]);
    assert!(r.success(), "push with ~/.aws/credentials and config: {r}");
    let r = bare(&["show", "models/p"]);
    assert!(r.success(), "{r}");
}

#[test]
fn azure_rejected_credentials_are_named() {
    let base = std::env::var("ASSETFS_TEST_AZ_URL")
        .expect("ASSETFS_TEST_AZ_URL is not set: run scripts/test.sh (starts Azurite)");
    let env = Env::with_store(&format!("{base}/{}", unique_id()));
    let mut c = env.cmd(&["ls"]);
    // A well-formed key that is not the account's.
    c.env(
        "AZURE_STORAGE_ACCOUNT_KEY",
        "d3JvbmcgYnV0IHdlbGwgZm9ybWVkIGtleSB3cm9uZyBidXQgd2VsbA==",
    );
    Run::from_output(&["ls"], c.output().unwrap())
        .one_error_line(&["credentials", "AZURE_STORAGE_ACCOUNT_KEY"]);
}
