//! `test` and `alias --require-tests`: running a version's stored tests.

use std::process::ExitCode;

use anyhow::{bail, Result};

use assetfs::catalog::Catalog;
use assetfs::format::Reference;
use assetfs::ops::{test_version, TestReport};

use crate::cli::args::values::parse_timeout;
use crate::cli::commands::env::parse_ref;
use crate::cli::output::print_json;

pub async fn test(
    catalog: &Catalog,
    reference: &str,
    timeout: &str,
    as_json: bool,
) -> Result<ExitCode> {
    let r = parse_ref(reference)?;
    let t = parse_timeout(timeout).map_err(anyhow::Error::msg)?;
    let rep = test_version(catalog, &r, t, Some(&crate::cli::test_mounter::FuseMounter)).await?;
    note_test_fallback(&rep);
    if as_json {
        print_json(&rep);
    } else {
        print!("{}", rep.render());
    }
    if rep.failed > 0 {
        eprintln!(
            "assetfs: error: {} of {} stored tests of {} failed: {}",
            rep.failed,
            rep.tests.len(),
            rep.reference,
            rep.failed_names().join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `alias --require-tests`: the version's stored tests must exist and pass.
pub async fn require_passing_tests(
    catalog: &Catalog,
    r: &Reference,
    alias: &str,
    timeout: &str,
    as_json: bool,
) -> Result<()> {
    let t = parse_timeout(timeout).map_err(anyhow::Error::msg)?;
    let rep = test_version(catalog, r, t, Some(&crate::cli::test_mounter::FuseMounter)).await?;
    note_test_fallback(&rep);
    if !as_json {
        print!("{}", rep.render());
    }
    if rep.tests.is_empty() {
        bail!("refusing to point {alias} at {r}: it has no stored tests (--require-tests needs at least one, all passing)");
    }
    if rep.failed > 0 {
        bail!(
            "refusing to point {alias} at {r}: {} of {} stored tests failed ({}); see `assetfs test {r}`",
            rep.failed,
            rep.tests.len(),
            rep.failed_names().join(", ")
        );
    }
    Ok(())
}

/// Says on stderr (also with --json) when stored tests could not run from a
/// mount and ran from a copy instead.
fn note_test_fallback(rep: &TestReport) {
    if let Some(why) = &rep.mount_failed {
        eprintln!(
            "assetfs: note: cannot mount {} for its tests ({why}); ran them from a copy made with `get` instead",
            rep.reference
        );
    }
}
