//! The proxy role.

use std::future::Future;
use std::sync::Arc;

use crate::config::ProxyConfig;

/// TEMPORARY stand-in, replaced when the proxy lands: binds the client
/// listener (so a bad `listen` fails at startup as it will later) and waits
/// for `shutdown`. It serves no clients.
///
/// # Errors
/// The listener cannot be bound.
pub async fn run(
    config: Arc<ProxyConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen.as_str())
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
    tracing::info!(addr = %listener.local_addr()?, "proxy listening (placeholder: serves no clients)");
    shutdown.await;
    Ok(())
}
