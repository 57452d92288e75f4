//! `anchorwatch serve`: the service, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;

use crate::config;
use crate::server::Server;

/// Starts the server on `listen` (default `server.listen`) and stops it gracefully on a signal:
/// requests in flight finish and every acknowledged row is written to Parquet.
pub async fn run(config: &Path, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let loaded = config::load(config)?;
    let listen = listen.unwrap_or(loaded.config.server.listen);
    let server = Server::start(&loaded, listen).await?;
    tracing::info!(addr = %server.addr, store = %loaded.store_root(), models = loaded.models.len(), "anchorwatch is listening");
    crate::signals::shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight and flushing to Parquet");
    server.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}
