//! Start-up and shutdown: bind, build the state, serve until SIGINT/SIGTERM.

use crate::clock::Clock;
use crate::config::Config;
use crate::http;
use crate::state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Builds everything from `config` and serves on its listen address until a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let app = AppState::build(config, Clock::System).await?;
    run(listener, app, shutdown_signal()).await
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(
        "latchkey listening on http://{address}{}",
        app.config.base_path
    );
    let workers = [
        app.revocations
            .spawn_sync(app.store.clone(), app.clock.clone()),
        spawn_pruning(app.clone()),
        app.mailer
            .spawn_worker(app.store.clone(), app.clock.clone()),
    ];
    let service = http::router(app).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    for worker in workers {
        worker.abort();
    }
    Ok(served?)
}

/// Deletes expired sessions, tokens and revocations now and then.
fn spawn_pruning(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match app
                .store
                .prune(app.clock.now(), app.config.refresh_reuse_grace)
                .await
            {
                Ok(0) => {}
                Ok(rows) => tracing::debug!(rows, "pruned expired sessions and tokens"),
                Err(error) => tracing::warn!(%error, "pruning failed; will retry"),
            }
            tokio::time::sleep(PRUNE_INTERVAL).await;
        }
    })
}

const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
