//! A platform running on a background thread of this process, listening on a loopback
//! port: what benchmarks and tests drive over real HTTP.

use crate::config::ServeConfig;
use crate::{Platform, PlatformError};
use std::net::SocketAddr;
use std::sync::Arc;

/// A running in-process platform.
pub struct LocalServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// `uuid:key` of the default namespace (only on a fresh data directory).
    pub auth: Option<String>,
    /// The platform.
    pub platform: Arc<Platform>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl LocalServer {
    /// Start a platform with `config` on an ephemeral loopback port.
    pub fn start(config: ServeConfig) -> Result<LocalServer, PlatformError> {
        let platform = Platform::open(config)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| PlatformError::Listen {
                addr: "runtime".into(),
                source: e,
            })?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| PlatformError::Listen {
                addr: "127.0.0.1:0".into(),
                source: e,
            })?;
        let addr = listener.local_addr().map_err(|e| PlatformError::Listen {
            addr: "127.0.0.1:0".into(),
            source: e,
        })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let p = platform.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(crate::serve(p, listener, async move {
                let _ = stopped.await;
            }))
        });
        Ok(LocalServer {
            base: format!("http://{addr}"),
            addr,
            auth: platform.new_credentials.as_ref().map(|c| c.auth()),
            platform,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stop: drain in-flight invocations, retire VMs, join the server thread.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
