//! The fault proxy, against a plain echo server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pool_testkit::{FaultProxy, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// An echo server on a free port; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg` and reads the same number of bytes back, within `limit`.
async fn roundtrip(s: &mut TcpStream, msg: &[u8], limit: Duration) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    timeout(limit, s.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no echo"))??;
    Ok(buf)
}

async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

#[tokio::test]
async fn pass_and_latency() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    assert_eq!(proxy.mode(), Mode::Pass);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"hello", LONG).await.unwrap(), b"hello");
    assert_eq!(proxy.open_connections(), 1);

    proxy.set_mode(Mode::Latency(Duration::from_millis(150)));
    let t = Instant::now();
    assert_eq!(roundtrip(&mut c, b"slow", LONG).await.unwrap(), b"slow");
    // 150 ms on the way there and 150 ms on the way back.
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );

    drop(c);
    assert!(eventually(|| proxy.open_connections() == 0).await);
}

#[tokio::test]
async fn blackhole_keeps_connections_open_but_silent() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut old, b"a", LONG).await.unwrap(), b"a");

    proxy.set_mode(Mode::Blackhole);
    let err = roundtrip(&mut old, b"lost", SHORT).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    let err = roundtrip(&mut new, b"void", SHORT).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(
        proxy.open_connections(),
        2,
        "black-holed connections stay open"
    );

    proxy.set_mode(Mode::Pass);
    assert_eq!(roundtrip(&mut old, b"back", LONG).await.unwrap(), b"back");
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut fresh, b"ok", LONG).await.unwrap(), b"ok");
}

#[tokio::test]
async fn refuse_closes_new_connections_only() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut old, b"x", LONG).await.unwrap(), b"x");
    proxy.set_mode(Mode::Refuse);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut buf = [0u8; 8];
    let n = timeout(LONG, new.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a refused connection must be closed");
    assert_eq!(roundtrip(&mut old, b"still", LONG).await.unwrap(), b"still");
    assert_eq!(proxy.open_connections(), 1);
}

#[tokio::test]
async fn reset_all_sends_rst() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"1", LONG).await.unwrap(), b"1");
    assert_eq!(roundtrip(&mut b, b"2", LONG).await.unwrap(), b"2");
    assert_eq!(proxy.reset_all(), 2);
    for s in [&mut a, &mut b] {
        let mut buf = [0u8; 8];
        let err = timeout(LONG, s.read(&mut buf)).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    }
    assert!(eventually(|| proxy.open_connections() == 0).await);
    // The proxy itself keeps working.
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"new", LONG).await.unwrap(), b"new");
}

#[tokio::test]
async fn dead_upstream_closes_clients_and_drop_stops_listening() {
    // Nothing listens on the upstream port.
    let closed = pool_testkit::ClosedPort::bind().unwrap();
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], closed.port())))
        .await
        .unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut buf = [0u8; 8];
    let n = timeout(LONG, c.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);

    let addr = proxy.addr();
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener must be closed"
    );
}

#[tokio::test]
async fn reset_reaches_the_upstream_too() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 8];
        let first = s.read(&mut buf).await;
        let second = s.read(&mut buf).await;
        let _ = tx.send((first, second));
    });
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    // Wait until the bytes went through, then reset.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.reset_all(), 1);
    let (first, second) = timeout(LONG, rx).await.unwrap().unwrap();
    assert_eq!(first.unwrap(), 2);
    assert_eq!(
        second.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_the_proxy() {
    let pg = tokio::task::spawn_blocking(pool_testkit::PgServer::start)
        .await
        .unwrap()
        .unwrap();
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], pg.port())))
        .await
        .unwrap();
    let port = proxy.addr().port().to_string();
    let psql = move |pg: &pool_testkit::PgServer| {
        let mut cmd = pg.psql_command(None);
        // A later -p wins over the preset one.
        cmd.args(["-p", &port, "-c", "select 40 + 2"]);
        cmd.output().unwrap()
    };
    let pg = std::sync::Arc::new(pg);
    let pg2 = pg.clone();
    let psql2 = psql.clone();
    let out = tokio::task::spawn_blocking(move || psql2(&pg2))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    proxy.set_mode(Mode::Refuse);
    let pg2 = pg.clone();
    let out = tokio::task::spawn_blocking(move || psql(&pg2))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server closed the connection unexpectedly"),
        "{out:?}"
    );
}
