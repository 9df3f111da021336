//! How much of a directory a READDIRPLUS reply carries (see [`PlusPolicy`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many entries the first READDIRPLUS reply of a version directory
/// carries. With READDIRPLUS_AUTO the kernel asks for attributes again only
/// if the entries it got were used, and the kernel's cost of an entry with
/// attributes (an inode and a dentry made at once) is what makes `find`,
/// which only needs names and types, slower than a plain listing. But a
/// reader that lists a whole directory first and stats afterwards (`du`, any
/// fts walk) then stats entries the kernel never got attributes for, one
/// LOOKUP each. So: short first replies, until LOOKUPs of entries in
/// directories just listed that way show a reader that stats what it lists;
/// then whole replies for a while (and a short one again now and then, to
/// notice when that reader is gone).
#[derive(Default)]
pub struct PlusPolicy {
    state: Mutex<PlusState>,
}

#[derive(Default)]
struct PlusState {
    /// Directories recently listed with a short first reply.
    short: std::collections::VecDeque<u64>,
    /// LOOKUPs in those since the last switch.
    evidence: u32,
    /// Whole replies until then.
    whole_until: Option<Instant>,
}

/// Entries in a short first reply.
pub const PLUS_FIRST_BATCH: usize = 64;
/// LOOKUPs in just-listed directories that switch to whole replies.
const PLUS_EVIDENCE: u32 = 32;
/// How long whole replies last after the evidence.
const PLUS_WHOLE_FOR: Duration = Duration::from_secs(10);

impl PlusPolicy {
    pub fn new() -> PlusPolicy {
        PlusPolicy {
            state: Mutex::new(PlusState::default()),
        }
    }

    /// Entries to put in a READDIRPLUS reply of `dir` from `offset`.
    pub fn limit(&self, dir: u64, offset: usize) -> usize {
        if offset > 0 {
            // The kernel asks again with attributes only when it saw them used.
            return usize::MAX;
        }
        let mut st = self.state.lock().expect("plus policy lock");
        if st.whole_until.is_some_and(|t| Instant::now() < t) {
            return usize::MAX;
        }
        if !st.short.contains(&dir) {
            if st.short.len() == 8 {
                st.short.pop_front();
            }
            st.short.push_back(dir);
        }
        PLUS_FIRST_BATCH
    }

    /// A LOOKUP in `dir`.
    pub fn lookup_in(&self, dir: u64) {
        let mut st = self.state.lock().expect("plus policy lock");
        if !st.short.contains(&dir) {
            return;
        }
        st.evidence += 1;
        if st.evidence >= PLUS_EVIDENCE {
            tracing::debug!("listings are followed by stats: READDIRPLUS replies whole");
            st.whole_until = Some(Instant::now() + PLUS_WHOLE_FOR);
            st.evidence = 0;
            st.short.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short first READDIRPLUS replies until LOOKUPs in directories just
    /// listed that way show a reader that stats what it lists; LOOKUPs
    /// elsewhere are no evidence; continuations are always whole.
    #[test]
    fn readdirplus_replies_short_until_listings_are_followed_by_stats() {
        let p = PlusPolicy::new();
        assert_eq!(p.limit(7, 0), PLUS_FIRST_BATCH);
        assert_eq!(p.limit(7, PLUS_FIRST_BATCH), usize::MAX);
        for _ in 0..10 * PLUS_EVIDENCE {
            p.lookup_in(8);
        }
        assert_eq!(p.limit(9, 0), PLUS_FIRST_BATCH, "LOOKUPs elsewhere counted");
        for _ in 0..PLUS_EVIDENCE - 1 {
            p.lookup_in(7);
        }
        assert_eq!(p.limit(10, 0), PLUS_FIRST_BATCH, "switched too early");
        p.lookup_in(7);
        assert_eq!(p.limit(10, 0), usize::MAX, "no switch after the evidence");
        assert_eq!(p.limit(11, 0), usize::MAX);
    }
}
