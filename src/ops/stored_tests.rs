//! Stored input/output tests of a version (the sidecar's `tests` section) and
//! `assetfs test REF`, which runs them.
//!
//! One test:
//!
//! ```json
//! {"name": "golden",
//!  "command": "python3 predict.py {input} {output}",
//!  "input": "tests/in.csv",
//!  "expected": "tests/expected.npy",
//!  "compare": {"mode": "numeric", "tolerance": 1e-6, "rel_tolerance": 0},
//!  "timeout": 60}
//! ```
//!
//! - `command` (required): a `sh -c` command line run from the version's
//!   directory. `{input}`, `{output}`, `{expected}` and `{dir}` are replaced by
//!   the shell-quoted absolute paths of the input file, a fresh output file
//!   outside the version (its extension is the expected file's), the expected
//!   file and the version directory. Without `{output}`, what the command
//!   prints on stdout is the output.
//! - `input` (optional), `expected` (required): relative paths of regular
//!   files inside the version; checked when the version is committed.
//! - `compare`: `"exact"` (the default; byte for byte) or `"numeric"`, as a
//!   string or `{"mode": ...}`. Numeric compares JSON, CSV/TSV or `.npy`
//!   outputs (by the expected file's extension, or `"format"`) value by value:
//!   numbers pass when `|got - expected| <= tolerance + rel_tolerance *
//!   |expected|` (defaults 1e-6 and 0), everything else must be equal.
//! - `timeout` (optional): seconds, overriding `assetfs test --timeout`.
//! - Other keys are kept verbatim (e.g. `description`).

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{Catalog, CatalogError};
use crate::format::Reference;
use crate::ops::get::GetError;

pub const DEFAULT_TOLERANCE: f64 = 1e-6;
/// Differences listed per failed test; the count covers all of them.
const MAX_DIFFERENCES: usize = 10;
/// Output captured from stdout (when it is the test's output).
const MAX_STDOUT: usize = 256 << 20;
/// The tail of stderr shown for a failed command.
const STDERR_TAIL: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Tsv,
    Npy,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "npy" => Some(Format::Npy),
            _ => None,
        }
    }

    fn of_path(p: &str) -> Option<Format> {
        Format::parse(p.rsplit_once('.')?.1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Compare {
    Exact,
    Numeric {
        tolerance: f64,
        rel_tolerance: f64,
        format: Format,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    pub name: String,
    pub command: String,
    pub input: Option<String>,
    pub expected: String,
    pub compare: Compare,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("tests[{index}]{}: {why}", .name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())]
pub struct SpecError {
    pub index: usize,
    pub name: Option<String>,
    pub why: String,
}

/// Parses the `tests` section (a JSON array).
pub fn parse_specs(tests: &Value) -> Result<Vec<TestSpec>, SpecError> {
    let Some(items) = tests.as_array() else {
        return Err(SpecError {
            index: 0,
            name: None,
            why: "`tests` must be a JSON array of test objects".into(),
        });
    };
    let mut out: Vec<TestSpec> = vec![];
    for (i, v) in items.iter().enumerate() {
        let spec = parse_spec(i, v)?;
        if out.iter().any(|s| s.name == spec.name) {
            return Err(SpecError {
                index: i,
                name: Some(spec.name),
                why: "another test has this name".into(),
            });
        }
        out.push(spec);
    }
    Ok(out)
}

fn parse_spec(index: usize, v: &Value) -> Result<TestSpec, SpecError> {
    let name = v.get("name").and_then(Value::as_str).map(str::to_string);
    let err = |why: String| SpecError {
        index,
        name: name.clone(),
        why,
    };
    let Some(m) = v.as_object() else {
        return Err(err("a test must be a JSON object".into()));
    };
    let string = |k: &str, required: bool| -> Result<Option<String>, SpecError> {
        match m.get(k) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            _ => Err(err(format!("`{k}` must be a non-empty string"))),
        }
    };
    let name = string("name", true)?.expect("required");
    let command = string("command", true)?.expect("required");
    let input = string("input", false)?;
    let expected = string("expected", true)?.expect("required");
    for p in input.iter().chain(Some(&expected)) {
        check_rel_path(p).map_err(|why| err(format!("{p:?}: {why}")))?;
    }
    let (mode, opts) = match m.get("compare") {
        None | Some(Value::Null) => ("exact".to_string(), Map::new()),
        Some(Value::String(s)) => (s.clone(), Map::new()),
        Some(Value::Object(o)) => match o.get("mode") {
            Some(Value::String(s)) => (s.clone(), o.clone()),
            _ => return Err(err("`compare.mode` must be \"exact\" or \"numeric\"".into())),
        },
        Some(_) => {
            return Err(err(
                "`compare` must be \"exact\", \"numeric\" or {\"mode\": ...}".into(),
            ))
        }
    };
    let number = |k: &str, default: f64| -> Result<f64, SpecError> {
        match opts.get(k) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| *x >= 0.0 && x.is_finite())
                .ok_or_else(|| err(format!("`compare.{k}` must be a number >= 0"))),
        }
    };
    let compare = match mode.as_str() {
        "exact" => Compare::Exact,
        "numeric" => {
            let format = match opts.get("format") {
                Some(Value::String(f)) => Format::parse(f).ok_or_else(|| {
                    err(format!("`compare.format` {f:?}: use json, csv, tsv or npy"))
                })?,
                Some(_) => return Err(err("`compare.format` must be a string".into())),
                None => Format::of_path(&expected).ok_or_else(|| {
                    err(format!(
                        "numeric comparison needs a .json, .csv, .tsv or .npy expected file \
                         (or `compare.format`); {expected:?} is none of these"
                    ))
                })?,
            };
            Compare::Numeric {
                tolerance: number("tolerance", DEFAULT_TOLERANCE)?,
                rel_tolerance: number("rel_tolerance", 0.0)?,
                format,
            }
        }
        other => {
            return Err(err(format!(
                "unknown comparison {other:?}: use \"exact\" or \"numeric\""
            )))
        }
    };
    let timeout = match m.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|x| *x > 0.0 && x.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| err("`timeout` must be a number of seconds > 0".into()))?,
        ),
    };
    Ok(TestSpec {
        name,
        command,
        input,
        expected,
        compare,
        timeout,
    })
}

/// A path inside a version: relative, no `..`.
pub fn check_rel_path(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Err("must be a path inside the version, relative to its root".into());
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("must not leave the version (no `..`)".into());
    }
    Ok(())
}

/// Checks, at commit time, that every test's input and expected files are
/// regular files of the tree being committed (`is_file` answers for a path
/// as written in the test).
pub fn check_files(specs: &[TestSpec], is_file: impl Fn(&str) -> bool) -> Result<(), SpecError> {
    for (index, s) in specs.iter().enumerate() {
        for (what, p) in [("input", s.input.as_ref()), ("expected", Some(&s.expected))] {
            let Some(p) = p else { continue };
            if !is_file(p) {
                return Err(SpecError {
                    index,
                    name: Some(s.name.clone()),
                    why: format!("{what} file {p:?} is not a file in the version being committed"),
                });
            }
        }
    }
    Ok(())
}

/// The outcome of one test.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
    pub seconds: f64,
    /// Why it failed, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What differed (at most 10 entries), or the command's stderr tail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    #[serde(rename = "ref")]
    pub reference: String,
    pub passed: usize,
    pub failed: usize,
    pub tests: Vec<TestResult>,
    /// Where the tests ran: `mount` (a temporary read-only mount), `copy`
    /// (a `get` into a temporary directory, when mounting failed), or
    /// `none` (no stored tests).
    pub ran_from: &'static str,
    /// Why the tests could not run from a mount, when they ran from a copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_failed: Option<String>,
}

impl TestReport {
    fn new(reference: String, tests: Vec<TestResult>) -> TestReport {
        let passed = tests.iter().filter(|t| t.passed).count();
        TestReport {
            reference,
            passed,
            failed: tests.len() - passed,
            tests,
            ran_from: "none",
            mount_failed: None,
        }
    }

    /// Names of the failed tests.
    pub fn failed_names(&self) -> Vec<&str> {
        self.tests
            .iter()
            .filter(|t| !t.passed)
            .map(|t| t.name.as_str())
            .collect()
    }

    /// One line per test, with what differed under a failed one.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self.tests.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &self.tests {
            let status = if t.passed { "PASS" } else { "FAIL" };
            let why = t
                .error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{status}  {:<width$}  {:.2}s{why}\n",
                t.name, t.seconds
            ));
            for d in &t.details {
                for line in d.lines() {
                    out.push_str(&format!("        {line}\n"));
                }
            }
        }
        out.push_str(&match self.tests.len() {
            0 => format!("{}: no stored tests\n", self.reference),
            n => format!(
                "{}: {} of {n} tests passed, {} failed\n",
                self.reference, self.passed, self.failed
            ),
        });
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Get(#[from] GetError),
    #[error("{reference} has invalid stored tests: {source}")]
    Spec {
        reference: String,
        #[source]
        source: SpecError,
    },
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A version mounted read-only for its stored tests to run in.
pub struct MountedVersion {
    /// The version's directory in the mount.
    pub dir: PathBuf,
    /// Keeps the mount; dropping it unmounts.
    pub guard: Box<dyn Send>,
}

/// Mounts versions read-only for their stored tests. The FUSE one lives
/// with the mount (`src/mount/temporary.rs`) and the binary passes it in:
/// operations never set up a mount themselves.
#[async_trait::async_trait]
pub trait VersionMounter: Send + Sync {
    /// Mounts `catalog` read-only under `tmp` and returns version `at`'s
    /// directory in it.
    async fn mount_version(
        &self,
        catalog: &Catalog,
        at: &Reference,
        tmp: &Path,
    ) -> Result<MountedVersion, Box<dyn std::error::Error + Send + Sync>>;
}

/// Runs a version's stored tests from the version's directory: a temporary
/// read-only mount of the catalog (by `mounter`) when one can be made, else
/// a `get` into a temporary directory.
pub async fn test_version(
    catalog: &Catalog,
    r: &Reference,
    timeout: Duration,
    mounter: Option<&dyn VersionMounter>,
) -> Result<TestReport, TestError> {
    let v = catalog.resolve(r).await?;
    let reference = r.asset.at(v).to_string();
    let rec = catalog.record(&r.asset, v).await?;
    let specs = match rec.meta.get("tests") {
        None | Some(Value::Null) => vec![],
        Some(t) => parse_specs(t).map_err(|source| TestError::Spec {
            reference: reference.clone(),
            source,
        })?,
    };
    if specs.is_empty() {
        return Ok(TestReport::new(reference, vec![]));
    }
    let tmp = tempfile::Builder::new().prefix("assetfs-test-").tempdir()?;
    let at = r.asset.at(v);
    let mut mount_failed = None;
    let mounted = match mounter {
        Some(m) => m
            .mount_version(catalog, &at, tmp.path())
            .await
            .map_err(|e| e.to_string()),
        None => Err("no way to mount was given".to_string()),
    };
    let (dir, session) = match mounted {
        Ok(m) => (m.dir, Some(m.guard)),
        Err(why) => {
            tracing::info!("testing from a copy, not a mount: {why}");
            mount_failed = Some(why);
            let dir = tmp.path().join("version");
            crate::ops::get::get(catalog, &at, &dir, false).await?;
            (dir, None)
        }
    };
    let copied = session.is_none();
    let results = tokio::task::spawn_blocking(move || {
        let results = run_specs(&dir, &specs, timeout);
        if copied {
            make_removable(&dir);
        }
        results
    })
    .await
    .expect("test runner panicked");
    // Unmounts (the session's drop) before the temporary directory goes.
    drop(session);
    drop(tmp);
    let mut rep = TestReport::new(reference, results);
    rep.ran_from = if copied { "copy" } else { "mount" };
    rep.mount_failed = mount_failed;
    Ok(rep)
}

/// Gives the owner write access to every directory, so a version with
/// read-only directories can be deleted.
fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        if e.file_type().is_dir() {
            if let Ok(md) = e.metadata() {
                let mode = md.permissions().mode() | 0o700;
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

/// Runs tests against a version directory, one after another.
pub fn run_specs(dir: &Path, specs: &[TestSpec], timeout: Duration) -> Vec<TestResult> {
    specs
        .iter()
        .map(|s| {
            let start = Instant::now();
            let r = run_one(dir, s, s.timeout.unwrap_or(timeout));
            let seconds = (start.elapsed().as_secs_f64() * 100.0).round() / 100.0;
            match r {
                Ok(()) => TestResult {
                    name: s.name.clone(),
                    passed: true,
                    seconds,
                    error: None,
                    details: vec![],
                },
                Err(f) => TestResult {
                    name: s.name.clone(),
                    passed: false,
                    seconds,
                    error: Some(f.summary),
                    details: f.details,
                },
            }
        })
        .collect()
}

/// Why a test failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub summary: String,
    pub details: Vec<String>,
}

impl Failure {
    fn new(summary: impl Into<String>) -> Failure {
        Failure {
            summary: summary.into(),
            details: vec![],
        }
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

fn run_one(dir: &Path, s: &TestSpec, timeout: Duration) -> Result<(), Failure> {
    let dir =
        std::fs::canonicalize(dir).map_err(|e| Failure::new(format!("version directory: {e}")))?;
    let expected = dir.join(&s.expected);
    let input = s.input.as_ref().map(|p| dir.join(p));
    for p in input.iter().chain(Some(&expected)) {
        if !p.is_file() {
            return Err(Failure::new(format!(
                "{} is not a file in the version",
                p.strip_prefix(&dir).unwrap_or(p).display()
            )));
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("assetfs-test-out-")
        .tempdir()
        .map_err(|e| Failure::new(format!("temporary directory: {e}")))?;
    let output = scratch.path().join(output_name(&s.expected));
    let uses_output = s.command.contains("{output}");
    let mut cmd = s
        .command
        .replace("{output}", &shell_quote(&output))
        .replace("{expected}", &shell_quote(&expected))
        .replace("{dir}", &shell_quote(&dir));
    if let Some(i) = &input {
        cmd = cmd.replace("{input}", &shell_quote(i));
    } else if cmd.contains("{input}") {
        return Err(Failure::new(
            "the command uses {input} but the test has no `input` file",
        ));
    }
    let run = run_bounded(&cmd, &dir, timeout, &output)
        .map_err(|e| Failure::new(format!("cannot run `sh -c`: {e}")))?;
    let stderr_details = || {
        let tail = String::from_utf8_lossy(&run.stderr_tail).trim().to_string();
        if tail.is_empty() {
            vec![]
        } else {
            vec![format!("stderr: {tail}")]
        }
    };
    if run.timed_out {
        return Err(Failure {
            summary: format!("timed out after {}s and was killed", timeout.as_secs_f64()),
            details: stderr_details(),
        });
    }
    match run.status.code() {
        Some(0) => {}
        Some(code) => {
            let hint = match code {
                127 => " (command not found: a program or file it names does not exist)",
                126 => " (command found but not executable)",
                _ => "",
            };
            return Err(Failure {
                summary: format!("command exited with status {code}{hint}"),
                details: stderr_details(),
            });
        }
        None => {
            return Err(Failure {
                summary: "command was killed by a signal".into(),
                details: stderr_details(),
            })
        }
    }
    if !uses_output {
        std::fs::write(&output, &run.stdout)
            .map_err(|e| Failure::new(format!("saving stdout: {e}")))?;
    } else if !output.is_file() {
        return Err(Failure {
            summary: "command exited 0 but wrote no {output} file".into(),
            details: stderr_details(),
        });
    }
    compare_files(&s.compare, &expected, &output).map_err(|mut f| {
        f.summary = format!("{} (expected {})", f.summary, s.expected);
        f
    })
}

struct Finished {
    status: std::process::ExitStatus,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr_tail: Vec<u8>,
}

/// `sh -c CMD` in its own process group, killed (with everything it
/// started) after `timeout`.
fn run_bounded(
    cmd: &str,
    cwd: &Path,
    timeout: Duration,
    output: &Path,
) -> std::io::Result<Finished> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .env("ASSETFS_VERSION_DIR", cwd)
        .env("ASSETFS_TEST_OUTPUT", output)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id() as i32;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = vec![];
        let _ = (&mut out).take(MAX_STDOUT as u64).read_to_end(&mut buf);
        // Drain the rest so the command never blocks on a full pipe.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut tail: Vec<u8> = vec![];
        let mut chunk = [0u8; 8192];
        while let Ok(n) = err.read(&mut chunk) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&chunk[..n]);
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        tail
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the command left running in the background goes too, so the
    // pipes close and the readers finish.
    // SAFETY: as above; the group may already be gone (ESRCH is fine).
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    Ok(Finished {
        status,
        timed_out,
        stdout: out_reader.join().unwrap_or_default(),
        stderr_tail: err_reader.join().unwrap_or_default(),
    })
}

/// Compares an output file with the expected one.
pub fn compare_files(c: &Compare, expected: &Path, got: &Path) -> Result<(), Failure> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| Failure::new(format!("{}: {e}", p.display())));
    match c {
        Compare::Exact => compare_exact(&read(expected)?, &read(got)?),
        Compare::Numeric {
            tolerance,
            rel_tolerance,
            format,
        } => {
            let mut n = Numeric::new(*tolerance, *rel_tolerance);
            match format {
                Format::Json => {
                    let parse = |b: &[u8], what: &str| {
                        serde_json::from_slice::<Value>(b)
                            .map_err(|e| Failure::new(format!("{what} is not JSON: {e}")))
                    };
                    let (e, g) = (
                        parse(&read(expected)?, "expected")?,
                        parse(&read(got)?, "output")?,
                    );
                    n.json("$", &e, &g);
                }
                Format::Csv | Format::Tsv => {
                    let delim = if *format == Format::Tsv { b'\t' } else { b',' };
                    let (e, g) = (
                        read_table(expected, delim, "expected")?,
                        read_table(got, delim, "output")?,
                    );
                    n.table(&e, &g);
                }
                Format::Npy => {
                    let load = |p: &Path, what: &str| {
                        crate::ops::npy::read_values(p)
                            .map_err(|e| Failure::new(format!("{what}: {e}")))
                    };
                    let (e, g) = (load(expected, "expected")?, load(got, "output")?);
                    n.npy(&e, &g);
                }
            }
            n.finish()
        }
    }
}

fn read_table(p: &Path, delim: u8, what: &str) -> Result<Vec<Vec<String>>, Failure> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .from_path(p)
        .map_err(|e| Failure::new(format!("{what}: {e}")))?;
    r.records()
        .map(|rec| {
            rec.map(|r| r.iter().map(str::to_string).collect())
                .map_err(|e| Failure::new(format!("{what} is not valid CSV: {e}")))
        })
        .collect()
}

fn compare_exact(expected: &[u8], got: &[u8]) -> Result<(), Failure> {
    if expected == got {
        return Ok(());
    }
    if let (Ok(e), Ok(g)) = (std::str::from_utf8(expected), std::str::from_utf8(got)) {
        let (el, gl): (Vec<&str>, Vec<&str>) = (e.lines().collect(), g.lines().collect());
        let n = el.len().max(gl.len());
        let differing: Vec<usize> = (0..n).filter(|i| el.get(*i) != gl.get(*i)).collect();
        if differing.is_empty() {
            return Err(Failure::new(
                "output differs from the expected file only in line endings or a final newline",
            ));
        }
        let show = |l: Option<&&str>| match l {
            Some(s) => format!("{s:?}"),
            None => "(no line)".into(),
        };
        let details = differing
            .iter()
            .take(MAX_DIFFERENCES)
            .map(|i| {
                format!(
                    "line {}: expected {}, got {}",
                    i + 1,
                    show(el.get(*i)),
                    show(gl.get(*i))
                )
            })
            .collect();
        return Err(Failure {
            summary: format!(
                "output differs: {} of {n} lines differ ({} expected, {} got)",
                differing.len(),
                el.len(),
                gl.len()
            ),
            details,
        });
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    Err(Failure::new(format!(
        "output differs: first difference at byte {first} ({} bytes expected, {} got)",
        expected.len(),
        got.len()
    )))
}

/// Accumulates the differences of a numeric comparison.
struct Numeric {
    tol: f64,
    rtol: f64,
    compared: u64,
    differences: Vec<String>,
    count: u64,
    max_diff: f64,
}

impl Numeric {
    fn new(tol: f64, rtol: f64) -> Numeric {
        Numeric {
            tol,
            rtol,
            compared: 0,
            differences: vec![],
            count: 0,
            max_diff: 0.0,
        }
    }

    fn differ(&mut self, what: String) {
        self.count += 1;
        if self.differences.len() < MAX_DIFFERENCES {
            self.differences.push(what);
        }
    }

    fn number(&mut self, at: &str, e: f64, g: f64) {
        self.compared += 1;
        if e.is_nan() && g.is_nan() || e == g {
            return;
        }
        let d = (g - e).abs();
        if d.is_nan() || d > self.tol + self.rtol * e.abs() {
            if !d.is_nan() {
                self.max_diff = self.max_diff.max(d);
            }
            self.differ(format!("{at}: expected {e}, got {g} (|diff| {d:.3e})"));
        }
    }

    fn json(&mut self, at: &str, e: &Value, g: &Value) {
        match (e, g) {
            (Value::Number(a), Value::Number(b)) => self.number(
                at,
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            ),
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    self.differ(format!("{at}: expected {} items, got {}", a.len(), b.len()));
                }
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    self.json(&format!("{at}[{i}]"), x, y);
                }
            }
            (Value::Object(a), Value::Object(b)) => {
                for (k, x) in a {
                    match b.get(k) {
                        Some(y) => self.json(&format!("{at}.{k}"), x, y),
                        None => self.differ(format!("{at}.{k}: missing from the output")),
                    }
                }
                for k in b.keys().filter(|k| !a.contains_key(*k)) {
                    self.differ(format!("{at}.{k}: not expected"));
                }
            }
            (a, b) => {
                self.compared += 1;
                if a != b {
                    self.differ(format!("{at}: expected {a}, got {b}"));
                }
            }
        }
    }

    fn table(&mut self, e: &[Vec<String>], g: &[Vec<String>]) {
        if e.len() != g.len() {
            self.differ(format!("expected {} rows, got {}", e.len(), g.len()));
        }
        for (r, (er, gr)) in e.iter().zip(g).enumerate() {
            if er.len() != gr.len() {
                self.differ(format!(
                    "row {}: expected {} columns, got {}",
                    r + 1,
                    er.len(),
                    gr.len()
                ));
            }
            for (c, (ec, gc)) in er.iter().zip(gr).enumerate() {
                let at = format!("row {}, column {}", r + 1, c + 1);
                match (ec.trim().parse::<f64>(), gc.trim().parse::<f64>()) {
                    (Ok(x), Ok(y)) => self.number(&at, x, y),
                    _ => {
                        self.compared += 1;
                        if ec.trim() != gc.trim() {
                            self.differ(format!("{at}: expected {ec:?}, got {gc:?}"));
                        }
                    }
                }
            }
        }
    }

    fn npy(&mut self, e: &crate::ops::npy::Array, g: &crate::ops::npy::Array) {
        if e.header.shape != g.header.shape {
            self.differ(format!(
                "shape: expected {:?}, got {:?}",
                e.header.shape, g.header.shape
            ));
            return;
        }
        let shape = &e.header.shape;
        for (i, (x, y)) in e.values.iter().zip(&g.values).enumerate() {
            let at = multi_index(i as u64, shape);
            self.number(&at, *x, *y);
        }
    }

    fn finish(self) -> Result<(), Failure> {
        if self.count == 0 {
            return Ok(());
        }
        Err(Failure {
            summary: format!(
                "numeric mismatch: {} of {} values differ beyond tolerance {} (rel {}); max |diff| {:.3e}",
                self.count, self.compared, self.tol, self.rtol, self.max_diff
            ),
            details: self.differences,
        })
    }
}

/// `[i, j, ...]` of the `flat`-th element in row-major order.
fn multi_index(mut flat: u64, shape: &[u64]) -> String {
    let mut idx = vec![0u64; shape.len()];
    for k in (0..shape.len()).rev() {
        let d = shape[k].max(1);
        idx[k] = flat % d;
        flat /= d;
    }
    let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The name of a test's output file: `output` with the expected file's
/// extension, for commands that pick a format by extension.
fn output_name(expected: &str) -> PathBuf {
    let ext = Path::new(expected)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    PathBuf::from(format!("output{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<TestSpec, SpecError> {
        parse_specs(&json!([v])).map(|mut s| s.remove(0))
    }

    #[test]
    fn parse_forms_and_errors() {
        let s = spec(json!({"name": "a", "command": "cat {input}", "input": "in.txt", "expected": "out.txt"})).unwrap();
        assert_eq!(s.compare, Compare::Exact);
        let s =
            spec(json!({"name": "a", "command": "x", "expected": "o.npy", "compare": "numeric"}))
                .unwrap();
        assert_eq!(
            s.compare,
            Compare::Numeric {
                tolerance: DEFAULT_TOLERANCE,
                rel_tolerance: 0.0,
                format: Format::Npy
            }
        );
        let s = spec(json!({"name": "a", "command": "x", "expected": "o.txt",
            "compare": {"mode": "numeric", "tolerance": 0.1, "format": "csv"}, "timeout": 5}))
        .unwrap();
        assert_eq!(
            s.compare,
            Compare::Numeric {
                tolerance: 0.1,
                rel_tolerance: 0.0,
                format: Format::Csv
            }
        );
        assert_eq!(s.timeout, Some(Duration::from_secs(5)));
        for (bad, word) in [
            (json!({"command": "x", "expected": "o"}), "`name`"),
            (json!({"name": "a", "expected": "o"}), "`command`"),
            (json!({"name": "a", "command": "x"}), "`expected`"),
            (
                json!({"name": "a", "command": "x", "expected": "../o"}),
                "..",
            ),
            (
                json!({"name": "a", "command": "x", "expected": "/o"}),
                "inside the version",
            ),
            (
                json!({"name": "a", "command": "x", "expected": "o.bin", "compare": "numeric"}),
                "numeric comparison needs",
            ),
            (
                json!({"name": "a", "command": "x", "expected": "o", "compare": "fuzzy"}),
                "unknown comparison",
            ),
            (
                json!({"name": "a", "command": "x", "expected": "o.json", "compare": {"mode": "numeric", "tolerance": -1}}),
                "tolerance",
            ),
        ] {
            let e = spec(bad).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
        let dup = parse_specs(&json!([
            {"name": "a", "command": "x", "expected": "o"},
            {"name": "a", "command": "y", "expected": "o"}
        ]))
        .unwrap_err();
        assert_eq!(dup.index, 1);
        assert!(parse_specs(&json!({})).is_err());
    }

    #[test]
    fn numeric_json_csv_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let num = |f| Compare::Numeric {
            tolerance: 1e-3,
            rel_tolerance: 0.0,
            format: f,
        };
        std::fs::write(p("e.json"), r#"{"y": [1.0, 2.0, 3.0], "label": "a"}"#).unwrap();
        std::fs::write(p("g.json"), r#"{"y": [1.0001, 2.0, 3.5], "label": "a"}"#).unwrap();
        let f = compare_files(&num(Format::Json), &p("e.json"), &p("g.json")).unwrap_err();
        assert!(f.summary.contains("1 of 4 values"), "{f:?}");
        assert!(
            f.details[0].starts_with("$.y[2]: expected 3, got 3.5"),
            "{f:?}"
        );
        compare_files(&num(Format::Json), &p("e.json"), &p("e.json")).unwrap();

        std::fs::write(p("e.csv"), "id,score\n1,0.5\n2,0.25\n").unwrap();
        std::fs::write(p("g.csv"), "id,score\n1,0.5004\n2,0.75\n").unwrap();
        let f = compare_files(&num(Format::Csv), &p("e.csv"), &p("g.csv")).unwrap_err();
        assert_eq!(
            f.details,
            vec!["row 3, column 2: expected 0.25, got 0.75 (|diff| 5.000e-1)"]
        );

        crate::ops::npy::write_f64(&p("e.npy"), &[2, 2], &[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        crate::ops::npy::write_f64(&p("g.npy"), &[2, 2], &[1.0, 2.0, 3.1, f64::NAN]).unwrap();
        let f = compare_files(&num(Format::Npy), &p("e.npy"), &p("g.npy")).unwrap_err();
        assert!(
            f.details[0].starts_with("[1, 0]: expected 3, got 3.1"),
            "{f:?}"
        );
        crate::ops::npy::write_f64(&p("g.npy"), &[4], &[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        let f = compare_files(&num(Format::Npy), &p("e.npy"), &p("g.npy")).unwrap_err();
        assert!(f.details[0].contains("shape"), "{f:?}");
    }

    #[test]
    fn exact_diff_and_runner() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path();
        std::fs::write(v.join("in.txt"), "hello\nworld\n").unwrap();
        std::fs::write(v.join("out.txt"), "HELLO\nWORLD\n").unwrap();
        let t = |name: &str, command: &str| TestSpec {
            name: name.into(),
            command: command.into(),
            input: Some("in.txt".into()),
            expected: "out.txt".into(),
            compare: Compare::Exact,
            timeout: None,
        };
        let specs = vec![
            t("upper", "tr a-z A-Z < {input} > {output}"),
            t("stdout", "tr a-z A-Z < {input}"),
            t("wrong", "tr a-z A-Z < {input} | sed s/WORLD/THERE/"),
            t("missing", "no-such-program-assetfs {input} {output}"),
            t("slow", "sleep 30"),
            t("silent", "true {output}"),
        ];
        let r = run_specs(v, &specs, Duration::from_millis(500));
        let by: std::collections::HashMap<&str, &TestResult> =
            r.iter().map(|x| (x.name.as_str(), x)).collect();
        assert!(by["upper"].passed, "{:?}", by["upper"]);
        assert!(by["stdout"].passed, "{:?}", by["stdout"]);
        let w = by["wrong"];
        assert!(!w.passed);
        assert!(
            w.error.as_ref().unwrap().contains("1 of 2 lines differ"),
            "{w:?}"
        );
        assert_eq!(w.details, vec![r#"line 2: expected "WORLD", got "THERE""#]);
        let m = by["missing"];
        assert!(m.error.as_ref().unwrap().contains("status 127"), "{m:?}");
        assert!(m.details[0].contains("no-such-program-assetfs"), "{m:?}");
        assert!(by["slow"].error.as_ref().unwrap().contains("timed out"));
        assert!(by["slow"].seconds < 5.0);
        assert!(by["silent"].error.as_ref().unwrap().contains("wrote no"));
    }
}
