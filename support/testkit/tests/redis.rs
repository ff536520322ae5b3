//! Integration tests against real private Redis servers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{alive, processes_in};
use pool_testkit::{RedisOptions, RedisServer};

/// A raw connection that sends one inline command and reads one line.
fn raw(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn raw_cmd(conn: &mut (TcpStream, BufReader<TcpStream>), line: &str) -> String {
    conn.0.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let mut reply = String::new();
    conn.1.read_line(&mut reply).unwrap();
    reply.trim_end().to_string()
}

#[test]
fn starts_and_answers() {
    let t = Instant::now();
    let r = RedisServer::start().unwrap();
    eprintln!("start took {:?}", t.elapsed());
    assert_ne!(r.port(), 6379);
    assert_eq!(r.host(), "127.0.0.1");
    assert_eq!(r.url(), format!("redis://127.0.0.1:{}/0", r.port()));
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");
    assert_eq!(r.cmd(&["SET", "k", "v w"]).unwrap(), "OK");
    assert_eq!(r.cmd(&["GET", "k"]).unwrap(), "v w");
    assert_eq!(r.cmd(&["GET", "missing"]).unwrap(), "(nil)");
    assert_eq!(r.cmd(&["INCR", "n"]).unwrap(), "1");
    let err = r.cmd(&["NOSUCHCOMMAND"]).unwrap_err();
    assert!(
        err.redis_reply()
            .unwrap()
            .starts_with("ERR unknown command"),
        "{err}"
    );
    assert_eq!(r.client_count().unwrap(), 0);
    assert!(r.log_path().is_file());
}

#[test]
fn password_and_acl_user() {
    let r = RedisServer::start_with(RedisOptions {
        password: Some("p@ss word".into()),
        acl_user: Some(("alice".into(), "alice-pw".into())),
        ..RedisOptions::default()
    })
    .unwrap();
    assert_eq!(
        r.url(),
        format!("redis://:p%40ss%20word@127.0.0.1:{}/0", r.port())
    );
    assert_eq!(
        r.url_for_user("alice", "alice-pw"),
        format!("redis://alice:alice-pw@127.0.0.1:{}/0", r.port())
    );
    assert!(!format!("{r:?}").contains("p@ss word"));
    assert!(!format!("{r:?}").contains("alice-pw"));
    // The kit authenticates its own commands.
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");

    let mut c = raw(r.port());
    assert!(raw_cmd(&mut c, "PING").starts_with("-NOAUTH"));
    assert!(raw_cmd(&mut c, "AUTH wrong").starts_with("-WRONGPASS"));
    assert_eq!(raw_cmd(&mut c, "AUTH alice alice-pw"), "+OK");
    assert_eq!(raw_cmd(&mut c, "SET a 1"), "+OK");
    assert_eq!(raw_cmd(&mut c, "ACL WHOAMI"), "$5");
    let mut name = String::new();
    c.1.read_line(&mut name).unwrap();
    assert_eq!(name.trim_end(), "alice");
}

#[test]
fn replica_of_unreachable_master_says_masterdown() {
    let r = RedisServer::start_with(RedisOptions {
        replica_of_unreachable_master: true,
        ..RedisOptions::default()
    })
    .unwrap();
    let master = r.master_port().unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", master)).is_err(),
        "the master port must refuse"
    );
    for cmd in [&["GET", "x"][..], &["PING"][..]] {
        let err = r.cmd(cmd).unwrap_err();
        let msg = err.redis_reply().unwrap();
        assert!(msg.starts_with("MASTERDOWN"), "{cmd:?}: {msg}");
    }
    let err = r.cmd(&["SET", "x", "1"]).unwrap_err();
    assert!(err.redis_reply().unwrap().starts_with("READONLY"), "{err}");
    assert_eq!(r.cmd(&["ECHO", "hi"]).unwrap(), "hi");
    assert!(r
        .cmd(&["INFO", "replication"])
        .unwrap()
        .contains("master_link_status:down"));
}

#[test]
fn client_kill_all_closes_clients() {
    let r = RedisServer::start().unwrap();
    let mut conns: Vec<_> = (0..3).map(|_| raw(r.port())).collect();
    for c in &mut conns {
        assert_eq!(raw_cmd(c, "PING"), "+PONG");
    }
    assert_eq!(r.client_count().unwrap(), 3);
    assert_eq!(r.client_kill_all().unwrap(), 3);
    for c in &mut conns {
        let mut buf = [0u8; 16];
        assert_eq!(c.1.read(&mut buf).unwrap_or(0), 0, "connection still open");
    }
    assert_eq!(r.client_count().unwrap(), 0);
    assert_eq!(r.client_kill_all().unwrap(), 0);
}

#[test]
fn debug_sleep_blocks_the_server() {
    let r = RedisServer::start().unwrap();
    let t = Instant::now();
    r.debug_sleep(1.0).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "debug_sleep must not wait"
    );
    let err = r.cmd_timeout(&["PING"], Duration::from_millis(300));
    assert!(err.is_err(), "a sleeping server answered: {err:?}");
    let t = Instant::now();
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");
    assert!(
        t.elapsed() > Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn freeze_and_thaw() {
    let r = RedisServer::start().unwrap();
    let pid = r.pid().unwrap();
    r.freeze().unwrap();
    assert_eq!(common::state(pid), Some('T'));
    assert!(r
        .cmd_timeout(&["PING"], Duration::from_millis(500))
        .is_err());
    assert!(r.is_running());
    r.thaw().unwrap();
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");
}

#[test]
fn restart_stop_kill_and_start_again() {
    let mut r = RedisServer::start().unwrap();
    let port = r.port();
    r.cmd(&["SET", "k", "v"]).unwrap();
    r.restart().unwrap();
    assert_eq!(r.port(), port);
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");
    assert_eq!(
        r.cmd(&["GET", "k"]).unwrap(),
        "(nil)",
        "nothing is persisted"
    );

    let pid = r.pid().unwrap();
    r.kill9().unwrap();
    assert!(!alive(pid));
    assert!(!r.is_running());
    assert!(r
        .cmd_timeout(&["PING"], Duration::from_millis(500))
        .is_err());
    r.start_again().unwrap();
    assert_eq!(r.port(), port);
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");

    r.freeze().unwrap();
    r.stop().unwrap(); // a frozen server still stops
    assert!(!r.is_running());
    assert!(r.stop().is_err());
    r.start_again().unwrap();
    assert_eq!(r.cmd(&["PING"]).unwrap(), "PONG");
}

#[test]
fn drop_leaves_nothing_behind() {
    let r = RedisServer::start().unwrap();
    let pid = r.pid().unwrap();
    let dir = r.dir().to_path_buf();
    assert_eq!(processes_in(&dir), vec![pid]);
    r.freeze().unwrap();
    drop(r);
    assert!(!alive(pid));
    assert!(!dir.exists());
}
