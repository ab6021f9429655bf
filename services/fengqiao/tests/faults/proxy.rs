//! A small TCP proxy that stands between Fengqiao and one of its servers, so a scenario can cut
//! the connection the way a broken network path does: [`Proxy::cut`] resets every open
//! connection and refuses new ones (accepts and resets them at once) until [`Proxy::restore`].
//! The servers themselves keep running.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy on a loopback port.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    /// `true` while traffic flows; every connection task watches it.
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, _) = watch::channel(true);
        let state = open.subscribe();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*state.borrow() {
                    reset(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, state.clone()));
            }
        });
        Ok(Self { addr, open, accept })
    }

    /// Resets every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Dropping `open` ends every connection task.
    }
}

/// Closes with RST rather than FIN: the peer sees "connection reset", as on a broken path.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut open: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        // A cut, or the proxy dropped (the sender gone).
        _ = open.wait_for(|o| !*o) => {
            reset(client);
            reset(server);
        }
    }
}
