//! Starting queued work in the order it was planned.
//!
//! The read path plans reads in file order and bounds how many run at once
//! with fair semaphores. Spawning a task per read that then waits for its
//! own permit does not keep that order: tokio runs the task spawned last
//! first (its LIFO slot) and other workers steal the rest, so eight tasks
//! spawned in order took a fair semaphore in the order 3, 0, 1, 2, 7, 4, 5,
//! 6 (measured). A reader then waited for the read it needed next while
//! reads far ahead of it ran. [`start_in_order`] waits for the permits in
//! one task, in turn.

use futures::future::BoxFuture;

/// Starts `items` in the order given: one task waits for each item's
/// `grant` in turn, then calls `start` with the item and its grant
/// (`start` spawns the work itself, so the next item's wait begins at once).
pub fn start_in_order<T, P>(
    items: Vec<T>,
    grant: impl Fn() -> BoxFuture<'static, P> + Send + 'static,
    start: impl Fn(T, P) + Send + 'static,
) where
    T: Send + 'static,
    P: Send + 'static,
{
    if items.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for item in items {
            let p = grant().await;
            start(item, p);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// Work planned on a runtime worker (where a top-up runs once its READ
    /// has moved to the runtime) starts in plan order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_starts_in_the_order_planned() {
        let sem = Arc::new(Semaphore::new(1));
        let order = Arc::new(Mutex::new(vec![]));
        let held = sem.clone().acquire_owned().await.unwrap();
        let (s, o) = (sem.clone(), order.clone());
        tokio::spawn(async move {
            let s2 = s.clone();
            start_in_order(
                (0..16).collect(),
                move || s2.clone().acquire_owned().map(|p| p.unwrap()).boxed(),
                move |i: u32, permit| {
                    let o = o.clone();
                    tokio::spawn(async move {
                        o.lock().unwrap().push(i);
                        drop(permit);
                    });
                },
            );
        })
        .await
        .unwrap();
        // Every item is queued behind the held permit before any starts.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let t0 = std::time::Instant::now();
        while order.lock().unwrap().len() < 16 {
            assert!(t0.elapsed() < Duration::from_secs(10), "work never started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let got = order.lock().unwrap().clone();
        assert_eq!(got, (0..16).collect::<Vec<_>>(), "started out of order");
    }
}
