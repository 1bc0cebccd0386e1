//! The password-hashing settings: argon2id's cost and the bounded pool that runs it.

use crate::crypto::password::HashingConfig;

/// `LATCHKEY_ARGON2_*` and `LATCHKEY_HASH_*`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Password hashing")]
pub struct HashingArgs {
    /// argon2id memory cost, KiB.
    #[arg(long, env = "LATCHKEY_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "LATCHKEY_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    #[arg(long, env = "LATCHKEY_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Password hashes computed at once [default: 0 = one per core].
    #[arg(long, env = "LATCHKEY_HASH_WORKERS", default_value_t = 0)]
    pub hash_workers: usize,
    /// Password hashes allowed to wait for a worker; beyond that requests get 503 `overloaded`.
    #[arg(long, env = "LATCHKEY_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,
}

impl HashingArgs {
    /// Checks the parameters argon2 accepts; `0` workers is one per core.
    pub fn validate(self) -> Result<HashingConfig, String> {
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("LATCHKEY_ARGON2_* parameters are invalid: {e}"))?;
        let workers = match self.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(HashingConfig {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
            workers,
            queue: self.hash_queue,
        })
    }
}
