//! Version context (docs/usage.md, "Context, metrics and tests"): every context field through
//! push, show, log, diff and get; lineage queries over a generated graph;
//! stored input/output tests and `alias --require-tests`; secrets refused;
//! schema summaries on the shared commit path; and the example in
//! docs/examples/ run end to end.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use assetfs::catalog::Catalog;
use assetfs::format::Reference;
use assetfs::format::TreeItem;
use assetfs::ops::{commit_tree, push, PushOptions};
use assetfs::store::Store;
use common::*;

const DIGEST: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Rows of a text table, split into words.
fn words(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// A small Parquet file: id int64, score double (nullable), name string.
fn write_parquet(p: &Path) {
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message m { required int64 id; optional double score; required binary name (UTF8); }",
        )
        .unwrap(),
    );
    let f = fs::File::create(p).unwrap();
    let mut w = SerializedFileWriter::new(f, schema, Arc::new(WriterProperties::builder().build()))
        .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<Int64Type>()
        .write_batch(&[1, 2, 3, 4], None, None)
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    c.typed::<DoubleType>()
        .write_batch(&[0.5, 1.5, 2.5], Some(&[1, 1, 0, 1]), None)
        .unwrap();
    c.close().unwrap();
    let mut c = rg.next_column().unwrap().unwrap();
    let names: Vec<ByteArray> = ["a", "b", "c", "d"]
        .into_iter()
        .map(ByteArray::from)
        .collect();
    c.typed::<ByteArrayType>()
        .write_batch(&names, None, None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

/// A tiny model: `predict.sh` doubles the `x` column of a CSV (awk, no
/// Python needed), with a training log and test files.
fn make_model(root: &Path, version_note: &str) {
    write_file(&root.join("weights.bin"), version_note.as_bytes(), 0o644);
    write_file(
        &root.join("predict.sh"),
        b"#!/bin/sh\n# y = 2x for each row of the input CSV\nawk -F, 'NR==1 {print \"y\"; next} {print $1*2}' \"$1\" > \"$2\"\n",
        0o755,
    );
    write_file(
        &root.join("logs/train.log"),
        b"epoch 1 loss 0.5\nepoch 2 loss 0.25\n",
        0o644,
    );
    write_file(&root.join("tests/in.csv"), b"x\n1\n2\n3\n", 0o644);
    write_file(&root.join("tests/exact.csv"), b"y\n2\n4\n6\n", 0o644);
    // Within 1e-6 of the real output.
    write_file(
        &root.join("tests/close.csv"),
        b"y\n2.0000001\n4\n6\n",
        0o644,
    );
    // 4.5 where the model says 4: beyond any sane tolerance.
    write_file(&root.join("tests/drifted.csv"), b"y\n2\n4.5\n6\n", 0o644);
}

fn passing_tests() -> Value {
    json!([
        {"name": "close", "command": "sh predict.sh {input} {output}",
         "input": "tests/in.csv", "expected": "tests/close.csv",
         "compare": {"mode": "numeric", "tolerance": 1e-6}},
        {"name": "exact", "command": "sh predict.sh {input} {output}",
         "input": "tests/in.csv", "expected": "tests/exact.csv", "compare": "exact",
         "description": "kept verbatim"}
    ])
}

fn write_json(p: &Path, v: &Value) -> PathBuf {
    fs::write(p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p.to_path_buf()
}

#[test]
fn every_field_round_trips_through_push_show_log_diff_and_get() {
    let env = Env::new();
    env.ok(&["init"]);

    // An upstream snapshot and a feature snapshot built from it, with the
    // three summarised formats.
    let raw = env.path("raw");
    write_file(&raw.join("events.csv"), b"user,clicks\n1,3\n2,5\n", 0o644);
    env.ok(&[
        "push",
        "features/raw",
        s(&raw),
        "--source",
        "all events of 2024-01",
    ]);
    let feat = env.path("feat");
    write_file(
        &feat.join("clicks.csv"),
        b"id,score,name,bot\n1,0.5,a,true\n2,1.5,\"b, c\",false\n3,,\"multi\nline\",false\n",
        0o644,
    );
    make_dir(&feat.join("parts"), 0o755);
    write_parquet(&feat.join("parts/part-0.parquet"));
    assetfs::ops::write_f64(&feat.join("emb.npy"), &[3, 4], &[0.25; 12]).unwrap();
    write_file(&feat.join("README"), b"not summarised", 0o644);
    env.ok(&[
        "push",
        "features/clicks",
        s(&feat),
        "--source",
        "clicks from features/raw, bots flagged",
        "--input",
        "features/raw",
        "--alias",
        "prod",
    ]);
    let f = env.json(&["show", "features/clicks@prod"]);
    assert_eq!(
        f["lineage"],
        json!({"source": "clicks from features/raw, bots flagged", "inputs": ["features/raw@1"]})
    );
    assert_eq!(
        f["schema"],
        json!({"files": {
            "clicks.csv": {"format": "csv", "rows": 3, "columns": [
                {"name": "id", "dtype": "int64"}, {"name": "score", "dtype": "float64"},
                {"name": "name", "dtype": "string"}, {"name": "bot", "dtype": "bool"}]},
            "emb.npy": {"format": "npy", "dtype": "float64", "shape": [3, 4], "rows": 3,
                        "fortran_order": false},
            "parts/part-0.parquet": {"format": "parquet", "rows": 4, "row_groups": 1, "columns": [
                {"name": "id", "dtype": "int64", "nullable": false},
                {"name": "score", "dtype": "float64", "nullable": true},
                {"name": "name", "dtype": "string", "nullable": false}]}
        }}),
        "{f:#}"
    );
    assert_eq!(
        env.json(&["show", "features/raw"])["schema"]["files"]["events.csv"]["rows"],
        2
    );

    // A model with every kind of context.
    let m1 = env.path("m1");
    make_model(&m1, "v1");
    let ctx = env.path("ctx.toml");
    fs::write(
        &ctx,
        "notes = \"baseline\"\nframework = \"overridden by the flag\"\n[hyper]\nlr = 0.01\nlayers = [64, 32]\n",
    )
    .unwrap();
    let metrics = write_json(
        &env.path("metrics.json"),
        &json!({"auc": 0.81, "loss": 0.2}),
    );
    let meta = write_json(
        &env.path("meta.json"),
        &json!({
            "user": {"team": "ranking", "tokenizer": "bpe", "max_tokens": 512},
            "metrics": {"from_meta_file": 1},
            "x-extra": [1, {"a": null}, "two"]
        }),
    );
    let tests = write_json(&env.path("tests.json"), &passing_tests());
    let container = format!("ghcr.io/acme/train:1.2@sha256:{DIGEST}");
    let r = env.ok(&[
        "push",
        "models/ranker",
        s(&m1),
        "-m",
        "first ranker",
        "--author",
        "ana",
        "--meta-file",
        s(&meta),
        "--meta",
        "seed=7",
        "--context-file",
        s(&ctx),
        "--framework",
        "numpy 2.4",
        "--command",
        "python train.py --epochs 2",
        "--paper",
        "https://arxiv.org/abs/1706.03762",
        "--container",
        &container,
        "--log",
        "./logs/train.log",
        "--metrics-file",
        s(&metrics),
        "--metric",
        "auc=0.83",
        "--metric",
        "epochs=2",
        "--tests-file",
        s(&tests),
        "--input",
        "features/clicks@prod",
    ]);
    assert_eq!(r.stdout, "models/ranker@1\n", "{r}");

    let sc = env.json(&["show", "models/ranker@1"]);
    assert_eq!(sc, env.ok(&["show", "models/ranker@1"]).json());
    assert_eq!(sc["author"], "ana");
    assert_eq!(sc["message"], "first ranker");
    assert_eq!(sc["lineage"], json!({"inputs": ["features/clicks@1"]}));
    assert_eq!(
        sc["context"],
        json!({
            "notes": "baseline",
            "framework": "numpy 2.4",
            "hyper": {"lr": 0.01, "layers": [64, 32]},
            "command": "python train.py --epochs 2",
            "paper": "https://arxiv.org/abs/1706.03762",
            "container": container,
            "log": "logs/train.log"
        }),
        "flags win over --context-file; the log path is normalised"
    );
    assert_eq!(
        sc["metrics"],
        json!({"from_meta_file": 1, "auc": 0.83, "loss": 0.2, "epochs": 2}),
        "--metric wins over --metrics-file, which adds to the meta file's metrics"
    );
    assert_eq!(sc["tests"], passing_tests(), "tests are stored verbatim");
    assert_eq!(
        sc["user"],
        json!({"team": "ranking", "tokenizer": "bpe", "max_tokens": 512, "seed": 7})
    );
    assert_eq!(sc["x-extra"], json!([1, {"a": null}, "two"]));
    assert!(sc.get("schema").is_none(), "models get no schema summary");

    // get brings back the files the context points at.
    let out = env.path("got");
    env.ok(&["get", "models/ranker@1", s(&out)]);
    assert_same_tree(&snapshot(&m1), &snapshot(&out), "get models/ranker@1");
    assert!(out.join(sc["context"]["log"].as_str().unwrap()).is_file());
    for t in sc["tests"].as_array().unwrap() {
        assert!(out.join(t["input"].as_str().unwrap()).is_file());
        assert!(out.join(t["expected"].as_str().unwrap()).is_file());
    }
    let t = env.json(&["test", "models/ranker@1"]);
    assert_eq!(
        (t["passed"].as_u64(), t["failed"].as_u64()),
        (Some(2), Some(0)),
        "{t:#}"
    );

    // Version 2: other metrics and framework.
    let m2 = env.path("m2");
    make_model(&m2, "v2");
    env.ok(&[
        "push",
        "models/ranker",
        s(&m2),
        "-m",
        "second ranker",
        "--framework",
        "numpy 2.5",
        "--metric",
        "auc=0.86",
        "--metric",
        "loss=0.15",
        "--input",
        "features/clicks",
        "--input",
        "features/raw",
    ]);

    // log: metrics as columns, newest first; --json has whole sidecars.
    let r = env.ok(&["log", "models/ranker"]);
    let rows = words(&r.stdout);
    assert_eq!(
        rows[0],
        [
            "VERSION",
            "CREATED",
            "AUTHOR",
            "ALIASES",
            "auc",
            "epochs",
            "from_meta_file",
            "loss",
            "MESSAGE"
        ],
        "{r}"
    );
    assert_eq!(rows[1][0], "@2", "{r}");
    assert_eq!(
        rows[1][2..],
        [AUTHOR, "latest", "0.86", "-", "-", "0.15", "second", "ranker"],
        "{r}"
    );
    assert_eq!(
        rows[2][2..],
        ["ana", "-", "0.83", "2", "1", "0.2", "first", "ranker"],
        "{r}"
    );
    let log = env.json(&["log", "models/ranker"]);
    assert_eq!(
        log[1],
        env.json(&["show", "models/ranker@1"]),
        "log --json rows are the sidecars"
    );
    assert_eq!(log[0]["metrics"], json!({"auc": 0.86, "loss": 0.15}));

    // diff: metrics with deltas, context fields, lineage.
    let d = env.json(&["diff", "models/ranker@1", "models/ranker@2"]);
    let meta: BTreeMap<&str, &Value> = d["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["field"].as_str().unwrap(), m))
        .collect();
    assert_eq!(meta["metrics.auc"]["delta"], 0.03, "{d:#}");
    assert_eq!(meta["metrics.loss"]["delta"], -0.05, "{d:#}");
    assert_eq!(meta["metrics.epochs"]["new"], Value::Null);
    assert_eq!(meta["context.framework"]["old"], "numpy 2.4");
    assert_eq!(meta["context.framework"]["new"], "numpy 2.5");
    assert_eq!(meta["context.paper"]["new"], Value::Null);
    assert_eq!(
        meta["lineage.inputs"]["new"],
        json!(["features/clicks@1", "features/raw@1"])
    );
    assert_eq!(meta["author"]["new"], AUTHOR);
    let r = env.ok(&["diff", "models/ranker@1", "models/ranker@2"]);
    assert!(
        r.stdout.contains("metrics.auc: 0.83 -> 0.86  (+0.03)"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("context.framework: \"numpy 2.4\" -> \"numpy 2.5\""),
        "{r}"
    );

    // A feature snapshot's schema changes show per file.
    write_file(&feat.join("clicks.csv"), b"id\n1\n", 0o644);
    env.ok(&["push", "features/clicks", s(&feat)]);
    let d = env.json(&["diff", "features/clicks@1", "features/clicks@2"]);
    let fields: Vec<&str> = d["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"schema.files.clicks.csv"), "{d:#}");
    assert!(!fields.iter().any(|f| f.contains("emb.npy")), "{d:#}");
}

#[test]
fn bad_context_is_refused_before_anything_is_stored() {
    let env = Env::new();
    env.ok(&["init"]);
    let m = env.path("m");
    make_model(&m, "v1");
    let dir = s(&m);
    let tests_missing = write_json(
        &env.path("t1.json"),
        &json!([{"name": "t", "command": "sh predict.sh {input} {output}",
                 "input": "tests/in.csv", "expected": "tests/nope.csv"}]),
    );
    let tests_no_cmd = write_json(
        &env.path("t2.json"),
        &json!([{"name": "t", "input": "tests/in.csv", "expected": "tests/exact.csv"}]),
    );
    let tests_not_array = write_json(&env.path("t3.json"), &json!({"name": "t"}));
    let metrics_bad = write_json(&env.path("m.json"), &json!({"auc": "high"}));
    let ctx_bad = env.path("ctx.toml");
    fs::write(&ctx_bad, "framework = [unclosed").unwrap();
    let digestless = "ghcr.io/acme/train:1.2".to_string();
    let short = format!("img@sha256:{}", &DIGEST[..60]);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--container", &digestless],
            vec!["container", "sha256"],
        ),
        (vec!["--container", &short], vec!["container", "64 hex"]),
        (
            vec!["--log", "logs/missing.log"],
            vec!["logs/missing.log", "not a file"],
        ),
        (vec!["--log", "logs"], vec!["logs", "not a file"]),
        (
            vec!["--log", "../elsewhere.log"],
            vec!["elsewhere.log", ".."],
        ),
        (vec!["--paper", "ask bob"], vec!["paper", "URL"]),
        (vec!["--metric", "auc"], vec!["--metric", "NAME=NUMBER"]),
        (vec!["--metric", "auc=good"], vec!["--metric", "auc=good"]),
        (
            vec!["--metrics-file", s(&metrics_bad)],
            vec!["--metrics-file", "auc", "not a number"],
        ),
        (
            vec!["--context-file", s(&ctx_bad)],
            vec!["--context-file", "ctx.toml"],
        ),
        (
            vec!["--tests-file", s(&tests_missing)],
            vec!["tests[0] (t)", "tests/nope.csv"],
        ),
        (
            vec!["--tests-file", s(&tests_no_cmd)],
            vec!["tests[0] (t)", "`command`"],
        ),
        (
            vec!["--tests-file", s(&tests_not_array)],
            vec!["--tests-file", "array"],
        ),
        (
            vec!["--input", "features/none@latest"],
            vec!["features/none", "no versions"],
        ),
    ];
    for (extra, words) in &cases {
        let mut args = vec!["push", "models/x", dir];
        args.extend_from_slice(extra);
        env.fail(&args, words);
    }
    // A feature snapshot's schema is computed, not given.
    let meta = write_json(&env.path("schema.json"), &json!({"schema": {"files": {}}}));
    env.fail(
        &["push", "features/f", dir, "--meta-file", s(&meta)],
        &["`schema`", "computed"],
    );
    // None of it left a version behind.
    env.fail(&["show", "models/x"], &["no versions"]);
    env.fail(&["show", "features/f"], &["no versions"]);
    env.ok(&["push", "models/x", dir, "--log", "logs/train.log"]);
}

#[test]
fn secrets_are_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    let m = env.path("m");
    make_model(&m, "v1");
    let dir = s(&m);
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let meta_password = write_json(
        &env.path("m1.json"),
        &json!({"context": {"db": {"Password": "hunter2"}}}),
    );
    let meta_key = write_json(
        &env.path("m2.json"),
        &json!({"user": {"creds": ["fine", aws_secret]}}),
    );
    let ctx = env.path("ctx.toml");
    fs::write(&ctx, "[storage]\naws_secret_access_key = \"x\"\n").unwrap();
    let tests = write_json(
        &env.path("t.json"),
        &json!([{"name": "t", "command": "HF_TOKEN=hf_abc sh predict.sh {input} {output}",
                 "input": "tests/in.csv", "expected": "tests/exact.csv",
                 "api_token": "abc"}]),
    );
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--meta", "hf_token=hf_abcdef"],
            vec!["`user.hf_token`", "secret", "token"],
        ),
        (
            vec!["--meta", "GITHUB_TOKEN=x"],
            vec!["`user.GITHUB_TOKEN`", "secret"],
        ),
        (
            vec!["--meta-file", s(&meta_password)],
            vec!["`context.db.Password`", "password"],
        ),
        (
            vec!["--meta-file", s(&meta_key)],
            vec!["`user.creds[1]`", "AWS secret access key"],
        ),
        (
            vec![
                "--command",
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE python train.py",
            ],
            vec!["`context.command`", "AWS access key id"],
        ),
        (
            vec!["--context-file", s(&ctx)],
            vec!["`context.storage.aws_secret_access_key`", "secret"],
        ),
        (
            vec!["--tests-file", s(&tests)],
            vec!["`tests[0].api_token`", "token"],
        ),
        (
            vec!["-m", "trained with ASIAY34FZKBOKMUTVV7A"],
            vec!["`message`", "access key"],
        ),
        (
            vec!["--metric", "client_secret=1"],
            vec!["`metrics.client_secret`", "secret"],
        ),
    ];
    for (extra, words) in &cases {
        let mut args = vec!["push", "models/x", dir];
        args.extend_from_slice(extra);
        let line = env.fail(&args, words);
        assert!(
            !line.contains("hunter2") && !line.contains(aws_secret),
            "{line}"
        );
    }
    env.fail(&["show", "models/x"], &["no versions"]);
    // Words ML uses for text units are not credentials.
    env.ok(&[
        "push",
        "models/x",
        dir,
        "--meta",
        "tokenizer=bpe",
        "--metric",
        "tokens_per_second=1200",
        "--metric",
        "per_token_loss=0.3",
        "--command",
        "python train.py --max-tokens 512",
    ]);
}

#[test]
fn stored_tests_pass_fail_and_gate_aliases() {
    let env = Env::new();
    env.ok(&["init"]);
    let m = env.path("m");
    make_model(&m, "v1");
    let mut all = passing_tests();
    all.as_array_mut().unwrap().extend([
        json!({"name": "drift", "command": "sh predict.sh {input} {output}",
               "input": "tests/in.csv", "expected": "tests/drifted.csv",
               "compare": {"mode": "numeric", "tolerance": 0.01}}),
        json!({"name": "gone", "command": "./predict-v2.sh {input} {output}",
               "input": "tests/in.csv", "expected": "tests/exact.csv"}),
    ]);
    let failing = write_json(&env.path("failing.json"), &all);
    let passing = write_json(&env.path("passing.json"), &passing_tests());
    env.ok(&["push", "models/m", s(&m), "--tests-file", s(&failing)]);
    env.ok(&["push", "models/m", s(&m), "--tests-file", s(&passing)]);
    env.ok(&["push", "models/m", s(&m), "-m", "no tests"]);

    // Version 1: two pass, one drifts beyond tolerance, one's command is gone.
    let r = env.run(&["test", "models/m@1"]);
    let line = r.one_error_line(&["2 of 4", "models/m@1", "drift, gone"]);
    assert!(line.starts_with("assetfs: error:"), "{r}");
    let out: Vec<&str> = r.stdout.lines().collect();
    assert!(out[0].starts_with("PASS  close"), "{r}");
    assert!(out[1].starts_with("PASS  exact"), "{r}");
    assert!(out[2].starts_with("FAIL  drift"), "{r}");
    assert!(
        out[2].contains("numeric mismatch: 1 of 4 values differ beyond tolerance 0.01"),
        "{r}"
    );
    assert!(
        out[3].contains("row 3, column 1: expected 4.5, got 4"),
        "the failure says what differed:\n{r}"
    );
    let gone = out
        .iter()
        .position(|l| l.starts_with("FAIL  gone"))
        .expect("gone reported");
    assert!(
        out[gone].contains("status 127") && out[gone].contains("not found"),
        "{r}"
    );
    assert!(
        out[gone + 1].contains("predict-v2.sh"),
        "stderr of the command is shown:\n{r}"
    );
    assert!(
        r.stdout
            .contains("models/m@1: 2 of 4 tests passed, 2 failed"),
        "{r}"
    );

    let r = env.run(&["--json", "test", "models/m@1"]);
    assert_eq!(r.code, Some(1), "{r}");
    let j = r.json();
    assert_eq!(j["ref"], "models/m@1");
    assert_eq!(
        (j["passed"].as_u64(), j["failed"].as_u64()),
        (Some(2), Some(2))
    );
    let by: BTreeMap<&str, &Value> = j["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    assert_eq!(by["close"]["passed"], true);
    assert_eq!(by["drift"]["passed"], false);
    assert_eq!(
        by["drift"]["details"],
        json!(["row 3, column 1: expected 4.5, got 4 (|diff| 5.000e-1)"])
    );
    assert!(by["gone"]["error"].as_str().unwrap().contains("127"));

    // Version 2 passes; version 3 has none (that is not a failure of `test`).
    let r = env.ok(&["test", "models/m@2"]);
    assert!(
        r.stdout
            .contains("models/m@2: 2 of 2 tests passed, 0 failed"),
        "{r}"
    );
    let r = env.ok(&["test", "models/m"]);
    assert!(r.stdout.contains("models/m@3: no stored tests"), "{r}");

    // --require-tests gates the alias.
    let r = env.ok(&["alias", "models/m@2", "production", "--require-tests"]);
    assert!(
        r.stdout.ends_with("models/m@production -> models/m@2\n"),
        "{r}"
    );
    let r = env.run(&["alias", "models/m@1", "production", "--require-tests"]);
    r.one_error_line(&[
        "refusing",
        "production",
        "models/m@1",
        "2 of 4",
        "drift, gone",
    ]);
    assert!(r.stdout.contains("FAIL  drift"), "{r}");
    env.fail(
        &["alias", "models/m@3", "production", "--require-tests"],
        &["refusing", "models/m@3", "no stored tests"],
    );
    assert_eq!(env.json(&["show", "models/m@production"])["version"], 2);
    // Without the flag an alias moves as before.
    env.ok(&["alias", "models/m@1", "candidate"]);

    // Bounded time: a hanging command is killed.
    let hang = write_json(
        &env.path("hang.json"),
        &json!([{"name": "hang", "command": "sleep 60", "expected": "tests/exact.csv"}]),
    );
    env.ok(&["push", "models/slow", s(&m), "--tests-file", s(&hang)]);
    let start = std::time::Instant::now();
    let r = env.run(&["test", "models/slow", "--timeout", "1s"]);
    r.one_error_line(&["1 of 1", "hang"]);
    assert!(r.stdout.contains("timed out after 1s"), "{r}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// Pushes through the library: a lineage graph of 52 versions builds in a
/// second instead of 52 process starts.
struct Lib {
    rt: tokio::runtime::Runtime,
    catalog: Catalog,
    dir: PathBuf,
    n: u64,
}

impl Lib {
    fn new(env: &Env) -> Lib {
        Lib {
            rt: tokio::runtime::Runtime::new().unwrap(),
            catalog: Catalog::new(Store::open(&env.store).unwrap()),
            dir: env.path("lib-src"),
            n: 0,
        }
    }

    /// Pushes a tiny directory as the next version of `asset` with these
    /// inputs; returns the new reference.
    fn push(&mut self, asset: &str, inputs: &[String]) -> String {
        self.n += 1;
        let src = self.dir.join(self.n.to_string());
        write_file(
            &src.join("data"),
            format!("{asset} {}", self.n).as_bytes(),
            0o644,
        );
        let opts = PushOptions {
            inputs: inputs
                .iter()
                .map(|i| Reference::parse(i).unwrap())
                .collect(),
            ..Default::default()
        };
        let out = self
            .rt
            .block_on(push(
                &self.catalog,
                &Reference::parse(asset).unwrap(),
                &src,
                opts,
            ))
            .unwrap();
        out.reference.to_string()
    }
}

/// Every version reachable from `root` along `edges`.
fn reachable(root: &str, edges: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(r) = todo.pop() {
        for n in edges.get(&r).into_iter().flatten() {
            if seen.insert(n.clone()) {
                todo.push(n.clone());
            }
        }
    }
    seen
}

fn json_refs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lineage_over_a_generated_graph() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut lib = Lib::new(&env);
    let mut inputs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |lib: &mut Lib, asset: &str, ins: Vec<String>| {
        let r = lib.push(asset, &ins);
        inputs.insert(r.clone(), ins);
        r
    };
    // 6 raw snapshots; 12 click and 6 user snapshots derived from them; 16
    // rankers trained on clicks and users; 8 distilled from rankers; 4
    // ensembles of distilled models and ranker@1: 52 versions.
    for _ in 0..6 {
        add(&mut lib, "features/raw", vec![]);
    }
    for i in 0..12 {
        add(
            &mut lib,
            "features/clicks",
            vec![format!("features/raw@{}", i % 6 + 1)],
        );
    }
    for i in 0..6 {
        add(
            &mut lib,
            "features/users",
            vec![format!("features/raw@{}", i + 1)],
        );
    }
    for i in 0..16 {
        add(
            &mut lib,
            "models/ranker",
            vec![
                format!("features/clicks@{}", i % 12 + 1),
                format!("features/users@{}", i % 6 + 1),
            ],
        );
    }
    for i in 0..8 {
        add(
            &mut lib,
            "models/distilled",
            vec![format!("models/ranker@{}", 2 * i + 2)],
        );
    }
    for i in 0..4 {
        add(
            &mut lib,
            "models/ensemble",
            vec![
                format!("models/distilled@{}", 2 * i + 1),
                format!("models/distilled@{}", 2 * i + 2),
                "models/ranker@1".to_string(),
            ],
        );
    }
    // An alias-resolved input: recorded as the concrete version.
    env.ok(&["alias", "models/ensemble@4", "production"]);
    let extra = lib.push(
        "models/ensemble",
        &["models/ensemble@production".to_string()],
    );
    inputs.insert(extra.clone(), vec!["models/ensemble@4".to_string()]);
    assert_eq!(inputs.len(), 53);

    let mut used_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (r, ins) in &inputs {
        for i in ins {
            used_by.entry(i.clone()).or_default().push(r.clone());
        }
    }
    // Every version, both directions: the JSON tree's `all` is the
    // transitive closure, its first level the direct edges.
    for r in inputs.keys() {
        let j = env.json(&["lineage", r]);
        assert_eq!(j["ref"], r.as_str());
        assert_eq!(json_refs(&j["all"]), reachable(r, &inputs), "inputs of {r}");
        let direct: BTreeSet<String> = j["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["ref"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            direct,
            inputs[r].iter().cloned().collect(),
            "direct inputs of {r}"
        );

        let j = env.json(&["lineage", "--used-by", r]);
        assert_eq!(json_refs(&j["all"]), reachable(r, &used_by), "used by {r}");
        let direct: BTreeSet<String> = j["used_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["ref"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = used_by.get(r).into_iter().flatten().cloned().collect();
        assert_eq!(direct, want, "direct users of {r}");
    }

    // The terminal tree: raw@1 feeds clicks@1 and @7 and users@1, and so on.
    let r = env.ok(&["lineage", "models/ensemble@1"]);
    assert_eq!(
        r.stdout,
        "models/ensemble@1\n\
         ├── models/distilled@1\n\
         │   └── models/ranker@2\n\
         │       ├── features/clicks@2\n\
         │       │   └── features/raw@2\n\
         │       └── features/users@2\n\
         │           └── features/raw@2\n\
         ├── models/distilled@2\n\
         │   └── models/ranker@4\n\
         │       ├── features/clicks@4\n\
         │       │   └── features/raw@4\n\
         │       └── features/users@4\n\
         │           └── features/raw@4\n\
         └── models/ranker@1\n\
         \u{20}   ├── features/clicks@1\n\
         \u{20}   │   └── features/raw@1\n\
         \u{20}   └── features/users@1\n\
         \u{20}       └── features/raw@1\n",
        "{r}"
    );
    let r = env.ok(&["lineage", "--used-by", "features/users@6", "--depth", "1"]);
    assert_eq!(
        r.stdout,
        "features/users@6\n\
         ├── models/ranker@6 ...\n\
         └── models/ranker@12 ...\n",
        "{r}"
    );
    let r = env.ok(&["lineage", "features/raw@3"]);
    assert_eq!(r.stdout, "features/raw@3\n(no inputs recorded)\n", "{r}");
    let j = env.json(&["lineage", "--used-by", "models/ensemble"]);
    assert_eq!(j["ref"], extra.as_str(), "a bare reference means @latest");
    env.fail(
        &["lineage", "models/nothing"],
        &["models/nothing", "no versions"],
    );
    env.fail(
        &["lineage", "models/ranker@99"],
        &["models/ranker@99", "latest is 16"],
    );
}

#[test]
fn commit_path_summarises_stored_files_and_reuses_the_base_summary() {
    // `commit` goes through push::commit_tree with files the store already
    // holds (TreeItem::Stored). This drives that path directly.
    let env = Env::new();
    env.ok(&["init"]);
    let src = env.path("src");
    write_file(&src.join("a.csv"), b"k,v\n1,x\n2,y\n", 0o644);
    assetfs::ops::write_f64(&src.join("b.npy"), &[5], &[1.0; 5]).unwrap();
    env.ok(&["push", "features/f", s(&src)]);
    let v1 = env.json(&["show", "features/f@1"]);
    // Mark v1's stored summary of a.csv, to see below whether it is reused
    // (version records are plain JSON files in a file:// store).
    let key = assetfs::format::keys::version(&Reference::parse("features/f").unwrap().asset, 1);
    let rec_path = env.store_dir().join(key);
    let mut rec: Value = serde_json::from_slice(&fs::read(&rec_path).unwrap()).unwrap();
    rec["meta"]["schema"]["files"]["a.csv"]["marker"] = json!("from the base");
    fs::write(&rec_path, serde_json::to_vec(&rec).unwrap()).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = Catalog::new(Store::open(&env.store).unwrap());
    let rec = rt
        .block_on(catalog.record(&Reference::parse("features/f").unwrap().asset, 1))
        .unwrap();
    let m = rt.block_on(catalog.manifest(&rec.manifest)).unwrap();
    let stored: Vec<TreeItem> = m
        .files()
        .map(|e| TreeItem::Stored {
            path: e.path.to_string(),
            mode: e.mode,
            size: e.size,
            hash: e.hash,
            chunks: m
                .chunks_of(&e)
                .iter()
                .map(|c| {
                    (
                        c.hash,
                        assetfs::format::ChunkLocation {
                            pack: m.packs[c.pack as usize],
                            offset: c.offset,
                            len: c.len,
                        },
                    )
                })
                .collect(),
        })
        .collect();
    let new_csv = env.path("new.csv");
    fs::write(&new_csv, "only\n1\n2\n3\n").unwrap();
    let mut items = stored.clone();
    items.push(TreeItem::Local {
        path: "c.csv".into(),
        mode: 0o644,
        size: fs::metadata(&new_csv).unwrap().len(),
        file: new_csv,
    });
    let target = Reference::parse("features/f").unwrap();
    // With a base: the unchanged files keep the base's summaries.
    let opts = PushOptions {
        base: Some(1),
        ..Default::default()
    };
    rt.block_on(commit_tree(&catalog, &target, items, opts))
        .unwrap();
    let v2 = env.json(&["show", "features/f@2"]);
    assert_eq!(v2["schema"]["files"]["a.csv"]["marker"], "from the base");
    assert_eq!(v2["schema"]["files"]["a.csv"]["rows"], 2);
    assert_eq!(
        v2["schema"]["files"]["b.npy"],
        v1["schema"]["files"]["b.npy"]
    );
    assert_eq!(v2["schema"]["files"]["c.csv"]["rows"], 3);
    // Without a base they are fetched from the store and summarised afresh.
    rt.block_on(commit_tree(
        &catalog,
        &target,
        stored,
        PushOptions::default(),
    ))
    .unwrap();
    let v3 = env.json(&["show", "features/f@3"]);
    assert_eq!(v3["schema"], v1["schema"]);
    assert_eq!(v3["schema"]["files"]["a.csv"]["rows"], 2);
}

#[test]
fn example_goes_from_features_to_a_tested_model() {
    let py = match std::env::var("ASSETFS_TEST_PYTHON") {
        Ok(p) if !p.trim().is_empty() => PathBuf::from(p),
        _ => panic!(
            "ASSETFS_TEST_PYTHON is not set: this test runs docs/examples/train-with-lineage.sh, \
             which needs Python with numpy. Run the suite with scripts/test.sh (it exports the \
             venv's Python), or set ASSETFS_TEST_PYTHON=/path/to/venv/bin/python"
        ),
    };
    let env = Env::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/train-with-lineage.sh");
    // assetfs and the venv's python3 first on PATH: the stored test runs `python3`.
    let path = format!(
        "{}:{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        py.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = env.path("example");
    let out = env
        .command("bash", &[s(&script), s(&work)])
        .env("PATH", path)
        .env("PYTHON", &py)
        .output()
        .unwrap();
    let r = Run::from_output(&["(example)"], out);
    assert!(r.success(), "the example failed:\n{r}");
    assert!(r.stdout.contains("PASS  holdout-sample"), "{r}");
    assert!(
        r.stdout
            .contains("models/example-ranker@production -> models/example-ranker@1"),
        "{r}"
    );

    let model = env.json(&["show", "models/example-ranker@production"]);
    assert_eq!(
        model["lineage"]["inputs"],
        json!(["features/example-clicks@1"])
    );
    assert_eq!(model["context"]["log"], "train.log");
    assert!(model["context"]["framework"]
        .as_str()
        .unwrap()
        .starts_with("numpy "));
    let acc = model["metrics"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "the tiny model learned something: {model:#}");
    assert_eq!(model["tests"][0]["name"], "holdout-sample");
    let features = env.json(&["show", "features/example-clicks@example"]);
    assert!(features["lineage"]["source"]
        .as_str()
        .unwrap()
        .contains("seed 7"));
    assert_eq!(features["schema"]["files"]["train.csv"]["rows"], 300);
    assert_eq!(features["schema"]["files"]["holdout.csv"]["rows"], 100);
    let used = env.json(&["lineage", "--used-by", "features/example-clicks@1"]);
    assert_eq!(used["all"], json!(["models/example-ranker@1"]));
}
