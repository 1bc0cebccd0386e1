//! The hashing threads: as many as hashes may run at once, made with the pool, at a lower
//! scheduling priority than the rest of the process. A flood of logins that saturates the CPU
//! then still leaves the async workers (token checks, every other request) and the database the
//! time they need, while the hashes get every cycle nobody else wants.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// A hash to compute, with its answer's way back.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads' nice value. Against a busy thread of nice 0 one of nice 10 gets about a
/// tenth of a core (CFS weights 1024 and 110); alone, it gets all of it.
const NICENESS: i32 = 10;

/// Starts `count` hashing threads; they end when the returned sender (the pool) is dropped.
pub(super) fn start(count: usize) -> std::io::Result<Sender<Job>> {
    let (jobs, queue) = channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..count {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name(format!("latchkey-hash-{n}"))
            .spawn(move || work(&queue))?;
    }
    Ok(jobs)
}

fn work(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held while waiting for a job, never while one runs.
        let job = queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Lowers this thread's priority (on Linux the nice value is per thread). Raising it back needs
/// a privilege, which is why these threads are the pool's own and never run anything else.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICENESS)
    {
        tracing::warn!(%error, "cannot lower the hashing threads' priority");
    }
}

/// The nice value of the calling thread (for tests).
#[cfg(all(test, target_os = "linux"))]
pub(super) fn current_niceness() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}
