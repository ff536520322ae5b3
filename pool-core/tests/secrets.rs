//! Property tests of the URL grammar and the redaction: for arbitrary
//! passwords (any bytes, delimiters included) written in every form, the
//! password never shows in `Display`, `Debug`, serde output, targets or
//! errors, and parsing never panics.
//!
//! Passwords are built from the marker `Zq` followed by up to three
//! arbitrary characters, repeated, so any leaked run of more than four
//! password characters contains `Zq` (nothing else in the inputs does).
//! `PROPTEST_CASES` raises the case count (CI's bounded fuzz run).

use pool_core::redact::{redact_url, SecretUrl};
use pool_core::url::{percent, ConnUrl};
use proptest::prelude::*;

const MARK: &str = "Zq";

/// Characters that break naive parsers, plus anything at all.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            '@', ':', '/', '?', '#', '&', '=', '\'', '"', '\\', '%', ' ', '\t', '\n', ',', '[',
            ']', ';', '+', '*',
        ]),
        1 => any::<char>(),
    ]
}

fn password() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::collection::vec(nasty_char(), 0..4), 1..6).prop_map(
        |chunks| {
            chunks
                .into_iter()
                .map(|c| format!("{MARK}{}", c.into_iter().collect::<String>()))
                .collect()
        },
    )
}

fn password_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 1..6).prop_map(
        |chunks| {
            chunks
                .into_iter()
                .flat_map(|c| MARK.bytes().chain(c))
                .collect()
        },
    )
}

/// libpq quoting: `\` and `'` escaped inside single quotes.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// libpq unquoted value: every non-alphanumeric character escaped.
fn escaped(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc = (!c.is_alphanumeric()).then_some('\\');
            esc.into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Every way `s` can be shown must hide the marker.
fn assert_hidden(input: &str) {
    let redacted = redact_url(input);
    assert!(
        !redacted.contains(MARK),
        "redact_url({input:?}) = {redacted:?}"
    );
    let secret = SecretUrl::new(input);
    for shown in [
        format!("{secret}"),
        format!("{secret:?}"),
        format!("{secret:#?}"),
        serde_json::to_string(&secret).unwrap(),
    ] {
        assert!(!shown.contains(MARK), "{input:?} shown as {shown:?}");
    }
    match ConnUrl::parse(input) {
        Ok(url) => {
            for shown in [
                url.to_string(),
                url.target(),
                format!("{url:?}"),
                serde_json::to_string(&url).unwrap(),
            ] {
                assert!(
                    !shown.contains(MARK),
                    "{input:?} parsed, shown as {shown:?}"
                );
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(MARK), "{input:?}: error {shown:?}");
        }
    }
}

/// Parses and returns the password bytes.
fn parsed_password(input: &str) -> Vec<u8> {
    let url = ConnUrl::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
    url.password.expect("a password").expose().to_vec()
}

proptest! {
    #[test]
    fn percent_encoded_passwords_parse_back_and_never_show(pw in password_bytes()) {
        let enc = percent::encode(&pw);
        for input in [
            format!("postgres://app:{enc}@db:5432/app"),
            format!("postgresql://app:{enc}@db1:5432,db2:5433/app?sslmode=disable"),
            format!("postgres://app@db/app?password={enc}&sslmode=disable"),
        ] {
            assert_hidden(&input);
            prop_assert_eq!(parsed_password(&input), pw.clone());
        }
    }

    #[test]
    fn text_passwords_in_every_form(pw in password()) {
        let enc = percent::encode(pw.as_bytes());
        let encoded_forms = [
            format!("redis://:{enc}@cache:6379/0"),
            format!("redis://alice:{enc}@cache/1"),
            format!("rediss://alice:{enc}@cache:6380/1#insecure"),
            format!("unix:///run/redis.sock?db=1&pass={enc}"),
            format!("redis+unix:///run/redis.sock?pass={enc}&user=bob"),
            format!("host=db user=app password={} dbname=app", quoted(&pw)),
            format!("host=db password = {} user=app", quoted(&pw)),
            format!("host=db user=app password={} dbname=app", escaped(&pw)),
            format!("host=db,db2 port=5432 sslpassword={} password={}", quoted(&pw), quoted(&pw)),
        ];
        for input in &encoded_forms {
            assert_hidden(input);
            prop_assert_eq!(parsed_password(input), pw.as_bytes().to_vec(), "{}", input);
        }
        // Written raw, as people do: the grammar reads up to the last '@'.
        for input in [
            format!("postgres://app:{pw}@db:5432/app"),
            format!("redis://alice:{pw}@cache:6379/0"),
            format!("redis://:{pw}@cache"),
        ] {
            assert_hidden(&input);
            if !pw.contains('%') && pw.trim_end() == pw {
                prop_assert_eq!(parsed_password(&input), pw.as_bytes().to_vec(), "{}", input);
            }
        }
        // Unquoted with no escapes (wrong, but must not leak either).
        assert_hidden(&format!("host=db password={pw} user=app"));
        assert_hidden(&format!("postgres://app@db/app?password={pw}"));
        // Quoted inside a message.
        assert_hidden(&format!("cannot connect to 'postgres://app:{pw}@db/app': refused"));
    }

    #[test]
    fn anything_parses_or_fails_without_panicking(s in ".{0,80}") {
        let _ = ConnUrl::parse(&s);
        let _ = redact_url(&s);
        for scheme in ["postgres://", "redis://", "unix://", "rediss://", "host="] {
            let input = format!("{scheme}{s}");
            let _ = ConnUrl::parse(&input);
            let _ = redact_url(&input);
        }
    }
}
