//! What the revocation check adds to a bearer check: `Tokens::verify` alone against the full
//! `authenticate` (verify + revocation lookup), measured side by side in alternating rounds.
//! Run: `cargo bench --bench verify`.

use latchkey::clock::Clock;
use latchkey::config::Settings;
use latchkey::service::sessions;
use std::hint::black_box;
use std::time::Instant;

#[derive(clap::Parser)]
struct BenchCli {
    #[command(flatten)]
    settings: Settings,
}

const ITERATIONS: u32 = 20_000;
const ROUNDS: usize = 5;
const REVOKED_SESSIONS: usize = 10_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let settings = <BenchCli as clap::Parser>::parse_from(["bench", "--database-url", &url]).settings;
        let app = latchkey::startup::build(settings.into_config().unwrap(), Clock::System).await.unwrap();
        let now = app.clock.now();
        let revoked: Vec<uuid::Uuid> = (0..REVOKED_SESSIONS).map(|_| Clock::System.new_id()).collect();
        app.revocations.revoked_here(&revoked, now);
        // As in the server: the view stays fresh only while its sync loop runs.
        let _sync = app.revocations.spawn_sync(app.store.clone(), app.clock.clone());
        let claims = latchkey::crypto::AccessClaims {
            iss: String::new(), sub: Clock::System.new_id().to_string(), aud: None, iat: 0, nbf: None, exp: None,
            jti: String::new(), sid: Clock::System.new_id().to_string(), email: "bench@example.com".into(),
            email_verified: true, role: "user".into(), name: None, auth_time: None, amr: None, acr: None,
            client_id: None, scope: None,
        };
        let token = app.tokens.issue(claims, now).unwrap();

        let (mut verify_only, mut full) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(app.tokens.verify(black_box(&token), now).unwrap());
            }
            verify_only.push(started.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(sessions::authenticate(&app, black_box(&token)).await.unwrap());
            }
            full.push(started.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (verify_ns, full_ns) = (median(&mut verify_only), median(&mut full));
        println!("bearer check, EdDSA, {REVOKED_SESSIONS} revoked sessions in the view, median of {ROUNDS} rounds x {ITERATIONS}");
        println!("| what | ns per check |");
        println!("|---|---|");
        println!("| JWT verify only | {verify_ns:.0} |");
        println!("| verify + revocation check (authenticate) | {full_ns:.0} |");
        println!("| revocation check (difference) | {:.0} ({:.1}% of the check) |", full_ns - verify_ns, (full_ns - verify_ns) / full_ns * 100.0);
    });
}
