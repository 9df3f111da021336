//! `init`: create or validate the store layout.

use anyhow::Result;

use assetfs::store::Store;

use crate::cli::output::print_json;

pub async fn init(store: &Store, as_json: bool) -> Result<()> {
    let ready = assetfs::ops::init_store(store).await?;
    if as_json {
        print_json(&ready);
    } else {
        println!(
            "store {} ready (format {}, create-if-absent writes honoured)",
            ready.store, ready.format
        );
    }
    Ok(())
}
