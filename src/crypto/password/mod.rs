//! Password hashing with argon2id on a bounded pool of its own, at a lower priority than the
//! async workers: never on them, and when the queue is full, or longer than the machine can
//! hash within the wait budget, the caller is told to shed load instead of waiting.

use crate::domain::password::{Candidate, Password};
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

mod imported;
mod threads;

/// The longest an admitted hash should wait for a worker: past it a login is better refused
/// (503, and a load balancer tries another instance) than kept waiting.
const WAIT_BUDGET: Duration = Duration::from_secs(1);

pub use imported::check_imported_hash;

/// Why a hash could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full.
    #[error("the hashing queue is full")]
    Overloaded,
    /// The hash library or the blocking pool failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Hashing cost and pool size.
#[derive(Debug, Clone, Copy)]
pub struct HashingConfig {
    /// argon2 m, in KiB.
    pub memory_kib: u32,
    /// argon2 t.
    pub iterations: u32,
    /// argon2 p.
    pub parallelism: u32,
    /// Hashes computed at once (normally the number of cores).
    pub workers: usize,
    /// Hashes allowed to wait for a worker before new ones are refused.
    pub queue: usize,
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched the stored hash.
    pub matches: bool,
    /// The stored hash uses other parameters than the current ones.
    pub needs_rehash: bool,
}

/// The shared hashing pool. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    /// Workers plus queue: the admission permits when none is taken.
    capacity: usize,
    worker_count: usize,
    dummy_hash: String,
    operations: AtomicU64,
    /// A hash's recent time on a worker, µs, smoothed: what the queue ahead costs in waiting.
    hash_micros: AtomicU64,
    jobs: std::sync::mpsc::Sender<threads::Job>,
}

impl Hasher {
    /// Builds the pool and the dummy hash that unknown accounts are verified against.
    pub fn new(config: HashingConfig) -> anyhow::Result<Hasher> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let workers = config.workers.max(1);
        let dummy_secret = crate::crypto::random::token();
        let started = Instant::now();
        let dummy_hash = hash_with(&params, &dummy_secret)?;
        let hash_micros = micros(started.elapsed());
        Ok(Hasher {
            inner: Arc::new(Inner {
                params,
                workers: Arc::new(Semaphore::new(workers)),
                admission: Arc::new(Semaphore::new(workers + config.queue)),
                capacity: workers + config.queue,
                worker_count: workers,
                dummy_hash,
                operations: AtomicU64::new(0),
                hash_micros: AtomicU64::new(hash_micros),
                jobs: threads::start(workers)?,
            }),
        })
    }

    /// Hashes a new password to an argon2id PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        self.hash_secret(password.expose().to_owned()).await
    }

    /// Hashes a password that just verified against an outdated hash, with current parameters.
    pub async fn rehash(&self, candidate: &Candidate) -> Result<String, HashError> {
        self.hash_secret(candidate.expose().to_owned()).await
    }

    async fn hash_secret(&self, secret: String) -> Result<String, HashError> {
        self.run(move |params| hash_with(params, &secret)).await
    }

    /// Checks `candidate` against `stored`; with no stored hash (unknown account, or an account
    /// without a password) it checks against the dummy hash, so the work is the same either way.
    pub async fn verify(
        &self,
        candidate: &Candidate,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let secret = candidate.expose().to_owned();
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.inner.dummy_hash.clone(), str::to_owned);
        let verified = self
            .run(move |params| verify_with(params, &secret, &stored))
            .await?;
        Ok(Verified {
            matches: known && verified.matches,
            needs_rehash: known && verified.needs_rehash,
        })
    }

    /// How many hashes and verifications have run, for tests that compare work.
    pub fn operations(&self) -> u64 {
        self.inner.operations.load(Ordering::Relaxed)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&Params) -> anyhow::Result<T> + Send + 'static,
    {
        let shed = || {
            metrics::counter!("latchkey_password_hashes_shed_total").increment(1);
            HashError::Overloaded
        };
        if self.expected_wait() > WAIT_BUDGET {
            return Err(shed());
        }
        let admitted = Arc::clone(&self.inner.admission)
            .try_acquire_owned()
            .map_err(|_| shed())?;
        let worker = Arc::clone(&self.inner.workers)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(e.into()))?;
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("latchkey_password_hashes_total").increment(1);
        let inner = Arc::clone(&self.inner);
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The permits move into the job: if the caller goes away, the hash still runs to its end
        // and keeps its permits until then, so the bound on concurrent hashes holds.
        let job: threads::Job = Box::new(move || {
            let permits = (admitted, worker);
            let started = Instant::now();
            let result = work(&inner.params);
            let took = started.elapsed();
            metrics::histogram!(crate::telemetry::HASH_DURATION).record(took);
            // Smoothed over about the last eight hashes: it follows a busy neighbour within a
            // second, and one slow hash does not close the door.
            let before = inner.hash_micros.load(Ordering::Relaxed);
            let smoothed = (before * 7 + micros(took)) / 8;
            inner.hash_micros.store(smoothed, Ordering::Relaxed);
            // The permits go back before the answer does: a caller that moves on at once (and
            // asks again) must find its worker free, even if this low-priority thread is not
            // scheduled again for a while.
            drop(permits);
            let _ = answer.send(result);
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| HashError::Internal(anyhow::anyhow!("the hashing threads are gone")))?;
        let result = answered
            .await
            .map_err(|_| HashError::Internal(anyhow::anyhow!("a hashing thread failed")))?;
        Ok(result?)
    }

    /// Whether a hash asked for now would be admitted: a login checks this before it reads the
    /// account, so the load it sheds costs no database round trip (the hash itself is
    /// admitted, or refused, again when it is asked for).
    pub fn has_room(&self) -> Result<(), HashError> {
        if self.inner.admission.available_permits() == 0 || self.expected_wait() > WAIT_BUDGET {
            metrics::counter!("latchkey_password_hashes_shed_total").increment(1);
            return Err(HashError::Overloaded);
        }
        Ok(())
    }

    /// How long a hash admitted now would wait for a worker: the hashes ahead of it, shared
    /// out among the workers, at the time a hash takes now.
    fn expected_wait(&self) -> Duration {
        let inner = &self.inner;
        let pending = inner.capacity - inner.admission.available_permits();
        let ahead = (pending + 1).saturating_sub(inner.worker_count);
        let rounds = ahead.div_ceil(inner.worker_count) as u64;
        Duration::from_micros(rounds * inner.hash_micros.load(Ordering::Relaxed))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Bytes above which glibc always maps a fresh region and unmaps it on free (its largest mmap
/// threshold). Smaller blocks, once freed, stay with the hashing thread for ever: every thread the
/// pool ever used would keep 19 MiB, and idle RSS would grow with the busiest moment.
const ALWAYS_UNMAPPED_BYTES: usize = 32 * 1024 * 1024 + 1;

/// One argon2 computation, in working memory that goes back to the system when it ends.
fn compute(
    argon2: Argon2<'_>,
    params: &Params,
    secret: &[u8],
    salt: &[u8],
) -> Result<Output, argon2::Error> {
    let blocks = params.block_count();
    let mut memory = Vec::new();
    memory
        .try_reserve_exact(blocks.max(ALWAYS_UNMAPPED_BYTES.div_ceil(Block::SIZE)))
        .map_err(|_| argon2::Error::OutOfMemory)?;
    memory.resize(blocks, Block::new());
    let mut output = [0_u8; Output::MAX_LENGTH];
    let output = &mut output[..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    argon2.hash_password_into_with_memory(secret, salt, output, &mut memory)?;
    Output::new(output).map_err(|_| argon2::Error::OutputTooLong)
}

fn hash_with(params: &Params, secret: &str) -> anyhow::Result<String> {
    let salt = Salt::new(&crate::crypto::random::bytes::<16>())
        .map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = compute(argon2, params, secret.as_bytes(), salt.as_ref())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

fn verify_with(params: &Params, secret: &str, stored: &str) -> anyhow::Result<Verified> {
    // Imported from another system, then re-hashed with argon2id by the caller.
    if imported::is_bcrypt(stored) {
        return Ok(Verified {
            matches: imported::verify_bcrypt(secret, stored),
            needs_rehash: true,
        });
    }
    let parsed = PasswordHash::new(stored)
        .map_err(|e| anyhow::anyhow!("stored hash is not a PHC string: {e}"))?;
    let matches = verify_phc(&parsed, secret.as_bytes());
    let current = parsed.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
        && Params::try_from(&parsed).is_ok_and(|used| {
            used.m_cost() == params.m_cost()
                && used.t_cost() == params.t_cost()
                && used.p_cost() == params.p_cost()
        });
    Ok(Verified {
        matches,
        needs_rehash: !current,
    })
}

/// Recomputes an argon2 PHC hash with its own algorithm, version, parameters and salt, and
/// compares the outputs in constant time.
fn verify_phc(stored: &PasswordHash, secret: &[u8]) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(stored.algorithm.as_str()) else {
        return false;
    };
    // As in argon2's reference decoder: a PHC string without `v=` is version 0x10.
    let version = stored.version.map_or(Ok(Version::V0x10), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(stored)) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    compute(argon2, &params, secret, salt.as_ref()).is_ok_and(|output| output == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PasswordPolicy;

    fn config(workers: usize, queue: usize, iterations: u32) -> HashingConfig {
        HashingConfig {
            memory_kib: 8192,
            iterations,
            parallelism: 1,
            workers,
            queue,
        }
    }

    fn password(raw: &str) -> Password {
        PasswordPolicy { min_length: 12 }.parse(raw, None).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = Hasher::new(config(1, 4, 1)).unwrap();
        let hash = hasher
            .hash(&password("correct horse battery"))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        let right = Candidate::new("correct horse battery").unwrap();
        let wrong = Candidate::new("incorrect horse battery").unwrap();
        assert!(hasher.verify(&right, Some(&hash)).await.unwrap().matches);
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap().matches);
    }

    #[tokio::test]
    async fn unknown_accounts_cost_one_verification_and_never_match() {
        let hasher = Hasher::new(config(1, 4, 1)).unwrap();
        let before = hasher.operations();
        let verified = hasher
            .verify(&Candidate::new("whatever it is").unwrap(), None)
            .await
            .unwrap();
        assert!(!verified.matches);
        assert_eq!(hasher.operations(), before + 1);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_need_a_rehash() {
        let old = Hasher::new(config(1, 4, 1)).unwrap();
        let current = Hasher::new(config(1, 4, 2)).unwrap();
        let hash = old.hash(&password("correct horse battery")).await.unwrap();
        let candidate = Candidate::new("correct horse battery").unwrap();
        assert!(
            current
                .verify(&candidate, Some(&hash))
                .await
                .unwrap()
                .needs_rehash
        );
        assert!(
            !old.verify(&candidate, Some(&hash))
                .await
                .unwrap()
                .needs_rehash
        );
    }

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let params = Params::new(8192, 1, 1, None).unwrap();
        let ours = hash_with(&params, "correct horse battery").unwrap();
        let theirs = argon2::Argon2::default()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        let reference = argon2::Argon2::default();
        assert!(
            reference
                .verify_password(b"correct horse battery", &PasswordHash::new(&ours).unwrap())
                .is_ok()
        );
        // Without `v=`, a PHC string means version 0x10, as the reference decoder reads it.
        let legacy = argon2::Argon2::new(
            Algorithm::Argon2id,
            Version::V0x10,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse battery")
        .unwrap()
        .to_string()
        .replace("$v=16", "");
        assert!(!legacy.contains("$v="), "{legacy}");
        for stored in [&ours, &theirs, &legacy] {
            let stored = PasswordHash::new(stored).unwrap();
            assert!(verify_phc(&stored, b"correct horse battery"));
            assert!(!verify_phc(&stored, b"correct horse batterz"));
        }
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_always_need_a_rehash() {
        let hasher = Hasher::new(config(1, 4, 1)).unwrap();
        let imported = bcrypt::hash("correct horse battery", 4).unwrap();
        let right = hasher
            .verify(
                &Candidate::new("correct horse battery").unwrap(),
                Some(&imported),
            )
            .await
            .unwrap();
        let wrong = hasher
            .verify(
                &Candidate::new("incorrect horse battery").unwrap(),
                Some(&imported),
            )
            .await
            .unwrap();
        assert_eq!(
            (right.matches, right.needs_rehash, wrong.matches),
            (true, true, false)
        );
    }

    #[tokio::test]
    async fn a_bcrypt_hash_verifies_72_bytes_and_refuses_anything_longer() {
        let hasher = Hasher::new(config(1, 4, 1)).unwrap();
        let password = "a".repeat(72);
        let imported = bcrypt::hash(&password, 4).unwrap();
        let verify = |candidate: String| {
            let (hasher, imported) = (hasher.clone(), imported.clone());
            async move {
                hasher
                    .verify(&Candidate::new(&candidate).unwrap(), Some(&imported))
                    .await
                    .unwrap()
                    .matches
            }
        };
        assert!(verify(password.clone()).await);
        assert!(!verify(format!("{password}b")).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_sheds_load_instead_of_waiting() {
        let hasher = Hasher::new(config(1, 1, 40)).unwrap();
        let attempts = (0..6).map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&password("correct horse battery")).await })
        });
        let results = futures::future::join_all(attempts).await;
        let overloaded = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(HashError::Overloaded))))
            .count();
        let hashed = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert!(overloaded >= 1, "some attempts must be refused");
        assert!(hashed >= 1 && hashed <= 6 - overloaded);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_keeps_its_hash_counted_until_it_ends() {
        let hasher = Hasher::new(config(1, 0, 60)).unwrap();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            hasher.hash(&password("correct horse battery")),
        )
        .await;
        assert!(
            abandoned.is_err(),
            "the first hash is still running when its caller leaves"
        );

        let next = hasher.hash(&password("correct horse battery")).await;

        assert!(
            matches!(next, Err(HashError::Overloaded)),
            "the abandoned hash still holds the only worker"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_below_the_async_workers_priority() {
        let hasher = Hasher::new(config(2, 4, 1)).unwrap();
        assert!(hasher.has_room().is_ok());
        let niceness = hasher
            .run(|_| Ok(threads::current_niceness()))
            .await
            .unwrap();
        assert_eq!(niceness, 10);
        assert_eq!(
            threads::current_niceness(),
            0,
            "the caller's thread is left alone"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_longer_than_the_wait_budget_is_refused_though_it_has_room() {
        // Room for 100 waiting, but each hash is said to take 300 ms: with one worker, the fourth
        // hash in line would wait over a second.
        let hasher = Hasher::new(config(1, 100, 1)).unwrap();
        hasher.inner.hash_micros.store(300_000, Ordering::Relaxed);
        let hold = |hasher: &Hasher| {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                hasher
                    .run(|_| {
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(())
                    })
                    .await
            })
        };
        let running: Vec<_> = (0..4).map(|_| hold(&hasher)).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(hasher.expected_wait() > WAIT_BUDGET);
        assert!(matches!(hasher.has_room(), Err(HashError::Overloaded)));
        let refused = hasher.hash(&password("correct horse battery")).await;
        assert!(matches!(refused, Err(HashError::Overloaded)), "{refused:?}");
        for held in running {
            held.await.unwrap().unwrap();
        }
    }
}
