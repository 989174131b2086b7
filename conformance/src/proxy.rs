//! A TCP proxy in front of the shared log, for the cluster checks that need an instance held
//! behind: it passes every connection through, and on request holds back what Redis sends to
//! the connections that read the stream's tail (those that have sent `XREAD`), so that the
//! instance behind it does not see new events while its other commands still go through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct LogProxy {
    address: SocketAddr,
    hold: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LogProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the proxy cannot listen: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let (hold, held) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let held = held.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = pipe(client, server, held).await;
                    }
                });
            }
        });
        Ok(Self {
            address,
            hold,
            task,
        })
    }

    /// `redis://` URL of the proxy, for `EVENT_LOG`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// Holds back (or lets through again) what Redis sends to the tail readers.
    pub fn hold_readers(&self, hold: bool) {
        let _ = self.hold.send(hold);
    }
}

impl Drop for LogProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut held: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let reads_tail = Arc::new(AtomicBool::new(false));
    let upstream = {
        let reads_tail = Arc::clone(&reads_tail);
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let read = client_read.read(&mut buffer).await?;
                if read == 0 {
                    return server_write.shutdown().await;
                }
                if buffer[..read]
                    .windows(5)
                    .any(|w| w.eq_ignore_ascii_case(b"XREAD"))
                {
                    reads_tail.store(true, Ordering::Relaxed);
                }
                server_write.write_all(&buffer[..read]).await?;
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = server_read.read(&mut buffer).await?;
            if read == 0 {
                return client_write.shutdown().await;
            }
            while reads_tail.load(Ordering::Relaxed) && *held.borrow() {
                if held.changed().await.is_err() {
                    break;
                }
            }
            client_write.write_all(&buffer[..read]).await?;
        }
    };
    tokio::try_join!(upstream, downstream).map(drop)
}
