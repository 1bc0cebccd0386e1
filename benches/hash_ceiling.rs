//! The hash ceiling: how many argon2id verifications per second this machine can do on all its
//! cores, with latchkey's own hashing pool and the current parameters. Every login and every
//! registration costs one such hash, so this is the most either endpoint can ever reach; the
//! load scenarios of `bench/run` are reported as a fraction of it.
//! Run: `cargo bench --bench hash_ceiling [-- --seconds N]`; the last line is JSON for `bench/run`.

use latchkey::config::Settings;
use latchkey::crypto::Hasher;
use latchkey::domain::PasswordPolicy;
use latchkey::domain::password::Candidate;
use std::time::{Duration, Instant};

#[derive(clap::Parser)]
struct BenchCli {
    #[command(flatten)]
    settings: Settings,
}

const PASSWORD: &str = "benchmark passphrase 7f3a";

fn main() {
    // `cargo bench` appends `--bench`; only `--seconds N` is ours.
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(5.0, |s| s.parse().expect("--seconds takes a number"));
    // The service's own defaults (and any LATCHKEY_ARGON2_* / LATCHKEY_HASH_* in the environment,
    // exactly as `latchkey serve` would read them), so the ceiling uses the parameters it runs with.
    let config = <BenchCli as clap::Parser>::parse_from(["bench"])
        .settings
        .into_config()
        .unwrap();
    let hashing = config.hashing;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hasher = Hasher::new(hashing).unwrap();
        let password = PasswordPolicy { min_length: 12 }.parse(PASSWORD, None).unwrap();
        let stored = hasher.hash(&password).await.unwrap();
        let candidate = || Candidate::new(PASSWORD).unwrap();

        // One hash at a time: the cost of one verification on one core.
        let single_budget = Duration::from_secs_f64((seconds / 3.0).max(0.5));
        let started = Instant::now();
        let mut single = 0u32;
        while single < 3 || started.elapsed() < single_budget {
            assert!(hasher.verify(&candidate(), Some(&stored)).await.unwrap().matches);
            single += 1;
        }
        let t_hash = started.elapsed().as_secs_f64() / f64::from(single);

        // All workers busy: twice as many callers as workers, so a worker never waits for one,
        // yet within the queue (workers + queue admitted), so nothing is shed.
        let callers = (hashing.workers * 2).min(hashing.workers + hashing.queue);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (hasher, stored) = (hasher.clone(), stored.clone());
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let candidate = Candidate::new(PASSWORD).unwrap();
                        assert!(hasher.verify(&candidate, Some(&stored)).await.unwrap().matches);
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut verifications = 0u64;
        for task in tasks {
            verifications += task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let ceiling = verifications as f64 / elapsed;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);

        println!(
            "argon2id m={} t={} p={}, {} workers, {cores} cores",
            hashing.memory_kib, hashing.iterations, hashing.parallelism, hashing.workers
        );
        println!("| what | value |");
        println!("|---|---|");
        println!("| t_hash, one verification on one core | {:.1} ms |", t_hash * 1e3);
        println!("| cores / t_hash | {:.1} /s |", cores as f64 / t_hash);
        println!("| measured, all workers busy ({verifications} in {elapsed:.1} s) | {ceiling:.1} /s |");
        println!(
            "{{\"ceiling_per_s\":{ceiling:.2},\"t_hash_ms\":{:.3},\"cores\":{cores},\"workers\":{},\"cores_over_t_hash\":{:.2},\"verifications\":{verifications},\"seconds\":{elapsed:.3},\"memory_kib\":{},\"iterations\":{},\"parallelism\":{}}}",
            t_hash * 1e3,
            hashing.workers,
            cores as f64 / t_hash,
            hashing.memory_kib,
            hashing.iterations,
            hashing.parallelism
        );
    });
}
