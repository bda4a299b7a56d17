//! Memory back to the system when the workers fall idle.
//!
//! glibc's allocator keeps the pages a burst of work freed (a first sync, a resync) for
//! the next burst; measured, that was 3 MiB of a 43 MiB engine idle after its first
//! sync (docs/benchmarks.md, Memory). Once the workers have had nothing in hand for
//! [`QUIET`], the free pages are handed back, once per burst.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the workers hold no change before free memory goes back.
pub const QUIET: Duration = Duration::from_secs(1);
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Calls `give_back` once each time the changes in `in_flight` have all been finished
/// for [`QUIET`] after some work, until `stop`.
pub async fn give_back_when_idle(
    in_flight: TaskTracker,
    stop: CancellationToken,
    mut give_back: impl FnMut(),
) {
    let mut worked = false;
    let mut quiet = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
        if !in_flight.is_empty() {
            worked = true;
            quiet = Duration::ZERO;
            continue;
        }
        quiet += LOOK_EVERY;
        if worked && quiet >= QUIET {
            give_back();
            worked = false;
        }
    }
}

/// Hands the allocator's free pages back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_free_memory() {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it locks each
    // arena while it trims, so it is safe while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_free_memory() {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn memory_goes_back_once_after_each_burst_of_work() {
        let in_flight = TaskTracker::new();
        let stop = CancellationToken::new();
        let given = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (in_flight, stop, given) = (in_flight.clone(), stop.clone(), given.clone());
            tokio::spawn(give_back_when_idle(in_flight, stop, move || {
                given.fetch_add(1, Ordering::SeqCst);
            }))
        };
        // Idle from the start: nothing to give back.
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(given.load(Ordering::SeqCst), 0);
        // A change takes 5 s: nothing given back while it runs.
        in_flight.spawn(tokio::time::sleep(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(given.load(Ordering::SeqCst), 0, "given back while busy");
        // Done at 5 s; given back once, soon after the quiet time.
        tokio::time::sleep(Duration::from_secs(1) + QUIET + LOOK_EVERY * 2).await;
        assert_eq!(given.load(Ordering::SeqCst), 1);
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(
            given.load(Ordering::SeqCst),
            1,
            "given back again while idle"
        );
        stop.cancel();
        watcher.await.unwrap();
    }

    #[test]
    fn returning_free_memory_is_safe_to_call() {
        let buffers: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 * 1024]).collect();
        drop(buffers);
        return_free_memory();
    }
}
