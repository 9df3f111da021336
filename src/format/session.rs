//! Writer sessions: how a push or commit tells `gc` on other nodes that it
//! is running, without a lock anyone has to release.
//!
//! A session is one object, `sessions/<id>`, written when the writer starts
//! and rewritten every [`HEARTBEAT`]. Every pack and chunk-index delta the
//! writer stores is named with the session id as its first 8 bytes, so gc
//! can tell whose they are. gc never condemns objects of a live session, and
//! it does not sweep a mark while a session that was live when the mark was
//! written still runs. A session whose object has not been rewritten for
//! [`EXPIRY`] (store clock) is dead: its writer crashed, or stalled. A
//! stalled writer notices on waking (see [`Session::fresh`]) and re-checks
//! the gc records before it claims a version. Nothing here can block the
//! store forever: a crashed writer's session simply expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::format::ids::{to_hex, PackId};
use crate::format::key_layout as keys;
use crate::store::{Store, StoreError};

/// How often a running writer rewrites its session object.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A session not rewritten for this long (store clock) is dead.
pub const EXPIRY: Duration = Duration::from_secs(15 * 60);
/// A writer issues its version claim only within this long of a heartbeat
/// that preceded its last look at the gc records. Together with the request
/// timeouts (see `store.rs`) this keeps every claim inside [`EXPIRY`] of a
/// heartbeat gc has seen, which the safety argument needs
/// (docs/storage-format.md, "Why gc never deletes what a version uses").
pub const CLAIM_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Milliseconds on a clock that keeps counting while the machine sleeps
/// (`CLOCK_BOOTTIME`): a suspended laptop must not think no time passed.
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_BOOTTIME is available on Linux");
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The 8-byte id of a session, as the first half of a pack id.
pub type SessionId = [u8; 8];

/// The session id a pack or delta name starts with.
pub fn session_of(pack: &PackId) -> SessionId {
    pack[..8].try_into().expect("8 of 16 bytes")
}

/// A new pack id within a session: the session id, then 8 random bytes.
pub fn pack_id_in(session: &SessionId) -> PackId {
    let mut id = crate::format::ids::new_pack_id();
    id[..8].copy_from_slice(session);
    id
}

/// The name under `sessions/` of a session: its id, prefixed `gc-` for gc's
/// own (which protect packs gc is writing, but claim no version, so no sweep
/// waits for them).
pub fn session_name(id: &SessionId, gc: bool) -> String {
    if gc {
        format!("gc-{}", to_hex(id))
    } else {
        to_hex(id)
    }
}

/// A session's id and whether it is gc's, from its name.
pub fn parse_session_name(name: &str) -> Option<(SessionId, bool)> {
    let (hex_id, gc) = match name.strip_prefix("gc-") {
        Some(rest) => (rest, true),
        None => (name, false),
    };
    let id: SessionId = hex::decode(hex_id).ok()?.try_into().ok()?;
    Some((id, gc))
}

pub struct Session {
    store: Store,
    key: String,
    id: SessionId,
    body: Bytes,
    /// [`boottime_ms`] at the start of the last successful write of the session object.
    last_beat: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Session {
    /// Writes the session object and starts the heartbeat. `what` says what
    /// the writer does (`push`, `commit`), for people reading the store.
    pub async fn start(store: &Store, what: &str) -> Result<Session, StoreError> {
        let id: SessionId = rand::random();
        let body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "what": what,
                "host": hostname(),
                "pid": std::process::id(),
                "started": crate::format::time::now_rfc3339(),
            }))
            .expect("session body serialises"),
        );
        let key = keys::session(&session_name(&id, what == "gc"));
        let t0 = boottime_ms();
        store.put(&key, body.clone()).await?;
        let last_beat = Arc::new(AtomicU64::new(t0));
        let task = {
            let (store, body, last_beat, key) =
                (store.clone(), body.clone(), last_beat.clone(), key.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let t = boottime_ms();
                    match store.put(&key, body.clone()).await {
                        Ok(()) => last_beat.store(t, Ordering::SeqCst),
                        // The claim-time check notices a missed heartbeat.
                        Err(e) => tracing::warn!("session heartbeat failed: {e}"),
                    }
                }
            })
        };
        tracing::debug!(session = %to_hex(&id), what, "session started");
        Ok(Session {
            store: store.clone(),
            key,
            id,
            body,
            last_beat,
            task,
        })
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Rewrites the session object now.
    pub async fn beat(&self) -> Result<(), StoreError> {
        let t = boottime_ms();
        self.store.put(&self.key, self.body.clone()).await?;
        self.last_beat.store(t, Ordering::SeqCst);
        Ok(())
    }

    /// How long ago the last successful heartbeat started.
    pub fn since_beat(&self) -> Duration {
        Duration::from_millis(boottime_ms().saturating_sub(self.last_beat.load(Ordering::SeqCst)))
    }

    /// True while a claim may still be issued on the strength of the last
    /// heartbeat (see [`CLAIM_WINDOW`]).
    pub fn fresh(&self) -> bool {
        self.since_beat() < CLAIM_WINDOW
    }

    /// Stops the heartbeat and removes the session object. Best effort: a
    /// session left behind only delays gc until it expires.
    pub async fn end(self) {
        self.task.abort();
        if let Err(e) = self.store.delete(&self.key).await {
            tracing::warn!("cannot remove session object (it expires by itself): {e}");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
