use super::*;

fn pg(s: &str) -> ConnUrl {
    ConnUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn tcp(h: &str, port: u16) -> Host {
    Host {
        addr: HostAddr::Tcp(h.into()),
        port,
    }
}

fn err(s: &str) -> String {
    ConnUrl::parse(s).expect_err(s).to_string()
}

#[test]
fn postgres_url_with_every_part() {
    let u = pg("postgresql://app:s%40cret@db1:5433,db2,[::1]:6000/my%20db?sslmode=require&application_name=x");
    assert_eq!(u.backend, Backend::Postgres);
    assert_eq!(
        u.hosts,
        [tcp("db1", 5433), tcp("db2", 5432), tcp("::1", 6000)]
    );
    assert_eq!(u.user.as_deref(), Some("app"));
    assert_eq!(u.password.as_ref().unwrap().expose(), b"s@cret");
    assert_eq!(u.dbname.as_deref(), Some("my db"));
    assert_eq!(u.param("sslmode"), Some("require"));
    assert_eq!(
        u.target(),
        "postgres://app@db1:5433,db2:5432,[::1]:6000/my db"
    );
    assert_eq!(
        u.to_string(),
        "postgres://app:***@db1:5433,db2:5432,[::1]:6000/my%20db?sslmode=require&application_name=x"
    );
}

#[test]
fn raw_delimiters_in_the_password_end_at_the_last_at() {
    let u = pg("postgres://weird:p@ss:w/rd%Q?#x@127.0.0.1:58001/postgres");
    assert_eq!(u.user.as_deref(), Some("weird"));
    assert_eq!(u.password.unwrap().expose(), b"p@ss:w/rd%Q?#x");
    assert_eq!(u.hosts, [tcp("127.0.0.1", 58001)]);
    assert_eq!(u.dbname.as_deref(), Some("postgres"));
}

#[test]
fn postgres_unix_sockets() {
    let u = pg("postgres://app@%2Fvar%2Frun%2Fpostgresql:5433/app");
    assert_eq!(
        u.hosts[0].addr,
        HostAddr::Unix("/var/run/postgresql".into())
    );
    assert_eq!(u.hosts[0].port, 5433);
    let u = pg("postgresql:///app?host=/tmp&port=6000&user=me");
    assert_eq!(
        u.hosts,
        [Host {
            addr: HostAddr::Unix("/tmp".into()),
            port: 6000
        }]
    );
    assert_eq!(u.user.as_deref(), Some("me"));
    let u = pg("host=/tmp user=me");
    assert_eq!(u.hosts[0].addr, HostAddr::Unix("/tmp".into()));
}

#[test]
fn key_value_strings() {
    let u = pg(
        r"host = db1,db2  port=5432,5433 user=app password='a b\'c\\d' dbname=x\ y sslmode=disable",
    );
    assert_eq!(u.form, Form::KeyValue);
    assert_eq!(u.hosts, [tcp("db1", 5432), tcp("db2", 5433)]);
    assert_eq!(u.password.as_ref().unwrap().expose(), br"a b'c\d");
    assert_eq!(u.dbname.as_deref(), Some("x y"));
    assert_eq!(u.param("sslmode"), Some("disable"));
    let u = pg("host=db password=''");
    assert_eq!(u.password.unwrap().expose(), b"");
}

#[test]
fn ports_pair_with_hosts() {
    let u = pg("host=a,b,c port=7000");
    assert!(u.hosts.iter().all(|h| h.port == 7000));
    assert!(err("host=a,b,c port=1,2").contains("2 ports for 3 hosts"));
}

#[test]
fn bad_postgres_options_are_named() {
    assert!(err("postgres://u:pw@db/app?sslmod=require").contains("unknown option 'sslmod'"));
    let e = err("postgres://u:pw@db/app?sslmode=verify-ful");
    assert!(e.contains("'sslmode'") && e.contains("verify-ful"), "{e}");
    assert!(err("host=db connect_timeout=soon").contains("'connect_timeout'"));
    assert!(err("postgres://u:pw@db:notaport/app").contains("invalid port \"notaport\""));
    assert!(err("postgres://u:pw@/app").contains("no host given"));
    assert!(err("host=db password='open").contains("no closing quote"));
    assert!(err("mysql://u:pw@db/app").contains("unsupported scheme 'mysql'"));
}

#[test]
fn errors_never_quote_the_password() {
    for s in [
        "host=db password=Zq1 Zq2 user=x",
        "host=db password=Zq1 Zq2=y",
        "postgres://u:Zq1@db:Zq2/app",
        "host=db password='Zq1",
        "redis://:Zq1@cache/Zq2x",
        "postgres://u:pw@db/app?password=Zq1&Zq2",
        "postgres://u:pw@db/app?password=Zq1&Zq2=3",
    ] {
        if let Err(e) = ConnUrl::parse(s) {
            assert!(!e.to_string().contains("Zq1"), "{s}: {e}");
        }
    }
}

#[test]
fn redis_urls() {
    let u = pg("rediss://alice:p%3Aw@cache:6380/3?protocol=resp3#insecure");
    assert_eq!(u.backend, Backend::Redis);
    assert!(u.tls);
    assert_eq!(u.hosts, [tcp("cache", 6380)]);
    assert_eq!(u.user.as_deref(), Some("alice"));
    assert_eq!(u.password.as_ref().unwrap().expose(), b"p:w");
    assert_eq!(u.redis_db(), 3);
    assert_eq!(u.fragment.as_deref(), Some("insecure"));
    assert_eq!(u.target(), "rediss://alice@cache:6380/3");
    assert_eq!(
        u.to_string(),
        "rediss://alice:***@cache:6380/3?protocol=resp3#insecure"
    );
    let u = pg("redis://:pw@cache");
    assert_eq!(u.user, None);
    assert_eq!(u.target(), "redis://cache:6379/0");
    let u = pg("redis://lonely@cache");
    assert_eq!(u.target(), "redis://***@cache:6379/0");
}

#[test]
fn redis_unix_sockets() {
    for s in [
        "unix:///run/redis.sock?db=2&pass=Zq1&user=bob",
        "redis+unix:///run/redis.sock?db=2&pass=Zq1&user=bob",
    ] {
        let u = pg(s);
        assert_eq!(u.form, Form::UnixUrl);
        assert_eq!(u.hosts[0].addr, HostAddr::Unix("/run/redis.sock".into()));
        assert_eq!(u.redis_db(), 2);
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_ref().unwrap().expose(), b"Zq1");
        assert_eq!(u.target(), "unix:///run/redis.sock?db=2");
        assert_eq!(
            u.to_string(),
            "unix:///run/redis.sock?db=2&user=bob&pass=***"
        );
    }
    assert!(err("unix://relative.sock").contains("absolute path"));
}

#[test]
fn bad_redis_urls() {
    assert!(err("redis://cache:notaport/0").contains("invalid port"));
    assert!(err("redis://cache/notadb").contains("invalid database index"));
    assert!(err("redis://cache/-1").contains("invalid database index"));
    assert!(err("redis://a,b/0").contains("Sentinel"));
    assert!(err("redis://0.0.0.0/0").contains("wildcard"));
    assert!(err("redis://cache/0#frag").contains("#insecure"));
    assert!(err("redis://cache/0?db=1").contains("unknown option 'db'"));
    assert!(err("redis://:%FF@cache/0").contains("UTF-8"));
}

#[test]
fn display_parses_back_to_the_same_target() {
    for s in [
        "postgres://app:pw@db1:5433,db2/app?sslmode=require",
        "host=/tmp,db port=1,2 user=u dbname=d",
        "redis://u:pw@cache:6380/2?protocol=3",
        "unix:///run/r.sock?db=1&pass=x",
        "postgres://u@[::1]:5/d",
    ] {
        let u = pg(s);
        let again = pg(&u.to_string());
        assert_eq!(again.target(), u.target(), "{s} -> {u}");
        assert_eq!(again.params, u.params, "{s}");
    }
}

#[test]
fn parsing_requires_the_backend_asked_for() {
    let e = ConnUrl::parse_for(Backend::Redis, "postgres://u@db/app").unwrap_err();
    assert!(e.to_string().contains("a Redis URL"), "{e}");
    assert!(ConnUrl::parse_for(Backend::Postgres, "host=db").is_ok());
}

#[test]
fn debug_and_serde_hide_secrets() {
    let u = pg("postgres://u:Zq1@db/app?sslpassword=Zq2");
    assert!(!format!("{u:?}").contains("Zq"));
    assert!(!format!("{u:#?}").contains("Zq"));
    assert!(!format!("{u}").contains("Zq"));
    assert!(!serde_json::to_string(&u).unwrap().contains("Zq"));
}
