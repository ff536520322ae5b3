//! Integration tests against real private PostgreSQL servers.

mod common;

use std::time::{Duration, Instant};

use common::{alive, eventually, processes_in, run_timeout, wait_timeout};
use pool_testkit::{LoginProbe, PgOptions, PgServer};

fn select_one(pg: &PgServer) -> Option<(bool, String)> {
    let mut cmd = pg.psql_command(pg.options().password.as_deref());
    cmd.args(["-c", "select 1"]);
    run_timeout(&mut cmd, Duration::from_secs(10))
}

#[test]
fn starts_and_answers() {
    let t = Instant::now();
    let pg = PgServer::start().unwrap();
    eprintln!("start took {:?}", t.elapsed());
    assert_eq!(pg.host(), "127.0.0.1");
    assert_ne!(pg.port(), 5432);
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port())
    );
    assert_eq!(pg.psql("select 1").unwrap(), "1");
    assert_eq!(select_one(&pg), Some((true, "1\n".to_string())));
    assert!(pg.is_running());
    assert!(pg.log_path().is_file());
    assert_eq!(
        pg.probe_login(Duration::from_secs(5)).unwrap(),
        LoginProbe::Ready
    );
    // The readiness probes left no session behind.
    assert_eq!(pg.client_sessions().unwrap(), 0);
    assert_eq!(pg.psql("show fsync").unwrap(), "off");
}

#[test]
fn options_reach_the_server() {
    let pg = PgServer::start_with(PgOptions {
        max_connections: 7,
        extra_conf: vec![("work_mem".into(), "7MB".into())],
        ..PgOptions::default()
    })
    .unwrap();
    assert_eq!(pg.psql("show max_connections").unwrap(), "7");
    assert_eq!(pg.psql("show work_mem").unwrap(), "7MB");
}

#[test]
fn password_mode_checks_the_password() {
    let pw = "s3cr'et pw@x";
    let pg = PgServer::start_with(PgOptions {
        password: Some(pw.into()),
        ..PgOptions::default()
    })
    .unwrap();
    assert_eq!(
        pg.url(),
        format!(
            "postgres://postgres:s3cr%27et%20pw%40x@127.0.0.1:{}/postgres",
            pg.port()
        )
    );
    assert!(!format!("{pg:?}").contains(pw));
    assert!(!format!("{:?}", pg.options()).contains(pw));

    let mut wrong = pg.psql_command(Some("wrong"));
    wrong.args(["-c", "select 1"]);
    let (ok, text) = run_timeout(&mut wrong, Duration::from_secs(10)).unwrap();
    assert!(!ok);
    assert!(text.contains("password authentication failed"), "{text}");

    let mut none = pg.psql_command(None);
    none.args(["-c", "select 1"]);
    let (ok, text) = run_timeout(&mut none, Duration::from_secs(10)).unwrap();
    assert!(!ok, "{text}");

    assert_eq!(select_one(&pg), Some((true, "1\n".to_string())));
    assert_eq!(pg.psql("select 2").unwrap(), "2");
    assert_eq!(
        pg.probe_login(Duration::from_secs(5)).unwrap(),
        LoginProbe::AuthRequested
    );
}

#[test]
fn restarts_keep_port_and_data() {
    let mut pg = PgServer::start().unwrap();
    let port = pg.port();
    pg.psql("create table t(x int); insert into t values (42)")
        .unwrap();

    let t = Instant::now();
    pg.restart_fast().unwrap();
    eprintln!("restart_fast took {:?}", t.elapsed());
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select x from t").unwrap(), "42");

    let t = Instant::now();
    pg.restart_immediate().unwrap();
    eprintln!("restart_immediate took {:?}", t.elapsed());
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select x from t").unwrap(), "42");

    let old_pid = pg.pid().unwrap();
    let mut members = processes_in(pg.dir());
    assert!(members.len() > 1, "postmaster and helpers: {members:?}");
    pg.kill9().unwrap();
    assert!(!pg.is_running());
    assert_eq!(pg.pid(), None);
    members.push(old_pid);
    assert!(members.iter().all(|&p| !alive(p)), "survivors: {members:?}");
    assert!(select_one(&pg).is_some_and(|(ok, _)| !ok));
    assert!(pg.kill9().is_err(), "kill9 of a dead server is an error");

    let t = Instant::now();
    pg.start_again().unwrap();
    eprintln!("start_again after kill9 took {:?}", t.elapsed());
    assert!(pg.start_again().is_err(), "already running");
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("select x from t").unwrap(), "42");

    pg.stop_fast().unwrap();
    assert!(!pg.is_running());
    pg.start_again().unwrap();
    assert_eq!(pg.psql("select 1").unwrap(), "1");

    // A frozen server still shuts down.
    pg.freeze().unwrap();
    pg.stop_immediate().unwrap();
    assert!(processes_in(pg.dir()).is_empty());
}

#[test]
fn freeze_hangs_and_thaw_resumes() {
    let pg = PgServer::start().unwrap();
    let pid = pg.pid().unwrap();
    pg.freeze().unwrap();
    let mut cmd = pg.psql_command(None);
    cmd.args(["-c", "select 1"]);
    assert_eq!(
        run_timeout(&mut cmd, Duration::from_secs(2)),
        None,
        "a frozen server must not answer"
    );
    assert!(pg.probe_login(Duration::from_millis(300)).is_err());
    assert!(pg.is_running(), "frozen is still running");
    let procs = processes_in(pg.dir());
    assert!(procs.contains(&pid) && procs.len() > 1, "{procs:?}");
    for p in procs {
        assert_eq!(common::state(p), Some('T'), "process {p} is not stopped");
    }
    pg.thaw().unwrap();
    for p in processes_in(pg.dir()) {
        assert_ne!(common::state(p), Some('T'), "process {p} is still stopped");
    }
    assert_eq!(select_one(&pg), Some((true, "1\n".to_string())));
}

#[test]
fn select_times_out_while_frozen() {
    let pg = PgServer::start().unwrap();
    // A session that is already open hangs too.
    let mut cmd = pg.psql_command(None);
    cmd.args(["-c", "select pg_sleep(1)", "-c", "select 'done'"]);
    pg.freeze().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_timeout(&mut cmd, Duration::from_secs(20)));
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "frozen server answered"
    );
    pg.thaw().unwrap();
    let (ok, text) = rx.recv_timeout(Duration::from_secs(15)).unwrap().unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("done"));
}

#[test]
fn terminate_backends_kills_sessions() {
    let pg = PgServer::start().unwrap();
    let mut sleeper = pg
        .psql_command(None)
        .args(["-c", "select pg_sleep(30)"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || pg.client_sessions().unwrap()
            == 1),
        "the sleeping session never showed up"
    );
    let t = Instant::now();
    assert_eq!(pg.terminate_backends().unwrap(), 1);
    let status = wait_timeout(&mut sleeper, Duration::from_secs(5)).expect("psql survived");
    assert!(!status.success());
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sleeper.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("terminating connection due to administrator command"),
        "{err}"
    );
    assert_eq!(pg.client_sessions().unwrap(), 0);
    assert_eq!(pg.terminate_backends().unwrap(), 0);
}

#[test]
fn standby_refuses_logins_with_57p03() {
    let pg = PgServer::start_with(PgOptions {
        standby_57p03: true,
        password: Some("pw".into()),
        ..PgOptions::default()
    })
    .unwrap();
    let (ok, text) = select_one(&pg).unwrap();
    assert!(!ok);
    assert!(
        text.contains("FATAL:  the database system is not accepting connections"),
        "{text}"
    );
    assert!(text.contains("Hot standby mode is disabled."), "{text}");
    match pg.probe_login(Duration::from_secs(5)).unwrap() {
        LoginProbe::Rejected(e) => {
            assert_eq!(e.code, "57P03");
            assert_eq!(
                e.message,
                "the database system is not accepting connections"
            );
            assert_eq!(e.detail.as_deref(), Some("Hot standby mode is disabled."));
        }
        other => panic!("expected 57P03, got {other:?}"),
    }
    assert!(pg.psql("select 1").is_err());
}

#[test]
fn drop_leaves_nothing_behind() {
    let pg = PgServer::start().unwrap();
    let mut sleeper = pg
        .psql_command(None)
        .args(["-c", "select pg_sleep(30)"])
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || pg
        .client_sessions()
        .unwrap()
        == 1));
    let pid = pg.pid().unwrap();
    let mut members = processes_in(pg.dir());
    assert!(
        members.len() >= 5,
        "postmaster, helpers and a backend: {members:?}"
    );
    members.push(pid);
    let dir = pg.dir().to_path_buf();
    pg.freeze().unwrap();
    drop(pg);
    assert!(members.iter().all(|&p| !alive(p)), "survivors: {members:?}");
    assert!(!dir.exists());
    assert!(wait_timeout(&mut sleeper, Duration::from_secs(5)).is_some());
}
