//! CPU-heavy work (Argon2id of claim codes: ~15 ms) run without stalling the other requests
//! that share the async worker thread.

/// Runs `f` on this thread while, on a multi-threaded runtime, the worker's other tasks move
/// to another thread. Anywhere else (no runtime, a current-thread runtime in a test) it
/// simply runs.
pub(crate) fn run<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
