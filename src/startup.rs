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
    let service = http::router(app).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

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
